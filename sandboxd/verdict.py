"""Choosing a verdict from evidence. Pure, no I/O.

Every decision comes from something measured: the exit code and signal the sandbox's
supervisor reports (from its own wait status), the cgroup's own counters, the bytes of
output we read, whether the runner finished, and its results. Exit status 137 alone
proves nothing (our own kill also gives 137).
"""

from __future__ import annotations

import signal as _signal
from dataclasses import dataclass
from typing import Literal

from sandboxd.limits import Limits, describe_bytes, describe_seconds
from sandboxd.models import Verdict
from sandboxd.results import RunnerReport

# Exit statuses of a program the supervisor could not execute (126: not executable,
# 127: not found). The runner itself exits 0, 1 or by a signal.
RUNNER_NOT_STARTED = (126, 127)

PRIORITY: tuple[Verdict, ...] = (
    Verdict.INTERNAL_ERROR,
    Verdict.TIMEOUT,
    Verdict.MEMORY_LIMIT,
    Verdict.OUTPUT_LIMIT,
    Verdict.COMPILE_ERROR,
    Verdict.RUNTIME_ERROR,
    Verdict.FAILED,
    Verdict.WRONG_ANSWER,
    Verdict.PASSED,
)


@dataclass(frozen=True)
class Evidence:
    """Everything measured about one run."""

    mode: Literal["tests", "command"]
    limits: Limits
    exit_code: int | None = None
    # Signal that ended the main process, if any (from the exit status or Docker).
    signal: int | None = None
    # We killed the run because its wall clock ran out.
    wall_timed_out: bool = False
    # CPU time the cgroup charged to the job, in seconds (None when unknown).
    cpu_seconds: float | None = None
    # The cgroup's OOM killer fired during the job (oom_kill / failcnt went up).
    oom_killed: bool = False
    # The cgroup refused a fork because of the pids limit (pids.events went up).
    pids_limit_hit: bool = False
    # We stopped reading output because it exceeded the output limit.
    output_exceeded: bool = False
    # The work dir or /tmp filled up (tmpfs reported no space left).
    disk_full: bool = False
    # Tests mode: the runner's report, or why there is none.
    report: RunnerReport | None = None
    report_error: str | None = None
    # Command mode: what was expected on stdout, and what came.
    expected_output: str | None = None
    stdout: str = ""
    # Our own failure (Docker, the sandbox); when set it decides the verdict.
    internal_error: str | None = None


def signal_name(signum: int | None) -> str | None:
    if signum is None:
        return None
    try:
        return _signal.Signals(signum).name
    except ValueError:
        return f"SIG{signum}"


def _exit_status(code: int | None) -> str:
    """`exit code 1`, or `ended by SIGKILL` for the 128+n a signal's end reads as."""
    if code is not None and 128 < code < 128 + 65:
        return f"ended by {signal_name(code - 128)}"
    return f"exit code {code}"


def outputs_match(expected: str, actual: str) -> bool:
    """Compare program output the way judges usually do: trailing whitespace on each
    line and trailing blank lines do not matter; everything else does."""

    def norm(text: str) -> list[str]:
        lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        return lines

    return norm(expected) == norm(actual)


def applicable(ev: Evidence) -> dict[Verdict, str]:
    """Every verdict the evidence supports, each with the message that explains it."""
    lim = ev.limits
    found: dict[Verdict, str] = {}
    if ev.internal_error is not None:
        found[Verdict.INTERNAL_ERROR] = (
            "The sandbox failed before your code could be judged; the job may be retried."
        )
    cpu_over = ev.cpu_seconds is not None and ev.cpu_seconds >= lim.cpu_seconds
    if ev.wall_timed_out:
        found[Verdict.TIMEOUT] = f"Time limit of {describe_seconds(lim.wall_seconds)} exceeded."
    elif cpu_over:
        found[Verdict.TIMEOUT] = f"CPU time limit of {describe_seconds(lim.cpu_seconds)} exceeded."
    if ev.oom_killed:
        found[Verdict.MEMORY_LIMIT] = f"Memory limit of {lim.memory_mb} MB exceeded."
    if ev.output_exceeded:
        found[Verdict.OUTPUT_LIMIT] = (
            f"Output limit of {describe_bytes(lim.output_bytes)} exceeded; the program was stopped."
        )
    if ev.mode == "tests":
        _tests_verdicts(ev, found)
    else:
        _command_verdicts(ev, found)
    return found


