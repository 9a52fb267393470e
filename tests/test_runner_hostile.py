"""Tests-mode hostile programs against the real engine: whatever a learner's code does to
the runner, its files or its output is a learner verdict (never `internal_error`, never a
crash), results are believed only from a runner that finished, the runner cannot be
ptraced or rewritten, and the learner's output holds nothing of ours.

Each runs through the fork (warm) runner and through the runner started per job."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiodocker
import pytest

from sandboxd.jobs import RunContext, execute
from sandboxd.models import Result, Verdict
from sandboxd.pool import Pool, PoolConfig
from sandboxd.sandbox import RunnerMode, SandboxSpec
from tests.conftest import TEST_HOST_ID, make_job

pytestmark = pytest.mark.docker

CTX = RunContext()
SOLUTION = {"solution.py": "def answer():\n    return 42\n"}


@pytest.fixture(scope="module", params=["fork", "cold"])
async def runner_pool(
    request: pytest.FixtureRequest, docker: aiodocker.Docker, python_spec: SandboxSpec
) -> AsyncIterator[Pool]:
    """A pool whose runner is warm (pytest imported, a child per job), or starts per job."""
    spec = replace(python_spec, runner_mode=RunnerMode(request.param))
    pool = Pool(docker, {"python": spec}, PoolConfig(size=1, spares=1), host_id=TEST_HOST_ID)
    try:
        await pool.start()
        assert await pool.wait_warm(120), pool.last_error("python")
        yield pool
    finally:
        await pool.close()


async def run_tests(pool: Pool, test_file: str, **fields: Any) -> Result:
    job = make_job({**SOLUTION, "solution_test.py": test_file}, **fields)
    return await execute(pool, job, CTX)


async def assert_next_job_passes(pool: Pool) -> None:
    ok = "from solution import answer\n\n\ndef test_answer():\n    assert answer() == 42\n"
    result = await run_tests(pool, ok)
    assert result.status is Verdict.PASSED, result
    assert [t.name for t in result.tests] == ["answer"]


# -- the runner's files --------------------------------------------------------------------

PLANT_LINKS = r"""
import os

OUT = "/tmp/.sandboxd/out"


def test_plants_links_where_the_runner_writes():
    runner = os.getppid()
    for name in ["results.json.tmp", "results.json"] + [
        f".results-{pid}-{n}.tmp" for pid in (runner, os.getpid()) for n in range(3)
    ]:
        os.symlink("/etc/passwd", os.path.join(OUT, name))
"""


async def test_links_planted_in_the_runners_output_dir_change_nothing(
    runner_pool: Pool,
) -> None:
    """Symlinks at the runner's temporary and final results paths are not followed: the
    run is judged on its tests."""
    result = await run_tests(runner_pool, PLANT_LINKS)
    assert result.status is Verdict.PASSED, result
    assert [t.name for t in result.tests] == ["plants links where the runner writes"]
    await assert_next_job_passes(runner_pool)


BLOCK_RESULTS = r"""
import os


def test_puts_a_directory_where_the_results_go():
    os.makedirs("/tmp/.sandboxd/out/results.json/inner")
"""


async def test_a_directory_in_the_way_of_the_results_is_removed(runner_pool: Pool) -> None:
    """A directory planted at results.json does not stop the runner writing its results."""
    result = await run_tests(runner_pool, BLOCK_RESULTS)
    assert result.status is Verdict.PASSED, result
    await assert_next_job_passes(runner_pool)


HUGE_ID = r"""
import pytest


@pytest.mark.parametrize("x", ["a" * (10 * 1024 * 1024)])
def test_big(x):
    assert x
"""


async def test_a_ten_megabyte_test_id_is_cut_not_fatal(runner_pool: Pool) -> None:
    """One passing test whose parametrisation id is 10 MB passes with its name cut."""
    result = await run_tests(runner_pool, HUGE_ID)
    assert result.status is Verdict.PASSED, result
    (test,) = result.tests
    assert test.status.value == "pass" and 100 < len(test.name) <= 500
    assert test.name.startswith("big [aaaa") and test.name.endswith("…")
    await assert_next_job_passes(runner_pool)


FORGE_AND_KILL = r"""
import json
import os
import signal


def test_forges_a_pass_and_kills_the_runner():
    doc = {"version": 3, "status": "pass", "tests": [{"name": "all good", "status": "pass"}]}
    with open("/tmp/.sandboxd/out/results.json", "w") as f:
        json.dump(doc, f)
    os.kill(os.getppid(), signal.SIGKILL)
    assert False
