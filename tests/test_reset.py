"""The reset between two jobs of one sandbox, against the real engine: what one job
leaves in the sandbox's namespaces and directories never reaches the next, and what
cannot be cleaned at a bounded cost retires the sandbox without making anyone wait.

Each hostile case is a pair run in one sandbox (a pool of size 1): the first job plants,
the second must find nothing and pass; then an ordinary job passes."""

from __future__ import annotations

import ctypes
import json
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from sandboxd import hostfs, namespaces
from sandboxd.jobs import RunContext, execute
from sandboxd.models import Verdict
from sandboxd.pool import Pool
from sandboxd.reasons import RetireReason
from sandboxd.sandbox import Sandbox
from tests.conftest import make_job

pytestmark = pytest.mark.docker

CTX = RunContext()
OK = {"ok.py": "print('fine')\n"}


async def run_in(box: Sandbox, program: str, **fields: Any) -> tuple[bytes, bytes]:
    """Run `program` as a command-mode job in `box`; its stdout and stderr."""
    job = make_job({"p.py": program}, command="python3 p.py", **fields)
    out = await box.run(job, box.spec.limits)
    return bytes(out.stdout), bytes(out.stderr)


async def assert_ordinary_job_passes(pool: Pool) -> None:
    result = await execute(pool, make_job(OK, command="python3 ok.py"), CTX)
    assert result.status is Verdict.PASSED, result
    assert result.stdout == "fine\n"


def retirements(pool: Pool) -> list[str]:
    """Record the pool's retirement reasons from now on."""
    seen: list[str] = []
    pool.on_retire = lambda _pool, reason: seen.append(reason)
    return seen


PLANT_SEMAPHORES = r"""
import ctypes, json
libc = ctypes.CDLL(None, use_errno=True)
made = []
for i in range(128):
    sid = libc.semget(0x5D00 + i, 250, 0o1600)  # IPC_CREAT | 0600
    if sid < 0:
        break
    libc.semctl(sid, 0, 16, 4242)  # SETVAL: a value the next job could read
    made.append(sid)
print(json.dumps({"made": len(made), "errno": ctypes.get_errno()}))
"""

LOOK_FOR_SEMAPHORES = r"""
import ctypes, json
libc = ctypes.CDLL(None, use_errno=True)
rows = open("/proc/sysvipc/sem").read().splitlines()[1:]
found = libc.semget(0x5D00, 0, 0)  # no IPC_CREAT: only finds what someone left
memory = bytearray(150 * 1024 * 1024)  # most of the 256 MB: nothing pinned may be left
memory[::4096] = b"x" * len(memory[::4096])
print(json.dumps({"rows": rows, "found": found}))
"""


async def test_semaphores_of_one_job_are_gone_for_the_next(make_pool: Any) -> None:
    """Semaphore sets (values, and the kernel memory they pin) do not outlive their job:
    the next job in the same sandbox finds none and has its whole memory limit."""
    pool = await make_pool(size=1)
    ids = []
    async with pool.sandbox("python") as box:
        ids.append(box.id)
        out, err = await run_in(box, PLANT_SEMAPHORES)
    planted = json.loads(out)
    assert planted["made"] == 128, (planted, err)  # kernel.sem: at most 128 sets
    async with pool.sandbox("python") as box:
        ids.append(box.id)
        out, err = await run_in(box, LOOK_FOR_SEMAPHORES)
    assert ids[0] == ids[1], "the same sandbox served both jobs"
    seen = json.loads(out)
    assert seen == {"rows": [], "found": -1}, err
    await assert_ordinary_job_passes(pool)


PLANT_CONNECTIONS = r"""
import socket
server = socket.socket()
server.bind(("127.0.0.1", 5555))
server.listen()
for _ in range(20):
    client = socket.create_connection(("127.0.0.1", 5555))
    conn, _ = server.accept()
    conn.close()  # the side that closes first would keep the port in TIME_WAIT
    client.close()
server.close()
print("connected")
"""

LOOK_AT_SOCKETS = r"""
import json, socket
tables = {t: open(f"/proc/net/{t}").read().splitlines()[1:] for t in ("tcp", "tcp6", "unix")}
server = socket.socket()  # no SO_REUSEADDR: what an ordinary socketserver exercise does
server.bind(("127.0.0.1", 5555))
server.listen()
print(json.dumps(tables))
"""


