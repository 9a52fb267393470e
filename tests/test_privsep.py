"""Privilege separation against the real engine: job code cannot reach the supervisor,
the warm runner parent or their channel, whatever it tries; a job that kills or stops
everything it can see still gets the right verdict, and the next job is fine.

The probe runs as the job's own code, in both modes (command mode: started by the
supervisor; tests mode: in the fork runner's child, inside a test). It lists every
process of another uid it can see and tries each attack on each; what succeeds is a
leak. It must also *see* the processes it attacks, or the test proves nothing.
"""

from __future__ import annotations

import json

import pytest

from sandboxd.jobs import RunContext, execute
from sandboxd.models import Result, Verdict
from sandboxd.pool import Pool
from tests.conftest import make_job

pytestmark = pytest.mark.docker
CTX = RunContext()

PROBE = r"""
import ctypes, json, os, signal, socket

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.syscall.restype = ctypes.c_long
PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206
SYS_PIDFD_OPEN, SYS_PIDFD_GETFD, SYS_PROCESS_VM_READV = 434, 438, 310
CHANNEL_DIR = "/run/sandboxd"


def uid_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])


def others():
    me, seen = os.getuid(), []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                uid = uid_of(int(name))
            except OSError:
                continue
            if uid != me:
                seen.append({"pid": int(name), "uid": uid,
                             "comm": open(f"/proc/{name}/comm").read().strip()})
    return seen


def attack(pid):
    leaks = []
    for sig in (0, signal.SIGSTOP, signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
            leaks.append(f"signal {int(sig)}")
        except OSError:
            pass
    for request in (PTRACE_ATTACH, PTRACE_SEIZE):
        if libc.ptrace(request, pid, None, None) == 0:
            leaks.append(f"ptrace {request:#x}")
    for what in ("mem", "environ", "maps", "auxv", "stack", "syscall"):
        try:
            with open(f"/proc/{pid}/{what}", "rb") as f:
                f.read(1)
            leaks.append(f"read /proc/pid/{what}")
        except OSError:
            pass
    try:
        os.close(os.open(f"/proc/{pid}/mem", os.O_WRONLY))
        leaks.append("open /proc/pid/mem for writing")
    except OSError:
        pass
    for what in ("fd", "fdinfo", "cwd", "root", "map_files"):
        try:
            os.listdir(f"/proc/{pid}/{what}")
            leaks.append(f"list /proc/pid/{what}")
        except OSError:
            pass
    local = (ctypes.c_char * 8)()
    iov = (ctypes.c_void_p * 2)(ctypes.cast(local, ctypes.c_void_p), 8)
    remote = (ctypes.c_void_p * 2)(0x400000, 8)
    if libc.syscall(SYS_PROCESS_VM_READV, pid, iov, 1, remote, 1, 0) >= 0:
        leaks.append("process_vm_readv")
    pidfd = libc.syscall(SYS_PIDFD_OPEN, pid, 0)
    if pidfd >= 0:
        for fd in range(0, 32):
            got = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
            if got >= 0:
                leaks.append(f"pidfd_getfd {fd}")
                os.close(got)
        os.close(pidfd)
    return leaks


def channel():
    leaks = []
    try:
        leaks.append(f"list {CHANNEL_DIR}: {os.listdir(CHANNEL_DIR)}")
    except OSError:
        pass
    for path in (f"{CHANNEL_DIR}/supervisor.sock", "\0sandboxd", "\0supervisor"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            leaks.append(f"connect {path!r}")
        except OSError:
            pass
        finally:
            s.close()
    # Every descriptor we hold: none may be a socket (the supervisor's channel and the
    # runner's socketpair are the only sockets of ours in there).
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            leaks.append(f"fd {fd} is a socket")
    return leaks


def identity():
    leaks = []
    for attempt in (lambda: os.setresuid(0, 0, 0), lambda: os.setresuid(10002, 10002, 10002),
                    lambda: os.setgid(0), lambda: os.setgroups([0])):
        try:
            attempt()
            leaks.append("changed identity")
        except OSError:
            pass
    status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines()
                  if ":\t" in line)
    for key in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        if int(status[key], 16) != 0:
            leaks.append(f"{key} {status[key].strip()}")
    if status["NoNewPrivs"].strip() != "1":
        leaks.append("new privileges allowed")
    return leaks


def probe():
    seen = others()
    leaks = {f"{p['comm']}[{p['pid']}] uid {p['uid']}": attack(p["pid"]) for p in seen}
    leaks = {k: v for k, v in leaks.items() if v}
    for name, found in (("channel", channel()), ("identity", identity())):
        if found:
            leaks[name] = found
    return {"uid": os.getuid(), "seen": seen, "leaks": leaks}
"""

COMMAND_PROBE = PROBE + "\nprint(json.dumps(probe()))\n"
TESTS_PROBE = (
    PROBE
    + """

def test_nothing_of_ours_is_reachable():
    found = probe()
    comms = sorted(p["comm"] for p in found["seen"])
    assert len(found["seen"]) >= 2, f"the probe saw too little to prove anything: {comms}"
    assert not found["leaks"], json.dumps(found["leaks"])
"""
)

KILL_EVERYTHING = """
import os, signal
for sig in (signal.SIGSTOP, signal.SIGTERM, signal.SIGKILL):
    try:
        os.kill(-1, sig)  # everything this uid may signal (not the caller itself)
    except OSError:
        pass
for name in os.listdir("/proc"):
    if name.isdigit() and int(name) != os.getpid():
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            try:
                os.kill(int(name), sig)
            except OSError:
                pass
"""


