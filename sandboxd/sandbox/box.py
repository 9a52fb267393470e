"""One sandbox: a warm, locked-down container that runs jobs one at a time.

How a job gets into the container is this module's business alone: callers see
`Sandbox.create`, `run(job, limits, on_output) -> Outcome`, `reset()` and `destroy()`.
The Docker API creates and removes the container and nothing else: the job's files go in
through the host's view of the container (/proc/<pid>/root), its process is started, fed
and watched by the supervisor inside (over its channel, event-driven), and the evidence
comes from the supervisor and the container's cgroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
import time
from collections.abc import Callable
from typing import Any, Literal

import aiodocker

from sandboxd import hostfs, namespaces, offload
from sandboxd.cgroup import Cgroup, CgroupError, Counters
from sandboxd.limits import Limits
from sandboxd.models import Job
from sandboxd.reasons import Retirement, RetireReason
from sandboxd.sandbox import supervisor as sup
from sandboxd.sandbox.container import (
    MQUEUE_DIR,
    OUT_DIR,
    SHM_DIR,
    SUPERVISOR_DIR,
    SUPERVISOR_SOCKET,
    TMP_DIR,
    WORK_DIR,
    RunnerMode,
    SandboxSpec,
    container_config,
    job_env,
)
from sandboxd.sandbox.outcome import Outcome
from sandboxd.sandbox.supervisor import Exit, SupervisorChannel, SupervisorError

log = logging.getLogger(__name__)

RESULTS_CAP = 8 * 1024 * 1024
# How much of each stream a result keeps; streaming subscribers see everything up to
# the output limit.
CAPTURE_CAP = 64 * 1024
CPU_POLL_S = 0.1
# How long a warm runner may take to be ready (import its test framework), and the
# supervisor to report a job's end once its processes were killed.
WARM_TIMEOUT_S = 60.0
END_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 10.0
# The most work a reset does on the sandbox's directories before it retires the sandbox
# instead (a unit per file, ten per directory: hostfs.RemovalBudget): a job's own files
# (at most 500, hoisted out of their directories and removed) fit; 800,000 hard links or
# a 3000-level tree do not, and cost the reset a few milliseconds to refuse.
RESET_BUDGET = 2000
SOCKET_SETTLE_TRIES = 4
SOCKET_SETTLE_S = 0.005

OutputSink = Callable[[Literal["stdout", "stderr"], bytes], None]


class SandboxError(RuntimeError):
    """Our side failed (Docker, the cgroup, the supervisor): the job gets `internal_error`."""


class SandboxInputError(ValueError):
    """The job cannot be placed in the sandbox (e.g. its files exceed the disk limit)."""


class Sandbox:
    """One warm container. Not safe for concurrent jobs: the pool hands it to one at a time."""

    def __init__(
        self,
        docker: aiodocker.Docker,
        spec: SandboxSpec,
        container: Any,
        init_pid: int,
        proc_fd: int,
        cgroup: Cgroup,
        channel: SupervisorChannel,
    ):
        self.docker = docker
        self.spec = spec
        self.container = container
        self.id: str = container.id
        self.init_pid = init_pid
        self._proc_fd = proc_fd  # pins the init: see hostfs.open_proc
        self.cgroup = cgroup
        self.channel = channel
        self.baseline: set[int] = set()  # our processes, host pids: init, supervisor, runner
        self.runner_pid = 0  # a warm runner's pid inside the sandbox, 0 if none
        self.created = time.monotonic()
        self.acquired = self.created  # when the pool last handed it to a job
        self.jobs_run = 0
        self.warm_jobs = 0  # of which a warm runner served
        self.retire_reason: Retirement | None = None
        self._memory_bytes = spec.limits.memory_bytes
        self._pids = spec.limits.pids
        self._own_sockets: dict[str, int] = {}

    @classmethod
    async def create(
        cls, docker: aiodocker.Docker, spec: SandboxSpec, labels: dict[str, str]
    ) -> Sandbox:
        config = container_config(spec, labels)
        try:
            container = await docker.containers.create(config=config)
        except aiodocker.DockerError as exc:
            raise SandboxError(f"cannot create a {spec.pool} sandbox: {exc.message}") from None
        proc_fd = -1
        channel: SupervisorChannel | None = None
        try:
            await container.start()
            info = await container.show()
            pid = int(info["State"]["Pid"])
            if not info["State"]["Running"] or pid <= 0:
                raise SandboxError(f"{spec.pool} sandbox exited at start")
            proc_fd = hostfs.open_proc(pid)
            cgroup = Cgroup.of_pid(pid)
            channel = await _connect(proc_fd, container.id[:12])
            box = cls(docker, spec, container, pid, proc_fd, cgroup, channel)
            await box.warm()
            return box
        except (aiodocker.DockerError, CgroupError, SandboxError, SupervisorError, OSError) as exc:
            if channel is not None:
                await channel.close()
            if proc_fd >= 0:
                os.close(proc_fd)
            await asyncio.shield(_delete_quietly(container))
            msg = exc.message if isinstance(exc, aiodocker.DockerError) else str(exc)
            raise SandboxError(f"cannot start a {spec.pool} sandbox: {msg}") from None
        except BaseException:
            # Cancelled (a shutdown) or our bug: never leave the container behind.
            if channel is not None:
                await channel.close()
            if proc_fd >= 0:
                os.close(proc_fd)
            await asyncio.shield(_delete_quietly(container))
            raise

    # -- the warm runner ------------------------------------------------------------------

    async def warm(self) -> None:
        """Have the supervisor start the language's warm runner and wait until it is
        ready (its test framework imported), then take the sandbox's own processes as
        they are now: the ones a reset keeps. A cold language has none to start."""
        mode = self.spec.runner_mode
        if not self.baseline and mode is not RunnerMode.FORK:
            # A standby runner serves one job and ends with it: not ours for good. Taken
            # before it starts (the cgroup lists host pids; the supervisor, its own).
            await self._take_baseline(expected=2)
        if mode is not RunnerMode.COLD:
            fork = mode is RunnerMode.FORK
            request = sup.encode_request(
                mode.value,
                argv=[*self.spec.runner, f"--{mode.value}"],
                env=job_env(self.spec),
                # A fork runner is not the job user: the work dir is not its to enter.
                cwd="/" if fork else WORK_DIR,
            )
            await self.channel.send(sup.WARM, request)
            try:
                async with asyncio.timeout(WARM_TIMEOUT_S):
                    kind, payload = await self.channel.receive()
            except TimeoutError:
                raise SandboxError(f"the {mode.value} runner was not ready in time") from None
            fields = sup.parse_fields(payload)
            if kind != sup.WARMED or fields.get("ready") != "1":
                why = fields.get("error") or payload[:200].decode("utf-8", "replace")
                raise SandboxError(f"the {mode.value} runner did not start: {why}")
            self.runner_pid = sup.field_int(fields, "pid")
        if not self.baseline:
            await self._take_baseline(expected=3)

    async def _take_baseline(self, expected: int) -> None:
        """The processes and sockets a reset keeps: docker-init, the supervisor, a fork
        runner, and the supervisor's channels; a reset finds exactly these or retires."""
        self.baseline = await self._own_processes(expected)
        try:
            self._own_sockets = namespaces.socket_counts(self._proc_fd)
        except OSError as exc:
            raise SandboxError(f"cannot list the sandbox's sockets: {exc}") from None

    async def _own_processes(self, expected: int) -> set[int]:
        """The `expected` processes of ours in the cgroup, once they are all there."""
        try:
            for _ in range(400):
                procs = self.cgroup.procs()
                if len(procs) >= expected:
                    return procs
                await asyncio.sleep(0.005)
        except CgroupError as exc:
            raise SandboxError(str(exc)) from None
        raise SandboxError(f"the sandbox has {len(procs)} processes of its own, not {expected}")

    # -- the job ------------------------------------------------------------------------

    async def _apply_limits(self, limits: Limits) -> None:
        """Per-job memory and pids limits, written to the container's cgroup: no restart,
        no Docker call."""
        if limits.memory_bytes == self._memory_bytes and limits.pids == self._pids:
            return
        try:
            self.cgroup.set_limits(limits.memory_bytes, limits.pids)
        except CgroupError as exc:
            raise SandboxError(f"cannot set the job's limits: {exc}") from None
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
                os.close(hostfs.make_dirs(tmp, OUT_DIR[len(TMP_DIR) + 1 :], uid, gid, 0o700))
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

    def _request(self, job: Job, *, cold: bool = False) -> tuple[bytes, bool]:
        """The supervisor's run request for `job`, and whether a warm runner serves it."""
        env = job_env(self.spec)
        if job.command is not None:
            stdin = job.stdin.encode("utf-8") if job.stdin is not None else b""
            argv = ["/bin/sh", "-c", job.command]
            return sup.encode_request("exec", argv, env, WORK_DIR, data=stdin), False
        if self.spec.runner_mode is RunnerMode.COLD or cold or not self.runner_pid:
            argv = [*self.spec.runner, WORK_DIR, OUT_DIR]
            return sup.encode_request("exec", argv, env, WORK_DIR), False
        told = json.dumps(
            {"input_dir": WORK_DIR, "output_dir": OUT_DIR, "uid": self.spec.uid,
             "gid": self.spec.gid}
        ).encode()  # fmt: skip
        return sup.encode_request("runner", runner_request=told), True

    async def _start(self, job: Job) -> bool:
        """Start the job; whether a warm runner serves it. A warm runner that does not
        take it (gone, or not ready) leaves it to the runner started the cold way, and
        the sandbox to be retired after."""
        request, warm = self._request(job)
        await self.channel.send(sup.RUN, request)
        kind, payload = await self.channel.receive()
        if kind == sup.FAILED and warm:
            why = payload.decode("utf-8", "replace").strip()
            log.warning("sandbox %s: warm runner did not take the job (%s)", self.id[:12], why)
            self.retire_reason = self.retire_reason or Retirement(
                RetireReason.SUPERVISION, f"the warm runner did not take a job: {why}"
            )
            request, warm = self._request(job, cold=True)
            await self.channel.send(sup.RUN, request)
            kind, payload = await self.channel.receive()
        if kind != sup.STARTED:
            why = payload.decode("utf-8", "replace").strip()
            raise SandboxError(f"cannot start the job: {why}")
        return warm

    async def run(self, job: Job, limits: Limits, on_output: OutputSink | None = None) -> Outcome:
        """Run one job to completion (or to a limit) and gather the evidence."""
        if limits.disk_mb != self.spec.limits.disk_mb:
            raise SandboxError("the pool gave a sandbox with the wrong disk limit")
        self.jobs_run += 1
        await self._apply_limits(limits)
        await offload.blocking(sum(len(f.content) for f in job.files), self._place_files, job)
        try:
            before = self.cgroup.counters()
            self.cgroup.reset_peak()
        except CgroupError as exc:
            raise SandboxError(str(exc)) from None
        out = Outcome()
        started = time.monotonic()
        try:
            warm = await self._start(job)
            if warm:
                self.warm_jobs += 1
            end = await self._supervise(limits, out, on_output, started, before.cpu_ns)
        except SupervisorError as exc:
            self.retire_reason = Retirement(RetireReason.SUPERVISION, str(exc))
            raise SandboxError(f"the sandbox's supervisor failed: {exc}") from None
        out.run_ms = int((time.monotonic() - started) * 1000)
        # Processes the job left running (its background children) end with it.
        await self._kill_job_processes()
        try:
            after = self.cgroup.counters()
        except CgroupError as exc:
            raise SandboxError(str(exc)) from None
        self._evidence(before, after, limits, out)
        if end is not None and end.runner_error:
            self.retire_reason = Retirement(RetireReason.SUPERVISION, end.runner_error)
            raise SandboxError(f"the warm runner failed: {end.runner_error}")
        fork = warm and self.spec.runner_mode is RunnerMode.FORK
        if fork and end is not None and not end.finished and not out.killed_by_us:
            # A fork runner is not the job's to end: no signal of the job user reaches it.
            # Only the cgroup's OOM killer could have (a memory verdict); else it is ours.
            self.retire_reason = Retirement(RetireReason.SUPERVISION, "the fork runner ended")
            if not out.oom_killed:
                raise SandboxError("the fork runner ended during the job")
        if end is not None:
            out.exit_code, out.signal = end.code, end.signal
            if job.command is None:
                out.runner_finished = end.finished if warm else end.code == 0
        # Two statvfs calls; a cold runner's results.json (up to 8 MiB) is read in a thread.
        reads_results = job.command is None and not warm and out.runner_finished
        await offload.blocking(
            RESULTS_CAP if reads_results else 0, self._check_disk, job, out, warm
        )
        self.retire_reason = self.retire_reason or out.limit_retirement()
        return out

    async def _supervise(
        self,
        limits: Limits,
        out: Outcome,
        on_output: OutputSink | None,
        started: float,
        cpu_base: int,
    ) -> Exit | None:
        """Read the supervisor's messages until the job's end; stop it at a limit.

        The wall clock and the CPU time (the cgroup's counter, looked at every
        CPU_POLL_S) are watched here; output is counted as it comes. Stopping is the
        host's doing: every job process is killed with the cgroup frozen, and the
        supervisor then reports the end. None when it never did (the sandbox retires)."""
        loop = asyncio.get_running_loop()
        wall_end = started + limits.wall_seconds
        kill_end: float | None = None
        limit_ns = int(limits.cpu_seconds * 1e9)
        next_cpu = time.monotonic() + CPU_POLL_S
        report: bytes | None = None
        while True:
            stop_why = None
            wake = min(wall_end, next_cpu) if kill_end is None else kill_end
            try:
                async with asyncio.timeout_at(loop.time() + max(0.0, wake - time.monotonic())):
                    kind, payload = await self.channel.receive()
            except TimeoutError:
                now = time.monotonic()
                if kill_end is not None:
                    if now >= kill_end:
                        self.retire_reason = Retirement(
                            RetireReason.SUPERVISION, "the job's end was not reported"
                        )
                        return None
                    continue
                if now >= wall_end:
                    out.wall_timed_out = True
                    stop_why = "wall"
                else:
                    next_cpu = now + CPU_POLL_S
                    try:
                        if self.cgroup.cpu_ns() - cpu_base >= limit_ns:
                            out.cpu_exceeded = True
                            stop_why = "cpu"
                    except CgroupError as exc:
                        raise SandboxError(str(exc)) from None
            else:
                if kind in (sup.STDOUT, sup.STDERR):
                    if kill_end is None:
                        self._take_output(kind, payload, limits, out, on_output)
                        if out.output_exceeded:
                            stop_why = "output"
                elif kind == sup.REPORT:
                    report = payload
                elif kind == sup.EXIT:
                    end = Exit.parse(payload)
                    out.results = report
                    return end
                else:
                    log.warning("sandbox %s: unexpected message %r", self.id[:12], kind)
            if stop_why is not None and kill_end is None:
                out.killed_by_us = True
                await self._kill_job_processes()
                kill_end = time.monotonic() + END_TIMEOUT_S

    @staticmethod
    def _take_output(
        kind: str, data: bytes, limits: Limits, out: Outcome, on_output: OutputSink | None
    ) -> None:
        """Count, cap and forward one chunk of output."""
        name: Literal["stdout", "stderr"] = "stderr" if kind == sup.STDERR else "stdout"
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

    def _check_disk(self, job: Job, out: Outcome, warm: bool) -> None:
        """A full tmpfs is evidence of the disk limit; a cold runner's results.json is
        read from its output directory (a warm runner reported over the channel)."""
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
                    if hostfs.free_bytes(fd) < 64 * 1024:
                        out.disk_full = True
                finally:
                    os.close(fd)
            if job.command is None and not warm and out.runner_finished:
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
        holds only our own: docker-init, the supervisor, a fork runner), the supervisor
        answers with no job and the same runner, idle; the network namespace holds no
        socket and the IPC namespace no object; the work dir, /tmp, /dev/shm and
        /dev/mqueue are empty, and the tmpfs roots as created. Whatever cannot be proven
        clean within that bound is retired: retiring costs the next job nothing (a spare
        is warm).
        """
        left = await self._kill_job_processes()
        if left:
            return Retirement(RetireReason.PROCESSES, f"{len(left)} job processes survived")
        try:
            if self.cgroup.procs() != self.baseline:
                return Retirement(RetireReason.DIED, "the sandbox's own processes changed")
        except CgroupError as exc:
            return Retirement(RetireReason.DIED, str(exc))
        retire = await self._check_supervisor()
        if retire is not None:
            return retire
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
        if self.spec.runner_mode is RunnerMode.STANDBY:
            try:
                await self.warm()  # a standby serves one job: the next one starts now
            except (SandboxError, SupervisorError) as exc:
                return Retirement(RetireReason.SUPERVISION, str(exc))
        return None

    async def _check_supervisor(self) -> Retirement | None:
        """The supervisor answers, has no job, and (fork) its runner is the same, idle."""
        if self.channel.pending():
            return Retirement(RetireReason.SUPERVISION, "the supervisor said more than asked")
        try:
            async with asyncio.timeout(2.0):
                state = await self.channel.ping()
        except (TimeoutError, SupervisorError) as exc:
            return Retirement(RetireReason.SUPERVISION, f"the supervisor does not answer: {exc}")
        if state.get("job") != "0":
            return Retirement(RetireReason.SUPERVISION, "the supervisor still has a job")
        if self.spec.runner_mode is RunnerMode.FORK:
            same = sup.field_int(state, "runner_pid") == self.runner_pid
            if not same or state.get("runner") != "idle":
                why = f"runner {state.get('runner_pid')} {state.get('runner')}"
                return Retirement(RetireReason.SUPERVISION, f"the warm runner changed: {why}")
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
        """Sockets per kind in the sandbox's network namespace beyond our own. A
        connection the kill closed may take a moment to finish closing: look again
        before saying so."""
        for _ in range(SOCKET_SETTLE_TRIES):
            counts = namespaces.socket_counts(self._proc_fd)
            left = {
                kind: n - self._own_sockets.get(kind, 0)
                for kind, n in counts.items()
                if n != self._own_sockets.get(kind, 0)
            }
            if not left:
                break
            time.sleep(SOCKET_SETTLE_S)
        return left

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
        await self.channel.close()
        if self._proc_fd >= 0:
            os.close(self._proc_fd)
            self._proc_fd = -1
        await _delete_quietly(self.container)


async def _connect(proc_fd: int, name: str) -> SupervisorChannel:
    """The supervisor's channel, through the host's view of the sandbox's root: its
    socket's directory is opened one component at a time (no symlink followed) and the
    socket reached through that descriptor, so the path means this sandbox and no other.
    The supervisor makes its socket a moment after the container starts."""
    end = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        try:
            root = hostfs.open_root(proc_fd)
            try:
                dir_fd = hostfs.open_dir(root, SUPERVISOR_DIR)
            finally:
                os.close(root)
            try:
                return await SupervisorChannel.connect(
                    f"/proc/self/fd/{dir_fd}/{SUPERVISOR_SOCKET}", name
                )
            finally:
                os.close(dir_fd)
        except (SupervisorError, OSError) as exc:
            if time.monotonic() >= end:
                raise SandboxError(f"the supervisor did not listen: {exc}") from None
            await asyncio.sleep(0.005)


async def _delete_quietly(container: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(container.delete(force=True), 30)
