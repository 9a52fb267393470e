"""Warm pools of sandboxes, one per language (or image).

No container is created on the hot path while a warm one is idle. A sandbox serves
another job only after a verified reset; any limit event, failed reset, age or
job-count limit retires it, and a fresh one is started in the background. Each pool
keeps `spares` sandboxes beyond its job slots, so a retirement (or a reset still under
way) never makes the next job wait for a container to start.

Pool sizes are fixed (`PoolConfig.size` / `sizes`) or, when the config gives the host's
`slots`, planned from demand by `sandboxd.capacity` and re-planned as jobs arrive and
end: the busy languages get the slots, a cold one gives its idle sandboxes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

import aiodocker

from sandboxd.capacity import (
    DEFAULT_WARM_BYTES,
    Demand,
    HostCapacity,
    Target,
    default_warm_memory_bytes,
    plan,
)
from sandboxd.cgroup import Cgroup, CgroupError
from sandboxd.limits import Limits
from sandboxd.reasons import Retirement, RetireReason
from sandboxd.sandbox import RunnerMode, Sandbox, SandboxError, SandboxSpec

log = logging.getLogger(__name__)

LABEL_MANAGED = "sandboxd.managed"
LABEL_POOL = "sandboxd.pool"
LABEL_HOST = "sandboxd.host"
LABEL_PID = "sandboxd.pid"
# How long the engine may take to remove a leftover sandbox before we go on without it.
LEFTOVER_DELETE_S = 30.0
# How often demand is looked at again without any job arriving or ending (a language
# whose jobs stopped turns cold and gives its sandboxes back).
REPLAN_S = 5.0
# Arrivals and ends replan at most this often (a burst's every job need not), except
# when a language holds more jobs than its slots: then at once.
REPLAN_MIN_S = 0.25
# A job's memory limit must leave at least this beside what a warm sandbox holds, or the
# job gets a cold sandbox of its own (see Pool.sandbox).
WARM_HEADROOM_BYTES = 16 << 20


@dataclass(frozen=True)
class PoolConfig:
    size: int = 2  # job slots per language: jobs that may run at once
    sizes: tuple[tuple[str, int], ...] = ()  # per-language overrides of `size`
    # Warm sandboxes kept beyond the job slots: the next job finds one idle while a
    # retired sandbox is being replaced or a reset is still under way.
    spares: int = 0
    max_jobs_per_sandbox: int = 200
    max_age_seconds: float = 3600.0
    start_retry_seconds: float = 1.0
    # The capacity model: when `slots` (the host's job slots) is set, pools not named in
    # `sizes` are sized from demand within it, each keeping at least `floor`, all warm
    # sandboxes within `warm_memory_bytes` (default: a quarter of the host's memory).
    slots: int | None = None
    floor: int = 1
    warm_memory_bytes: int | None = None

    @property
    def planned(self) -> bool:
        return self.slots is not None

    def size_of(self, name: str) -> int:
        return dict(self.sizes).get(name, self.size)

    def kept_of(self, name: str) -> int:
        """How many sandboxes the pool `name` keeps: its job slots and the spares."""
        size = self.size_of(name)
        return size + self.spares if size > 0 else 0


def default_host_id() -> str:
    return socket.gethostname()


@dataclass
class PoolStats:
    pool: str
    size: int
    idle: int
    busy: int
    starting: int
    target: int = 0  # the number of sandboxes the pool is kept at (slots and spares)
    slots: int = 0  # jobs it may run at once
    demand: float = 0.0  # jobs it holds at once, recently (arrival rate x hold time)
    fixed: bool = True  # its size is configured, not planned from demand
    unavailable: str | None = None  # why its language does not serve (the daemon's word)


RetireHook = Callable[[str, str], None]  # (pool, reason label)
StartHook = Callable[[str, float], None]  # (pool, seconds)


class _LanguagePool:
    def __init__(self, owner: Pool, spec: SandboxSpec):
        self.owner = owner
        self.spec = spec
        self.idle: deque[Sandbox] = deque()
        self.busy = 0
        self.starting = 0
        self.recycling = 0
        self.changed = asyncio.Condition()
        self.last_error: str | None = None
        # Jobs waiting for a sandbox, first come first served: a sandbox made idle is
        # handed to the first of them directly (waking one, not every waiter to look).
        self.waiters: deque[asyncio.Future[Sandbox]] = deque()

    @property
    def total(self) -> int:
        return len(self.idle) + self.busy + self.starting + self.recycling

    @property
    def target(self) -> int:
        return self.owner.target_of(self.spec.pool).kept

    @property
    def slots(self) -> int:
        return self.owner.target_of(self.spec.pool).slots

    @property
    def warm(self) -> bool:
        return len(self.idle) + self.busy >= self.target

    def stats(self) -> PoolStats:
        target = self.owner.target_of(self.spec.pool)
        return PoolStats(
            self.spec.pool, self.total, len(self.idle), self.busy, self.starting,
            target.kept, target.slots, target.demand, self.owner.is_fixed(self.spec.pool),
        )  # fmt: skip

    def trim(self) -> None:
        """Give back idle sandboxes beyond the target (a language turned cold)."""
        while self.idle and self.total > self.target:
            self.owner.spawn(self.idle.pop().destroy())

    def refill(self) -> None:
        """Start sandboxes in the background until the pool is at its size."""
        if self.owner.closing:
            return
        while self.total < self.target:
            self.starting += 1
            self.owner.spawn(self._start_one())

    async def _start_one(self) -> None:
        t0 = time.monotonic()
        try:
            box = await Sandbox.create(self.owner.docker, self.spec, self.owner.labels(self.spec))
        except Exception as exc:  # whatever it was, count it and retry later
            self.last_error = str(exc) or type(exc).__name__
            log.error("pool %s: %s", self.spec.pool, self.last_error)
            await asyncio.sleep(self.owner.config.start_retry_seconds)
            async with self.changed:
                self.starting -= 1
                self.changed.notify_all()
            self.refill()
            return
        self.last_error = None
        with contextlib.suppress(CgroupError, OSError):
            self.owner.measured_warm(self.spec.pool, box.cgroup.memory_usage())
        if self.owner.on_start is not None:
            self.owner.on_start(self.spec.pool, time.monotonic() - t0)
        async with self.changed:
            self.starting -= 1
            if self.owner.closing:
                self.owner.spawn(box.destroy())
            else:
                self.give(box)
            self.changed.notify_all()

    def _take(self, box: Sandbox) -> Sandbox:
        self.busy += 1
        box.acquired = time.monotonic()
        return box

    def give(self, box: Sandbox) -> None:
        """A sandbox ready for a job: to the first waiting job, else idle."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(self._take(box))
                return
        self.idle.append(box)

    def fail_waiters(self, why: str) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(SandboxError(why))

    async def acquire(self) -> Sandbox:
        self.owner.arrived(self.spec.pool)
        try:
            if self.owner.closing:
                raise SandboxError("the pool is shutting down")
            if self.idle and not self.waiters:
                return self._take(self.idle.popleft())
            self.refill()
            waiter: asyncio.Future[Sandbox] = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            try:
                return await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    # Handed a sandbox just as it was cancelled: to the next job instead.
                    self.busy -= 1
                    self.give(waiter.result())
                else:
                    with contextlib.suppress(ValueError):
                        self.waiters.remove(waiter)
                raise
        except BaseException:  # cancelled while waiting, or closing: it holds nothing
            self.owner.gave_up(self.spec.pool)
            raise

    async def release(self, box: Sandbox) -> None:
        """Reset and return the sandbox, or retire it; runs in the background."""
        async with self.changed:
            self.busy -= 1
            self.recycling += 1
        # Until a reset says otherwise: a cancelled reset proves nothing.
        reason: Retirement | None = Retirement(RetireReason.RESET_FAILED, "reset interrupted")
        try:
            retire = box.retire_reason or self._retire_reason(box)
            reason = retire if retire is not None else await box.reset()
        except Exception as exc:  # a reset that failed in any way retires
            log.exception("pool %s: reset of %s failed", self.spec.pool, box.id[:12])
            reason = Retirement(RetireReason.RESET_FAILED, repr(exc))
        finally:
            await self._settle(box, reason)

    async def _settle(self, box: Sandbox, reason: Retirement | None) -> None:
        """Back to idle after a good reset, else destroyed; the counts stay right."""
        self.owner.held(self.spec.pool, time.monotonic() - box.acquired)
        async with self.changed:
            self.recycling -= 1
            if reason is None and not self.owner.closing and self.total < self.target:
                self.give(box)
            elif reason is None and not self.owner.closing:
                self.owner.spawn(box.destroy())  # more than the target: given back
            else:
                if reason is not None:
                    log.info("pool %s: retiring %s: %s", self.spec.pool, box.id[:12], reason)
                    if self.owner.on_retire is not None:
                        self.owner.on_retire(self.spec.pool, reason.reason.value)
                self.owner.spawn(box.destroy())
            self.changed.notify_all()
        self.refill()

    def _retire_reason(self, box: Sandbox) -> Retirement | None:
        cfg = self.owner.config
        if box.jobs_run >= cfg.max_jobs_per_sandbox:
            return Retirement(RetireReason.JOB_COUNT, f"served {box.jobs_run} jobs")
        if time.monotonic() - box.created >= cfg.max_age_seconds:
            return Retirement(RetireReason.AGE, f"older than {cfg.max_age_seconds:g} s")
        return None


