"""Two images' runners side by side: the same 1-test job through a warm pool of each,
alternately, in one run (the way to measure a change to a runner or an image).

    python bench/runner_ab.py sandboxd/python:<old-hash> [sandboxd/python:<new-hash>]

The second image defaults to `sandboxd/python:latest`. Each image gets its own pool of
`--pool-size` slots; jobs alternate between them with `--gap` seconds after each (0:
back to back). The daemon side (this checkout's sandboxd) is the same for both. Prints the
medians of the time to a verdict, the job's run_ms and its CPU (the cgroup's), and the
ratio against the first image. Bounded: N jobs per image (default 40).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import replace

import aiodocker

from sandboxd.catalog import load_spec
from sandboxd.jobs import RunContext, execute
from sandboxd.models import Job, Verdict
from sandboxd.pool import Pool, PoolConfig

FILES = {
    "two_fer.py": "def two_fer(name='you'):\n    return f'One for {name}, one for me.'\n",
    "two_fer_test.py": (
        "from two_fer import two_fer\n\n\ndef test_a_name_given():\n"
        "    assert two_fer('Alice') == 'One for Alice, one for me.'\n"
    ),
}


def job(i: int) -> Job:
    return Job.model_validate(
        {
            "schema": "sandboxd.job/v1",
            "id": f"bench-ab-{i}",
            "language": "python",
            "files": [{"path": p, "content": c} for p, c in FILES.items()],
        }
    )


async def main_async(images: list[str], n: int, pool_size: int, gap: float) -> None:
    docker = aiodocker.Docker()
    pools: dict[str, Pool] = {}
    try:
        base = await load_spec(docker, "python")
        for k, tag in enumerate(images):
            image_id = str((await docker.images.inspect(tag))["Id"])
            spec = replace(base, image=image_id)
            pool = Pool(docker, {"python": spec}, PoolConfig(size=pool_size), host_id=f"ab-{k}")
            pools[tag] = pool
            await pool.start()
            if not await pool.wait_warm(120):
                raise SystemExit(f"{tag}: pool did not warm up: {pool.last_error('python')}")
        ctx = RunContext()
        total: dict[str, list[float]] = {tag: [] for tag in images}
        run: dict[str, list[int]] = {tag: [] for tag in images}
        cpu: dict[str, list[int]] = {tag: [] for tag in images}
        for i in range(n + 2):
            for tag, pool in pools.items():
                t0 = time.perf_counter()
                result = await execute(pool, job(i), ctx)
                elapsed = time.perf_counter() - t0
                if result.status is not Verdict.PASSED:
                    raise SystemExit(f"{tag}: {result.status.value}: {result.message}")
                if i >= 2:  # the first jobs warm Python's own caches
                    total[tag].append(elapsed)
                    run[tag].append(result.timing.run_ms)
                    cpu[tag].append(result.resources.cpu_ms or 0)
                await asyncio.sleep(gap)
    finally:
        for pool in pools.values():
            await pool.close()
        await docker.close()

    first = statistics.median(total[images[0]])
    print(f"1-test job, {n} per image, pools of {pool_size}, {gap:g} s between jobs\n")
    print(f"{'image':<36} {'median ms':>10} {'run ms':>7} {'cpu ms':>7} {'vs first':>9}")
    for tag in images:
        median = statistics.median(total[tag])
        print(
            f"{tag:<36} {median * 1000:10.1f} {statistics.median(run[tag]):7.0f} "
            f"{statistics.median(cpu[tag]):7.0f} {median / first:8.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("-n", type=int, default=40)
    parser.add_argument("--pool-size", type=int, default=1)
    parser.add_argument("--gap", type=float, default=0.3)
    args = parser.parse_args()
    images = args.images if len(args.images) > 1 else [args.images[0], "sandboxd/python:latest"]
    asyncio.run(main_async(images, args.n, args.pool_size, args.gap))


if __name__ == "__main__":
    main()
