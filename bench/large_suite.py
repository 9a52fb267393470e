"""Per-test overhead: a large pytest suite in the sandbox against bare pytest on the host.

    host         `/usr/bin/python3 -m pytest -q` on the files, on the host (the image's
                 Python and pytest: both are Debian's), no isolation, no plugin
    sandboxd     `jobs.execute()` of the same files through a warm pool (tests mode:
                 our runner and its plugin, results.json, verdict in hand)
    in sandbox   the same bare `python3 -m pytest -q` as a command-mode job: what the
                 sandbox itself costs, without our runner

Rounds are interleaved (host, sandboxd, in sandbox, host, ...) so machine noise hits
each method alike. Prints medians and ratios against the host. Bounded: ROUNDS rounds of
one run each (default 5). Run with `make bench` or `python bench/large_suite.py -t 5000`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiodocker

from sandboxd.catalog import load_spec
from sandboxd.jobs import RunContext, execute
from sandboxd.models import Job, Verdict
from sandboxd.pool import Pool, PoolConfig

HOST_PYTHON = "/usr/bin/python3" if shutil.which("/usr/bin/python3") else sys.executable
LIMITS = {"wall_seconds": 120, "cpu_seconds": 120}


def suite(n: int) -> dict[str, str]:
    return {
        "doubler.py": "def double(i):\n    return 2 * i\n",
        "doubler_test.py": (
            "import pytest\n\nfrom doubler import double\n\n\n"
            f"@pytest.mark.parametrize('i', range({n}))\n"
            "def test_double(i):\n    assert double(i) == i + i\n"
        ),
    }


def job(files: dict[str, str], i: int, command: str | None = None) -> Job:
    doc: dict[str, object] = {
        "schema": "sandboxd.job/v1",
        "id": f"bench-large-{i}",
        "language": "python",
        "files": [{"path": p, "content": c} for p, c in files.items()],
        "limits": LIMITS,
    }
    if command is not None:
        doc["command"] = command
    return Job.model_validate(doc)


def run_host(directory: Path) -> float:
    argv = [HOST_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(directory)]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, env=env, check=False, cwd=directory)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"host pytest failed: {proc.stdout.decode()[-500:]}")
    return elapsed


async def main_async(n_tests: int, rounds: int) -> None:
    files = suite(n_tests)
    docker = aiodocker.Docker()
    pool = None
    try:
        spec = await load_spec(docker, "python")
        pool = Pool(docker, {"python": spec}, PoolConfig(size=1), host_id="bench-large")
        await pool.start()
        if not await pool.wait_warm(120):
            raise SystemExit(f"pool did not warm up: {pool.last_error('python')}")
        ctx = RunContext()
        samples: dict[str, list[float]] = {"host": [], "sandboxd": [], "in sandbox": []}
        run_ms: dict[str, list[float]] = {"sandboxd": [], "in sandbox": []}
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in files.items():
                (Path(tmp) / name).write_text(text)
            for r in range(rounds):
                samples["host"].append(run_host(Path(tmp)))
                for method, command in (
                    ("sandboxd", None),
                    ("in sandbox", "python3 -m pytest -q -p no:cacheprovider"),
                ):
                    t0 = time.perf_counter()
                    result = await execute(pool, job(files, r, command), ctx)
                    samples[method].append(time.perf_counter() - t0)
                    run_ms[method].append(result.timing.run_ms / 1000)
                    if result.status is not Verdict.PASSED:
                        raise SystemExit(f"{method}: {result.status.value}: {result.message}")
                    if command is None and len(result.tests) != n_tests:
                        raise SystemExit(f"{method}: {len(result.tests)} tests reported")
                    await asyncio.sleep(0.5)  # let the reset finish off the clock
                print(f"round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    finally:
        if pool is not None:
            await pool.close()
        await docker.close()

    host = statistics.median(samples["host"])
    print(f"{n_tests} parametrised tests, {rounds} rounds, {os.cpu_count()} CPUs\n")
    print(f"{'method':<12} {'median s':>9} {'run s':>7} {'vs host':>8}")
    for method, values in samples.items():
        median = statistics.median(values)
        run = f"{statistics.median(run_ms[method]):7.2f}" if method in run_ms else f"{'':7}"
        print(f"{method:<12} {median:9.2f} {run} {median / host:7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-t", "--tests", type=int, default=5000, help="tests (default 5000)")
    parser.add_argument("-r", "--rounds", type=int, default=5, help="rounds (default 5)")
    args = parser.parse_args()
    asyncio.run(main_async(args.tests, args.rounds))


if __name__ == "__main__":
    main()
