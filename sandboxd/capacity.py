"""How much work this host takes at once, and how its warm sandboxes are shared out.

The host has a number of job slots (by default one per CPU it may use) and a memory
budget for warm sandboxes. Each language's pool is sized from its demand — Little's law:
the jobs it holds at once are its arrival rate times how long each holds a sandbox (the
run and the reset) — within that capacity:

1. every language gets its floor (`SANDBOXD_POOL_FLOOR`), a fixed-size language
   (`SANDBOXD_POOL_SIZES`) exactly its size;
2. the remaining slots go to the languages whose demand exceeds what they have, in
   proportion to the shortfall;
3. slots left after that go to the languages with any demand, in proportion to it, or —
   on an idle host, when no language has any — evenly;
4. a language with demand (or any language on an idle host) keeps `spares` warm
   sandboxes beyond its slots; a cold language, none: its idle sandboxes are given back;
5. past the memory budget, spares go first, then slots above the floors, the least
   demanded language first.

`plan` is pure; `Demand` keeps the per-language figures it needs.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

# Arrivals are counted over this window: long enough to see a rate, short enough that a
# language that stopped getting jobs is cold within a minute.
ARRIVAL_WINDOW_S = 60.0
# Until a sandbox has been seen held, a job is assumed to hold one this long.
DEFAULT_HOLD_S = 0.5
# Until a warm sandbox has been measured, it is assumed to hold this much memory.
DEFAULT_WARM_BYTES = 64 << 20
_HOLD_WEIGHT = 0.2  # of each new observation in the moving average of hold times


def default_slots() -> int:
    """Job slots when none are configured: one per CPU this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


@functools.cache
def default_warm_memory_bytes() -> int:
    """A quarter of the host's memory for sandboxes waiting for jobs."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024 // 4
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 30


@dataclass(frozen=True)
class Target:
    """What one language's pool is kept at."""

    slots: int  # jobs it may run at once
    kept: int  # warm sandboxes it keeps: its slots and its spares
    demand: float  # jobs it holds at once on average (Little's law), for operators


@dataclass(frozen=True)
class HostCapacity:
    slots: int
    warm_memory_bytes: int
    floor: int = 1
    spares: int = 1


def _share(
    amount: int, weights: Mapping[str, float], caps: Mapping[str, int] | None
) -> dict[str, int]:
    """`amount` split in proportion to `weights` (largest remainder, ties by name), no
    share above its cap. Pure."""
    out = {k: 0 for k in weights}
    left = amount
    while left > 0:
        open_ = {k: w for k, w in weights.items() if w > 0 and (caps is None or out[k] < caps[k])}
        total = sum(open_.values())
        if not open_ or total <= 0:
            break
        exact = {k: left * w / total for k, w in open_.items()}
        given = {k: math.floor(v) for k, v in exact.items()}
        if caps is not None:
            given = {k: min(v, caps[k] - out[k]) for k, v in given.items()}
        if sum(given.values()) == 0:  # hand out one at a time by remainder
            k = max(open_, key=lambda k: (exact[k] - math.floor(exact[k]), open_[k], k))
            given = {k: 1}
        for k, v in given.items():
            out[k] += v
        left -= sum(given.values())
    return out


def plan(
    capacity: HostCapacity,
    languages: Iterable[str],
    demand: Mapping[str, float],
    fixed: Mapping[str, int] | None = None,
    warm_bytes: Mapping[str, int] | None = None,
) -> dict[str, Target]:
    """Each language's slots and warm sandboxes, given its demand. Pure."""
    fixed = dict(fixed or {})
    names = sorted(set(languages) | set(fixed))
    flex = [k for k in names if k not in fixed]
    want = {k: max(0.0, demand.get(k, 0.0)) for k in names}
    slots = {k: fixed.get(k, capacity.floor) for k in names}
    free = max(0, capacity.slots - sum(slots.values()))
    # 2. the shortfall first
    short = {k: max(0, math.ceil(want[k] - 1e-9) - slots[k]) for k in flex}
    given = _share(free, {k: float(v) for k, v in short.items()}, short)
    for k, v in given.items():
        slots[k] += v
    free -= sum(given.values())
    # 3. the rest by demand, or evenly on an idle host
    idle_host = all(want[k] <= 0 for k in flex)
    weights = {k: 1.0 if idle_host else want[k] for k in flex}
    for k, v in _share(free, weights, None).items():
        slots[k] += v
    # 4. spares where there is demand (everywhere on an idle host)
    spares = {
        k: capacity.spares if slots[k] > 0 and (idle_host or want[k] > 0) else 0 for k in names
    }
    # 5. the memory budget
    cost = {k: (warm_bytes or {}).get(k) or DEFAULT_WARM_BYTES for k in names}

    def used() -> int:
        return sum((slots[k] + spares[k]) * cost[k] for k in names)

    by_demand = sorted(names, key=lambda k: (want[k], k))
    for k in by_demand:
        while spares[k] > 0 and used() > capacity.warm_memory_bytes:
            spares[k] -= 1
    for k in by_demand:
        low = fixed.get(k, capacity.floor)
        while slots[k] > low and used() > capacity.warm_memory_bytes:
            slots[k] -= 1
    return {k: Target(slots[k], slots[k] + spares[k], round(want[k], 3)) for k in names}


class Demand:
    """One language's recent arrivals and how long its jobs hold a sandbox."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self.started = now()
        self.arrivals: deque[float] = deque()
        self.hold_s = DEFAULT_HOLD_S
        self.held = 0  # sandboxes held (busy) or asked for (waiting) right now

    def arrived(self) -> None:
        now = self._now()
        self.arrivals.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self.arrivals and self.arrivals[0] < now - ARRIVAL_WINDOW_S:
            self.arrivals.popleft()

    def observed_hold(self, seconds: float) -> None:
        self.hold_s += _HOLD_WEIGHT * (max(0.0, seconds) - self.hold_s)

    def rate(self) -> float:
        """Arrivals per second over the window (or since start, when shorter)."""
        now = self._now()
        self._trim(now)
        span = min(ARRIVAL_WINDOW_S, max(1.0, now - self.started))
        return len(self.arrivals) / span

    def value(self) -> float:
        """Jobs held at once: the rate times the hold time, and never less than now."""
        return max(self.rate() * self.hold_s, float(self.held))
