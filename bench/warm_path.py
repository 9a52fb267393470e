"""Warm-path latency of a 1-test pytest job, against two baselines measured in the same run.

    sandboxd   execute() through a warm pool: files in, runner, verdict in hand (the
               fork runner has pytest imported and forks a child per job; and, as the
               baseline of that, the same pool starting the runner per job, cold)
    host       the same files run by bare `python3 -m pytest` on the host (no isolation)
    docker-run `docker run --rm` of the same image and runner (a cold container per job)

Prints medians, p95 and ratios. Bounded: N iterations each (default 20), nothing else.
Run with `make bench`.
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
from dataclasses import replace
from pathlib import Path

import aiodocker

from sandboxd.catalog import load_spec
from sandboxd.jobs import RunContext, execute
from sandboxd.models import Job, Verdict
from sandboxd.pool import Pool, PoolConfig
from sandboxd.sandbox import RunnerMode

SOLUTION = "def two_fer(name='you'):\n    return f'One for {name}, one for me.'\n"
TESTS = (
    "from two_fer import two_fer\n\n\n"
    "def test_a_name_given():\n"
    "    assert two_fer('Alice') == 'One for Alice, one for me.'\n"
)


def job(i: int) -> Job:
    return Job.model_validate(
        {
            "schema": "sandboxd.job/v1",
            "id": f"bench-{i}",
            "language": "python",
            "files": [
                {"path": "two_fer.py", "content": SOLUTION},
                {"path": "two_fer_test.py", "content": TESTS},
            ],
        }
    )


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


async def bench_sandboxd(
    n: int, pool_size: int, mode: RunnerMode = RunnerMode.FORK
) -> list[float]:
    docker = aiodocker.Docker()
    try:
        spec = replace(await load_spec(docker, "python"), runner_mode=mode)
        pool = Pool(docker, {"python": spec}, PoolConfig(size=pool_size), host_id="bench")
        await pool.start()
        if not await pool.wait_warm(120):
            raise SystemExit(f"pool did not warm up: {pool.last_error('python')}")
        ctx = RunContext()
        samples = []
        for i in range(n + 2):
            t0 = time.perf_counter()
            result = await execute(pool, job(i), ctx)
            elapsed = time.perf_counter() - t0
            if result.status is not Verdict.PASSED:
                raise SystemExit(f"unexpected verdict {result.status}: {result.message}")
            if i >= 2:  # the first jobs warm Python's own caches
                samples.append(elapsed)
        await pool.close()
        return samples
    finally:
        await docker.close()


def write_files(directory: Path) -> None:
    # Readable by the image's job user (uid 10001) when mounted into `docker run`.
    directory.chmod(0o755)
    for name, text in (("two_fer.py", SOLUTION), ("two_fer_test.py", TESTS)):
        (directory / name).write_text(text)
        (directory / name).chmod(0o644)


# The host's Debian python3 has the image's pytest (7.2); the venv's may be newer.
HOST_PYTHON = "/usr/bin/python3" if shutil.which("/usr/bin/python3") else sys.executable


def bench_host(n: int) -> list[float]:
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        write_files(Path(tmp))
        argv = [HOST_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", tmp]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        for _ in range(n):
            t0 = time.perf_counter()
            proc = subprocess.run(argv, capture_output=True, env=env, check=False)
            samples.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                raise SystemExit(f"host pytest failed: {proc.stdout.decode()[-500:]}")
    return samples


def bench_docker_run(n: int) -> list[float]:
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        write_files(Path(tmp))
        argv = [
            "docker", "run", "--rm", "--network", "none", "--read-only", "--init",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--memory", "256m", "--memory-swap", "256m", "--pids-limit", "128",
            "--tmpfs", "/tmp:rw,exec,size=64m,uid=10001,gid=10001",
            "--user", "10001:10001", "-v", f"{tmp}:/input:ro",
            "sandboxd/python:latest",
            "/opt/sandboxd/runner/run", "/input", "/tmp",
        ]  # fmt: skip
        for _ in range(n):
            t0 = time.perf_counter()
            proc = subprocess.run(argv, capture_output=True, check=False)
            samples.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                raise SystemExit(f"docker run failed: {proc.stderr.decode()[-500:]}")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="iterations per method (default 20)")
    parser.add_argument("--pool-size", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("docker") is None:
        raise SystemExit("docker CLI not found")
    print(f"1-test pytest job, {args.n} runs each, {os.cpu_count()} CPUs\n", flush=True)
    results = {
        "sandboxd warm pool": asyncio.run(bench_sandboxd(args.n, args.pool_size)),
        "  cold runner": asyncio.run(bench_sandboxd(args.n, args.pool_size, RunnerMode.COLD)),
        "bare pytest on host": bench_host(args.n),
        "docker run --rm": bench_docker_run(args.n),
    }
    base_median, _ = summary(results["sandboxd warm pool"])
    print(f"{'method':<22} {'median ms':>10} {'p95 ms':>10} {'vs sandboxd':>12}")
    for name, samples in results.items():
        median, p95 = summary(samples)
        ratio = median / base_median
        print(f"{name:<22} {median * 1000:>10.1f} {p95 * 1000:>10.1f} {ratio:>11.2f}x")


if __name__ == "__main__":
    main()
