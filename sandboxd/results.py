"""Parsing a runner's `results.json` (Exercism test-runner interface v3). Pure, no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from sandboxd.models import TestResult, TestStatus

MAX_RESULTS_BYTES = 8 * 1024 * 1024
MAX_MESSAGE_CHARS = 4000
# 500 characters of output plus Exercism's truncation notice, which runners append.
MAX_TEST_OUTPUT_CHARS = 600
MAX_TEST_CODE_CHARS = 4000


@dataclass(frozen=True)
class RunnerReport:
    """What the runner said: an overall status, an optional message and the tests in order."""

    status: Literal["pass", "fail", "error"]
    message: str | None
    tests: tuple[TestResult, ...]


class ReportError(ValueError):
    """The runner's results file is missing or not a valid v3 document."""


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    # The file is the learner's to forge: a lone surrogate (\ud800) would make the
    # result impossible to serialise.
    text = text.encode("utf-8", "replace").decode("utf-8")
    if len(text) > limit:
        return text[: limit - 1] + "…"
    return text


def _shown(value: Any) -> str:
    """A value of the file, for a message: its repr, short."""
    return _text(repr(value), 80) or ""


def parse_report(raw: bytes) -> RunnerReport:
    """Parse `results.json`; the file is written by code the learner could influence,
    so every field is checked and every string capped. Whatever the bytes, the outcome
    is a report or a ReportError saying what is wrong with the file, never another
    exception: a crash here would make the learner's doing our failure."""
    if len(raw) > MAX_RESULTS_BYTES:
        raise ReportError(f"results.json is larger than {MAX_RESULTS_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReportError(f"results.json is not valid JSON: {exc}") from None
    except RecursionError:  # [[[[... two hundred thousand deep
        raise ReportError("results.json is nested too deeply to be a test report") from None
    try:
        return _report(doc)
    except ReportError:
        raise
    except Exception as exc:  # a shape no check above foresaw: still the file's fault
        raise ReportError(f"results.json is not a test report ({type(exc).__name__})") from None


def _report(doc: Any) -> RunnerReport:
    if not isinstance(doc, dict):
        raise ReportError("results.json is not a JSON object")
    status = doc.get("status")
    if status not in ("pass", "fail", "error"):
        raise ReportError(f"results.json has an invalid status {_shown(status)}")
    raw_tests = doc.get("tests", [])
    if raw_tests is None:
        raw_tests = []
    if not isinstance(raw_tests, list):
        raise ReportError("results.json 'tests' is not a list")
    tests: list[TestResult] = []
    for i, item in enumerate(raw_tests):
        if not isinstance(item, dict):
            raise ReportError(f"results.json test #{i} is not an object")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ReportError(f"results.json test #{i} has no name")
        t_status = item.get("status")
        if t_status not in ("pass", "fail", "error"):
            raise ReportError(
                f"results.json test {_shown(name)} has an invalid status {_shown(t_status)}"
            )
        task_id = item.get("task_id")
        tests.append(
            TestResult(
                name=_text(name, 500) or name,
                status=TestStatus(t_status),
                message=_text(item.get("message"), MAX_MESSAGE_CHARS),
                output=_text(item.get("output"), MAX_TEST_OUTPUT_CHARS),
                test_code=_text(item.get("test_code"), MAX_TEST_CODE_CHARS),
                task_id=task_id
                if isinstance(task_id, int) and not isinstance(task_id, bool)
                else None,
            )
        )
    return RunnerReport(
        status=status, message=_text(doc.get("message"), MAX_MESSAGE_CHARS), tests=tuple(tests)
    )
