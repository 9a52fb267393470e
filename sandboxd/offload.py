"""Blocking work on the event loop when it is small, in a thread when it may be large.

A hop to a worker thread costs the daemon some 0.1-0.2 ms of CPU (the executor's queue,
waking the thread, the GIL handed back and forth, the loop woken again); writing a
job's two small files to a tmpfs or parsing a 2 KiB report takes a few microseconds.
So each caller says how much input the work has: up to `SMALL_BYTES` it runs inline,
beyond it in a thread, where a large job's work cannot stall other jobs' I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

SMALL_BYTES = 256 * 1024

P = ParamSpec("P")
T = TypeVar("T")


async def blocking(size: int, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)`: inline when `size` (its input, in bytes) is small."""
    if size <= SMALL_BYTES:
        return fn(*args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)
