"""One sandbox: a warm, locked-down container that runs jobs one at a time.

How a job reaches the container is this module's business alone: callers see
`Sandbox.run(job, limits, on_output) -> Outcome` and `Sandbox.reset()`. Today files go
in and results come out through the host's view of the container (/proc/<pid>/root),
the program runs as a `docker exec` whose output streams back, and evidence comes from
the container's cgroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import aiodocker
import aiohttp

from sandboxd import hostfs, namespaces
from sandboxd.cgroup import Cgroup, CgroupError, Counters
from sandboxd.limits import Limits
from sandboxd.models import Job
from sandboxd.reasons import Retirement, RetireReason

log = logging.getLogger(__name__)

WORK_DIR = "/work"
TMP_DIR = "/tmp"
SHM_DIR = "/dev/shm"
MQUEUE_DIR = "/dev/mqueue"
CONTROL_DIR = "/tmp/.sandboxd"  # the runner's output dir and command-mode stdin
OUT_DIR = f"{CONTROL_DIR}/out"
STDIN_FILE = f"{CONTROL_DIR}/stdin"
GO_FIFO = f"{CONTROL_DIR}/go"  # a standby runner waits for a line on it
# How long a job waits for a standby runner that is still importing its test framework
# before running the ordinary way.
STANDBY_WAIT_S = 3.0
RESULTS_CAP = 8 * 1024 * 1024
# How much of each stream a result keeps; streaming subscribers see everything up to
# the output limit.
CAPTURE_CAP = 64 * 1024
# After the main process ends, how long to keep reading output that background
# children may still hold, before they are killed by the reset.
DRAIN_GRACE_S = 0.05
CPU_POLL_S = 0.1
# While output flows the process is alive; its end usually shows as the end of the output
# stream first (then EXIT_POLL_FAST_S). Each look is a Docker API call.
EXIT_POLL_S = 0.1
EXIT_POLL_FAST_S = 0.002
SHM_BYTES = 16 * 1024 * 1024
NOFILE = 1024
# The most work a reset does on the sandbox's directories before it retires the sandbox
# instead (a unit per file, ten per directory: hostfs.RemovalBudget): a job's own files
# (at most 500, hoisted out of their directories and removed) fit; 800,000 hard links or
# a 3000-level tree do not, and cost the reset a few milliseconds to refuse.
RESET_BUDGET = 2000
SOCKET_SETTLE_TRIES = 4
SOCKET_SETTLE_S = 0.005

OutputSink = Callable[[Literal["stdout", "stderr"], bytes], None]


class SandboxError(RuntimeError):
    """Our side failed (Docker, the cgroup): the job gets `internal_error`."""


class SandboxInputError(ValueError):
    """The job cannot be placed in the sandbox (e.g. its files exceed the disk limit)."""


@dataclass(frozen=True)
class SandboxSpec:
    """What a pool's containers look like."""

    pool: str  # "python", or "image:<ref>"
    image: str
    runner: tuple[str, ...]
    env: dict[str, str]
    limits: Limits
    uid: int = 10001
    gid: int = 10001
    cpus: float = 1.0
    runtime: str | None = None
    # The runner supports `--standby FIFO`: started ahead of the job, it loads the test
    # framework while the sandbox is idle and starts the tests when told.
    standby: bool = False


@functools.cache
def seccomp_profile() -> str:
    """Our seccomp profile (`sandboxd/seccomp.json`), as the engine's API takes it.

    Our own rather than the engine's default, so what a sandbox may call does not depend
    on which engine runs it: Docker 20.10's default still allows io_uring, whose
    operations a filter cannot see. The profile lists what programs and test frameworks
    use, checks the flags of clone and the family of socket, and denies the rest (EPERM).
    """
    text = resources.files("sandboxd").joinpath("seccomp.json").read_text(encoding="utf-8")
    return json.dumps(json.loads(text), separators=(",", ":"))


