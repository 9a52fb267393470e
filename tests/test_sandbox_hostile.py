"""Hostile programs against the real engine: each gets the right verdict and the next
job on the same pool is fine."""

from __future__ import annotations

import json

import pytest

from sandboxd.jobs import RunContext, execute
from sandboxd.models import Result, Verdict
from sandboxd.pool import Pool
from tests.conftest import make_job

pytestmark = pytest.mark.docker
CTX = RunContext()
OK_PROGRAM = {"ok.py": "print('fine')\n"}


async def run_cmd(pool: Pool, program: str, **fields: object) -> Result:
    job = make_job({"main.py": program}, command="python3 main.py", **fields)
    return await execute(pool, job, CTX)


async def assert_next_job_fine(pool: Pool) -> None:
    result = await execute(pool, make_job(OK_PROGRAM, command="python3 ok.py"), CTX)
    assert result.status is Verdict.PASSED, result
    assert result.stdout == "fine\n"


async def test_memory_bomb_is_memory_limit(pool: Pool) -> None:
    """Allocating past the memory limit is reported from the cgroup's OOM counter."""
    result = await run_cmd(
        pool, "a = []\nwhile True:\n    a.append(bytearray(10**7))\n", limits={"memory_mb": 64}
    )
    assert result.status is Verdict.MEMORY_LIMIT
    assert result.message.startswith("Memory limit of 64 MB exceeded")
    await assert_next_job_fine(pool)


async def test_cpu_spin_is_timeout(pool: Pool) -> None:
    """A busy loop is stopped by the CPU-time limit from the cgroup's counter."""
    result = await run_cmd(pool, "while True:\n    pass\n", limits={"cpu_seconds": 1})
    assert result.status is Verdict.TIMEOUT
    assert "CPU time limit of 1 s" in result.message
    assert result.resources.cpu_ms is not None and result.resources.cpu_ms >= 1000
    await assert_next_job_fine(pool)


async def test_sleep_past_wall_limit_is_timeout(pool: Pool) -> None:
    """A program still running at the wall limit is killed and reported as a timeout."""
    result = await run_cmd(pool, "import time\ntime.sleep(60)\n", limits={"wall_seconds": 1})
    assert result.status is Verdict.TIMEOUT
    assert result.message.startswith("Time limit of 1 s exceeded")
    assert result.signal == "SIGKILL"
    await assert_next_job_fine(pool)


async def test_output_flood_is_output_limit(pool: Pool) -> None:
    """Output past the limit stops the program; we keep only what the limit allows."""
    result = await run_cmd(
        pool, "import sys\nwhile True:\n    sys.stdout.write('x' * 4096)\n",
        limits={"output_bytes": 100_000},
    )  # fmt: skip
    assert result.status is Verdict.OUTPUT_LIMIT
    assert len(result.stdout) <= 100_000
    await assert_next_job_fine(pool)


async def test_fork_bomb_hits_pids_limit_and_ends(pool: Pool) -> None:
    """A fork bomb is held by the pids limit, the job ends, and the limit is reported.
    (Memory enough for 64 Python 3.13 processes, ~5 MB of their own each, so the pids
    limit is what holds it: with the default 256 MB the OOM killer may come first.)"""
    program = "import os\nwhile True:\n    os.fork()\n"
    result = await run_cmd(pool, program, limits={"wall_seconds": 5, "pids": 64, "memory_mb": 1024})
    assert result.status in (Verdict.RUNTIME_ERROR, Verdict.TIMEOUT)
    assert "process limit of 64" in result.message
    await assert_next_job_fine(pool)


@pytest.mark.parametrize("where", ["/tmp", "/work"])
async def test_filling_a_tmpfs_is_stopped_by_the_disk_limit(pool: Pool, where: str) -> None:
    """Writing past the disk limit fails with ENOSPC and the limit is reported."""
    program = (
        "import errno\n"
        f"f = open('{where}/fill', 'wb')\n"
        "try:\n"
        "    while True:\n"
        "        f.write(b'x' * (1 << 20)); f.flush()\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno])\n"
    )
    result = await run_cmd(pool, program, limits={"memory_mb": 256})
    assert "ENOSPC" in result.stdout or "EFBIG" in result.stdout
    assert "disk limit of 64 MB" in result.message
    await assert_next_job_fine(pool)