async def test_loopback_connections_leave_no_state_for_the_next_job(make_pool: Any) -> None:
    """A job's loopback TCP connections leave nothing behind: the next job binds the same
    port without SO_REUSEADDR and sees no earlier socket in /proc/net."""
    pool = await make_pool(size=1)
    ids, views = [], []
    for program in (LOOK_AT_SOCKETS, PLANT_CONNECTIONS, LOOK_AT_SOCKETS):
        async with pool.sandbox("python") as box:
            ids.append(box.id)
            out, err = await run_in(box, program)
        # Binding succeeded ("Address already in use" would have raised), or it connected.
        assert out, err
        if program is LOOK_AT_SOCKETS:
            views.append(json.loads(out))
    assert len(set(ids)) == 1, "the same sandbox served the three jobs"
    before, after = views
    assert after == before, "the next job sees what the first saw: our own sockets only"
    assert after["tcp"] == [] and after["tcp6"] == []
    await assert_ordinary_job_passes(pool)


@pytest.fixture
def hold_socket_in() -> Iterator[Any]:
    """Make a listening socket inside a sandbox's network namespace, from the host, and
    hold it open: socket state the sandbox's own processes cannot account for."""
    held: list[socket.socket] = []

    def plant(box: Sandbox) -> None:
        netns = os.open(f"/proc/{box.init_pid}/ns/net", os.O_RDONLY)
        done = threading.Event()

        def in_namespace() -> None:
            # A throwaway thread: it joins the sandbox's namespace and never comes back.
            libc = ctypes.CDLL(None, use_errno=True)
            assert libc.setns(netns, 0x40000000) == 0, os.strerror(ctypes.get_errno())
            sock = socket.socket()
            sock.bind(("127.0.0.1", 7777))
            sock.listen()
            held.append(sock)
            done.set()

        threading.Thread(target=in_namespace, daemon=True).start()
        assert done.wait(5)
        os.close(netns)

    yield plant
    for sock in held:
        sock.close()


async def test_socket_state_the_reset_cannot_clear_retires_the_sandbox(
    make_pool: Any, hold_socket_in: Any
) -> None:
    """Whatever holds a socket in the sandbox's namespace, the reset sees it in the
    sandbox's own /proc/net and retires the sandbox instead of reusing it."""
    pool = await make_pool(size=1)
    retired = retirements(pool)
    async with pool.sandbox("python") as first:
        hold_socket_in(first)
        await run_in(first, "print(1)")
    async with pool.sandbox("python") as second:
        out, _ = await run_in(second, "print(open('/proc/net/tcp').read().count('\\n'))")
    assert second.id != first.id
    assert retired == [RetireReason.SOCKETS.value]
    assert out == b"1\n"  # the fresh sandbox's table: its header only


def test_socket_counts_read_a_namespace_of_the_host() -> None:
    """socket_counts reads the tables of the process it is given, here our own."""
    proc_fd = hostfs.open_proc(os.getpid())
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            port = sock.getsockname()[1]
            counts = namespaces.socket_counts(proc_fd)
            with open(f"/proc/{os.getpid()}/net/tcp") as f:
                assert f":{port:04X} " in f.read()
        assert counts["tcp"] >= 1 and "unix" in counts
    finally:
        os.close(proc_fd)


LEAVE_HARD_LINKS = r"""
import os
open("/tmp/f", "w").close()
for i in range(100_000):
    os.link("/tmp/f", f"/tmp/l{i}")
print("linked")
"""

LEAVE_DEEP_TREE = r"""
import os
os.chdir("/work")
for _ in range(3000):
    os.mkdir("d")
    os.chdir("d")
print("deep")
"""


@pytest.mark.parametrize("program", [LEAVE_HARD_LINKS, LEAVE_DEEP_TREE], ids=["links", "tree"])
async def test_what_costs_too_much_to_remove_retires_and_a_spare_serves(
    make_pool: Any, program: str
) -> None:
    """A job that leaves more entries than a reset removes (100,000 hard links, a
    3000-level tree) retires its sandbox instead of being cleaned, and the next job runs
    at once in the pool's spare rather than waiting for the cleaning or a new container."""
    pool = await make_pool(size=1, spares=1)
    retired = retirements(pool)
    async with pool.sandbox("python") as first:
        out, err = await run_in(first, program, limits={"wall_seconds": 30})
    assert out.strip() in (b"linked", b"deep"), err
    (spare,) = pool._pools["python"].idle  # the first is being reset (or retired) meanwhile
    async with pool.sandbox("python") as box:
        assert box is spare
        out, _ = await run_in(box, OK["ok.py"])
    assert out == b"fine\n"
    await pool.wait_warm(60)  # the first retired and replaced, or back as idle
    assert retired == [RetireReason.FILES.value]
    await assert_ordinary_job_passes(pool)
