"""Reuse of one sandbox across jobs: verified reset, retirement, leftovers."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import replace
from pathlib import Path

import aiodocker
import pytest

from sandboxd.jobs import RunContext, execute
from sandboxd.models import Verdict
from sandboxd.pool import LABEL_HOST, LABEL_MANAGED, LABEL_PID, Pool, PoolConfig, remove_leftovers
from sandboxd.sandbox import RunnerMode, Sandbox, SandboxError, SandboxSpec
from tests.conftest import TEST_HOST_ID, make_job

pytestmark = pytest.mark.docker
CTX = RunContext()

LEAVE_TRACES = r"""
import os, subprocess
subprocess.Popen(["sleep", "1000"], start_new_session=True)
subprocess.Popen(["python3", "-c", "import time; time.sleep(1000)"], stdout=None)
for d in ("/tmp", "/dev/shm", "/work"):
    with open(os.path.join(d, "secret-of-job-1"), "w") as f:
        f.write("answers")
os.makedirs("/tmp/locked/inner")
os.chmod("/tmp/locked", 0)
print("left traces")
"""

LOOK_AROUND = r"""
import json, os
procs = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            procs.append(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode())
        except OSError:
            pass
print(json.dumps({
    "procs": procs,
    "tmp": sorted(os.listdir("/tmp")),
    "shm": sorted(os.listdir("/dev/shm")),
    "work": sorted(os.listdir("/work")),
}))
"""


async def test_second_job_sees_nothing_of_the_first(make_pool: object) -> None:
    """Job 2 in the same sandbox finds no process, file or directory of job 1."""
    pool = await make_pool(size=1)  # type: ignore[operator]
    ids = []
    async with pool.sandbox("python") as box:
        ids.append(box.id)
        job1 = make_job({"a.py": LEAVE_TRACES}, job_id="job-1", command="python3 a.py")
        out1 = await box.run(job1, pool.spec("python").limits)
    assert out1.stdout == b"left traces\n"
    async with pool.sandbox("python") as box:
        ids.append(box.id)
        job2 = make_job({"b.py": LOOK_AROUND}, job_id="job-2", command="python3 b.py")
        out2 = await box.run(job2, pool.spec("python").limits)
    assert ids[0] == ids[1], "the same warm sandbox served both jobs"
    seen = json.loads(out2.stdout)
    ours = ("/sbin/docker-init ", "/opt/sandboxd/supervisor ", "/usr/bin/python3 /opt/sandboxd/")
    # Beyond ours (docker-init, the supervisor, the fork runner): job 2's sh and itself.
    assert [p for p in seen["procs"] if not p.startswith(ours)] == [
        "/bin/sh -c python3 b.py ",
        "python3 b.py ",
    ], seen["procs"]
    assert seen["work"] == ["b.py"]
    assert seen["tmp"] == [".sandboxd"]  # our control dir for job 2 only
    assert seen["shm"] == []


async def test_limit_event_retires_the_sandbox(make_pool: object) -> None:
    """After a timeout the sandbox is destroyed and a fresh one serves the next job."""
    pool = await make_pool(size=1)  # type: ignore[operator]
    (warm,) = pool._pools["python"].idle  # size 1 and warm: this one serves the job
    result = await execute(
        pool,
        make_job({"s.py": "import time; time.sleep(30)"}, command="python3 s.py",
                 limits={"wall_seconds": 0.5}),
        CTX,
    )  # fmt: skip
    assert result.status is Verdict.TIMEOUT
    async with pool.sandbox("python") as box:
        assert box.id != warm.id
        out = await box.run(
            make_job({"ok.py": "print(1)"}, command="python3 ok.py"), box.spec.limits
        )
    assert out.stdout == b"1\n"
    assert pool.stats()[0].size == 1
    for _ in range(100):  # destruction runs in the background
        try:
            await warm.container.show()
        except aiodocker.DockerError as exc:
            assert exc.status == 404
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the timed-out sandbox still exists")


async def test_job_count_limit_retires(make_pool: object) -> None:
    """A sandbox that served its maximum number of jobs is replaced by a fresh one."""
    pool = await make_pool(size=1, max_jobs_per_sandbox=2)  # type: ignore[operator]
    seen = []
    for _ in range(3):
        async with pool.sandbox("python") as box:
            seen.append(box.id)
            await box.run(make_job({"o.py": "1"}, command="python3 o.py"), box.spec.limits)
        await asyncio.sleep(0)
    assert seen[0] == seen[1]
    assert seen[2] != seen[1]


async def test_leftovers_of_a_dead_process_are_removed(
    docker: aiodocker.Docker, python_spec: SandboxSpec
) -> None:
    """Containers labelled by a sandboxd process that no longer exists are removed at start."""
    dead_pid = 2**22 + 12345  # above pid_max's default: never a live process
    assert not os.path.exists(f"/proc/{dead_pid}")
    c = await docker.containers.create(
        config={
            "Image": python_spec.image,
            "Cmd": ["sleep", "infinity"],
            "Labels": {LABEL_MANAGED: "true", LABEL_HOST: TEST_HOST_ID, LABEL_PID: str(dead_pid)},
            "HostConfig": {"NetworkMode": "none"},
        }
    )
    removed = await remove_leftovers(docker, TEST_HOST_ID)
    assert removed >= 1
    try:
        await c.show()
        raise AssertionError("leftover container still exists")
    except aiodocker.DockerError as exc:
        assert exc.status == 404


SPOIL_TMPFS_ROOTS = r"""
import os
from dataclasses import replace
os.chdir("/tmp")
for _ in range(100):  # a tree worth cleaning (a far deeper one retires the sandbox)
    os.mkdir("d")
    os.chdir("d")
