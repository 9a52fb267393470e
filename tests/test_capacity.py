"""The capacity model: slots and warm sandboxes shared out by demand (pure), and a
planned pool in the real engine."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import aiodocker
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandboxd import pool as pool_module
from sandboxd.capacity import DEFAULT_WARM_BYTES, Demand, HostCapacity, Target, plan
from sandboxd.jobs import RunContext, execute
from sandboxd.limits import Limits
from sandboxd.models import Verdict
from sandboxd.pool import Pool, PoolConfig
from sandboxd.sandbox import SandboxError, SandboxSpec
from tests.conftest import TEST_HOST_ID, make_job

GIB = 1 << 30
HOST = HostCapacity(slots=8, warm_memory_bytes=64 * GIB, floor=1, spares=1)


def test_idle_host_splits_the_slots_evenly_with_spares() -> None:
    """No history: every language gets its share of the slots and a spare."""
    out = plan(HOST, ["python", "ruby"], {})
    assert out == {"python": Target(4, 5, 0.0), "ruby": Target(4, 5, 0.0)}


def test_one_language_gets_every_slot() -> None:
    assert plan(HostCapacity(2, 64 * GIB), ["python"], {})["python"] == Target(2, 3, 0.0)


def test_busy_language_takes_the_slots_and_a_cold_one_gives_its_sandboxes_back() -> None:
    """python is busy, ruby has had no job for a while: ruby keeps its floor, no spare."""
    out = plan(HOST, ["python", "ruby"], {"python": 3.2, "ruby": 0.0})
    assert out["ruby"] == Target(1, 1, 0.0)
    assert out["python"].slots == 7 and out["python"].kept == 8


def test_shortfall_comes_before_the_proportional_rest() -> None:
    """java needs 4 at once, python 1: java's shortfall is met first, then the rest goes
    by demand."""
    out = plan(HOST, ["java", "python"], {"java": 4.0, "python": 1.0})
    assert out["java"].slots >= 4 and out["python"].slots >= 1
    assert out["java"].slots + out["python"].slots == 8
    assert out["java"].slots > out["python"].slots


def test_demand_above_capacity_is_shared_by_shortfall() -> None:
    out = plan(HostCapacity(4, 64 * GIB), ["a", "b"], {"a": 9.0, "b": 3.0})
    assert out["a"].slots + out["b"].slots == 4
    assert out["a"].slots == 3 and out["b"].slots == 1


def test_fixed_sizes_are_an_override() -> None:
    """SANDBOXD_POOL_SIZES: a fixed language gets exactly its size, whatever its demand;
    the others share what is left."""
    out = plan(HOST, ["python", "ruby"], {"ruby": 5.0}, fixed={"python": 2})
    assert out["python"].slots == 2
    assert out["ruby"].slots == 6


def test_floor_zero_lets_a_cold_language_hold_nothing() -> None:
    host = HostCapacity(slots=2, warm_memory_bytes=64 * GIB, floor=0, spares=1)
    out = plan(host, ["python", "ruby"], {"python": 1.0})
    assert out["ruby"] == Target(0, 0, 0.0)
    assert out["python"] == Target(2, 3, 1.0)


def test_memory_budget_drops_spares_then_slots_of_the_least_demanded() -> None:
    """Room for 5 warm sandboxes of 64 MB: the spares go, then ruby's extra slots."""
    host = HostCapacity(slots=8, warm_memory_bytes=5 * DEFAULT_WARM_BYTES, floor=1, spares=1)
    out = plan(host, ["python", "ruby"], {"python": 3.0, "ruby": 2.0})
    assert sum(t.kept for t in out.values()) == 5
    assert out["python"].kept == out["python"].slots  # no spares left
    assert out["python"].slots >= 3 and out["ruby"].slots >= 1


def test_measured_warm_memory_is_used() -> None:
    host = HostCapacity(slots=8, warm_memory_bytes=4 * GIB, floor=1, spares=1)
    out = plan(host, ["java"], {}, warm_bytes={"java": GIB})
    assert out["java"].kept == 4


