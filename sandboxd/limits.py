"""Resource limits: defaults, host maxima and per-job clamping. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from sandboxd.models import LimitsRequest


@dataclass(frozen=True)
class Limits:
    """The limits a job actually runs under."""

    wall_seconds: float = 10.0
    cpu_seconds: float = 10.0
    memory_mb: int = 256
    pids: int = 128
    output_bytes: int = 1024 * 1024
    disk_mb: int = 64

    @property
    def memory_bytes(self) -> int:
        return self.memory_mb * 1024 * 1024


DEFAULT_LIMITS = Limits()

# What a job may ask for at most on a host unless the operator says otherwise.
DEFAULT_MAXIMA = Limits(
    wall_seconds=120.0,
    cpu_seconds=120.0,
    memory_mb=2048,
    pids=1024,
    output_bytes=16 * 1024 * 1024,
    disk_mb=1024,
)


def clamp(
    request: LimitsRequest,
    defaults: Limits = DEFAULT_LIMITS,
    maxima: Limits = DEFAULT_MAXIMA,
) -> Limits:
    """Apply a job's overrides to `defaults`, never exceeding `maxima`.

    Defaults themselves are clamped too, so a misconfigured default cannot lift a maximum.
    """
    values: dict[str, Any] = {}
    for f in fields(Limits):
        asked = getattr(request, f.name)
        value = getattr(defaults, f.name) if asked is None else asked
        values[f.name] = min(value, getattr(maxima, f.name))
    return replace(defaults, **values)


def describe_bytes(n: int) -> str:
    """`1048576` -> `1 MiB`; used in learner-facing messages."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def describe_seconds(s: float) -> str:
    """`10.0` -> `10 s`, `2.5` -> `2.5 s`."""
    return f"{s:g} s"
