"""`sandboxd serve` under cProfile, for the benches only: `profiled_serve.py OUT.prof`.

The daemon's environment is its configuration, as for `python -m sandboxd serve`. The
statistics (of the event loop's thread: where the daemon's own CPU goes) are written to
OUT.prof when it stops (SIGTERM drains it as usual). Started by bench/common.py's
`serve(..., profile=path)`; read them with `python -m pstats OUT.prof`.
"""

from __future__ import annotations

import cProfile
import sys
from pathlib import Path

# This checkout's sandboxd, not whatever the venv's editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandboxd.cli import main

if __name__ == "__main__":
    out = sys.argv[1]
    profiler = cProfile.Profile()
    code = 1
    try:
        code = profiler.runcall(main, ["serve"])
    finally:
        profiler.dump_stats(out)
    sys.exit(code)