def container_config(spec: SandboxSpec, labels: dict[str, str]) -> dict[str, Any]:
    """The Docker create body for a sandbox. Pure; every hardening choice is here."""
    lim = spec.limits
    mem = lim.memory_bytes
    owner = f"uid={spec.uid},gid={spec.gid}"
    tmpfs_opts = f"rw,nosuid,nodev,exec,size={lim.disk_mb}m,mode=0700,{owner}"
    host_config: dict[str, Any] = {
        "NetworkMode": "none",
        "ReadonlyRootfs": True,
        "Tmpfs": {WORK_DIR: tmpfs_opts, TMP_DIR: tmpfs_opts},
        "ShmSize": SHM_BYTES,
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges", f"seccomp={seccomp_profile()}"],
        "Init": True,
        "Memory": mem,
        "MemorySwap": mem,  # no swap: memory+swap equals memory
        "PidsLimit": lim.pids,
        "NanoCpus": int(spec.cpus * 1e9),
        "Ulimits": [
            {"Name": "nofile", "Soft": NOFILE, "Hard": NOFILE},
            {"Name": "fsize", "Soft": lim.disk_mb << 20, "Hard": lim.disk_mb << 20},
            {"Name": "core", "Soft": 0, "Hard": 0},
        ],
        "IpcMode": "private",
        # The IPC and network namespaces live as long as the container, not the job; the
        # reset verifies both are empty. These keep what a job can leave there small:
        # System V shared memory goes with its last user, message queues cannot be made,
        # semaphores are bounded to the classic limits (32,000 in all: the kernel memory
        # they pin is charged to the container), and a closed TCP connection does not
        # linger in TIME_WAIT holding its port for a minute.
        "Sysctls": {
            "kernel.shm_rmid_forced": "1",
            "kernel.msgmni": "0",
            "kernel.sem": "250 32000 32 128",
            "fs.mqueue.queues_max": "0",
            "net.ipv4.tcp_max_tw_buckets": "0",
        },
        "AutoRemove": False,
        "RestartPolicy": {"Name": "no"},
        "LogConfig": {"Type": "none", "Config": {}},
    }
    if spec.runtime:
        host_config["Runtime"] = spec.runtime
    return {
        "Image": spec.image,
        # The container idles under the init until jobs are exec'd into it. Its init and
        # idle process run as root in the container (with no capabilities), so the job
        # user cannot signal them: killing "PID 1" from a job fails.
        "Cmd": ["sleep", "infinity"],
        "User": "0:0",
        "WorkingDir": WORK_DIR,
        "Hostname": "sandbox",
        "Env": [f"{k}={v}" for k, v in sorted(spec.env.items())],
        "Labels": labels,
        "NetworkDisabled": True,
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": False,
        "HostConfig": host_config,
    }


