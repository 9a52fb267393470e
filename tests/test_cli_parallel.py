"""`sandboxd run DIR...` with several DIRs at once: the scheduling, the progress line, the
order of what is printed. Most tests run the CLI's own code around a stand-in for
`execute` (milliseconds, no engine); the `docker` ones run the command for real."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from conftest import make_job

from sandboxd import cli
from sandboxd.capacity import default_slots
from sandboxd.cli import (
    Interrupted,
    Progress,
    _run_in_pool,
    _run_parallel,
    _safe_id,
    finished_line,
)
from sandboxd.models import Job, Result
from sandboxd.pool import LABEL_PID

ROOT = Path(__file__).resolve().parent.parent


def result(status: str = "passed", passed: int = 1, failed: int = 0, run_ms: int = 10) -> Result:
    tests = [{"name": f"p{i}", "status": "pass"} for i in range(passed)]
    tests += [{"name": f"f{i}", "status": "fail", "message": "no"} for i in range(failed)]
    return Result.model_validate(
        {"id": "x", "status": status, "tests": tests, "timing": {"run_ms": run_ms}}
    )


# -- the progress line and the plain lines ---------------------------------------------------


def test_progress_line_reads_as_documented() -> None:
    """The TTY line counts finished, running, passed, failed and errors, and names the last."""
    names = [f"ex/{i}" for i in range(20)]
    progress = Progress(names, io.StringIO(), tty=True, columns=lambda: 200)
    for i in range(8):
        progress.started(i)
    for i in range(5):
        progress.finished(i, result("passed"))
    progress.finished(5, result("timeout"))
    assert (
        progress.line(200)
        == "[ 6/20] 2 running · 5 passed · 1 failed · 0 errors  — last: ex/5 timeout"
    )
    progress.finished(6, result("internal_error"))
    progress.finished(7, result("rejected"))
    assert progress.line(200).startswith("[ 8/20] 0 running · 5 passed · 1 failed · 2 errors")


def test_progress_on_a_tty_rewrites_one_line_then_clears_it() -> None:
    """On a TTY each update is a carriage return, the line, clear-to-end; no newline ever."""
    out = io.StringIO()
    progress = Progress(["a", "b"], out, tty=True, columns=lambda: 100)
    progress.started(0)
    progress.started(1)
    progress.finished(1, result("failed", 1, 2))
    progress.clear()
    text = out.getvalue()
    assert "\n" not in text
    assert text.count("\r") == 4 and text.endswith("\r\x1b[K")
    updates = [u.removesuffix("\x1b[K") for u in text.split("\r")[1:-1]]
    assert updates == [
        "[0/2] 1 running · 0 passed · 0 failed · 0 errors",
        "[0/2] 2 running · 0 passed · 0 failed · 0 errors",
        "[1/2] 1 running · 0 passed · 1 failed · 0 errors  — last: b failed",
    ]


def test_progress_elsewhere_is_one_plain_line_per_finished_job() -> None:
    """Not a TTY: nothing when a job starts, one line when it ends, no CR and no ESC."""
    out = io.StringIO()
    progress = Progress(["a", "path/to/dir"], out, tty=False)
    progress.started(0)
    progress.started(1)
    progress.finished(1, result("failed", 3, 2, run_ms=212))
    progress.finished(0, result("passed", 4, run_ms=5))
    progress.clear()
    assert out.getvalue() == (
        "[1/2] path/to/dir: failed (3/5 tests, 212 ms)\n[2/2] a: passed (4/4 tests, 5 ms)\n"
    )


def test_finished_line_without_tests() -> None:
    """Command mode, or tests that never loaded: no test count to show."""
    assert finished_line(1, 3, "ex", result("compile_error", 0, run_ms=357)) == (
        "[1/3] ex: compile_error (357 ms)"
    )


def test_progress_line_fits_the_terminal() -> None:
    """A long name is cut at its start, wide characters counted as two columns: a line
    that wrapped could not be rewritten in place."""
    name = "course/" + "漢字" * 30 + "/the-end"
    progress = Progress([name], io.StringIO(), tty=True)
    progress.started(0)
    progress.finished(0, result("passed"))
    line = progress.line(79)
    assert cli._cells(line) <= 79 and line.endswith("/the-end passed")
    assert "— last: …" in line
    narrow = progress.line(30)
    assert cli._cells(narrow) == 30 and "last" not in narrow  # too narrow for a name


# -- scheduling ----------------------------------------------------------------------------


async def test_run_parallel_keeps_the_limit_and_the_order() -> None:
    """Never more than `limit` in flight, the limit reached, results in the order given
    although they finish in another, and the wait for a slot told to each job."""
    running, peak, queued, ended = 0, 0, {}, []

    async def run(job: tuple[int, float], queued_ms: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        queued[job[0]] = queued_ms
        await asyncio.sleep(job[1])
        running -= 1
        ended.append(job[0])
        return job[0]

    jobs = list(enumerate([0.05, 0.01, 0.03, 0.02, 0.01, 0.04]))
    out = await _run_parallel(jobs, 2, run, lambda job, exc: -1)
    assert out == [0, 1, 2, 3, 4, 5] and peak == 2 and ended != out
    # The third waited for the second to end (it slept 10 ms after it started): measured
    # from the same start, whatever the machine's load.
    assert queued[2] >= queued[1] + 10 and queued[0] <= queued[2]


async def test_a_job_that_raises_keeps_the_others() -> None:
    """A job whose run raises becomes the `failed` result; the others run on."""

    async def run(n: int, queued_ms: int) -> str:
        await asyncio.sleep(0.001 * n)
        if n == 1:
            raise RuntimeError("bad directory")
        return f"ok {n}"

    out = await _run_parallel([0, 1, 2, 3], 2, run, lambda n, exc: f"{n}: {exc}")
    assert out == ["ok 0", "1: bad directory", "ok 2", "ok 3"]


async def test_cancelling_the_batch_cancels_the_jobs_in_flight() -> None:
    """Cancelled, the batch cancels what runs, starts nothing more, and waits for them."""
    started: list[int] = []
    cancelled: list[int] = []

    async def run(n: int, queued_ms: int) -> int:
        started.append(n)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)  # cleanup takes a moment: it is waited for
            cancelled.append(n)
            raise
        return n

    batch = asyncio.create_task(_run_parallel(list(range(5)), 2, run, lambda n, exc: -1))
    while len(started) < 2:
        await asyncio.sleep(0.001)
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    assert started == [0, 1] and sorted(cancelled) == [0, 1]


# -- what `sandboxd run` prints, around a stand-in for execute ------------------------------


@dataclass
class FakeRuns:
    """Stands in for `sandboxd.jobs.execute`: each job id maps to (seconds, verdict)."""

    plan: dict[str, tuple[float, str]]
    running: int = 0
    peak: int = 0
    finished: list[str] = field(default_factory=list)

    async def __call__(
        self, pool: Any, job: Job, ctx: Any, on_output: Any = None, queued_ms: int = 0
    ) -> Result:
        seconds, verdict = self.plan[job.id]
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.running -= 1
        if verdict == "raise":
            raise RuntimeError("the directory went away")
        self.finished.append(job.id)
        tests = [{"name": "t", "status": "pass" if verdict == "passed" else "fail"}]
        return Result.model_validate(
            {"id": job.id, "status": verdict, "message": f"{job.id} said {verdict}",
             "tests": tests, "timing": {"queued_ms": queued_ms, "run_ms": 1}}
        )  # fmt: skip


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def batch(plan: dict[str, tuple[float, str]]) -> list[tuple[Path, Job]]:
    return [(Path(name), make_job(job_id=_safe_id(name))) for name in plan]


async def run_cli(
    monkeypatch: pytest.MonkeyPatch,
    plan: dict[str, tuple[float, str]],
    limit: int = 2,
    as_json: bool = False,
    stdout: io.StringIO | None = None,
) -> tuple[FakeRuns, list[tuple[Path, Any]], str]:
    fake = FakeRuns({_safe_id(name): v for name, v in plan.items()})
    monkeypatch.setenv("COLUMNS", "200")  # the TTY line's width, not the test runner's
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr("sandboxd.jobs.execute", fake)
    out = stdout if stdout is not None else io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    args = argparse.Namespace(json=as_json, raw=False)
    done = await _run_in_pool(None, args, batch(plan), limit)
    return fake, done, out.getvalue()


PLAN = {"slow-pass": (0.06, "passed"), "fast-fail": (0.01, "failed"),
        "mid-pass": (0.03, "passed"), "quick-error": (0.001, "internal_error")}  # fmt: skip


async def test_several_dirs_print_in_the_order_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain lines as jobs finish; then each job's result and the table, in the order given."""
    fake, done, out = await run_cli(monkeypatch, PLAN)
    assert fake.peak == 2 and fake.finished[0] != "slow-pass"
    assert [str(d) for d, _ in done] == list(PLAN)
    progress, rest = out.split("\n\n", 1)
    assert sorted(line.split("] ")[1].split(":")[0] for line in progress.splitlines()) == sorted(
        PLAN
    )
    headers = [line.removeprefix("=== ") for line in rest.splitlines() if line.startswith("===")]
    assert headers == list(PLAN)
    table = rest[rest.index("VERDICT") :].splitlines()[1:-1]
    assert [row.split()[-1] for row in table] == list(PLAN)
    assert [row.split()[0] for row in table] == ["passed", "failed", "passed", "internal_error"]
    assert rest.endswith("2 of 4 passed\n")