async def next_job_is_fine(pool: Pool) -> None:
    result = await execute(
        pool, make_job({"ok.py": "print('fine')\n"}, command="python3 ok.py"), CTX
    )
    assert result.status is Verdict.PASSED and result.stdout == "fine\n", result
    tests = {"ok_test.py": "def test_ok():\n    assert 1 + 1 == 2\n"}
    result = await execute(pool, make_job(tests), CTX)
    assert result.status is Verdict.PASSED and len(result.tests) == 1, result


async def test_command_job_cannot_reach_the_supervisor(make_pool: object) -> None:
    """From a command-mode job (the supervisor's direct child): signals, ptrace, the
    other processes' /proc files, pidfd_getfd and the channel all fail, and the job holds
    no capability."""
    pool = await make_pool(size=1)  # type: ignore[operator]
    job = make_job({"probe.py": COMMAND_PROBE}, command="python3 probe.py")
    result: Result = await execute(pool, job, CTX)
    assert result.status is Verdict.PASSED, result
    found = json.loads(result.stdout)
    assert found["uid"] == 10001
    uids = {p["uid"] for p in found["seen"]}
    assert 10002 in uids, f"the probe did not see the supervisor: {found['seen']}"
    assert found["leaks"] == {}, found["leaks"]
    await next_job_is_fine(pool)


async def test_test_code_cannot_reach_the_runner_parent_or_the_supervisor(
    make_pool: object,
) -> None:
    """From inside a test (the fork runner's child, become the job user): the warm
    runner parent and the supervisor are out of reach the same way."""
    pool = await make_pool(size=1)  # type: ignore[operator]
    result = await execute(pool, make_job({"probe_test.py": TESTS_PROBE}), CTX)
    assert result.status is Verdict.PASSED, (result.message, [t.message for t in result.tests])
    assert [t.status.value for t in result.tests] == ["pass"]
    await next_job_is_fine(pool)


async def test_a_command_job_that_kills_and_stops_everything_it_sees(make_pool: object) -> None:
    """It can only hit its own processes; its own run ends normally and the sandbox
    serves the next jobs."""
    pool = await make_pool(size=1)  # type: ignore[operator]
    program = KILL_EVERYTHING + "print('still here')\n"
    # `exec`: the program is the job's main process (else it kills its own shell first).
    job = make_job(
        {"main.py": program}, command="exec python3 main.py", limits={"wall_seconds": 10}
    )
    result = await execute(pool, job, CTX)
    assert result.status is Verdict.PASSED and result.stdout == "still here\n", (
        result.message,
        result.stdout,
        result.signal,
    )
    await next_job_is_fine(pool)


async def test_a_test_that_kills_and_stops_everything_it_sees(make_pool: object) -> None:
    """In tests mode the runner parent survives (another uid); the job's own tests go on
    and the verdict counts them."""
    pool = await make_pool(size=1)  # type: ignore[operator]
    tests = {
        "hit_test.py": (
            "def test_hit():\n"
            + "".join(f"    {line}\n" for line in KILL_EVERYTHING.strip().splitlines())
            + "\ndef test_after():\n    assert True\n"
        )
    }
    result = await execute(pool, make_job(tests, limits={"wall_seconds": 10}), CTX)
    assert result.status is Verdict.PASSED, (result.message, result.tests)
    assert [t.status.value for t in result.tests] == ["pass", "pass"]
    await next_job_is_fine(pool)


async def test_a_test_that_stops_its_own_process_is_a_timeout(make_pool: object) -> None:
    """SIGSTOP on itself: the runner parent waits, the wall limit ends it, `timeout`, and
    nothing is believed of a run that did not finish."""
    pool = await make_pool(size=1)  # type: ignore[operator]
    tests = {
        "stop_test.py": (
            "import os, signal\n\ndef test_stop():\n    os.kill(os.getpid(), signal.SIGSTOP)\n"
        )
    }
    result = await execute(pool, make_job(tests, limits={"wall_seconds": 2}), CTX)
    assert result.status is Verdict.TIMEOUT, result
    await next_job_is_fine(pool)


async def test_a_test_that_kills_its_own_process_is_a_runtime_error(make_pool: object) -> None:
    """SIGKILL on itself after claiming a pass on the events pipe: the run did not
    finish, so it is `runtime_error`, never `passed` and never our fault."""
    pool = await make_pool(size=1)  # type: ignore[operator]
    tests = {
        "kill_test.py": (
            "import os, signal\n\ndef test_ok():\n    assert True\n\n"
            "def test_kill():\n    os.kill(os.getpid(), signal.SIGKILL)\n"
        )
    }
    result = await execute(pool, make_job(tests, limits={"wall_seconds": 10}), CTX)
    assert result.status is Verdict.RUNTIME_ERROR, result
    assert "SIGKILL" in result.message, result.message
    await next_job_is_fine(pool)


async def test_job_processes_are_the_oom_killers_first_choice(make_pool: object) -> None:
    """oom_score_adj 1000 for the job's processes (command mode and inside a test), so a
    memory verdict never costs the supervisor or the runner parent first."""
    pool = await make_pool(size=1)  # type: ignore[operator]
    read = "print(open('/proc/self/oom_score_adj').read().strip())\n"
    result = await execute(pool, make_job({"m.py": read}, command="python3 m.py"), CTX)
    assert result.status is Verdict.PASSED and result.stdout == "1000\n", result
    tests = {
        "oom_test.py": (
            "def test_oom():\n"
            "    assert open('/proc/self/oom_score_adj').read().strip() == '1000'\n"
        )
    }
    result = await execute(pool, make_job(tests), CTX)
    assert result.status is Verdict.PASSED, result