class Pool:
    """All warm pools of this process."""

    def __init__(
        self,
        docker: aiodocker.Docker,
        specs: dict[str, SandboxSpec],
        config: PoolConfig | None = None,
        host_id: str | None = None,
        on_retire: RetireHook | None = None,
        on_start: StartHook | None = None,
    ):
        self.docker = docker
        self.config = config or PoolConfig()
        self.host_id = host_id or default_host_id()
        self.on_retire = on_retire
        self.on_start = on_start
        self.closing = False
        self._pools = {name: _LanguagePool(self, spec) for name, spec in specs.items()}
        self._tasks: set[asyncio.Task[None]] = set()
        self.demand = {name: Demand() for name in specs}
        self._warm_bytes: dict[str, int] = {}
        self._closed = asyncio.Event()
        self._targets: dict[str, Target] = {}
        self._last_plan = time.monotonic()
        self._replan_pending: asyncio.TimerHandle | None = None
        self._plan()

    # -- capacity ---------------------------------------------------------------------

    @property
    def host_capacity(self) -> HostCapacity | None:
        cfg = self.config
        if cfg.slots is None:
            return None
        budget = cfg.warm_memory_bytes or default_warm_memory_bytes()
        return HostCapacity(cfg.slots, budget, cfg.floor, cfg.spares)

    def is_fixed(self, name: str) -> bool:
        return not self.config.planned or name in dict(self.config.sizes)

    def target_of(self, name: str) -> Target:
        if not self.config.planned:
            return Target(self.config.size_of(name), self.config.kept_of(name), 0.0)
        return self._targets[name]

    def replan(self) -> None:
        """Size the pools from demand again; start what is now missing, give back what
        is now too much. Cheap (a handful of languages), yet arrivals and ends call it
        through `_replan_soon`, which runs it at most every REPLAN_MIN_S."""
        self._last_plan = time.monotonic()
        if not self._plan():
            return
        for pool in self._pools.values():
            pool.trim()
            pool.refill()

    def _plan(self) -> bool:
        host = self.host_capacity
        if host is None:
            return False
        fixed = {k: v for k, v in self.config.sizes if k in self._pools}
        demand = {k: d.value() for k, d in self.demand.items()}
        self._targets = plan(host, self._pools, demand, fixed, self._warm_bytes)
        return True

    def _replan_soon(self, urgent: bool = False) -> None:
        if not self.config.planned:
            return
        wait = self._last_plan + REPLAN_MIN_S - time.monotonic()
        if urgent or wait <= 0:
            if self._replan_pending is not None:
                self._replan_pending.cancel()
                self._replan_pending = None
            self.replan()
            return
        if self._replan_pending is not None:
            return

        def later() -> None:
            self._replan_pending = None
            if not self.closing:
                self.replan()

        self._replan_pending = asyncio.get_running_loop().call_later(wait, later)

    def arrived(self, name: str) -> None:
        d = self.demand[name]
        d.arrived()
        d.held += 1
        self._replan_soon(urgent=self.config.planned and d.held > self.target_of(name).slots)

    def held(self, name: str, seconds: float) -> None:
        d = self.demand[name]
        d.held = max(0, d.held - 1)
        d.observed_hold(seconds)
        self._replan_soon()

    def gave_up(self, name: str) -> None:
        d = self.demand[name]
        d.held = max(0, d.held - 1)
        self._replan_soon()

    def measured_warm(self, name: str, usage: int) -> None:
        if usage > self._warm_bytes.get(name, 0):
            self._warm_bytes[name] = usage

    async def _replan_periodically(self) -> None:
        while not self.closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), REPLAN_S)
            if not self.closing:
                self.replan()

    def labels(self, spec: SandboxSpec) -> dict[str, str]:
        return {
            LABEL_MANAGED: "true",
            LABEL_POOL: spec.pool,
            LABEL_HOST: self.host_id,
            LABEL_PID: str(os.getpid()),
        }

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("pool task failed", exc_info=task.exception())

    @property
    def names(self) -> list[str]:
        return sorted(self._pools)

    def spec(self, name: str) -> SandboxSpec:
        return self._pools[name].spec

    async def start(self) -> int:
        """Remove what an earlier process on this host left, then warm every pool."""
        removed = await remove_leftovers(self.docker, self.host_id)
        for pool in self._pools.values():
            pool.refill()
        if self.config.planned:
            self.spawn(self._replan_periodically())
        return removed

    async def wait_warm(self, timeout: float) -> bool:
        """Wait until every pool has its warm sandboxes (or a start failed)."""
        end = time.monotonic() + timeout
        for pool in self._pools.values():
            async with pool.changed:
                while not pool.warm:
                    if pool.last_error is not None and pool.starting == 0:
                        break
                    left = end - time.monotonic()
                    if left <= 0:
                        return False
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(pool.changed.wait(), left)
        return all(p.warm for p in self._pools.values())

    def stats(self) -> list[PoolStats]:
        return [p.stats() for p in self._pools.values()]

    def warm(self) -> dict[str, bool]:
        """Whether each pool has its target of live (idle or busy) sandboxes."""
        return {name: p.warm for name, p in self._pools.items()}

    @property
    def capacity(self) -> int:
        """How many jobs the pools can run at once (their slots; spares are not slots)."""
        return sum(p.slots for p in self._pools.values())

    @property
    def host_slots(self) -> int:
        """The host's job slots: configured, or the pools' fixed sizes added up."""
        return self.config.slots if self.config.slots is not None else self.capacity

    def last_error(self, name: str) -> str | None:
        return self._pools[name].last_error

    @contextlib.asynccontextmanager
    async def sandbox(self, name: str, limits: Limits | None = None) -> AsyncIterator[Sandbox]:
        """A sandbox of pool `name` for one job; reset or retired in the background after.

        A job whose disk limit differs from the pool's gets a sandbox of its own (tmpfs
        sizes are fixed at creation), as does one whose memory limit leaves too little
        beside what a warm sandbox already holds (its warm runner, charged to the same
        cgroup): that one gets a cold sandbox, where the job's limit is all its own, as
        on a bare host. Other memory and pids limits are applied in place.
        """
        pool = self._pools.get(name)
        if pool is None:
            raise KeyError(name)
        spec = pool.spec
        if limits is not None and limits.disk_mb != spec.limits.disk_mb:
            spec = replace(spec, limits=replace(spec.limits, disk_mb=limits.disk_mb))
        if limits is not None and spec.runner_mode is not RunnerMode.COLD:
            warm = self._warm_bytes.get(name, DEFAULT_WARM_BYTES)
            if limits.memory_bytes < warm + WARM_HEADROOM_BYTES:
                spec = replace(spec, runner_mode=RunnerMode.COLD)
        if spec is not pool.spec:
            box = await Sandbox.create(self.docker, spec, self.labels(spec))
            try:
                yield box
            finally:
                self.spawn(box.destroy())
            return
        box = await pool.acquire()
        try:
            yield box
        except BaseException as exc:
            box.retire_reason = box.retire_reason or Retirement(
                RetireReason.JOB_FAILED, f"the job failed inside the sandbox: {exc!r}"
            )
            raise
        finally:
            self.spawn(pool.release(box))

    async def close(self) -> None:
        """Stop refilling, destroy every sandbox, wait for background work."""
        self.closing = True
        self._closed.set()
        if self._replan_pending is not None:
            self._replan_pending.cancel()
            self._replan_pending = None
        for pool in self._pools.values():
            async with pool.changed:
                while pool.idle:
                    self.spawn(pool.idle.popleft().destroy())
                pool.fail_waiters("the pool is shutting down")
                pool.changed.notify_all()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for pool in self._pools.values():
            while pool.idle:
                await pool.idle.popleft().destroy()


