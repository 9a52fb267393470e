"""The wire contract, version 1: job, result and event documents.

These models are the edge of the system. A job is validated once, here, when it
arrives (from SQS or from `sandboxd run`); nothing inside re-validates it.
"""

from __future__ import annotations

import base64
import binascii
import re
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
    model_validator,
)

from sandboxd.paths import PathError, normalise_path

JOB_SCHEMA: Final = "sandboxd.job/v1"
RESULT_SCHEMA: Final = "sandboxd.result/v1"
EVENT_SCHEMA: Final = "sandboxd.event/v1"

# Size limits of a job's files. An SQS message is at most 1 MiB anyway; these
# bound what `sandboxd run` accepts from a local directory too.
MAX_FILES = 500
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_TOTAL_BYTES = 16 * 1024 * 1024
MAX_ID_CHARS = 128
MAX_STDIN_BYTES = 4 * 1024 * 1024
MIN_MEMORY_MB = 16
MIN_PIDS = 8

_ID_RE = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces: safe in logs and labels


class Verdict(StrEnum):
    """The status of a result. Order of members is the priority order (highest first)."""

    INTERNAL_ERROR = "internal_error"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    COMPILE_ERROR = "compile_error"
    RUNTIME_ERROR = "runtime_error"
    FAILED = "failed"
    WRONG_ANSWER = "wrong_answer"
    PASSED = "passed"
    REJECTED = "rejected"


class TestStatus(StrEnum):
    __test__ = False  # not a pytest class

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSpec(_Strict):
    """One file of a job, placed at `path` under the sandbox's work directory."""

    path: str
    content: str
    encoding: Literal["utf-8", "base64"] = "utf-8"
    mode: Annotated[int, Field(ge=0, le=0o777)] | None = None

    @field_validator("path")
    @classmethod
    def _path_is_safe(cls, value: str) -> str:
        try:
            return normalise_path(value)
        except PathError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _content_decodes(self) -> FileSpec:
        if self.encoding == "base64":
            try:
                base64.b64decode(self.content, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"file {self.path!r}: content is not valid base64") from None
        if self.size() > MAX_FILE_BYTES:
            raise ValueError(
                f"file {self.path!r} is {self.size()} bytes; the limit is {MAX_FILE_BYTES} bytes"
            )
        return self

    def data(self) -> bytes:
        if self.encoding == "base64":
            return base64.b64decode(self.content, validate=True)
        return self.content.encode("utf-8")

    def size(self) -> int:
        if self.encoding == "base64":
            # Exact decoded length without decoding twice.
            stripped = self.content.rstrip("=")
            return len(stripped) * 3 // 4
        return len(self.content.encode("utf-8"))


class LimitsRequest(_Strict):
    """Per-job limit overrides; each is clamped to the host's maxima (see `limits.py`)."""

    wall_seconds: Annotated[float, Field(gt=0)] | None = None
    cpu_seconds: Annotated[float, Field(gt=0)] | None = None
    # Below these a sandbox cannot start a process at all (Docker refuses memory under
    # 6 MB; the init and its idle child already count against pids): a clear rejection
    # beats an internal error.
    memory_mb: Annotated[int, Field(ge=MIN_MEMORY_MB)] | None = None
    pids: Annotated[int, Field(ge=MIN_PIDS)] | None = None
    output_bytes: Annotated[int, Field(gt=0)] | None = None
    disk_mb: Annotated[int, Field(gt=0)] | None = None


class Job(_Strict):
    """A job document, `sandboxd.job/v1`."""

    schema_: Literal["sandboxd.job/v1"] = Field(JOB_SCHEMA, alias="schema")
    id: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
    language: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_+-]{0,31}$")] | None = None
    image: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    files: Annotated[list[FileSpec], Field(max_length=MAX_FILES)] = Field(default_factory=list)
    command: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    stdin: str | None = None
    expected_output: str | None = None
    limits: LimitsRequest = Field(default_factory=LimitsRequest)
    reply_to: Annotated[str, Field(min_length=1, max_length=2048)] | None = None
    stream: bool = False
    metadata: JsonValue = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("id")
    @classmethod
    def _id_is_printable(cls, value: str) -> str:
        if not _ID_RE.match(value):
            raise ValueError("id must be printable ASCII without spaces")
        return value

    @field_validator("stdin")
    @classmethod
    def _stdin_size(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode("utf-8")) > MAX_STDIN_BYTES:
            raise ValueError(f"stdin is larger than {MAX_STDIN_BYTES} bytes")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Job:
        if (self.language is None) == (self.image is None):
            raise ValueError("give exactly one of 'language' or 'image'")
        if self.command is None and (self.stdin is not None or self.expected_output is not None):
            raise ValueError("'stdin' and 'expected_output' need a 'command'")
        seen: set[str] = set()
        for spec in self.files:
            if spec.path in seen:
                raise ValueError(f"file {spec.path!r} is given twice")
            seen.add(spec.path)
        for spec in self.files:
            parts = spec.path.split("/")
            for i in range(1, len(parts)):
                if "/".join(parts[:i]) in seen:
                    raise ValueError(f"file {spec.path!r} lies below file {'/'.join(parts[:i])!r}")
        total = sum(spec.size() for spec in self.files)
        if total > MAX_TOTAL_BYTES:
            raise ValueError(f"files total {total} bytes; the limit is {MAX_TOTAL_BYTES} bytes")
        return self

    @property
    def pool_key(self) -> str:
        """The warm pool that serves this job."""
        return self.language if self.language is not None else f"image:{self.image}"