async def test_json_documents_come_in_the_order_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """--json: one document a line, nothing else, in the order given, not as they finished."""
    fake, _, out = await run_cli(monkeypatch, PLAN, as_json=True)
    assert fake.finished != list(PLAN)
    assert [json.loads(line)["id"] for line in out.splitlines()] == list(PLAN)


async def test_on_a_tty_the_line_is_cleared_before_the_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a TTY the progress line is rewritten in place and gone when the results come."""
    _, _, out = await run_cli(monkeypatch, PLAN, stdout=Tty())
    live, rest = out.rsplit("\r\x1b[K", 1)
    assert "\n" not in live and "[4/4] 0 running · 2 passed · 1 failed · 1 errors" in live
    assert rest.startswith("=== slow-pass\n")


async def test_a_raising_job_is_an_internal_error_among_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A job that raises is shown as internal_error; every other result is still there."""
    plan = {"a": (0.01, "passed"), "b": (0.001, "raise"), "c": (0.02, "failed")}
    _, done, out = await run_cli(monkeypatch, plan)
    assert [(str(d), r.status.value) for d, r in done] == [
        ("a", "passed"), ("b", "internal_error"), ("c", "failed"),
    ]  # fmt: skip
    assert "RuntimeError: the directory went away" in done[1][1].message
    assert "] b: internal_error (0 ms)\n" in out