def job_env(spec: SandboxSpec) -> list[str]:
    """The environment of a job's processes: the image's, never the daemon's."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": WORK_DIR,
        "LANG": "C.UTF-8",
        "TMPDIR": TMP_DIR,
        **spec.env,
    }
    return [f"{k}={v}" for k, v in sorted(env.items())]


@dataclass
class Outcome:
    """What happened in one run: the raw evidence, before any verdict."""

    exit_code: int | None = None
    killed_by_us: bool = False
    wall_timed_out: bool = False
    cpu_exceeded: bool = False
    output_exceeded: bool = False
    oom_killed: bool = False
    pids_limit_hit: bool = False
    disk_full: bool = False
    cpu_ns: int | None = None
    peak_memory_bytes: int | None = None
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    output_bytes: int = 0
    results: bytes | None = None
    results_error: str | None = None
    run_ms: int = 0

    def limit_retirement(self) -> Retirement | None:
        """Why the sandbox must not serve again after this run: a runaway program was
        stopped by a limit, and whatever it was doing may not be over. None if no limit."""
        for hit, reason, detail in (
            (self.wall_timed_out, RetireReason.TIMEOUT, "wall-clock limit"),
            (self.cpu_exceeded, RetireReason.TIMEOUT, "CPU-time limit"),
            (self.oom_killed, RetireReason.MEMORY, "memory limit"),
            (self.output_exceeded, RetireReason.OUTPUT, "output limit"),
            (self.pids_limit_hit, RetireReason.PIDS, "pids limit"),
            (self.disk_full, RetireReason.DISK, "disk limit"),
        ):
            if hit:
                return Retirement(reason, detail)
        return None


class Sandbox:
    """One warm container. Not safe for concurrent jobs: the pool hands it to one at a time."""

    def __init__(
        self,
        docker: aiodocker.Docker,
        spec: SandboxSpec,
        container: Any,
        init_pid: int,
        cgroup: Cgroup,
        baseline: set[int],
    ):
        self.docker = docker
        self.spec = spec
        self.container = container
        self.id: str = container.id
        self.init_pid = init_pid
        self._proc_fd = hostfs.open_proc(init_pid)  # pins the init: see open_proc
        self.cgroup = cgroup
        self.baseline = baseline
        self.created = time.monotonic()
        self.jobs_run = 0
        self.standby_jobs = 0  # of which a standby runner served
        self.retire_reason: Retirement | None = None
        self._memory_bytes = spec.limits.memory_bytes
        self._pids = spec.limits.pids
        self.use_standby = spec.standby
        # The standby runner's exec and its attached output stream, while one waits.
        self._standby: tuple[Any, Any] | None = None

    @classmethod
    async def create(
        cls, docker: aiodocker.Docker, spec: SandboxSpec, labels: dict[str, str]
    ) -> Sandbox:
        config = container_config(spec, labels)
        try:
            container = await docker.containers.create(config=config)
        except aiodocker.DockerError as exc:
            raise SandboxError(f"cannot create a {spec.pool} sandbox: {exc.message}") from None
        try:
            await container.start()
            info = await container.show()
            pid = int(info["State"]["Pid"])
            if not info["State"]["Running"] or pid <= 0:
                raise SandboxError(f"{spec.pool} sandbox exited at start")
            cgroup = Cgroup.of_pid(pid)
            # The init and its idle child; wait for the child, it may not be forked yet.
            baseline = cgroup.procs()
            for _ in range(200):
                if len(baseline) >= 2:
                    break
                await asyncio.sleep(0.005)
                baseline = cgroup.procs()
            if len(baseline) < 2:
                raise SandboxError(f"{spec.pool} sandbox did not start its idle process")
        except (aiodocker.DockerError, CgroupError, SandboxError) as exc:
            with contextlib.suppress(aiodocker.DockerError):
                await container.delete(force=True)
            msg = exc.message if isinstance(exc, aiodocker.DockerError) else str(exc)
            raise SandboxError(f"cannot start a {spec.pool} sandbox: {msg}") from None
        except BaseException:
            # Cancelled (a shutdown) or our bug: never leave the container behind.
            await asyncio.shield(_delete_quietly(container))
            raise
        try:
            box = cls(docker, spec, container, pid, cgroup, baseline)
        except OSError as exc:  # its init is gone already
            await _delete_quietly(container)
            raise SandboxError(f"cannot start a {spec.pool} sandbox: {exc}") from None
        try:
            await box.stand_by()
        except BaseException:
            await asyncio.shield(box.destroy())
            raise
        return box

    # -- the standby runner ---------------------------------------------------------------

    async def stand_by(self) -> None:
        """Start the runner ahead of the next job, if the image's runner can wait.

        It is started only in a sandbox known to be clean (new, or just reset): it has
        seen nothing of any job. Not having one is never an error; a job then starts
        the runner itself.
        """
        if not self.use_standby or self._standby is not None:
            return
        try:
            await asyncio.to_thread(self._make_control_dir)
            execution, stream = await self._exec_as_job_user(
                [*self.spec.runner, "--standby", GO_FIFO, WORK_DIR, OUT_DIR]
            )
        except (aiodocker.DockerError, OSError, aiohttp.ClientError) as exc:
            log.warning("sandbox %s: no standby runner: %s", self.id[:12], exc)
            return
        self._standby = (execution, stream)

    async def _exec_as_job_user(self, argv: list[str]) -> tuple[Any, Any]:
        """Start `argv` in the sandbox as the job user, in the work dir, with the job's
        environment (the image's, never ours); its output attached."""
        execution = await self.container.exec(
            argv,
            stdout=True,
            stderr=True,
            stdin=False,
            tty=False,
            user=f"{self.spec.uid}:{self.spec.gid}",
            environment=job_env(self.spec),
            workdir=WORK_DIR,
        )
        return execution, await _attach(execution)

    async def _forget_standby(self) -> tuple[Any, Any] | None:
        """Let go of the standby runner (its output stream closed); it, if any."""
        standby, self._standby = self._standby, None
        if standby is not None:
            with contextlib.suppress(Exception):
                await standby[1].close()
        return standby

    async def _drop_standby(self) -> None:
        """Stop a standby runner that will not be used (its processes are killed)."""
        standby = await self._forget_standby()
        if standby is None:
            return
        execution = standby[0]
        # Its process may not be in the cgroup yet when the exec was just started:
        # kill until Docker says it ended.
        for _ in range(400):
            await self._kill_job_processes()
            try:
                if _exec_ended(await execution.inspect()):
                    return
            except aiodocker.DockerError:
                return
            await asyncio.sleep(0.005)
        raise SandboxError("the standby runner could not be stopped")

    def _make_control_dir(self) -> None:
        root = hostfs.open_root(self._proc_fd)
        try:
            tmp = hostfs.open_dir(root, TMP_DIR)
            try:
                os.close(
                    hostfs.make_dirs(tmp, ".sandboxd/out", self.spec.uid, self.spec.gid, 0o700)
                )
            finally:
                os.close(tmp)
        finally:
            os.close(root)

    def _release_standby(self) -> bool:
        """Tell the waiting runner to start the tests; False if it is not listening."""
        root = hostfs.open_root(self._proc_fd)
        try:
            control = hostfs.open_dir(root, CONTROL_DIR)
        except OSError:
            os.close(root)
            return False
        try:
            try:
                fd = os.open("go", os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=control)  # fmt: skip
            except OSError:
                return False  # not there yet (still importing) or no reader (ENXIO)
            try:
                if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                    return False
                os.write(fd, b"go\n")
                return True
            finally:
                os.close(fd)
        finally:
            os.close(control)
            os.close(root)

    async def _go(self, execution: Any) -> bool:
        end = time.monotonic() + STANDBY_WAIT_S
        checked = time.monotonic()
        while True:
            if await asyncio.to_thread(self._release_standby):
                return True
            now = time.monotonic()
            if now >= end:
                return False
            if now - checked >= 0.1:  # a standby that died is not waited for
                checked = now
                with contextlib.suppress(aiodocker.DockerError):
                    if _exec_ended(await execution.inspect()):
                        return False
            await asyncio.sleep(0.005)

    # -- the job ------------------------------------------------------------------------

    async def _apply_limits(self, limits: Limits) -> None:
        """Per-job memory and pids limits: the cgroup is updated in place, no restart."""
        if limits.memory_bytes == self._memory_bytes and limits.pids == self._pids:
            return
        body = {
            "Memory": limits.memory_bytes,
            "MemorySwap": limits.memory_bytes,
            "PidsLimit": limits.pids,
        }
        try:
            await self.docker._query_json(
                f"containers/{self.id}/update", method="POST", data=json.dumps(body)
            )
        except aiodocker.DockerError as exc:
            raise SandboxError(f"cannot set the job's limits: {exc.message}") from None
        self._memory_bytes, self._pids = limits.memory_bytes, limits.pids

    def _place_files(self, job: Job) -> None:
        uid, gid = self.spec.uid, self.spec.gid
        root = hostfs.open_root(self._proc_fd)
        try:
            work = hostfs.open_dir(root, WORK_DIR)
            try:
                hostfs.write_files(work, ((f.path, f.data(), f.mode) for f in job.files), uid, gid)
            finally:
                os.close(work)
            tmp = hostfs.open_dir(root, TMP_DIR)
            try:
                control = hostfs.make_dirs(tmp, ".sandboxd/out", uid, gid, 0o700)
                os.close(control)
                if job.stdin is not None:
                    hostfs.write_files(
                        tmp, [(".sandboxd/stdin", job.stdin.encode("utf-8"), 0o600)], uid, gid
                    )
            finally:
                os.close(tmp)
        except OSError as exc:
            if exc.errno in (28, 27):  # ENOSPC, EFBIG
                raise SandboxInputError(
                    f"the job's files do not fit in the disk limit of {self.spec.limits.disk_mb} MB"
                ) from None
            raise SandboxError(f"cannot place the job's files: {exc}") from None
        finally:
            os.close(root)

    def _command(self, job: Job) -> list[str]:
        if job.command is None:
            return [*self.spec.runner, WORK_DIR, OUT_DIR]
        stdin = STDIN_FILE if job.stdin is not None else "/dev/null"
        return ["/bin/sh", "-c", f'exec /bin/sh -c "$1" < {stdin}', "sandboxd", job.command]

    async def run(self, job: Job, limits: Limits, on_output: OutputSink | None = None) -> Outcome:
        """Run one job to completion (or to a limit) and gather the evidence."""
        if limits.disk_mb != self.spec.limits.disk_mb:
            raise SandboxError("the pool gave a sandbox with the wrong disk limit")
        self.jobs_run += 1
        # The standby runner serves a tests-mode job whose memory limit does not shrink
        # below what it already holds; any other job runs without it.
        if job.command is not None or limits.memory_bytes < self._memory_bytes:
            await self._drop_standby()
        await self._apply_limits(limits)
        await asyncio.to_thread(self._place_files, job)
        try:
            before = self.cgroup.counters()
            self.cgroup.reset_peak()
        except CgroupError as exc:
            raise SandboxError(str(exc)) from None
        out = Outcome()
        # Should anything fail before the job owns it, the reset still finds the standby.
        standby = self._standby
        if standby is not None:
            if await self._go(standby[0]):
                self._standby = None  # the job's now
            else:
                log.warning("sandbox %s: standby runner not listening; no more here", self.id[:12])
                self.use_standby = False  # something is wrong with it in this sandbox
                await self._drop_standby()
                standby = None
        started = time.monotonic()
        if standby is not None:
            execution, stream = standby
            self.standby_jobs += 1
        else:
            try:
                execution, stream = await self._exec_as_job_user(self._command(job))
            except aiodocker.DockerError as exc:
                raise SandboxError(f"cannot start the job: {exc.message}") from None
            except (OSError, aiohttp.ClientError) as exc:
                raise SandboxError(f"cannot start the job: {exc}") from None
        try:
            await self._supervise(execution, stream, limits, out, on_output, started)
        finally:
            await stream.close()
        out.run_ms = int((time.monotonic() - started) * 1000)
        try:
            after = self.cgroup.counters()
        except CgroupError as exc:
            raise SandboxError(str(exc)) from None
        self._evidence(before, after, limits, out)
        await asyncio.to_thread(self._collect_results, job, out)
        self.retire_reason = self.retire_reason or out.limit_retirement()
        return out

    async def _supervise(
        self,
        execution: Any,
        stream: Any,
        limits: Limits,
        out: Outcome,
        on_output: OutputSink | None,
        started: float,
    ) -> None:
        stop = asyncio.Event()  # set when a limit says: kill now
        eof = asyncio.Event()  # the output stream closed

        async def read() -> None:
            try:
                while True:
                    msg = await stream.read_out()
                    if msg is None:
                        return
                    self._take_output(msg.stream, msg.data, limits, out, on_output)
                    if out.output_exceeded:
                        stop.set()
                        return
            finally:
                eof.set()

        async def watch() -> None:
            """Return when the main process has exited; stop early on a CPU-limit breach.

            Docker reports an exec's end through its state only (no pid to wait on),
            so this polls: slowly while output flows, fast once the stream closed,
            which is when the process normally ends.
            """
            limit_ns = int(limits.cpu_seconds * 1e9)
            cpu_base = self.cgroup.cpu_ns()
            next_cpu = time.monotonic() + CPU_POLL_S
            while True:
                info = await execution.inspect()
                if _exec_ended(info):
                    return
                now = time.monotonic()
                if now >= next_cpu:
                    next_cpu = now + CPU_POLL_S
                    if self.cgroup.cpu_ns() - cpu_base >= limit_ns:
                        out.cpu_exceeded = True
                        stop.set()
                        return
                if eof.is_set():
                    await asyncio.sleep(EXIT_POLL_FAST_S)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(eof.wait(), EXIT_POLL_S)

        reader = asyncio.create_task(read())
        watcher = asyncio.create_task(watch())
        stopper = asyncio.create_task(stop.wait())
        remaining = limits.wall_seconds - (time.monotonic() - started)
        try:
            done, _ = await asyncio.wait(
                {watcher, stopper}, timeout=max(remaining, 0), return_when="FIRST_COMPLETED"
            )
            if not done:
                out.wall_timed_out = True
            elif watcher in done and not out.cpu_exceeded:
                # The job ends when its main process ends. Output still in the pipes is
                # read for a moment; background children holding the stream open are
                # killed below and do not turn a finished run into a timeout.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(reader), DRAIN_GRACE_S)
            main_done = watcher.done() and not out.cpu_exceeded
            if not main_done:
                out.killed_by_us = True
            await self._kill_job_processes()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), 2.0)
            out.exit_code = await self._exit_code(execution)
            if out.exit_code is None:
                # Docker never said the process ended: it may still start (a slow engine)
                # after our kill, and must not meet the next job.
                self.retire_reason = self.retire_reason or Retirement(
                    RetireReason.SUPERVISION, "Docker never confirmed the job's process ended"
                )
        finally:
            for task in (reader, watcher, stopper):
                task.cancel()
            results = await asyncio.gather(reader, watcher, stopper, return_exceptions=True)
            for res in results:
                if isinstance(res, Exception) and not isinstance(res, asyncio.CancelledError):
                    log.warning("sandbox %s: supervision task failed: %r", self.id[:12], res)

    @staticmethod
    def _take_output(
        fileno: int, data: bytes, limits: Limits, out: Outcome, on_output: OutputSink | None
    ) -> None:
        """Count, cap and forward one chunk of output."""
        name: Literal["stdout", "stderr"] = "stderr" if fileno == 2 else "stdout"
        room = limits.output_bytes - out.output_bytes
        if len(data) > room:
            data = data[: max(room, 0)]
            out.output_exceeded = True
        out.output_bytes += len(data)
        buf = out.stderr if name == "stderr" else out.stdout
        keep = CAPTURE_CAP - len(buf)
        if len(data) > keep:
            if name == "stderr":
                out.stderr_truncated = True
            else:
                out.stdout_truncated = True
        buf += data[: max(keep, 0)]
        if data and on_output is not None:
            on_output(name, data)

    async def _exit_code(self, execution: Any) -> int | None:
        for _ in range(400):
            try:
                info = await execution.inspect()
            except aiodocker.DockerError:
                return None
            if _exec_ended(info):
                return int(info["ExitCode"])
            await asyncio.sleep(0.005)
        return None

    async def _kill_job_processes(self) -> set[int]:
        try:
            return await self.cgroup.kill_all_except(self.baseline)
        except CgroupError as exc:
            log.warning("sandbox %s: kill failed: %s", self.id[:12], exc)
            return {-1}

    def _evidence(self, before: Counters, after: Counters, limits: Limits, out: Outcome) -> None:
        out.cpu_ns = after.cpu_ns - before.cpu_ns
        out.oom_killed = after.oom_kills > before.oom_kills
        out.pids_limit_hit = after.pids_max_events > before.pids_max_events
        out.peak_memory_bytes = after.memory_peak
        if out.cpu_ns >= int(limits.cpu_seconds * 1e9):
            out.cpu_exceeded = True

    def _collect_results(self, job: Job, out: Outcome) -> None:
        try:
            root = hostfs.open_root(self._proc_fd)
        except OSError as exc:
            out.results_error = f"sandbox is gone: {exc.strerror}"
            return
        try:
            for d in (WORK_DIR, TMP_DIR):
                try:
                    fd = hostfs.open_dir(root, d)
                except OSError:
                    continue
                try:
                    # A full tmpfs is evidence that the job hit its disk limit.
                    if hostfs.free_bytes(fd) < 64 * 1024:
                        out.disk_full = True
                finally:
                    os.close(fd)
            if job.command is None:
                try:
                    out.results = hostfs.read_capped(root, f"{OUT_DIR}/results.json", RESULTS_CAP)
                except hostfs.UnsafePath as exc:
                    out.results_error = str(exc)
        finally:
            os.close(root)

    # -- between jobs ---------------------------------------------------------------------

    async def reset(self) -> Retirement | None:
        """Make the sandbox as good as new; return why it must be retired instead, or
        None when it is clean.

        Verified, not assumed, at a bounded cost: every job process is gone (the cgroup
        holds only the init and its idle child); the network namespace holds no socket
        and the IPC namespace no object; the work dir, /tmp, /dev/shm and /dev/mqueue are
        empty, and the tmpfs roots as created. Whatever cannot be proven clean within
        that bound is retired: retiring costs the next job nothing (a spare is warm).
        """
        await self._forget_standby()  # unused: its process goes with the rest
        left = await self._kill_job_processes()
        if left:
            return Retirement(RetireReason.PROCESSES, f"{len(left)} job processes survived")
        try:
            if self.cgroup.procs() != self.baseline:
                return Retirement(RetireReason.DIED, "the sandbox's own processes changed")
        except CgroupError as exc:
            return Retirement(RetireReason.DIED, str(exc))
        retire = await asyncio.to_thread(self._scrub)
        if retire is not None:
            return retire
        if (
            self._memory_bytes != self.spec.limits.memory_bytes
            or self._pids != self.spec.limits.pids
        ):
            try:
                await self._apply_limits(self.spec.limits)
            except SandboxError as exc:
                return Retirement(RetireReason.RESET_FAILED, str(exc))
        await self.stand_by()
        return None

    def _scrub(self) -> Retirement | None:
        """The blocking part of the reset, cheapest checks first. No job process lives."""
        try:
            sockets = self._sockets_left()
        except OSError as exc:
            return Retirement(RetireReason.SOCKETS, f"cannot list the sandbox's sockets: {exc}")
        if sockets:
            what = ", ".join(f"{n} {table}" for table, n in sorted(sockets.items()))
            return Retirement(RetireReason.SOCKETS, f"sockets left in its namespace: {what}")
        try:
            found, left = namespaces.empty_ipc(self._proc_fd)
        except OSError as exc:
            return Retirement(RetireReason.IPC, f"cannot empty the IPC namespace: {exc}")
        if not left.empty:
            return Retirement(RetireReason.IPC, f"IPC objects left: {left.describe()}")
        if not found.empty:
            log.info("sandbox %s: removed IPC objects: %s", self.id[:12], found.describe())
        try:
            self._empty_dirs()
        except hostfs.TooMuchToRemove as exc:
            return Retirement(RetireReason.FILES, str(exc))
        except OSError as exc:
            return Retirement(RetireReason.RESET_FAILED, f"cannot empty its directories: {exc}")
        return None

    def _sockets_left(self) -> dict[str, int]:
        """Sockets per table still in the sandbox's network namespace. A connection the
        kill closed may take a moment to finish closing: look again before saying so."""
        for _ in range(SOCKET_SETTLE_TRIES):
            counts = {t: n for t, n in namespaces.socket_counts(self._proc_fd).items() if n}
            if not counts:
                break
            time.sleep(SOCKET_SETTLE_S)
        return counts

    def _empty_dirs(self) -> None:
        budget = hostfs.RemovalBudget(RESET_BUDGET)
        root = hostfs.open_root(self._proc_fd)
        try:
            for d in (WORK_DIR, TMP_DIR, SHM_DIR, MQUEUE_DIR):
                try:
                    fd = hostfs.open_dir(root, d)
                except FileNotFoundError:
                    if d == MQUEUE_DIR:  # not every runtime mounts it
                        continue
                    raise
                try:
                    hostfs.empty_dir(fd, budget)
                    if not hostfs.is_empty(fd):
                        raise OSError(f"{d} is not empty after the reset")
                    if d in (WORK_DIR, TMP_DIR):  # the job user's own tmpfs roots
                        self._restore_root(fd, d)
                finally:
                    os.close(fd)
        finally:
            os.close(root)

    def _restore_root(self, fd: int, name: str) -> None:
        """Owner, mode and ACLs of a tmpfs root as at creation: a job may chmod /tmp to
        000 or add a default ACL, and the next job's files would inherit the damage."""
        for attr in os.listxattr(fd):
            os.removexattr(fd, attr)
        os.fchown(fd, self.spec.uid, self.spec.gid)
        os.fchmod(fd, 0o700)
        st = os.fstat(fd)
        if (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) != (
            self.spec.uid,
            self.spec.gid,
            0o700,
        ):
            raise OSError(f"{name} could not be given back its owner and mode")
        if os.listxattr(fd):
            raise OSError(f"{name} keeps extended attributes")

    async def destroy(self) -> None:
        if self._proc_fd >= 0:
            os.close(self._proc_fd)
            self._proc_fd = -1
        await self._forget_standby()
        with contextlib.suppress(aiodocker.DockerError):
            await self.container.delete(force=True)


async def _delete_quietly(container: Any) -> None:
    with contextlib.suppress(Exception):
        await container.delete(force=True)


async def _attach(execution: Any) -> Any:
    """Start an exec with its output attached; the stream is closed if that fails."""
    stream = execution.start(detach=False)
    try:
        await stream.__aenter__()  # upgrades the connection and starts the process
    except BaseException:
        with contextlib.suppress(Exception):
            await stream.close()
        raise
    return stream


def _exec_ended(info: dict[str, Any]) -> bool:
    """Whether an exec's process has exited. `Running` is also false before the process
    has started (the start may still be in flight when we first look); only an exit
    code says it ended."""
    return not info.get("Running") and info.get("ExitCode") is not None
