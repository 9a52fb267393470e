"""`sandboxd serve` instrumented for the benches only:

    profiled_serve.py CALLS.json [PROFILE.prof]

The daemon's environment is its configuration, as for `python -m sandboxd serve`.

- Every SQS call the daemon makes is counted by operation (a counter around
  `QueueClient._call`, a dict increment); on SIGUSR1 the counts so far are written to
  CALLS.json, so a bench can take them before and after a window.
- With BENCH_TRACEMALLOC=OUT.txt in its environment, Python's allocations are traced;
  on SIGUSR2 the lines whose allocations grew most since the last SIGUSR2 are appended
  to OUT.txt (what makes the daemon's memory grow, between two job counts).
- With BENCH_MALLOC_TRIM=S, a thread hands the C heap's free memory back to the system
  (glibc's malloc_trim) every S seconds: whether RSS that grows is memory in use or
  memory freed but kept by the allocator.
- With BENCH_CHECKOUT=DIR, the sandboxd package of the checkout in DIR is run (the
  baseline of an A/B run; the instrumentation stays this checkout's).
- With BENCH_MALLOCSTATS=1, SIGUSR2 writes pymalloc's statistics to its log (stderr).
- With PROFILE.prof, the daemon runs under cProfile (the event loop's thread: where the
  daemon's own CPU goes), written there when it stops (SIGTERM drains it as usual); read
  it with `python -m pstats PROFILE.prof`.

Started by bench/common.py's `serve()`.
"""

from __future__ import annotations

import cProfile
import json
import os
import signal
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

# This checkout's sandboxd (or BENCH_CHECKOUT's, the baseline of an A/B run), not
# whatever the venv's editable install points at.
sys.path.insert(0, os.environ.get("BENCH_CHECKOUT") or str(Path(__file__).resolve().parent.parent))

import sandboxd
from sandboxd.cli import main
from sandboxd.sqs import QueueClient

calls: Counter[str] = Counter()
_call = QueueClient._call


async def _counted(self: QueueClient, operation: str, *args: Any, **kwargs: Any) -> Any:
    calls[operation] += 1
    return await _call(self, operation, *args, **kwargs)


def _dump(path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(calls)))
    tmp.replace(path)


class _Growth:
    """Allocation growth by source line between two SIGUSR2s, appended to `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        tracemalloc.start()
        self.last = self._snapshot()

    @staticmethod
    def _snapshot() -> tracemalloc.Snapshot:
        return tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )

    def dump(self) -> None:
        now = self._snapshot()
        top = now.compare_to(self.last, "lineno")[:15]
        self.last = now
        lines = [f"--- {sum(t.size for t in now.traces) / 1e6:.1f} MB traced; grew most:"]
        lines += [str(stat) for stat in top]
        with self.path.open("a") as out:
            out.write("\n".join(lines) + "\n")


def _trim_every(seconds: float) -> None:
    import ctypes
    import threading

    libc = ctypes.CDLL("libc.so.6")

    def trim() -> None:
        while True:
            time.sleep(seconds)
            libc.malloc_trim(0)

    threading.Thread(target=trim, name="malloc-trim", daemon=True).start()


if __name__ == "__main__":
    calls_path = Path(sys.argv[1])
    print(f"profiled_serve: sandboxd from {Path(sandboxd.__file__).parent}", file=sys.stderr)
    if os.environ.get("BENCH_MALLOC_TRIM"):
        _trim_every(float(os.environ["BENCH_MALLOC_TRIM"]))
    if os.environ.get("BENCH_MALLOCSTATS"):
        # pymalloc's arenas, pools and blocks in use, to its stderr (the daemon's log).
        signal.signal(signal.SIGUSR2, lambda signum, frame: sys._debugmallocstats())
    if os.environ.get("BENCH_TRACEMALLOC"):
        growth = _Growth(Path(os.environ["BENCH_TRACEMALLOC"]))
        signal.signal(signal.SIGUSR2, lambda signum, frame: growth.dump())
    QueueClient._call = _counted  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR1, lambda signum, frame: _dump(calls_path))
    code = 1
    if len(sys.argv) > 2:
        # CPU time of the event loop's thread, not wall time: waits in epoll cost nothing.
        profiler = cProfile.Profile(time.thread_time)
        try:
            code = profiler.runcall(main, ["serve"])
        finally:
            profiler.dump_stats(sys.argv[2])
    else:
        code = main(["serve"])
    _dump(calls_path)
    sys.exit(code)
