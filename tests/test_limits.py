from __future__ import annotations

from dataclasses import fields

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from sandboxd.limits import DEFAULT_LIMITS, DEFAULT_MAXIMA, Limits, clamp, describe_bytes
from sandboxd.models import MIN_MEMORY_MB, MIN_PIDS, LimitsRequest

positive_float = st.floats(min_value=0.001, max_value=1e6, allow_nan=False)
positive_int = st.integers(min_value=1, max_value=10**9)


def test_no_overrides_gives_defaults() -> None:
    """A job that asks for nothing runs with the documented defaults."""
    got = clamp(LimitsRequest())
    assert got == DEFAULT_LIMITS
    assert (got.wall_seconds, got.memory_mb, got.pids, got.output_bytes, got.disk_mb) == (
        10.0,
        256,
        128,
        1024 * 1024,
        64,
    )


@given(
    st.builds(
        LimitsRequest,
        wall_seconds=st.none() | positive_float,
        cpu_seconds=st.none() | positive_float,
        memory_mb=st.none() | st.integers(MIN_MEMORY_MB, 10**9),
        pids=st.none() | st.integers(MIN_PIDS, 10**9),
        output_bytes=st.none() | positive_int,
        disk_mb=st.none() | positive_int,
    )
)
def test_clamped_limits_never_exceed_maxima(req: LimitsRequest) -> None:
    """Every limit is the request (or default) but never above the host maximum."""
    got = clamp(req)
    for f in fields(Limits):
        asked = getattr(req, f.name)
        want = getattr(DEFAULT_LIMITS, f.name) if asked is None else asked
        assert getattr(got, f.name) == min(want, getattr(DEFAULT_MAXIMA, f.name))


def test_limits_too_small_to_start_a_process_are_refused() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 16"):
        LimitsRequest(memory_mb=1)
    with pytest.raises(ValidationError, match="greater than or equal to 8"):
        LimitsRequest(pids=1)


def test_defaults_above_maxima_are_clamped_too() -> None:
    """A misconfigured default cannot lift a host maximum."""
    got = clamp(LimitsRequest(), defaults=Limits(memory_mb=9999), maxima=Limits(memory_mb=512))
    assert got.memory_mb == 512


def test_describe_bytes_uses_round_units() -> None:
    """Learner-facing sizes read as 1 MiB, not 1048576."""
    assert describe_bytes(1024 * 1024) == "1 MiB"
    assert describe_bytes(1500) == "1500 bytes"