"""


async def test_results_left_by_a_killed_runner_are_not_believed(runner_pool: Pool) -> None:
    """A results file claiming every test passed, then SIGKILL to the runner. A fork
    runner is another uid: the kill is refused and the file means nothing (the test
    fails). A cold runner is the job user's: it dies, so it did not finish, and the file
    is no evidence; the verdict is a runtime error."""
    result = await run_tests(runner_pool, FORGE_AND_KILL)
    if runner_pool.spec("python").runner_mode is RunnerMode.FORK:
        assert result.status is Verdict.FAILED, result
        (test,) = result.tests
        assert test.message is not None and "PermissionError" in test.message
    else:
        assert result.status is Verdict.RUNTIME_ERROR, result
        assert result.tests == []
        assert "did not finish (killed by SIGKILL)" in result.message
    await assert_next_job_passes(runner_pool)


# -- the runner process --------------------------------------------------------------------

REACH_THE_RUNNER = r"""
import ctypes
import json
import os

libc = ctypes.CDLL(None, use_errno=True)


def test_reaches_for_the_runner():
    runner = os.getppid()
    seen = {"cmdline": open(f"/proc/{runner}/cmdline", "rb").read().split(b"\0")[1].decode()}
    rc = libc.ptrace(16, runner, 0, 0)  # PTRACE_ATTACH
    seen["attach"] = [rc, ctypes.get_errno()]
    if rc == 0:
        libc.ptrace(17, runner, 0, 0)  # PTRACE_DETACH
    for mode in ("rb", "r+b"):
        try:
            with open(f"/proc/{runner}/mem", mode):
                seen[mode] = "opened"
        except OSError as exc:
            seen[mode] = exc.errno
    seen["uid"] = os.stat(f"/proc/{runner}/mem").st_uid
    print("SEEN", json.dumps(seen))
"""


async def test_the_runner_cannot_be_attached_to_or_rewritten(runner_pool: Pool) -> None:
    """The tests' code (same user) can neither PTRACE_ATTACH to its runner nor open the
    runner's memory: the runner is not dumpable."""
    result = await run_tests(runner_pool, REACH_THE_RUNNER)
    assert result.status is Verdict.PASSED, result
    (test,) = result.tests
    assert test.output is not None and test.output.startswith("SEEN "), test
    seen = json.loads(test.output[5:])
    assert seen["cmdline"] == "/opt/sandboxd/runner/run", seen  # it is the runner we probed
    assert seen["attach"] == [-1, 1], seen  # EPERM
    assert seen["rb"] == 13 and seen["r+b"] == 13, seen  # EACCES
    assert seen["uid"] == 0, seen  # a non-dumpable process's /proc files are root's
    await assert_next_job_passes(runner_pool)


# -- what the learner sees -----------------------------------------------------------------


async def test_the_learners_output_holds_nothing_of_ours(runner_pool: Pool) -> None:
    """A passing job's stdout and stderr are pytest's report of the learner's tests: no
    warning about our plugin, no word of our runner."""
    ok = "from solution import answer\n\n\ndef test_answer():\n    assert answer() == 42\n"
    result = await run_tests(runner_pool, ok)
    assert result.status is Verdict.PASSED, result
    for stream in (result.stdout, result.stderr):
        assert "sandboxd" not in stream and "Warning" not in stream, stream
    assert result.stdout.splitlines()[-1].startswith("1 passed in ")


PRINT_FOREVER = r"""
def test_prints_forever():
    while True:
        print("x" * 1000)
"""


async def test_printing_inside_a_test_counts_against_the_output_limit(runner_pool: Pool) -> None:
    """Output a test prints while pytest captures it counts: the job stops at the output
    limit (not later with a full disk and a failed test)."""
    result = await run_tests(runner_pool, PRINT_FOREVER, limits={"output_bytes": 256 * 1024})
    assert result.status is Verdict.OUTPUT_LIMIT, result
    assert result.message.startswith("Output limit of 256 KiB exceeded"), result.message
    assert "xxxxxxxxxx" in result.stdout  # what went past the capture, as it came
    await assert_next_job_passes(runner_pool)


MANY_TESTS = """\
import pytest


@pytest.mark.parametrize("i", range(1000))
def test_many(i):
    assert i >= 0
"""

SLOW_SECOND = """\
import time


def test_quick():
    pass


def test_slow():
    time.sleep(1)
"""


async def test_pytest_output_reaches_the_daemon_in_few_chunks_yet_live(
    runner_pool: Pool,
) -> None:
    """pytest writes a progress dot per test; the runner passes them on gathered (a
    thousand tests in far fewer chunks than tests), and still as they come: the first
    test's dot arrives before the next, slow test has finished."""
    chunks: list[bytes] = []
    job = make_job({**SOLUTION, "many_test.py": MANY_TESTS})
    result = await execute(
        runner_pool, job, CTX, lambda kind, data: chunks.append(data) if kind == "stdout" else None
    )
    assert result.status is Verdict.PASSED and len(result.tests) == 1000, result
    assert b"".join(chunks).count(b".") >= 1000
    assert len(chunks) < 250, len(chunks)

    chunks.clear()
    job = make_job({**SOLUTION, "slow_test.py": SLOW_SECOND})
    result = await execute(
        runner_pool, job, CTX, lambda kind, data: chunks.append(data) if kind == "stdout" else None
    )
    assert result.status is Verdict.PASSED, result
    assert chunks[0].count(b".") == 1, chunks  # test_quick's dot, passed on at once
