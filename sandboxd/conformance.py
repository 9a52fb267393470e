"""The language kit's conformance check: a runner's golden fixtures, run in its real image.

`runners/<lang>/fixtures/<case>/` holds an exercise (solution, tests, whatever the track
ships) and `expected_results.json`, the results.json v3 a learner should get for it. An
optional `case.json` says what the results file cannot: the verdict when the status is
`error` (`compile_error` or `runtime_error`), or a verdict that has no results file at all
(`timeout`, `output_limit`), and limits of the case's own:

    {"verdict": "timeout", "limits": {"wall_seconds": 2}, "about": "an infinite loop"}

Without it, status `pass` means `passed` and `fail` means `failed`. A case conforms when
the image's runner, as a tests-mode job through a warm pool, gives that verdict and (where
there is one) the expected results, compared field by field and test by test after
`normalise` (object addresses and the input directory's path vary by run).

Used by `sandboxd check-image` (for image authors) and by the test suite
(tests/test_language_fixtures.py), the same code both ways.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from sandboxd.limits import DEFAULT_MAXIMA, Limits, clamp
from sandboxd.models import Job, LimitsRequest, Verdict

if TYPE_CHECKING:
    from sandboxd.pool import Pool

EXPECTED_NAME = "expected_results.json"
CASE_NAME = "case.json"
NOT_EXERCISE = frozenset({EXPECTED_NAME, CASE_NAME})
INPUT_DIR = "/work"  # the exercise's directory inside a sandbox
INPUT_DIR_TOKEN = "<input_dir>"

# Object addresses in reprs (`<function f at 0x7f3a...>`) differ from run to run.
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
_TEXT_FIELDS = ("message", "output")
_MAX_DIFFERENCES = 50
_STATUS_VERDICTS = {"pass": Verdict.PASSED, "fail": Verdict.FAILED}


class CaseError(ValueError):
    """A fixture case that cannot be run as it is: says which and why."""


class _CaseFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    verdict: Verdict | None = None
    limits: LimitsRequest = LimitsRequest()
    about: str = ""


@dataclass(frozen=True)
class Case:
    language: str
    name: str
    directory: Path
    verdict: Verdict
    expected: dict[str, Any] | None  # None: the verdict is all there is to compare
    limits: LimitsRequest = field(default_factory=LimitsRequest)
    about: str = ""

    @property
    def label(self) -> str:
        return f"{self.language}/{self.name}"


def load_case(language: str, directory: Path) -> Case:
    """The case in `directory`, or CaseError."""
    where = f"{language}/{directory.name}"
    expected: dict[str, Any] | None = None
    expected_path = directory / EXPECTED_NAME
    if expected_path.is_file():
        try:
            expected = json.loads(expected_path.read_text("utf-8"))
        except ValueError as exc:
            raise CaseError(f"{where}: {EXPECTED_NAME} is not JSON: {exc}") from None
        if not isinstance(expected, dict):
            raise CaseError(f"{where}: {EXPECTED_NAME} is not a JSON object")
    meta = _CaseFile()
    case_path = directory / CASE_NAME
    if case_path.is_file():
        try:
            meta = _CaseFile.model_validate_json(case_path.read_bytes())
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
            )
            raise CaseError(f"{where}: {CASE_NAME}: {problems}") from None
    if expected is None and meta.verdict is None:
        raise CaseError(f"{where}: neither {EXPECTED_NAME} nor a verdict in {CASE_NAME}")
    verdict = meta.verdict
    if verdict is None:
        assert expected is not None
        status = expected.get("status")
        verdict = _STATUS_VERDICTS.get(str(status))
        if verdict is None:
            raise CaseError(
                f"{where}: status {status!r} needs the verdict in {CASE_NAME} "
                "(compile_error or runtime_error)"
            )
    return Case(language, directory.name, directory, verdict, expected, meta.limits, meta.about)


def is_case(directory: Path) -> bool:
    return directory.is_dir() and (
        (directory / EXPECTED_NAME).is_file() or (directory / CASE_NAME).is_file()
    )


def find_cases(fixtures: Path, language: str) -> list[Case]:
    """Every case under `fixtures` (a runner's fixtures directory), sorted by name."""
    if not fixtures.is_dir():
        raise CaseError(f"no fixtures directory {fixtures}")
    return [load_case(language, d) for d in sorted(fixtures.iterdir()) if is_case(d)]


def case_job(case: Case) -> Job:
    """The case's exercise files as a tests-mode job of its language."""
    files: list[dict[str, Any]] = []
    for path in sorted(case.directory.rglob("*")):
        rel = path.relative_to(case.directory)
        if path.is_file() and not (len(rel.parts) == 1 and rel.name in NOT_EXERCISE):
            data = base64.b64encode(path.read_bytes()).decode()
            files.append({"path": rel.as_posix(), "content": data, "encoding": "base64"})
    return Job.model_validate(
        {
            "schema": "sandboxd.job/v1",
            "id": f"fixture-{case.language}-{case.name}"[:128],
            "language": case.language,
            "files": files,
            "limits": case.limits.model_dump(exclude_none=True),
        }
    )


# -- comparing results documents -------------------------------------------------------


def normalise(results: dict[str, Any], input_dir: str | None = None) -> dict[str, Any]:
    """A copy with what legitimately varies replaced: the input dir path, object addresses."""

    def clean(text: str) -> str:
        if input_dir:
            text = text.replace(input_dir, INPUT_DIR_TOKEN)
        return _ADDRESS.sub("0x…", text)

    out = dict(results)
    if isinstance(out.get("message"), str):
        out["message"] = clean(out["message"])
    tests = out.get("tests")
    if isinstance(tests, list):
        out["tests"] = [
            {k: clean(v) if k in _TEXT_FIELDS and isinstance(v, str) else v for k, v in t.items()}
            if isinstance(t, dict)
            else t
            for t in tests
        ]
    return out


_ABSENT = object()


def _show(value: object) -> str:
    return "(absent)" if value is _ABSENT else repr(value)


def _compare_fields(
    where: str, actual: dict[str, Any], expected: dict[str, Any], skip: tuple[str, ...] = ()
) -> list[str]:
    diffs = []
    for key in sorted(set(actual) | set(expected), key=lambda k: (k not in expected, k)):
        if key in skip:
            continue
        got, want = actual.get(key, _ABSENT), expected.get(key, _ABSENT)
        if got != want:
            diffs.append(f"{where}{key}: expected {_show(want)}, got {_show(got)}")
    return diffs


def compare_results(
    actual: dict[str, Any], expected: dict[str, Any], *, input_dir: str | None = None
) -> list[str]:
    """Human-readable differences between two results documents; empty when they agree.

    Exact, field by field and test by test, after `normalise` (pass `input_dir` to have the
    actual run's input directory replaced by `<input_dir>`).
    """
    actual = normalise(actual, input_dir)
    expected = normalise(expected)
    diffs = _compare_fields("", actual, expected, skip=("tests",))
    got_tests = actual.get("tests")
    want_tests = expected.get("tests")
    if not isinstance(got_tests, list) or not isinstance(want_tests, list):
        if got_tests != want_tests:
            diffs.append(f"tests: expected {_show(want_tests)}, got {_show(got_tests)}")
        return diffs
    if len(got_tests) != len(want_tests):
        diffs.append(f"tests: expected {len(want_tests)} tests, got {len(got_tests)}")
    for index, (got, want) in enumerate(zip(got_tests, want_tests, strict=False)):
        name = want.get("name") if isinstance(want, dict) else None
        where = f"tests[{index}] ({name!r})."
        if not isinstance(got, dict) or not isinstance(want, dict):
            if got != want:
                diffs.append(f"{where} expected {_show(want)}, got {_show(got)}")
            continue
        diffs.extend(_compare_fields(where, got, want))
    for index in range(len(want_tests), len(got_tests)):
        diffs.append(f"tests[{index}]: unexpected test {_show(got_tests[index])}")
    for index in range(len(got_tests), len(want_tests)):
        diffs.append(f"tests[{index}]: missing test {_show(want_tests[index])}")
    if len(diffs) > _MAX_DIFFERENCES:
        diffs = [*diffs[:_MAX_DIFFERENCES], f"... and {len(diffs) - _MAX_DIFFERENCES} more"]
    return diffs


# -- running a case -----------------------------------------------------------------------


@dataclass
class CaseRun:
    case: Case
    verdict: Verdict | None  # None: the sandbox failed (an internal error of ours)
    message: str
    results: dict[str, Any] | None
    differences: list[str]
    seconds: float
    leaked_input_dir: bool = False
    warm: bool = False  # served by a warm (standby or fork) runner, not one started for it

    @property
    def ok(self) -> bool:
        return (
            self.verdict is self.case.verdict and not self.differences and not self.leaked_input_dir
        )

    def summary(self) -> str:
        """One line: expected against got."""
        got = self.verdict.value if self.verdict is not None else "sandbox failure"
        line = f"expected {self.case.verdict.value}, got {got}"
        if self.case.expected is not None:
            n = len(self.case.expected.get("tests") or [])
            line += f"; results: {n} tests, " + (
                f"{len(self.differences)} difference(s)" if self.differences else "as expected"
            )
        if self.leaked_input_dir:
            line += f"; the runner's output shows the input directory {INPUT_DIR}/"
        return line


async def run_case(pool: Pool, case: Case, maxima: Limits = DEFAULT_MAXIMA) -> CaseRun:
    """Run `case` through `pool` (which serves its language) as a job would be run."""
    from sandboxd.jobs import evidence_of
    from sandboxd.sandbox import SandboxError
    from sandboxd.verdict import decide

    job = case_job(case)
    spec = pool.spec(case.language)
    limits = clamp(job.limits, defaults=spec.limits, maxima=maxima)
    t0 = time.monotonic()
    try:
        async with pool.sandbox(case.language, limits) as box:
            served = box.warm_jobs
            out = await box.run(job, limits)
            warm = box.warm_jobs > served
    except SandboxError as exc:
        return CaseRun(case, None, str(exc), None, [], time.monotonic() - t0)
    seconds = time.monotonic() - t0
    verdict, message = decide(evidence_of(job, limits, out)[0])
    results: dict[str, Any] | None = None
    diffs: list[str] = []
    if case.expected is not None:
        try:
            parsed = json.loads(out.results) if out.results is not None else None
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            results = parsed
            diffs = compare_results(results, case.expected, input_dir=INPUT_DIR)
        else:
            why = out.results_error or "the runner wrote no results.json"
            diffs = [f"no results to compare: {why}"]
    leaked = out.results is not None and (INPUT_DIR + "/").encode() in out.results
    return CaseRun(case, verdict, message, results, diffs, seconds, leaked, warm)