@given(
    slots=st.integers(1, 64),
    floor=st.integers(0, 3),
    spares=st.integers(0, 3),
    demand=st.dictionaries(
        st.sampled_from(["a", "b", "c", "d"]), st.floats(0, 100, allow_nan=False)
    ),
    fixed=st.dictionaries(st.sampled_from(["c", "e"]), st.integers(0, 8)),
    budget=st.integers(1, 200),
)
def test_plan_invariants(
    slots: int, floor: int, spares: int, demand: dict[str, float], fixed: dict[str, int],
    budget: int,
) -> None:  # fmt: skip
    """Every language is planned; floors and fixed sizes hold; slots beyond those never
    exceed the host's; kept >= slots; memory is respected unless floors alone exceed it."""
    host = HostCapacity(slots, budget * DEFAULT_WARM_BYTES, floor, spares)
    langs = ["a", "b", "c", "d"]
    out = plan(host, langs, demand, fixed)
    assert set(out) == set(langs) | set(fixed)
    low = {k: fixed.get(k, floor) for k in out}
    for k, t in out.items():
        assert t.slots >= low[k] and t.kept >= t.slots
        if k in fixed:
            assert t.slots == fixed[k]
    assert sum(t.slots for t in out.values()) <= max(slots, sum(low.values()))
    kept = sum(t.kept for t in out.values())
    assert kept <= max(budget, sum(low.values()))
    if budget >= (slots + len(out) * spares) and sum(low.values()) <= slots:
        assert sum(t.slots for t in out.values()) == slots  # nothing wasted


def test_demand_is_rate_times_hold_and_never_below_what_is_held() -> None:
    now = [1000.0]
    d = Demand(now=lambda: now[0])
    now[0] += 60
    for _ in range(120):  # 2 jobs/s
        d.arrived()
    for _ in range(50):
        d.observed_hold(1.5)
    assert abs(d.rate() - 2.0) < 1e-9
    assert abs(d.value() - 3.0) < 0.01
    d.held = 5
    assert d.value() == 5.0
    now[0] += 61  # a minute without jobs: cold
    d.held = 0
    assert d.value() == 0.0


# -- the planned pool against the real engine ----------------------------------------


async def _until(check: Any, seconds: float = 60.0) -> None:
    end = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < end, "the pool did not reach the planned shape"
        await asyncio.sleep(0.1)


@pytest.mark.docker
async def test_a_busy_language_takes_the_slots_a_cold_one_gives_back(
    docker: aiodocker.Docker, python_spec: SandboxSpec
) -> None:
    """Two languages (the python image twice), 2 host slots, floor 0, no spares: idle, one
    slot each; once python gets jobs, both slots are its and `cold` gives its sandbox
    back. The intake's capacity (pool.capacity) follows."""
    specs = {"python": python_spec, "cold": replace(python_spec, pool="cold")}
    pool = Pool(docker, specs, PoolConfig(size=0, spares=0, slots=2, floor=0), host_id=TEST_HOST_ID)
    try:
        await pool.start()
        assert await pool.wait_warm(120), pool.last_error("busy")
        shape = {s.pool: (s.slots, s.target, s.size) for s in pool.stats()}
        assert shape == {"python": (1, 1, 1), "cold": (1, 1, 1)}
        job = make_job({"ok.py": "print('ok')\n"}, command="python3 ok.py")
        for _ in range(3):
            result = await execute(pool, job, RunContext())
            assert result.status is Verdict.PASSED, result
        # Arrivals and ends replan at most every REPLAN_MIN_S: the plan follows soon after.
        await _until(lambda: {s.pool: s.slots for s in pool.stats()} == {"python": 2, "cold": 0})
        stats = {s.pool: s for s in pool.stats()}
        assert stats["python"].demand > 0 and not stats["python"].fixed
        await _until(lambda: {s.pool: s.size for s in pool.stats()} == {"python": 2, "cold": 0})
        assert pool.capacity == 2 and pool.host_slots == 2
    finally:
        await pool.close()


@pytest.mark.docker
async def test_a_job_cancelled_while_waiting_holds_no_demand(
    docker: aiodocker.Docker, python_spec: SandboxSpec
) -> None:
    """A job waiting for a sandbox and cancelled (its message lost, the daemon stopping)
    must not count as held for ever, or the language would never turn cold."""
    pool = Pool(
        docker, {"python": python_spec}, PoolConfig(size=0, spares=0, slots=1, floor=1),
        host_id=TEST_HOST_ID,
    )  # fmt: skip
    try:
        await pool.start()
        assert await pool.wait_warm(120), pool.last_error("python")
        async with pool.sandbox("python"):
            waiter = asyncio.create_task(pool.sandbox("python").__aenter__())
            await asyncio.sleep(0.2)
            assert pool.demand["python"].held == 2
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert pool.demand["python"].held == 1
        await _until(lambda: pool.demand["python"].held == 0)
    finally:
        await pool.close()


