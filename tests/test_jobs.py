"""From a sandbox's outcome to a verdict (`jobs.evidence_of` then `verdict.decide`), with
results files a learner's code could leave: pure, no engine."""

from __future__ import annotations

import json

import pytest

from sandboxd.jobs import evidence_of
from sandboxd.limits import Limits
from sandboxd.models import Verdict
from sandboxd.sandbox import Outcome
from sandboxd.verdict import decide
from tests.conftest import make_job

JOB = make_job({"a_test.py": "def test_a():\n    pass\n"})
LIMITS = Limits()
PASS = json.dumps({"version": 3, "status": "pass", "tests": [{"name": "a", "status": "pass"}]})


def verdict_of(**outcome: object) -> tuple[Verdict, str, int]:
    ev, report = evidence_of(JOB, LIMITS, Outcome(**outcome))  # type: ignore[arg-type]
    verdict, message = decide(ev)
    return verdict, message, len(report.tests) if report is not None else 0


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        (b'{"status": "pass", "tests": [' + b"{}" * 10 + b"]}", "not valid JSON"),
        (b"\xff\xfe not json", "not valid JSON"),
        (b'{"status": "pass", "tests": [{"name": "a", "status": "maybe"}]}', "invalid status"),
    ],
    ids=["deep", "broken", "bytes", "shape"],
)
def test_a_runner_that_finished_with_a_bad_file_is_the_learners_runtime_error(
    raw: bytes, says: str
) -> None:
    """After a runner finished, a results file the tests' code replaced is their
    runtime error saying what was wrong with it: never our failure, never a crash."""
    verdict, message, tests = verdict_of(exit_code=0, runner_finished=True, results=raw)
    assert verdict is Verdict.RUNTIME_ERROR
    assert says in message and "test runner's files" in message
    assert tests == 0


def test_an_unreadable_results_file_is_the_learners_runtime_error() -> None:
    """A results path the host refused to read (a link, over the size cap) is theirs too."""
    verdict, message, _ = verdict_of(
        exit_code=0, results_error="results.json is not a regular file"
    )
    assert verdict is Verdict.RUNTIME_ERROR
    assert "not a regular file" in message


def test_a_pass_left_by_a_runner_that_did_not_finish_is_not_believed() -> None:
    """A results file saying "pass", found after the runner was killed: not parsed at all."""
    verdict, message, tests = verdict_of(exit_code=None, signal=9, results=PASS.encode())
    assert verdict is Verdict.RUNTIME_ERROR and tests == 0
    assert "did not finish (killed by SIGKILL)" in message


def test_a_pass_from_a_runner_that_finished_is_believed() -> None:
    """The same file after a normal end is the report."""
    verdict, _, tests = verdict_of(exit_code=0, runner_finished=True, results=PASS.encode())
    assert verdict is Verdict.PASSED and tests == 1