class TestResult(_Strict):
    """One test, as the runner reported it (Exercism test-runner interface v3)."""

    __test__ = False

    name: str
    status: TestStatus
    message: str | None = None
    output: str | None = None
    test_code: str | None = None
    task_id: int | None = None


class Timing(_Strict):
    queued_ms: int = 0
    acquire_ms: int = 0
    run_ms: int = 0
    total_ms: int = 0


class Resources(_Strict):
    cpu_ms: int | None = None
    peak_memory_bytes: int | None = None


class Result(_Strict):
    """A result document, `sandboxd.result/v1`."""

    schema_: Literal["sandboxd.result/v1"] = Field(RESULT_SCHEMA, alias="schema")
    id: str
    attempt: int = 1
    status: Verdict
    message: str = ""
    tests: list[TestResult] = Field(default_factory=list)
    exit_code: int | None = None
    signal: str | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timing: Timing = Field(default_factory=Timing)
    resources: Resources = Field(default_factory=Resources)
    image: str | None = None
    host: str = ""
    metadata: JsonValue = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)


class EventKind(StrEnum):
    STARTED = "started"
    STDOUT = "stdout"
    STDERR = "stderr"
    TEST = "test"
    FINISHED = "finished"


class Event(_Strict):
    """An output event, `sandboxd.event/v1`. `seq` starts at 0 and has no gaps."""

    schema_: Literal["sandboxd.event/v1"] = Field(EVENT_SCHEMA, alias="schema")
    id: str
    seq: Annotated[int, Field(ge=0)]
    kind: EventKind
    data: JsonValue = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class JobRejected(Exception):
    """A job document that cannot be run; `job_id` is set when an id could be read."""

    def __init__(self, message: str, job_id: str | None = None, reply_to: str | None = None):
        super().__init__(message)
        self.message = message
        self.job_id = job_id
        self.reply_to = reply_to


_SCHEMA_RE = re.compile(r"^sandboxd\.job/v(\d+)(?:\.\d+)?$")


def parse_job(body: str | bytes) -> Job:
    """Parse and validate a job document, raising `JobRejected` with a learner-safe message."""
    import json

    try:
        raw: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JobRejected(f"the message is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise JobRejected("the message is not a JSON object")
    job_id = raw.get("id") if isinstance(raw.get("id"), str) else None
    if job_id is not None and (len(job_id) > MAX_ID_CHARS or not _ID_RE.match(job_id)):
        job_id = None  # never echo an id we would refuse
    reply_to = raw.get("reply_to") if isinstance(raw.get("reply_to"), str) else None
    if reply_to is not None and not _is_unicode(reply_to):
        reply_to = None
    if not _is_unicode(raw):
        # JSON can escape half of a surrogate pair (\ud800); such text cannot be written
        # to a file or sent back in a result.
        raise JobRejected(
            "the job contains text that is not valid Unicode (an unpaired \\uD800-\\uDFFF escape)",
            job_id,
            reply_to,
        )
    schema = raw.get("schema")
    if not isinstance(schema, str):
        raise JobRejected("missing 'schema' (expected 'sandboxd.job/v1')", job_id, reply_to)
    match = _SCHEMA_RE.match(schema)
    if match is None or match.group(1) != "1":
        raise JobRejected(
            f"unsupported schema {schema[:64]!r}; this host speaks 'sandboxd.job/v1'",
            job_id,
            reply_to,
        )
    raw = {**raw, "schema": JOB_SCHEMA}
    try:
        return Job.model_validate(raw)
    except ValidationError as exc:
        raise JobRejected(describe_validation_error(exc), job_id, reply_to) from None


def _is_unicode(value: Any) -> bool:
    """No lone surrogate anywhere in `value` (a JSON-decoded document)."""
    import json

    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def describe_validation_error(exc: ValidationError) -> str:
    """One readable line per problem, without pydantic's URLs or input echoes."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False)[:10]:
        where = ".".join(str(p) for p in err["loc"]) or "job"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {msg}")
    more = exc.error_count() - len(lines)
    if more > 0:
        lines.append(f"... and {more} more")
    return "invalid job: " + "; ".join(lines)
