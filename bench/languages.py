"""Per language: the warm sandboxed job (verdict in hand) against the bare host running
the same test command on the same files, in one run.

    python bench/languages.py [--rounds 20] [--languages python,ruby]
                              [--json bench/data/languages.json]

The files are each language's canary, its smallest passing fixture case
(`runners/<lang>/fixtures/`). The bare command is `runners/<lang>/bench.json`'s `bare`
(argv, as an author types it in the exercise's directory). It runs with the image's own
toolchain, not the host's (whose Debian release and versions differ): the image's
filesystem is exported once (`docker export`, kept in .cache/bench-rootfs/<image id>) and
the command runs `chroot`ed into it, as the job user, with the language's environment,
/dev and /proc bind-mounted for the run; no container, no cgroup, no supervisor: what an
author's machine with those versions would do.
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
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sandboxd.catalog import image_for, load_spec  # noqa: E402
from sandboxd.conformance import case_job, load_case  # noqa: E402
from sandboxd.images import canary_case_dir, languages  # noqa: E402
from sandboxd.jobs import RunContext, execute  # noqa: E402
from sandboxd.models import Verdict  # noqa: E402
from sandboxd.pool import Pool, PoolConfig  # noqa: E402

JOB_UID = 10001  # images/base/recipe.json's learner
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/work",
    "LANG": "C.UTF-8",
    "TMPDIR": "/tmp",
}  # the sandbox's defaults (docs/runner-modes.md)
ROOTFS_CACHE = REPO / ".cache" / "bench-rootfs"

SLOW_BARE_MS = 200.0


def image_rootfs(image: str) -> Path:
    """The image's filesystem as a directory on the host, exported once per image id."""
    info = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", image], capture_output=True, check=True
        ).stdout
    )
    image_id = info[0]["Id"].split(":")[-1][:16]
    root = ROOTFS_CACHE / image_id
    if (root / ".complete").exists():
        return root
    if ROOTFS_CACHE.is_dir():  # other ids are stale images: drop them
        for old in ROOTFS_CACHE.iterdir():
            if not os.path.ismount(old / "proc") and not os.path.ismount(old / "dev"):
                shutil.rmtree(old, ignore_errors=True)
    root.mkdir(parents=True)
    cid = subprocess.run(
        ["docker", "create", image, "/bin/true"], capture_output=True, check=True, text=True
    ).stdout.strip()
    try:
        export = subprocess.Popen(["docker", "export", cid], stdout=subprocess.PIPE)
        subprocess.run(
            ["tar", "-x", "--numeric-owner", "-C", str(root)], stdin=export.stdout, check=True
        )
        if export.wait() != 0:
            raise SystemExit(f"docker export of {image} failed")
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)
    (root / ".complete").touch()
    return root


@contextlib.contextmanager
def mounted(root: Path) -> Iterator[None]:
    """/dev and /proc inside the exported filesystem for the length of the runs."""
    done: list[Path] = []
    try:
        for target, argv in (
            (root / "dev", ["mount", "--rbind", "/dev"]),
            (root / "proc", ["mount", "-t", "proc", "proc"]),
        ):
            target.mkdir(exist_ok=True)
            if not os.path.ismount(target):
                subprocess.run([*argv, str(target)], check=True)
                done.append(target)
        yield
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "-R", "-l", str(target)], check=False)


def run_chrooted(
    root: Path, cwd: str, argv: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[bytes]:
    def enter() -> None:  # in the child, before exec: the image's root, the job user
        os.chroot(root)
        os.chdir(cwd)
        os.setgroups([])
        os.setgid(JOB_UID)
        os.setuid(JOB_UID)

    return subprocess.run(
        argv, env=env, preexec_fn=enter, stdin=subprocess.DEVNULL, capture_output=True, check=False
    )


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
    case = load_case(language, case_dir)
    job = case_job(case)
    docker = aiodocker.Docker()
    spec = await load_spec(docker, language)
    pool = Pool(docker, {language: spec}, PoolConfig(size=1, spares=1))
    bare: list[float] = []
    boxed: list[float] = []
    root = await asyncio.to_thread(image_rootfs, image_for(language))
    env = {**BASE_ENV, **dict(spec.env)}
    work = root / "work" / f"bench-{case_dir.name}"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(case_dir, work, ignore=shutil.ignore_patterns("*.json"))
    for path in [work, *work.rglob("*")]:
        os.lchown(path, JOB_UID, JOB_UID)
    inside = f"/work/{work.name}"
    with mounted(root):
        try:
            await pool.start()
            if not await pool.wait_warm(180):
                raise SystemExit(f"{language}: no sandbox started: {pool.last_error(language)}")
            for i in range(rounds + 2):
                t0 = time.perf_counter()
                proc = await asyncio.to_thread(run_chrooted, root, inside, argv, env)
                took = (time.perf_counter() - t0) * 1000
                if proc.returncode != 0:
                    tail = (proc.stdout + proc.stderr)[-600:]
                    raise SystemExit(f"{language}: the bare run failed: {tail!r}")
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
            shutil.rmtree(work, ignore_errors=True)
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