def _pid_alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


async def remove_leftovers(docker: aiodocker.Docker, host_id: str) -> int:
    """Remove sandboxes an earlier (dead) sandboxd process on this host left behind."""
    filters = f'{{"label": ["{LABEL_MANAGED}=true", "{LABEL_HOST}={host_id}"]}}'
    containers = await docker.containers.list(all=True, filters=filters)
    removed = 0
    for c in containers:
        labels = c._container.get("Labels") or {}
        try:
            pid = int(labels.get(LABEL_PID, "0"))
        except ValueError:
            pid = 0
        if pid == os.getpid() or (pid > 0 and _pid_alive(pid)):
            continue
        try:
            await _thaw(c)
            await asyncio.wait_for(c.delete(force=True), LEFTOVER_DELETE_S)
            removed += 1
        except aiodocker.DockerError:
            continue
        except TimeoutError:
            log.error("sandbox %s left by pid %d: the engine did not remove it", c.id[:12], pid)
    return removed


async def _thaw(container: Any) -> None:
    """A sandboxd killed while it held a sandbox's cgroup frozen (killing its job
    processes) leaves it frozen, or stuck freezing around a `docker exec` that was
    starting: the engine then cannot kill it, and its removal hangs for ever."""
    info = await container.show()
    pid = int((info.get("State") or {}).get("Pid") or 0)
    if pid <= 0:
        return
    with contextlib.suppress(CgroupError):
        Cgroup.of_pid(pid).thaw()
