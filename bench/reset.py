"""The reset between two jobs: what it costs on a clean sandbox, and what a hostile job
can make it cost.

    clean        a 1-test job, then `Sandbox.reset()` timed (kill, verify, empty the
                 directories, check the namespaces, ask the supervisor and the fork runner)
    after X      a hostile job X (a tree of hard links, a deep tree, IPC objects,
                 loopback TCP), then the reset timed: it either cleans the sandbox or
                 says it must be retired — how long it takes to decide is the cost
    acquire      through a pool of one slot and a spare (what `sandboxd run --pool-size 1
                 DIR...` keeps): the next job's `acquire_ms` right after each hostile job

Bounded: ROUNDS clean resets (default 20) and each hostile job once per round of
`--hostile-rounds` (default 3). Prints medians. Run with `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import aiodocker

from sandboxd.catalog import load_spec
from sandboxd.jobs import RunContext, execute
from sandboxd.models import Job
from sandboxd.pool import Pool, PoolConfig
from sandboxd.sandbox import Sandbox

TWO_FER = {
    "two_fer.py": "def two_fer(name='you'):\n    return f'One for {name}, one for me.'\n",
    "two_fer_test.py": (
        "from two_fer import two_fer\n\n\ndef test_name():\n"
        "    assert two_fer('Alice') == 'One for Alice, one for me.'\n"
    ),
}

HOSTILE = {
    "800k hard links": (
        "import os\nopen('/tmp/f', 'w').close()\n"
        "for i in range(800_000):\n    os.link('/tmp/f', f'/tmp/l{i}')\n"
    ),
    "3000-deep tree": (
        "import os\nos.chdir('/tmp')\nfor _ in range(3000):\n    os.mkdir('d'); os.chdir('d')\n"
    ),
    "IPC objects": (
        "import ctypes\nlibc = ctypes.CDLL(None)\n"
        "for i in range(100):\n    libc.semget(0x1000 + i, 100, 0o1666)\n"
        "    libc.shmget(0x2000 + i, 4096, 0o1666)\n"
    ),
    "loopback TCP": (
        "import socket\ns = socket.socket(); s.bind(('127.0.0.1', 5555)); s.listen()\n"
        "for _ in range(50):\n"
        "    c = socket.create_connection(('127.0.0.1', 5555)); a, _ = s.accept()\n"
        "    a.close(); c.close()\n"
    ),
}


def job(i: int, files: dict[str, str], command: str | None = None) -> Job:
    doc: dict[str, object] = {
        "schema": "sandboxd.job/v1",
        "id": f"bench-reset-{i}",
        "language": "python",
        "files": [{"path": p, "content": c} for p, c in files.items()],
        "limits": {"wall_seconds": 60, "cpu_seconds": 60},
    }
    if command is not None:
        doc["command"] = command
    return Job.model_validate(doc)


async def timed_reset(box: Sandbox) -> tuple[float, object]:
    t0 = time.perf_counter()
    outcome = await box.reset()
    return time.perf_counter() - t0, outcome


async def main_async(rounds: int, hostile_rounds: int) -> None:
    docker = aiodocker.Docker()
    try:
        spec = await load_spec(docker, "python")
        labels = {"sandboxd.managed": "true", "sandboxd.host": "bench-reset"}
        clean: list[float] = []
        box = await Sandbox.create(docker, spec, labels)
        try:
            for i in range(rounds):
                await box.run(job(i, TWO_FER), spec.limits)
                seconds, outcome = await timed_reset(box)
                if outcome is not None:
                    raise SystemExit(f"a clean sandbox was retired: {outcome}")
                clean.append(seconds)
                await asyncio.sleep(0.3)  # whatever the job left running ends off the clock
        finally:
            await box.destroy()

        after: dict[str, list[float]] = {name: [] for name in HOSTILE}
        verdicts: dict[str, str] = {}
        for r in range(hostile_rounds):
            for name, program in HOSTILE.items():
                box = await Sandbox.create(docker, spec, labels)
                try:
                    await box.run(job(r, {"h.py": program}, "python3 h.py"), spec.limits)
                    seconds, outcome = await timed_reset(box)
                finally:
                    await box.destroy()
                after[name].append(seconds)
                verdicts[name] = "cleaned" if outcome is None else f"retired ({outcome})"
            print(f"hostile round {r + 1}/{hostile_rounds} done", file=sys.stderr, flush=True)

        acquire: dict[str, list[int]] = {name: [] for name in HOSTILE}
        # One slot and a spare: what `sandboxd run --pool-size 1 DIR...` keeps.
        config = PoolConfig(size=1, spares=1)
        pool = Pool(docker, {"python": spec}, config, host_id="bench-reset")
        await pool.start()
        try:
            if not await pool.wait_warm(120):
                raise SystemExit(f"pool did not warm up: {pool.last_error('python')}")
            ctx = RunContext()
            for r in range(hostile_rounds):
                for name, program in HOSTILE.items():
                    await execute(pool, job(r, {"h.py": program}, "python3 h.py"), ctx)
                    result = await execute(pool, job(r, TWO_FER), ctx)
                    acquire[name].append(result.timing.acquire_ms)
                    await asyncio.sleep(1.0)  # let the pool refill off the clock
        finally:
            await pool.close()
    finally:
        await docker.close()

    print(f"\nreset of a clean sandbox: median {statistics.median(clean) * 1000:.1f} ms, "
          f"max {max(clean) * 1000:.1f} ms ({rounds} resets)\n")  # fmt: skip
    print(f"{'after':<18} {'reset ms':>9} {'next acquire ms':>16}  outcome")
    for name in HOSTILE:
        reset_ms = statistics.median(after[name]) * 1000
        acq = statistics.median(acquire[name])
        print(f"{name:<18} {reset_ms:9.1f} {acq:16.0f}  {verdicts[name]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-r", "--rounds", type=int, default=20)
    parser.add_argument("--hostile-rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main_async(args.rounds, args.hostile_rounds))


if __name__ == "__main__":
    main()
