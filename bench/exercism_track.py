"""An Exercism track's exercises through a language's image: reference solutions pass,
starter stubs do not, and every test of the file runs.

    python bench/exercism_track.py GIT_DIR --language ruby [--slugs two-fer,leap] [--limit N]

GIT_DIR is a clone of the track (`exercism/<track>`, e.g. the `fetch` tool's
/work/.mirror/exercism+ruby/repo); it is read with `git show`, nothing of it is copied
into this project. For each exercise (`exercises/practice/*` and `exercises/concept/*`,
sorted, the first --limit or the --slugs named), two jobs run through one warm pool of
the language's image, as `sandboxd run` would send them:

- the reference: the exercise's files with the solution replaced by `.meta/`'s example
  (or exemplar), which must be `passed`;
- the stub: the files as a learner gets them, which must not be `passed`.

Printed per exercise: each verdict, tests passed/run, and the number of canonical cases
`.meta/tests.toml` includes (where there is one; a track may add tests of its own, so
equality is a hint, not the rule). Then the totals, and the exercises that were wrong.
Bounded: --limit exercises (default 20), each job by the image's limits.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sandboxd.catalog import load_spec  # noqa: E402
from sandboxd.jobs import RunContext, execute  # noqa: E402
from sandboxd.models import Job, Result, Verdict  # noqa: E402
from sandboxd.pool import Pool, PoolConfig  # noqa: E402


def git(git_dir: Path, *args: str) -> bytes:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], capture_output=True, check=True
    ).stdout


@dataclass
class Exercise:
    slug: str
    files: dict[str, bytes]  # as the learner gets them
    solution: list[str]
    reference: dict[str, bytes]  # solution file -> the example's content
    canonical_cases: int | None


def lenient_files(raw: str) -> dict[str, list[str]]:
    """`files`' lists out of a config that does not parse: each `"key": [...]` alone."""
    found: dict[str, list[str]] = {}
    for key, items in re.findall(r'"(solution|test|example|exemplar)"\s*:\s*(\[[^\]]*\])', raw):
        try:
            found[key] = [str(x) for x in json.loads(items)]
        except json.JSONDecodeError:
            continue
    return found


def load_exercise(git_dir: Path, path: str) -> Exercise | None:
    names = git(git_dir, "ls-tree", "-r", "--name-only", "HEAD", path + "/").decode().split()
    try:
        raw = git(git_dir, "show", f"HEAD:{path}/.meta/config.json").decode()
    except subprocess.CalledProcessError:
        return None
    try:
        config: dict[str, Any] = json.loads(raw)
    except json.JSONDecodeError:  # a track's file can be broken (a missing comma)
        config = {"files": lenient_files(raw)}
        print(f"({path}: .meta/config.json is not JSON; its file lists read leniently)")
    files_cfg = config.get("files", {})
    solution = list(files_cfg.get("solution", []))
    examples = list(files_cfg.get("example") or files_cfg.get("exemplar") or [])
    if not solution or len(examples) != len(solution):
        return None
    files = {}
    for name in names:
        rel = name[len(path) + 1 :]
        if rel.split("/", 1)[0] in (".meta", ".docs", ".approaches", ".articles"):
            continue
        files[rel] = git(git_dir, "show", f"HEAD:{name}")
    reference = {
        sol: git(git_dir, "show", f"HEAD:{path}/{ex}")
        for sol, ex in zip(solution, examples, strict=True)
    }
    cases = None
    if f"{path}/.meta/tests.toml" in names:
        toml = tomllib.loads(git(git_dir, "show", f"HEAD:{path}/.meta/tests.toml").decode())
        cases = sum(1 for v in toml.values() if isinstance(v, dict) and v.get("include", True))
    return Exercise(path.rsplit("/", 1)[1], files, solution, reference, cases)


def job_of(language: str, job_id: str, files: dict[str, bytes]) -> Job:
    return Job.model_validate(
        {
            "schema": "sandboxd.job/v1",
            "id": job_id[:128],
            "language": language,
            "files": [
                {"path": p, "content": base64.b64encode(c).decode(), "encoding": "base64"}
                for p, c in sorted(files.items())
            ],
        }
    )


def tally(result: Result) -> str:
    passed = sum(t.status.value == "pass" for t in result.tests)
    return f"{passed}/{len(result.tests)}"


async def run(args: argparse.Namespace) -> int:
    import aiodocker

    git_dir = Path(args.git_dir)
    paths = [
        p
        for kind in ("practice", "concept")
        for p in git(git_dir, "ls-tree", "--name-only", "HEAD", f"exercises/{kind}/")
        .decode()
        .split()
    ]
    if args.slugs:
        wanted = set(args.slugs.split(","))
        paths = [p for p in paths if p.rsplit("/", 1)[1] in wanted]
    else:
        paths = sorted(paths, key=lambda p: p.rsplit("/", 1)[1])[: args.limit]
    docker = aiodocker.Docker()
    pool = Pool(docker, {args.language: await load_spec(docker, args.language)}, PoolConfig(size=2))
    wrong: list[str] = []
    rows = 0
    try:
        await pool.start()
        if not await pool.wait_warm(180):
            raise SystemExit(f"no sandbox started: {pool.last_error(args.language)}")
        head = ("exercise", "reference", "tests", "stub", "tests", "cases")
        print("{:<28} {:<16} {:>9} {:<16} {:>9} {:>6}".format(*head))
        for path in paths:
            ex = load_exercise(git_dir, path)
            if ex is None:
                continue
            rows += 1
            ref_files = {**ex.files, **ex.reference}
            ref, stub = await asyncio.gather(
                execute(pool, job_of(args.language, f"ref-{ex.slug}", ref_files), RunContext()),
                execute(pool, job_of(args.language, f"stub-{ex.slug}", ex.files), RunContext()),
            )
            ok = ref.status is Verdict.PASSED and stub.status is not Verdict.PASSED
            if not ok:
                why = f"reference {ref.status.value} ({ref.message[:120]})"
                wrong.append(f"{ex.slug}: {why}; stub {stub.status.value}")
            cases = "-" if ex.canonical_cases is None else str(ex.canonical_cases)
            print(
                f"{ex.slug:<28} {ref.status.value:<16} {tally(ref):>9} {stub.status.value:<16} "
                f"{tally(stub):>9} {cases:>6}" + ("" if ok else "  <-")
            )
    finally:
        await pool.close()
        await docker.close()
    print(f"\n{rows - len(wrong)} of {rows} exercises right (reference passed, stub did not)")
    for line in wrong:
        print(f"  {line}")
    return 0 if not wrong else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("git_dir", help="a clone of the track (its git directory)")
    parser.add_argument("--language", required=True, help="the sandboxd language to run them in")
    parser.add_argument(
        "--slugs", help="comma-separated exercise slugs (default: the first --limit)"
    )
    parser.add_argument("--limit", type=int, default=20, help="exercises (default 20)")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
