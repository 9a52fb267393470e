"""Blocking work inline when small, in a thread when large (sandboxd/offload.py)."""

from __future__ import annotations

import threading

from sandboxd import offload
from sandboxd.fit import approx_size, size
from sandboxd.models import Result, TestResult, TestStatus, Verdict


async def test_small_work_runs_on_the_loop_and_large_work_in_a_thread() -> None:
    loop_thread = threading.get_ident()
    assert await offload.blocking(10, threading.get_ident) == loop_thread
    assert await offload.blocking(offload.SMALL_BYTES + 1, threading.get_ident) != loop_thread
    assert await offload.blocking(0, lambda a, b=0: a + b, 1, b=2) == 3


def test_approx_size_is_close_to_the_json_size() -> None:
    tests = [
        TestResult(name=f"test_{i}", status=TestStatus.FAIL, message="x" * 500, output="o" * 90)
        for i in range(50)
    ]
    for result in (
        Result(id="j", status=Verdict.PASSED),
        Result(id="j", status=Verdict.FAILED, tests=tests, stdout="é" * 10_000, stderr="e" * 3000),
    ):
        exact, approx = size(result), approx_size(result)
        assert exact / 3 <= approx <= 3 * exact + 2048, (exact, approx)