os.setxattr("/work", "user.spoiled", b"1")
os.chmod("/work", 0o555)
os.chmod("/tmp", 0)
print("spoiled")
"""

IPC_LEFTOVERS = r"""
import subprocess
shm = subprocess.run(["ipcmk", "-M", "100000000"], capture_output=True, text=True)
queue = subprocess.run(["ipcmk", "-Q"], capture_output=True, text=True)
print(shm.returncode, queue.returncode)
"""

TWO_TESTS = {
    "answer.py": "def answer():\n    return 42\n",
    "answer_test.py": (
        "from answer import answer\n\n\ndef test_answer():\n    assert answer() == 42\n"
    ),
}


async def test_a_spoiled_work_dir_and_tmp_are_restored_for_the_next_job(make_pool: object) -> None:
    """A 100-level tree in /tmp, /tmp chmod 000, /work read-only with an xattr: the reset
    restores them and the next (tests-mode) job in the same sandbox passes."""
    pool = await make_pool(size=1)  # type: ignore[operator]
    ids = []
    job1 = make_job({"s.py": SPOIL_TMPFS_ROOTS}, job_id="spoil", command="python3 s.py")
    async with pool.sandbox("python") as box:
        ids.append(box.id)
        out = await box.run(job1, pool.spec("python").limits)
    assert out.stdout == b"spoiled\n", out.stderr
    result = await execute(pool, make_job(TWO_TESTS, job_id="after-spoil"), CTX)
    async with pool.sandbox("python") as box:
        ids.append(box.id)
    assert result.status is Verdict.PASSED, result
    assert ids[0] == ids[1], "the sandbox was reset and reused, not retired"


async def test_ipc_objects_do_not_outlive_a_job(make_pool: object) -> None:
    """System V shared memory goes with its last user; message queues cannot be made."""
    pool = await make_pool(size=1)  # type: ignore[operator]
    first = make_job({"i.py": IPC_LEFTOVERS}, job_id="ipc-1", command="python3 i.py")
    result = await execute(pool, first, CTX)
    assert result.stdout.split() == ["0", "1"], result  # shm made; no message queue
    look = make_job({}, job_id="ipc-2", command="ipcs -m -q | grep -c '^0x' || true")
    result = await execute(pool, look, CTX)
    assert result.stdout.strip() == "0", result.stdout


async def test_a_dead_warm_runner_leaves_the_job_to_a_cold_runner_and_retires(
    make_pool: object,
) -> None:
    """The fork runner died while the sandbox idled: the job is run by the runner started
    the cold way (right verdict), and the sandbox is retired, not reused."""
    pool = await make_pool(size=1)  # type: ignore[operator]
    retired: list[str] = []
    pool.on_retire = lambda _pool, reason: retired.append(reason)
    async with pool.sandbox("python") as box:
        assert box.runner_pid
        os.kill(fork_runner_of(box), 9)
        while (await box.channel.ping())["runner"] != "none":  # the supervisor saw it end
            await asyncio.sleep(0.01)
        job = make_job(TWO_TESTS, job_id="after-dead-runner")
        out = await box.run(job, pool.spec("python").limits)
        assert box.warm_jobs == 0
    assert out.runner_finished and out.results is not None
    assert json.loads(out.results)["status"] == "pass"
    for _ in range(500):  # the release (and its retirement) runs in the background
        if retired:
            break
        await asyncio.sleep(0.01)
    assert retired == ["supervision"], retired


def fork_runner_of(box: Sandbox) -> int:
    """The host pid of a sandbox's fork runner."""
    (runner,) = [
        pid for pid in box.baseline if b"--fork" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    return runner


async def test_a_fork_runner_that_dies_during_a_job_is_our_failure(make_pool: object) -> None:
    """No signal of the job user reaches the fork runner: when it ends during a job (and
    no OOM kill explains it) that is our failure, and the sandbox is retired."""
    pool = await make_pool(size=1)  # type: ignore[operator]
    slow = {"s_test.py": "import time\n\n\ndef test_slow():\n    time.sleep(3)\n"}
    async with pool.sandbox("python") as box:
        job = make_job(slow, job_id="runner-dies")
        running = asyncio.create_task(box.run(job, pool.spec("python").limits))
        await asyncio.sleep(1.0)
        os.kill(fork_runner_of(box), 9)
        with pytest.raises(SandboxError, match="fork runner ended"):
            await running
        assert box.retire_reason is not None


async def test_a_standby_sandbox_is_rewarmed_not_retired(
    docker: aiodocker.Docker, python_spec: SandboxSpec
) -> None:
    """runner_mode standby: the runner serves one job and ends; the reset must not take
    its end for a death of ours, and starts the next standby: one sandbox, two jobs."""
    spec = replace(python_spec, runner_mode=RunnerMode.STANDBY)
    started: list[float] = []
    pool = Pool(
        docker, {"python": spec}, PoolConfig(size=1), host_id=TEST_HOST_ID,
        on_start=lambda _, s: started.append(s),
    )  # fmt: skip
    try:
        await pool.start()
        assert await pool.wait_warm(120), pool.last_error("python")
        tests = {"t_test.py": "def test_t():\n    assert True\n"}
        for _ in range(2):
            result = await execute(pool, make_job(tests), RunContext())
            assert result.status is Verdict.PASSED, result
        async with pool.sandbox("python") as box:
            assert box.jobs_run == 2, "the same sandbox served both jobs"
        assert len(started) == 1
    finally:
        await pool.close()


# A standby runner that answers its job with a large `d` and ends the moment it is sent:
# the supervisor sees it end while most of the `d` is still unread in the socket.
_QUICK_STANDBY = r"""
import json, os, socket
sock = socket.socket(fileno=3)
def send(kind, payload=b""):
    sock.sendall((len(payload) + 1).to_bytes(4, "little") + kind + payload)
send(b"y")
head, fds, _, _ = socket.recv_fds(sock, 5, 8)
n = int.from_bytes(head[:4], "little")
while n - 1 > 0:
    n -= len(sock.recv(n - 1))
tests = [{"name": f"test {i}", "status": "pass", "output": "o" * 400} for i in range(4000)]
doc = json.dumps({"version": 3, "status": "pass", "tests": tests}).encode()
send(b"d", b"status=0\nutime_us=1\nstime_us=1\nmaxrss_kb=1\n\n" + doc)
os._exit(0)
"""


async def test_a_standby_that_ends_right_after_its_report_keeps_the_report(
    docker: aiodocker.Docker, python_spec: SandboxSpec
) -> None:
    """Its end and its 1.7 MB `d` reach the supervisor together: the `d` is read first
    (it was the job's end taken for one without results, `runtime_error`)."""
    spec = replace(
        python_spec, runner_mode=RunnerMode.STANDBY,
        runner=("/usr/bin/python3", "-c", _QUICK_STANDBY),
    )  # fmt: skip
    pool = Pool(docker, {"python": spec}, PoolConfig(size=1), host_id=TEST_HOST_ID)
    try:
        await pool.start()
        assert await pool.wait_warm(120), pool.last_error("python")
        for _ in range(3):
            result = await execute(pool, make_job({"t_test.py": "x = 1\n"}), RunContext())
            assert result.status is Verdict.PASSED, result.message
            assert len(result.tests) == 4000
    finally:
        await pool.close()