async def test_huge_single_file_is_cut_by_fsize(pool: Pool) -> None:
    """One file larger than the disk limit is refused by the fsize ulimit."""
    program = (
        "import os, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "fd = os.open('/work/big', os.O_WRONLY | os.O_CREAT)\n"
        "try:\n"
        "    os.pwrite(fd, b'x', 200 << 20)\n"
        "except OSError as e:\n"
        "    print('refused', e.errno)\n"
    )
    result = await run_cmd(pool, program)
    assert result.stdout.startswith("refused 27"), result.stdout  # EFBIG
    await assert_next_job_fine(pool)


PROBE = r"""
import json, os, socket
out = {}
def attempt(name, fn):
    try:
        fn(); out[name] = "ok"
    except OSError as e:
        out[name] = e.errno
attempt("write_etc", lambda: open("/etc/evil", "w"))
attempt("write_usr", lambda: open("/usr/bin/evil", "w"))
attempt("kill_pid1", lambda: os.kill(1, 9))
attempt("term_pid1", lambda: os.kill(1, 15))
out["uid"] = os.getuid()
out["euid"] = os.geteuid()
status = open("/proc/self/status").read()
out["caps"] = {l.split(":")[0]: l.split()[1] for l in status.splitlines() if l.startswith("Cap")}
out["no_new_privs"] = [l.split()[1] for l in status.splitlines() if l.startswith("NoNewPrivs")]
out["seccomp"] = [l.split()[1] for l in status.splitlines() if l.startswith("Seccomp:")]
out["docker_sock"] = os.path.exists("/var/run/docker.sock") or os.path.exists("/run/docker.sock")
out["net"] = sorted(os.listdir("/sys/class/net"))
out["env"] = dict(os.environ)
try:
    socket.create_connection(("127.0.0.1", 8700), timeout=1)
    out["daemon_port"] = "reachable"
except OSError as e:
    out["daemon_port"] = e.errno
print(json.dumps(out))
"""


