"""Daemon settings, read from `SANDBOXD_*` environment variables and validated at start.

`load_settings()` is the entry point: it turns any bad value into one `ConfigError` line
naming the variable, so an operator sees `SANDBOXD_MAX_PIDS: must be greater than 0
(got '-1')` rather than a pydantic dump. A `SANDBOXD_*` variable that nothing reads is
most likely a misspelt setting: it gets a warning naming the closest real one.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from sandboxd.limits import DEFAULT_MAXIMA, Limits

log = logging.getLogger(__name__)

ENV_PREFIX = "SANDBOXD_"

# SQS queue names: 1-80 characters of letters, digits, `-` and `_`. FIFO queues (`.fifo`)
# are deliberately not accepted: sends would need a MessageGroupId the daemon never sets.
_QUEUE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_LANGUAGE_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
# What botocore itself accepts as a region name; checked here so a typo fails at start-up
# with the variable's name rather than at the first SQS call.
_REGION_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")

# The dead-letter queue embedded mode creates (and points the jobs queue's redrive at)
# when `SANDBOXD_DEAD_LETTER_QUEUE` is not set.
EMBEDDED_DEAD_LETTER_QUEUE = "sandboxd-jobs-dlq"

# The environment `load_settings(env)` asked for; None means `os.environ`. A context
# variable rather than a global so concurrent loads (tests) cannot see each other's env.
_environ: ContextVar[Mapping[str, str] | None] = ContextVar("sandboxd_environ", default=None)


class ConfigError(Exception):
    """A setting has a bad value; the message is one line naming the variable."""


def env_name(field: str) -> str:
    """`heartbeat_seconds` -> `SANDBOXD_HEARTBEAT_SECONDS`."""
    return ENV_PREFIX + field.upper()


def is_queue_url(value: str) -> bool:
    """True when `value` is a queue URL rather than a queue name."""
    return value.startswith(("http://", "https://"))


class _EnvSource(PydanticBaseSettingsSource):
    """`SANDBOXD_<FIELD>` variables as raw strings; pydantic's validation parses them.

    Our own source rather than pydantic-settings' `EnvSettingsSource` because that one only
    reads `os.environ` and JSON-decodes dict fields before any validator runs, which would
    reject the simple `python=2,javascript=1` form of `SANDBOXD_POOL_SIZES`.
    """

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._environ.get(env_name(field_name)), field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values


class Settings(BaseSettings):
    """Everything the daemon is configured by. Field `x` is variable `SANDBOXD_X`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # Queues: "embedded" runs moto's SQS server on loopback; "aws" is real SQS, with
    # credentials, region and `AWS_ENDPOINT_URL_SQS` from the standard AWS chain.
    sqs: Literal["embedded", "aws"] = "embedded"
    # How the per-job calls (receive, send, delete) reach SQS: "lean" is sandboxd's own
    # signed JSON-over-HTTP/1.1 transport on kept connections (sandboxd/sqs_wire.py, a
    # fraction of the CPU); "botocore" sends them through aioboto3 like every other call.
    # "lean" falls back to aioboto3 where a proxy is configured for the endpoint.
    sqs_client: Literal["lean", "botocore"] = "lean"
    # A fixed port, not 0: `sandboxd submit` finds the daemon's server by it.
    embedded_sqs_port: int = Field(default=9324, ge=1, le=65535)
    jobs_queue: str = "sandboxd-jobs"
    results_queue: str = "sandboxd-results"
    # Unset: the jobs queue's redrive target (aws), or EMBEDDED_DEAD_LETTER_QUEUE (embedded).
    # Set: overrides the redrive target for what the daemon itself dead-letters.
    dead_letter_queue: str | None = None
    max_receive_count: int = Field(default=3, ge=1, le=1000)  # SQS's own bounds
    # SANDBOXD_REGION, else the standard AWS_REGION / AWS_DEFAULT_REGION, else us-east-1.
    region: str = Field(default_factory=lambda: _aws_region_default(), min_length=1)
    # Local state: the embedded SQS server's log. Relative paths are relative to the
    # working directory the daemon was started in.
    state_dir: Path = Path(".cache")

    http_addr: str = "127.0.0.1:8700"

    # The capacity model (sandboxd.capacity): the host's job slots (unset: one per CPU)
    # shared by the languages it serves, each sized from its demand, at least
    # `pool_floor` each, their warm sandboxes within `warm_memory_mb` (unset: a quarter
    # of the host's memory). `pool_sizes` fixes the size of the languages it names (an
    # override: their demand is not looked at) and, when `languages` is unset, says
    # which languages are served.
    languages: list[str] | None = None
    slots: int | None = Field(default=None, ge=1, le=4096)
    pool_floor: int = Field(default=1, ge=0, le=64)
    warm_memory_mb: int | None = Field(default=None, ge=1)
    pool_sizes: dict[str, int] = Field(default_factory=dict)
    # Warm sandboxes per language beyond its job slots: a retirement or a reset under way
    # never makes the next job wait for a container to start.
    pool_spares: int = Field(default=1, ge=0, le=64)

    # Host maxima: a job may ask for less, never for more.
    max_wall_seconds: float = Field(default=DEFAULT_MAXIMA.wall_seconds, gt=0, allow_inf_nan=False)
    max_cpu_seconds: float = Field(default=DEFAULT_MAXIMA.cpu_seconds, gt=0, allow_inf_nan=False)
    max_memory_mb: int = Field(default=DEFAULT_MAXIMA.memory_mb, gt=0)
    max_pids: int = Field(default=DEFAULT_MAXIMA.pids, gt=0)
    max_output_bytes: int = Field(default=DEFAULT_MAXIMA.output_bytes, gt=0)
    max_disk_mb: int = Field(default=DEFAULT_MAXIMA.disk_mb, gt=0)

    grace_seconds: float = Field(default=30.0, ge=0, allow_inf_nan=False)
    # Declared before heartbeat_seconds so that field's validator can compare against it.
    visibility_timeout: int = Field(default=60, ge=1, le=43200)  # SQS allows up to 12 h
    heartbeat_seconds: float = Field(default=20.0, gt=0, allow_inf_nan=False)
    wait_time_seconds: int = Field(default=10, ge=0, le=20)  # SQS long-poll bounds
    host_id: str = Field(default_factory=socket.gethostname, min_length=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keyword arguments win over the environment; no .env or secrets files, so what
        # configures the daemon is visible in its environment alone.
        environ = _environ.get()
        return init_settings, _EnvSource(settings_cls, os.environ if environ is None else environ)

    @field_validator("jobs_queue", "results_queue", "dead_letter_queue")
    @classmethod
    def _queue_name_or_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if is_queue_url(value):
            # The embedded server's URLs depend on the port it got; a URL here would point
            # the daemon at some other server, so embedded mode takes names only.
            if info.data.get("sqs") == "embedded":
                raise ValueError(
                    f"must be a queue name, not a URL, when {env_name('sqs')}=embedded"
                )
            return value
        if _QUEUE_NAME_RE.fullmatch(value):
            return value
        raise ValueError(
            "must be a standard queue name (1-80 letters, digits, '-' or '_') "
            "or an http(s):// queue URL"
        )

    @field_validator("region")
    @classmethod
    def _region_name(cls, value: str) -> str:
        if not _REGION_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a region name like us-east-1")
        return value

    @field_validator("state_dir", mode="before")
    @classmethod
    def _state_dir_not_empty(cls, value: Any) -> Any:
        # Path("") is the working directory; an empty variable is more likely a mistake.
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value

    @field_validator("http_addr")
    @classmethod
    def _host_port(cls, value: str) -> str:
        _split_host_port(value)
        return value

    @field_validator("pool_sizes", mode="before")
    @classmethod
    def _parse_pool_sizes(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith(("{", "[")):
            try:
                # Duplicate keys would silently keep the last; refuse them as below.
                decoded = json.loads(text, object_pairs_hook=_pairs)
            except json.JSONDecodeError as exc:
                raise ValueError(f"is not valid JSON ({exc.msg})") from None
            if isinstance(decoded, dict):
                for language, size in decoded.items():
                    # pydantic would take `true` for 1.
                    if isinstance(size, bool):
                        raise ValueError(f"{language}: pool size must be a whole number")
            return decoded
        sizes: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            language, sep, size = item.partition("=")
            if not sep:
                raise ValueError(
                    f"{item!r} is not language=size; use e.g. python=2,javascript=1 "
                    'or {"python": 2}'
                )
            language = language.strip()
            if language in sizes:
                raise ValueError(f"{language!r} is given twice")
            sizes[language] = size.strip()
        return sizes

    @field_validator("languages", mode="before")
    @classmethod
    def _parse_languages(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        names = [part.strip() for part in value.split(",") if part.strip()]
        if not names:
            raise ValueError("must name at least one language, e.g. python,javascript")
        if len(set(names)) != len(names):
            raise ValueError("names a language twice")
        return names

    @field_validator("languages")
    @classmethod
    def _check_languages(cls, value: list[str] | None) -> list[str] | None:
        for language in value or ():
            if not _LANGUAGE_RE.fullmatch(language):
                raise ValueError(f"{language!r} is not a language name (lower-case, a-z0-9_-)")
        return value

    @field_validator("pool_sizes")
    @classmethod
    def _check_pool_sizes(cls, value: dict[str, int]) -> dict[str, int]:
        for language, size in value.items():
            if not _LANGUAGE_RE.fullmatch(language):
                raise ValueError(f"{language!r} is not a language name (lower-case, a-z0-9_-)")
            if size < 0:
                raise ValueError(f"{language}: pool size must be at least 0 (got {size})")
        return value

    @field_validator("heartbeat_seconds")
    @classmethod
    def _heartbeat_below_visibility(cls, value: float, info: ValidationInfo) -> float:
        # A heartbeat slower than the visibility timeout would let a running job's message
        # reappear and run twice. Skipped when visibility_timeout itself failed validation.
        visibility = info.data.get("visibility_timeout")
        if visibility is not None and value >= visibility:
            raise ValueError(f"must be less than {env_name('visibility_timeout')} ({visibility})")
        return value

    @property
    def served_languages(self) -> list[str]:
        """The languages this host serves: `languages`, else those `pool_sizes` names,
        else python; without those fixed at size 0."""
        names = self.languages if self.languages is not None else list(self.pool_sizes)
        names = names or ["python"]
        names = [*names, *(k for k in self.pool_sizes if k not in names)]
        return [k for k in names if self.pool_sizes.get(k, 1) > 0]

    @property
    def host_slots(self) -> int:
        from sandboxd.capacity import default_slots

        return self.slots if self.slots is not None else default_slots()

    @property
    def embedded_dead_letter_queue(self) -> str:
        """The dead-letter queue embedded mode creates."""
        return self.dead_letter_queue or EMBEDDED_DEAD_LETTER_QUEUE

    @property
    def embedded_sqs_log(self) -> Path:
        """Where the embedded SQS server's output goes."""
        return self.state_dir / "embedded-sqs.log"

    @property
    def http_host(self) -> str:
        return _split_host_port(self.http_addr)[0]

    @property
    def http_port(self) -> int:
        return _split_host_port(self.http_addr)[1]

    @property
    def maxima(self) -> Limits:
        """The host maxima as `Limits`, for `sandboxd.limits.clamp`."""
        return Limits(
            wall_seconds=self.max_wall_seconds,
            cpu_seconds=self.max_cpu_seconds,
            memory_mb=self.max_memory_mb,
            pids=self.max_pids,
            output_bytes=self.max_output_bytes,
            disk_mb=self.max_disk_mb,
        )


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"{key!r} is given twice")
        result[key] = value
    return result


def _aws_region_default() -> str:
    environ = _environ.get()
    env = os.environ if environ is None else environ
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"


def _split_host_port(value: str) -> tuple[str, int]:
    """`127.0.0.1:8700` -> ("127.0.0.1", 8700); `[::1]:8700` -> ("::1", 8700)."""
    host, sep, port_text = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or any(c.isspace() for c in host) or "[" in host or "]" in host:
        raise ValueError("must be host:port, e.g. 127.0.0.1:8700 or [::1]:8700")
    # isascii(): str.isdigit() and int() also take other scripts' digits, e.g. '٨٧٠٠'.
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValueError("port must be a number from 1 to 65535")
    return host, int(port_text)


@contextmanager
def _use_environ(env: Mapping[str, str] | None) -> Iterator[None]:
    token = _environ.set(env)
    try:
        yield
    finally:
        _environ.reset(token)


# `SANDBOXD_*` variables that are not settings but are read elsewhere: not misspellings.
OTHER_VARIABLES: dict[str, str] = {
    "SANDBOXD_HOME": "where images/ and runners/ live (sandboxd.images.project_root)",
    "SANDBOXD_EVENTS_FD": "the Python runner's events pipe, set inside a sandbox (runners/python)",
}


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """A warning for each `SANDBOXD_*` variable in `env` that nothing reads, naming the
    closest variable that is read, if one is close."""
    settings = [env_name(field) for field in Settings.model_fields]
    known = [*settings, *OTHER_VARIABLES]
    warnings: list[str] = []
    for name in sorted(env):
        # Any case: `sandboxd_pool_sizes` is ignored just as silently as a typo.
        if not name.upper().startswith(ENV_PREFIX) or name in known:
            continue
        # Compared without the prefix every name shares, which would make any two close.
        suffixes = [k.removeprefix(ENV_PREFIX) for k in known]
        close = difflib.get_close_matches(name.upper().removeprefix(ENV_PREFIX), suffixes, n=1)
        hint = f" (did you mean {ENV_PREFIX}{close[0]}?)" if close else ""
        warnings.append(f"{name} is not a setting{hint}")
    return warnings


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from `env` (default: `os.environ`), or `ConfigError` naming the variable.

    Unknown `SANDBOXD_*` variables are logged as warnings first, so that a misspelling
    shows even next to the error it causes.
    """
    for warning in unknown_variables(os.environ if env is None else env):
        log.warning("%s", warning)
    try:
        with _use_environ(env):
            settings = Settings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    log.debug("settings: %s", settings)
    return settings


def _describe(exc: ValidationError) -> str:
    """One line per problem, joined: `SANDBOXD_X: must be ... (got '...')`."""
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        message = _message(error)
        given = error.get("input")
        # Echo what was given only for a scalar straight from the environment; a whole
        # dict or a default would be noise.
        if isinstance(given, str) and error["type"] != "value_error":
            shown = given if len(given) <= 60 else given[:57] + "..."
            message += f" (got {shown!r})"
        if loc:
            name = env_name(loc[0])
            detail = ": ".join([*loc[1:], message])
            problems.append(f"{name}: {detail}")
        else:
            problems.append(message)
    # One line whatever a message held: an operator greps logs line by line.
    return " ".join("; ".join(problems).splitlines())


def _message(error: Any) -> str:
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind in ("int_parsing", "int_parsing_size", "int_type", "int_from_float"):
        return "must be a whole number"
    if kind in ("float_parsing", "float_type"):
        return "must be a number"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in ("dict_type",):
        return 'must be JSON like {"python": 2} or python=2,javascript=1'
    msg = str(error["msg"])
    return "must be " + msg.removeprefix("Input should be ") if msg.startswith("Input") else msg