def _tests_verdicts(ev: Evidence, found: dict[Verdict, str]) -> None:
    report = ev.report
    if report is None:
        # No usable results. A limit explains that when one was hit. Otherwise, as the
        # runner and its files are within reach of the tests' code, whatever became of
        # them is the learner's doing: only an end we did not see is ours.
        if ev.signal is not None:
            found[Verdict.RUNTIME_ERROR] = (
                f"The test runner did not finish (killed by {signal_name(ev.signal)}), so no "
                "results of this run can be trusted; your code may have stopped it."
            )
        elif ev.exit_code in RUNNER_NOT_STARTED:
            # The engine could not execute the runner (a broken image): nothing the tests'
            # code can cause, since none of it ran. A limit that was hit still says more.
            if not found:
                found[Verdict.INTERNAL_ERROR] = (
                    "The test runner could not be started; the job may be retried."
                )
        elif ev.exit_code not in (None, 0):
            found[Verdict.RUNTIME_ERROR] = (
                f"The test runner did not finish ({_exit_status(ev.exit_code)}), so no "
                "results of this run can be trusted; your code may have stopped it."
            )
        elif ev.exit_code == 0:
            found[Verdict.RUNTIME_ERROR] = (
                f"The test results could not be used: {ev.report_error}; your code may have "
                "changed the test runner's files."
                if ev.report_error
                else "The test runner finished without results; your code may have removed them."
            )
        elif not found:
            found[Verdict.INTERNAL_ERROR] = (
                "The test runner's end was not seen; the job may be retried."
            )
        return
    if report.status == "error":
        if report.tests:
            # Tests had started: the learner's code stopped the run (os._exit, a crash).
            found[Verdict.RUNTIME_ERROR] = report.message or "The tests stopped before finishing."
        else:
            found[Verdict.COMPILE_ERROR] = report.message or "Your code could not be loaded."
        return
    failing = [t for t in report.tests if t.status.value != "pass"]
    if report.status == "fail" or failing:
        n = len(report.tests)
        found[Verdict.FAILED] = f"{len(failing)} of {n} test{'s' if n != 1 else ''} did not pass."
        return
    n = len(report.tests)
    found[Verdict.PASSED] = f"All {n} test{'s' if n != 1 else ''} passed."


def _command_verdicts(ev: Evidence, found: dict[Verdict, str]) -> None:
    if ev.signal is not None:
        found[Verdict.RUNTIME_ERROR] = f"The program was killed by {signal_name(ev.signal)}."
        return
    if ev.exit_code is not None and ev.exit_code != 0:
        found[Verdict.RUNTIME_ERROR] = f"The program exited with code {ev.exit_code}."
        return
    if ev.expected_output is not None and not outputs_match(ev.expected_output, ev.stdout):
        found[Verdict.WRONG_ANSWER] = "The output does not match the expected output."
        return
    if ev.exit_code is None and not found:
        found[Verdict.INTERNAL_ERROR] = "The program's exit status is unknown."
        return
    found[Verdict.PASSED] = (
        "The output matches the expected output."
        if ev.expected_output is not None
        else "The program exited normally."
    )


def decide(ev: Evidence) -> tuple[Verdict, str]:
    """The verdict of highest priority among those the evidence supports, and its message.

    Notes about other limits hit on the way (for example the pids limit under a fork
    bomb) are appended so the learner sees the whole story.
    """
    found = applicable(ev)
    verdict = min(found, key=PRIORITY.index)
    message = found[verdict]
    extras = []
    if ev.pids_limit_hit:
        extras.append(
            f"The process limit of {ev.limits.pids} was reached; new processes were refused."
        )
    if ev.disk_full:
        extras.append(f"The disk limit of {ev.limits.disk_mb} MB was reached.")
    if extras:
        message = " ".join([message, *extras])
    return verdict, message