async def test_the_sandbox_is_locked_down(pool: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    """No root, no capabilities, read-only system paths, no Docker socket, no network
    beyond loopback, PID 1 unkillable, and none of the daemon's environment."""
    monkeypatch.setenv("SANDBOXD_TEST_SECRET", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "also-secret")
    result = await run_cmd(pool, PROBE)
    assert result.status is Verdict.PASSED, result
    probe = json.loads(result.stdout)
    assert probe["uid"] != 0 and probe["euid"] != 0
    for kind in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert probe["caps"][kind] == "0000000000000000", kind
    # The bounding set keeps the supervisor's two (SETUID, SETGID): no-new-privileges and
    # the empty permitted set mean a job can never hold them.
    assert probe["caps"]["CapBnd"] == "00000000000000c0"
    assert probe["no_new_privs"] == ["1"]
    assert probe["seccomp"] == ["2"]  # filter mode: Docker's default profile
    assert probe["write_etc"] == 30 and probe["write_usr"] == 30  # EROFS
    assert probe["kill_pid1"] == 1 and probe["term_pid1"] == 1  # EPERM
    assert probe["docker_sock"] is False
    assert probe["net"] == ["lo"]
    assert probe["daemon_port"] != "reachable"
    env = probe["env"]
    assert "SANDBOXD_TEST_SECRET" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    allowed = {"PATH", "HOME", "LANG", "TMPDIR", "HOSTNAME", "PWD",
               "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONIOENCODING"}  # fmt: skip
    assert set(env) <= allowed, set(env) - allowed
    await assert_next_job_fine(pool)


IO_URING = r"""
import ctypes, errno, json
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)  # struct io_uring_params
out = {}
for name, nr, args in (("setup", 425, (8, params)), ("enter", 426, (0, 1, 0, 0, None, 0)),
                       ("register", 427, (0, 0, None, 0))):
    rc = libc.syscall(nr, *args)
    out[name] = (rc, errno.errorcode.get(ctypes.get_errno()))
out["unshare_user"] = (libc.unshare(0x10000000), errno.errorcode.get(ctypes.get_errno()))
print(json.dumps(out))
"""


async def test_io_uring_and_new_namespaces_are_refused(pool: Pool) -> None:
    """Our seccomp profile refuses io_uring (a second system-call interface no filter can
    see into) whatever the engine's default allows, and creating namespaces."""
    result = await run_cmd(pool, IO_URING)
    assert result.status is Verdict.PASSED, result
    seen = json.loads(result.stdout)
    for name in ("setup", "enter", "register"):
        assert seen[name] == [-1, "EPERM"], seen
    assert seen["unshare_user"] == [-1, "EPERM"]
    await assert_next_job_fine(pool)


async def test_invalid_utf8_output_is_replaced(pool: Pool) -> None:
    """Bytes that are not UTF-8 reach the result as replacement characters, not a crash."""
    result = await run_cmd(pool, "import sys\nsys.stdout.buffer.write(b'ok \\xff\\xfe end\\n')\n")
    assert result.status is Verdict.PASSED
    assert result.stdout == "ok \ufffd\ufffd end\n"
    assert json.loads(result.to_json())["stdout"] == "ok \ufffd\ufffd end\n"


# -- the same through the test runner (no command): what a learner's exercise can do ------

SOLUTION_TEST = "from solution import answer\n\n\ndef test_answer():\n    assert answer() == 42\n"


async def run_tests(pool: Pool, solution: str, **fields: object) -> Result:
    job = make_job({"solution.py": solution, "solution_test.py": SOLUTION_TEST}, **fields)
    return await execute(pool, job, CTX)


async def test_tests_mode_infinite_loop_is_timeout(pool: Pool) -> None:
    """A solution that never returns: the runner is killed at the wall limit."""
    result = await run_tests(
        pool, "def answer():\n    while True:\n        pass\n", limits={"wall_seconds": 2}
    )
    assert result.status is Verdict.TIMEOUT, result
    assert result.message.startswith(("Time limit of 2 s", "CPU time limit")), result.message
    await assert_next_job_fine(pool)


async def test_tests_mode_memory_bomb_is_memory_limit(pool: Pool) -> None:
    """Memory exhaustion inside a test is the memory limit, not a failed test."""
    bomb = "def answer():\n    a = []\n    while True:\n        a.append(bytearray(10**7))\n"
    result = await run_tests(pool, bomb, limits={"memory_mb": 64})
    assert result.status is Verdict.MEMORY_LIMIT, result
    await assert_next_job_fine(pool)


async def test_tests_mode_import_time_exit_is_reported(pool: Pool) -> None:
    """sys.exit() while pytest imports the solution yields a clear message, not our crash."""
    result = await run_tests(pool, "import sys\nsys.exit(3)\n")
    assert result.status in (Verdict.COMPILE_ERROR, Verdict.RUNTIME_ERROR), result
    assert result.message and "Traceback" not in result.message
    await assert_next_job_fine(pool)


async def test_tests_mode_passing_solution_passes(pool: Pool) -> None:
    result = await run_tests(pool, "def answer():\n    return 42\n")
    assert result.status is Verdict.PASSED, result
    assert [t.name for t in result.tests] == ["answer"]


async def test_a_tiny_memory_limit_gets_a_cold_sandbox_not_our_fault(pool: Pool) -> None:
    """16 MB (the contract's least) is below what a warm sandbox already holds (its
    fork runner): the job gets a cold sandbox of its own, where its limit is its own,
    instead of a limit the kernel refuses (internal_error, retried)."""
    result = await run_cmd(pool, "print('fits')\n", limits={"memory_mb": 16})
    assert result.status is Verdict.PASSED and result.stdout == "fits\n", result
    tests = {"t_test.py": "def test_t():\n    assert True\n"}
    result = await execute(pool, make_job(tests, limits={"memory_mb": 16}), CTX)
    assert result.status is Verdict.MEMORY_LIMIT, result
    await assert_next_job_fine(pool)


async def test_a_test_leaving_a_process_that_holds_the_events_pipe(pool: Pool) -> None:
    """A test forks a child that outlives pytest and keeps every inherited descriptor:
    the runner reads what the pipe holds when pytest ends and does not wait (nor spin)
    for the child; the verdict is the tests'."""
    tests = {
        "linger_test.py": (
            "import os, time\n\n"
            "def test_linger():\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(30)\n"
            "        os._exit(0)\n\n"
            "def test_after():\n    assert True\n"
        )
    }
    result = await execute(pool, make_job(tests, limits={"wall_seconds": 8}), CTX)
    assert result.status is Verdict.PASSED, result
    assert [t.status.value for t in result.tests] == ["pass", "pass"]
    assert result.resources.cpu_ms is not None and result.resources.cpu_ms < 4000, result
    await assert_next_job_fine(pool)
