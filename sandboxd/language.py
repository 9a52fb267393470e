"""A language's configuration: `images/<lang>/language.json`, parsed by one typed model.

Everything sandboxd knows about a language is here or in the image: the runner command
and mode, the default limits (a JVM or a compiler needs other memory, pids and time than
Python), the environment, which files are tests, and the versions the image ships. The
file is checked when the image is built (a typo fails the build, not a job), copied into
the image's label `sandboxd.language-config`, and read back from there by the daemon,
so a host needs only the image. Unknown fields are refused. The published JSON Schema is
`docs/schemas/language.v1.schema.json` (`LanguageConfig.model_json_schema()`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sandboxd.models import LimitsRequest
from sandboxd.sandbox.container import RunnerMode

# Language names as jobs spell them (`Job.language`): `python`, `javascript-node-test`.
NAME_PATTERN = r"^[a-z][a-z0-9_+-]{0,31}$"


class LanguageConfigError(ValueError):
    """A language.json (or an image's copy of it) that does not parse: says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileConventions(_Strict):
    """Which of an exercise's files are what, as glob patterns relative to its directory
    (`fnmatch`, `*` crossing no `/`). The runner finds the tests itself; these tell
    authors' tools and `sandboxd run` what a test file looks like in this language."""

    tests: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    solution: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)


class LanguageConfig(_Strict):
    """`images/<lang>/language.json`."""

    language: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: Annotated[str, Field(min_length=1, max_length=200)]
    # argv of the test runner inside the image; it is given the input and output
    # directories (see docs/runner-modes.md for what each mode is handed).
    runner: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    runner_mode: RunnerMode = RunnerMode.COLD
    # The language's default limits; a job's own limits override them, both clamped to
    # the host's maxima.
    limits: LimitsRequest = Field(default_factory=LimitsRequest)
    env: dict[str, str] = Field(default_factory=dict)
    files: FileConventions
    # What the image ships, by component: {"python": "3.11.2", "pytest": "7.2.1"}.
    versions: dict[str, Annotated[str, Field(min_length=1)]] = Field(default_factory=dict)

    @field_validator("runner")
    @classmethod
    def _absolute(cls, argv: list[str]) -> list[str]:
        if not argv[0].startswith("/"):
            raise ValueError(f"the runner must be an absolute path in the image, not {argv[0]!r}")
        return argv

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not name or "=" in name or "\0" in name:
                raise ValueError(f"not an environment variable name: {name!r}")
        return env


def parse_config(text: str | bytes, where: str) -> LanguageConfig:
    """The config in `text`, or LanguageConfigError naming `where` and each problem."""
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        raise LanguageConfigError(f"{where}: not JSON: {exc}") from None
    try:
        return LanguageConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise LanguageConfigError(f"{where}: {problems}") from None
