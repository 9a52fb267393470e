"""`sandboxd serve` instrumented for the benches only:

    profiled_serve.py CALLS.json [PROFILE.prof]

The daemon's environment is its configuration, as for `python -m sandboxd serve`.

- Every SQS call the daemon makes is counted by operation (a counter around
  `QueueClient._call`, a dict increment); on SIGUSR1 the counts so far are written to
  CALLS.json, so a bench can take them before and after a window.
- With PROFILE.prof, the daemon runs under cProfile (the event loop's thread: where the
  daemon's own CPU goes), written there when it stops (SIGTERM drains it as usual); read
  it with `python -m pstats PROFILE.prof`.

Started by bench/common.py's `serve()`.
"""

from __future__ import annotations

import cProfile
import json
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# This checkout's sandboxd, not whatever the venv's editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


if __name__ == "__main__":
    calls_path = Path(sys.argv[1])
    QueueClient._call = _counted  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR1, lambda signum, frame: _dump(calls_path))
    code = 1
    if len(sys.argv) > 2:
        profiler = cProfile.Profile()
        try:
            code = profiler.runcall(main, ["serve"])
        finally:
            profiler.dump_stats(sys.argv[2])
    else:
        code = main(["serve"])
    _dump(calls_path)
    sys.exit(code)