async def test_directory_names_cannot_drive_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A learner-named directory shows escaped in the progress line, the plain lines, the
    headers and the table: no ESC, BEL or newline of theirs reaches the terminal."""
    plan = {"ex\x1b]0;title\x07\nx": (0.01, "failed"), "ok": (0.001, "passed")}
    for stdout in (io.StringIO(), Tty()):
        _, _, out = await run_cli(monkeypatch, plan, stdout=stdout)
        ours = out.replace("\r\x1b[K", "").replace("\x1b[K", "")
        ours = ours.replace("\x1b[31m", "").replace("\x1b[32m", "").replace("\x1b[0m", "")
        ours = ours.replace("\x1b[1;31m", "").replace("\x1b[1;32m", "")
        assert "\x1b" not in ours and "\x07" not in ours
        assert "ex\\x1b]0;title\\x07\\nx" in out  # the one-line reports: newline escaped too
        assert "ex\\x1b]0;title\\x07\nx" in out  # header and table, escaped as elsewhere


async def test_ctrl_c_cancels_and_says_how_far_it_got(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancelled mid-batch: the jobs in flight are cancelled, the line is cleared, and one
    message says how many had finished."""
    plan = {"quick": (0.001, "passed"), "slow1": (60, "passed"), "slow2": (60, "passed")}
    out = Tty()
    task = asyncio.create_task(run_cli(monkeypatch, plan, stdout=out))
    while "last: quick" not in out.getvalue():
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(Interrupted) as info:
        await task
    assert str(info.value) == (
        "interrupted after 1 of 3 jobs: the rest were cancelled, no sandbox left behind"
    )
    assert out.getvalue().endswith("\r\x1b[K")


# -- the options ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "jobs"),
    [([], None), (["-j", "3"], 3), (["--jobs", "4"], 4), (["--pool-size", "5"], 5),
     (["--pool-size", "5", "-j", "2"], 2)],
)  # fmt: skip
def test_jobs_option_and_its_old_name(argv: list[str], jobs: int | None) -> None:
    """-j/--jobs, and --pool-size still accepted as its old name (the last one given wins)."""
    args = cli.build_parser().parse_args(["run", *argv, "d"])
    assert args.jobs == jobs


