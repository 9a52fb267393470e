from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandboxd.limits import DEFAULT_LIMITS
from sandboxd.models import TestResult, TestStatus, Verdict
from sandboxd.results import RunnerReport
from sandboxd.verdict import PRIORITY, Evidence, applicable, decide, outputs_match

PASSING = RunnerReport("pass", None, (TestResult(name="t", status=TestStatus.PASS),))
FAILING = RunnerReport(
    "fail",
    None,
    (TestResult(name="t", status=TestStatus.PASS), TestResult(name="u", status=TestStatus.FAIL)),
)
BROKEN = RunnerReport("error", "SyntaxError: invalid syntax (two_fer.py, line 3)", ())


def t_ev(**kw: object) -> Evidence:
    return replace(Evidence(mode="tests", limits=DEFAULT_LIMITS, exit_code=0), **kw)  # type: ignore[arg-type]


def cmd_ev(**kw: object) -> Evidence:
    return replace(Evidence(mode="command", limits=DEFAULT_LIMITS, exit_code=0), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ev", "verdict", "fragment"),
    [
        (t_ev(report=PASSING), Verdict.PASSED, "All 1 test passed"),
        (t_ev(report=FAILING), Verdict.FAILED, "1 of 2 tests"),
        (t_ev(report=BROKEN), Verdict.COMPILE_ERROR, "SyntaxError"),
        (
            t_ev(report=PASSING, wall_timed_out=True, exit_code=None, signal=9),
            Verdict.TIMEOUT,
            "Time limit of 10 s exceeded",
        ),
        (
            t_ev(report=None, oom_killed=True, exit_code=137),
            Verdict.MEMORY_LIMIT,
            "Memory limit of 256 MB exceeded",
        ),
        (t_ev(report=None, exit_code=137), Verdict.RUNTIME_ERROR, "(ended by SIGKILL)"),
        (t_ev(report=None, exit_code=1), Verdict.RUNTIME_ERROR, "(exit code 1)"),
        (t_ev(report=None, exit_code=126), Verdict.INTERNAL_ERROR, "could not be started"),
        (t_ev(report=None, exit_code=0), Verdict.RUNTIME_ERROR, "finished without results"),
        (
            t_ev(report=None, exit_code=0, report_error="results.json is not valid JSON"),
            Verdict.RUNTIME_ERROR,
            "could not be used: results.json is not valid JSON",
        ),
        (t_ev(report=None, exit_code=None), Verdict.INTERNAL_ERROR, "end was not seen"),
        (t_ev(report=FAILING, output_exceeded=True), Verdict.OUTPUT_LIMIT, "Output limit of 1 MiB"),
        (t_ev(report=PASSING, cpu_seconds=10.5), Verdict.TIMEOUT, "CPU time limit"),
        (t_ev(report=PASSING, internal_error="docker gone"), Verdict.INTERNAL_ERROR, "retried"),
        (cmd_ev(), Verdict.PASSED, "exited normally"),
        (cmd_ev(exit_code=3), Verdict.RUNTIME_ERROR, "code 3"),
        (cmd_ev(exit_code=None, signal=11), Verdict.RUNTIME_ERROR, "SIGSEGV"),
        (cmd_ev(expected_output="4\n", stdout="5\n"), Verdict.WRONG_ANSWER, "does not match"),
        (cmd_ev(expected_output="4\n", stdout="4  \n\n"), Verdict.PASSED, "matches"),
        (cmd_ev(exit_code=None), Verdict.INTERNAL_ERROR, "unknown"),
    ],
)
def test_verdict_examples(ev: Evidence, verdict: Verdict, fragment: str) -> None:
    """Typical evidence maps to the documented verdict and a learner-facing message."""
    got, message = decide(ev)
    assert got is verdict
    assert fragment in message


def test_exit_137_alone_is_not_memory_limit() -> None:
    """Exit 137 without the cgroup's OOM counter is not reported as a memory verdict."""
    got, _ = decide(cmd_ev(exit_code=137))
    assert got is Verdict.RUNTIME_ERROR


def test_pids_limit_is_mentioned() -> None:
    """A fork bomb's refused forks are explained next to the verdict."""
    _, message = decide(t_ev(report=FAILING, pids_limit_hit=True))
    assert "process limit of 128" in message


evidence = st.builds(
    Evidence,
    mode=st.sampled_from(["tests", "command"]),
    limits=st.just(DEFAULT_LIMITS),
    exit_code=st.none() | st.integers(-1, 255),
    signal=st.none() | st.sampled_from([9, 11, 15, 6]),
    wall_timed_out=st.booleans(),
    cpu_seconds=st.none() | st.floats(0, 20),
    oom_killed=st.booleans(),
    pids_limit_hit=st.booleans(),
    output_exceeded=st.booleans(),
    disk_full=st.booleans(),
    report=st.none() | st.sampled_from([PASSING, FAILING, BROKEN]),
    expected_output=st.none() | st.sampled_from(["1\n", "2\n"]),
    stdout=st.sampled_from(["1\n", "2\n", ""]),
    internal_error=st.none() | st.just("boom"),
)


@given(evidence)
def test_decide_picks_highest_priority_applicable(ev: Evidence) -> None:
    """The verdict is always the highest-priority one the evidence supports."""
    found = applicable(ev)
    assert found, "some verdict always applies"
    verdict, message = decide(ev)
    assert verdict in found
    assert all(PRIORITY.index(verdict) <= PRIORITY.index(v) for v in found)
    assert message.startswith(found[verdict])


@given(evidence)
def test_limit_evidence_dominates_test_outcomes(ev: Evidence) -> None:
    """A wall timeout beats every outcome but our own internal error."""
    verdict, _ = decide(replace(ev, wall_timed_out=True))
    expected = Verdict.INTERNAL_ERROR if ev.internal_error else Verdict.TIMEOUT
    assert verdict is expected


@given(evidence)
def test_memory_beats_output_and_below(ev: Evidence) -> None:
    """An OOM kill outranks the output limit and every test outcome."""
    verdict, _ = decide(
        replace(ev, oom_killed=True, wall_timed_out=False, cpu_seconds=None, internal_error=None)
    )
    assert verdict is Verdict.MEMORY_LIMIT


@given(st.text(max_size=40))
def test_outputs_match_ignores_only_trailing_whitespace(text: str) -> None:
    """Trailing spaces and blank lines never matter; changed content always does."""
    assert outputs_match(text, text + "  \n\n")
    assert not outputs_match(text + "x", text + "y") or text.endswith("\r")