# -- handing sandboxes to waiting jobs (pure: no sandbox is started at size 0) --------


def _bare_pool() -> Any:
    spec = SandboxSpec("python", "none", (), {}, Limits())
    pool = Pool(None, {"python": spec}, PoolConfig(size=0, spares=0))  # type: ignore[arg-type]
    return pool._pools["python"]


async def test_a_released_sandbox_goes_to_the_first_waiting_job() -> None:
    """First come, first served, one wake-up per sandbox (no waiter wakes to find none);
    a waiter cancelled before its turn is skipped."""
    lp = _bare_pool()
    first, second = SimpleNamespace(acquired=0.0), SimpleNamespace(acquired=0.0)
    a = asyncio.create_task(lp.acquire())
    b = asyncio.create_task(lp.acquire())
    c = asyncio.create_task(lp.acquire())
    await asyncio.sleep(0)
    assert len(lp.waiters) == 3
    a.cancel()
    with pytest.raises(asyncio.CancelledError):
        await a
    lp.give(first)
    lp.give(second)
    assert await b is first and await c is second
    assert lp.busy == 2 and not lp.idle and not lp.waiters
    assert lp.owner.demand["python"].held == 2  # the cancelled one holds nothing


async def test_a_sandbox_handed_to_a_job_cancelled_that_moment_goes_to_the_next() -> None:
    lp = _bare_pool()
    box = SimpleNamespace(acquired=0.0)
    a = asyncio.create_task(lp.acquire())
    b = asyncio.create_task(lp.acquire())
    await asyncio.sleep(0)
    lp.give(box)  # a has it, but has not run yet...
    a.cancel()  # ...and is cancelled before it does
    with pytest.raises(asyncio.CancelledError):
        await a
    assert await b is box
    assert lp.busy == 1 and not lp.idle


async def test_an_idle_sandbox_is_taken_at_once_and_waiters_fail_on_close() -> None:
    lp = _bare_pool()
    box = SimpleNamespace(acquired=0.0)
    lp.give(box)
    assert list(lp.idle) == [box]
    assert await lp.acquire() is box
    waiting = asyncio.create_task(lp.acquire())
    await asyncio.sleep(0)
    await lp.owner.close()
    with pytest.raises(SandboxError, match="shutting down"):
        await waiting


async def test_arrivals_replan_at_most_every_interval_unless_a_language_is_short() -> None:
    """A burst's every arrival and end does not replan: at most one per REPLAN_MIN_S,
    the last change always planned soon after, and at once when jobs outnumber slots."""
    spec = SandboxSpec("python", "none", (), {}, Limits())
    specs = {"python": spec, "other": replace(spec, pool="other")}
    pool = Pool(None, specs, PoolConfig(size=0, spares=0, slots=4, floor=0))  # type: ignore[arg-type]
    plans: list[float] = []

    def replan() -> None:  # planned, but nothing started (no engine here)
        pool._last_plan = time.monotonic()
        plans.append(pool._last_plan)
        pool._plan()

    pool.replan = replan  # type: ignore[method-assign]
    pool.replan()
    assert len(plans) == 1 and pool.target_of("python").slots == 2
    pool.arrived("python")  # 1 held, 2 slots (idle split): not urgent, too soon
    pool.held("python", 0.1)
    assert len(plans) == 1
    for _ in range(3):  # 3 held > 2 slots: at once
        pool.arrived("python")
    assert len(plans) == 2
    pool.held("python", 0.1)  # too soon again: deferred, not dropped
    pool.held("python", 0.1)
    assert len(plans) == 2
    await asyncio.sleep(pool_module.REPLAN_MIN_S + 0.1)
    assert len(plans) == 3  # the deferred one, once, after the interval
    assert plans[2] - plans[1] >= pool_module.REPLAN_MIN_S
    assert pool.target_of("python").slots == 4
    await pool.close()