def test_jobs_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "-j", "0", "d"]) == cli.EXIT_USAGE
    assert "must be positive" in capsys.readouterr().err


def test_help_names_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    """The help says what the default is on this host, and that --pool-size is the old -j."""
    assert cli.main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"{default_slots()} here" in text and "--pool-size N deprecated" in text


# -- the real thing ----------------------------------------------------------------------------


def exercise(directory: Path, passes: bool, sleep: float = 0.0) -> str:
    """A one-test pytest exercise that passes or fails, after sleeping `sleep` seconds."""
    directory.mkdir()
    (directory / "slow_test.py").write_text(
        f"import time\n\n\ndef test_it():\n    time.sleep({sleep})\n    assert {passes}\n"
    )
    return str(directory)


def sandboxd(*args: str) -> Any:
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "sandboxd", "run", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=180, check=False,
    )  # fmt: skip


def max_overlap(windows: list[tuple[int, int]]) -> int:
    """How many half-open [start, end) windows are open at once, at most."""
    edges = sorted([(end, -1) for _, end in windows] + [(start, 1) for start, _ in windows])
    now = peak = 0
    for _, step in edges:  # at equal times an end (-1) sorts before a start
        now += step
        peak = max(peak, now)
    return peak


@pytest.mark.docker
def test_four_dirs_two_at_a_time(tmp_path: Path) -> None:
    """4 DIRs with -j 2: verdicts right and in the order given (JSON and the table), and
    the runs overlapped two at a time, never three, by their own timings: a run starts
    after its wait for a slot and a sandbox (queued + acquire) and ends at its total."""
    verdicts = {"d-pass": True, "c-fail": False, "b-pass": True, "a-fail": False}
    dirs = [exercise(tmp_path / name, ok, sleep=2) for name, ok in verdicts.items()]
    proc = sandboxd("-j", "2", "--json", *dirs)
    assert proc.returncode == 1, proc.stderr
    docs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [d["id"].rsplit("-", 1)[0] for d in docs] == list(verdicts)
    assert [d["status"] for d in docs] == ["passed", "failed", "passed", "failed"]
    windows = [
        (d["timing"]["queued_ms"] + d["timing"]["acquire_ms"], d["timing"]["total_ms"])
        for d in docs
    ]
    assert max_overlap(windows) == 2, windows

    quick = [exercise(tmp_path / f"q-{name}", ok) for name, ok in verdicts.items()]
    proc = sandboxd("-j", "2", *quick)
    assert proc.returncode == 1, proc.stderr
    finished = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert len(finished) == 4 and "\r" not in proc.stdout
    table = proc.stdout[proc.stdout.index("VERDICT") :].splitlines()[1:]
    assert [row.split()[-1] for row in table[:-1]] == quick
    assert [row.split()[0] for row in table[:-1]] == ["passed", "failed", "passed", "failed"]
    assert table[-1] == "2 of 4 passed"


async def _containers_of(docker: aiodocker.Docker, pid: int) -> list[Any]:
    filters = json.dumps({"label": [f"{LABEL_PID}={pid}"]})
    return list(await docker.containers.list(all=True, filters=filters))


async def _until(check: Callable[[], Awaitable[bool]], seconds: float) -> None:
    for _ in range(int(seconds * 10)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("never happened")


@pytest.mark.docker
async def test_ctrl_c_leaves_no_sandbox_and_exits_130(
    tmp_path: Path, docker: aiodocker.Docker
) -> None:
    """SIGINT while two of four long jobs run: exit 130, one line saying so, and every
    sandbox of that process removed."""
    dirs = [exercise(tmp_path / f"s{i}", True, sleep=60) for i in range(4)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandboxd", "run", "-j", "2", *dirs,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:

        async def warm() -> bool:  # two slots and a spare
            return len(await _containers_of(docker, proc.pid)) >= 3

        await _until(warm, 60)
        await asyncio.sleep(1)  # the jobs take their sandboxes as soon as they are warm
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 130, err
    assert err.decode() == (
        "sandboxd: interrupted after 0 of 4 jobs: the rest were cancelled, no sandbox left behind\n"
    )
    assert b"\r" not in out
    assert await _containers_of(docker, proc.pid) == []
