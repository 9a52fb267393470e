"""Per language: the warm sandboxed job (verdict in hand) against the bare host running
the same test command on the same files, in one run.

    python bench/languages.py [--rounds 20] [--languages python,ruby]
                              [--json bench/data/languages.json]

The files are each language's canary, its smallest passing fixture case
(`runners/<lang>/fixtures/`). The bare command is `runners/<lang>/bench.json`'s `bare`
(argv, run in a copy of the case's directory; `host_packages` names the Debian packages
it needs, and a language whose command is missing on the host is listed, not measured).
The sandboxed job is `jobs.execute()` through a warm pool of the language's image (one
slot and a spare), as the daemon and `sandboxd run` use it. Rounds alternate bare and
sandboxed after two warm-ups each (the host's caches warm, as an author's second run),
with a 0.2 s pause after each so resets end; medians and p95 are printed.

Goals (issue "Languages I"): where the bare run takes 200 ms or more, the sandboxed job
at most 0.5x of it; where it is faster, at most the bare time + 30 ms.
Bounded: --rounds runs per method and language (default 20).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sandboxd.catalog import load_spec  # noqa: E402
from sandboxd.conformance import case_job, load_case  # noqa: E402
from sandboxd.images import canary_case_dir, languages  # noqa: E402
from sandboxd.jobs import RunContext, execute  # noqa: E402
from sandboxd.models import Verdict  # noqa: E402
from sandboxd.pool import Pool, PoolConfig  # noqa: E402

SLOW_BARE_MS = 200.0
RATIO_GOAL = 0.5
ADDED_GOAL_MS = 30.0


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def measure(language: str, rounds: int) -> dict[str, Any] | None:
    import aiodocker

    bench_file = REPO / "runners" / language / "bench.json"
    case_dir = canary_case_dir(language)
    if not bench_file.is_file() or case_dir is None:
        print(f"{language}: no bench.json or no passing fixture; skipped")
        return None
    bench = json.loads(bench_file.read_text())
    argv = list(bench["bare"])
    if shutil.which(argv[0]) is None:
        packages = " ".join(bench.get("host_packages", []))
        print(f"{language}: {argv[0]} is not on this host (apt-get install {packages}); skipped")
        return None
    case = load_case(language, case_dir)
    job = case_job(case)
    docker = aiodocker.Docker()
    pool = Pool(docker, {language: await load_spec(docker, language)}, PoolConfig(size=1, spares=1))
    bare: list[float] = []
    boxed: list[float] = []
    with tempfile.TemporaryDirectory(prefix=f"bench-{language}-") as tmp:
        work = Path(tmp) / case_dir.name
        shutil.copytree(case_dir, work, ignore=shutil.ignore_patterns("*.json"))
        try:
            await pool.start()
            if not await pool.wait_warm(180):
                raise SystemExit(f"{language}: no sandbox started: {pool.last_error(language)}")
            for i in range(rounds + 2):
                t0 = time.perf_counter()
                proc = await asyncio.to_thread(
                    subprocess.run, argv, cwd=work, capture_output=True, check=False
                )
                took = (time.perf_counter() - t0) * 1000
                if proc.returncode != 0:
                    raise SystemExit(f"{language}: the bare run failed: {proc.stdout[-400:]!r}")
                if i >= 2:
                    bare.append(took)
                await asyncio.sleep(0.2)
                t0 = time.perf_counter()
                result = await execute(pool, job, RunContext())
                took = (time.perf_counter() - t0) * 1000
                if result.status is not Verdict.PASSED:
                    raise SystemExit(f"{language}: the sandboxed job gave {result.status.value}")
                if i >= 2:
                    boxed.append(took)
                await asyncio.sleep(0.2)
        finally:
            await pool.close()
            await docker.close()
    bare_ms, boxed_ms = statistics.median(bare), statistics.median(boxed)
    if bare_ms >= SLOW_BARE_MS:
        goal, met = f"<= {RATIO_GOAL}x", boxed_ms <= RATIO_GOAL * bare_ms
    else:
        goal, met = f"<= bare + {ADDED_GOAL_MS:g} ms", boxed_ms <= bare_ms + ADDED_GOAL_MS
    return {
        "language": language,
        "case": case.name,
        "bare_ms": bare_ms,
        "bare_p95_ms": p95(bare),
        "sandboxed_ms": boxed_ms,
        "sandboxed_p95_ms": p95(boxed),
        "ratio": boxed_ms / bare_ms,
        "goal": goal,
        "met": met,
        "bare_argv": argv,
    }


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    wanted = args.languages.split(",") if args.languages else languages()
    rows = []
    for language in wanted:
        print(f"{language}...", flush=True)
        row = await measure(language, args.rounds)
        if row is not None:
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="runs per method (default 20)")
    parser.add_argument("--languages", help="comma-separated (default: every language)")
    parser.add_argument("--json", type=Path, help="write the figures here (for plot.py)")
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    print(f"\nwarm sandboxed job vs the bare host, medians of {args.rounds} (p95):\n")
    head = ("language", "case", "bare ms", "sandboxed ms", "ratio", "goal", "")
    print("{:<12} {:<10} {:>16} {:>16} {:>6}  {:<18} {}".format(*head))
    for r in rows:
        print(
            f"{r['language']:<12} {r['case']:<10} "
            f"{r['bare_ms']:>7.1f} ({r['bare_p95_ms']:>6.1f}) "
            f"{r['sandboxed_ms']:>7.1f} ({r['sandboxed_p95_ms']:>6.1f}) {r['ratio']:>5.2f}x  "
            f"{r['goal']:<18} {'met' if r['met'] else 'NOT met'}"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"rounds": args.rounds, "languages": rows}, indent=2) + "\n"
        )
        print(f"\n(raw figures written to {args.json})")


if __name__ == "__main__":
    main()
