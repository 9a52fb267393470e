"""Hostile programs in tests mode, per language: `runners/<lang>/hostile/<case>/`.

Each case is an exercise whose code attacks the sandbox from inside its tests (eats
memory, forks without end, leaves a detached process or files behind) and a
`hostile.json`: `{"verdicts": [...], "message_contains": "...", "limits": {...},
"about": "..."}`. It must get one of its learner verdicts (never `internal_error`), and
leave the host ready for the next job: the same pool (one sandbox, no spare, so the
next job gets that sandbox again or its replacement) then shows a clean /work and /tmp
and no more processes than before, and the language's smallest passing fixture passes.
Adding a language's cases touches no test.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from conftest import TEST_HOST_ID

from sandboxd.catalog import load_spec
from sandboxd.conformance import find_cases, run_case
from sandboxd.jobs import RunContext, execute
from sandboxd.models import Job, Verdict
from sandboxd.pool import Pool, PoolConfig

pytestmark = pytest.mark.docker

RUNNERS = Path(__file__).resolve().parent.parent / "runners"
META = "hostile.json"
CTX = RunContext()
# What a job sees of its sandbox: the files left in /work and /tmp (our output dir
# aside) and how many processes there are, itself included.
# The count is the shell's own glob: a pipeline (`ls /proc | grep -c`) counted its own
# second process or not, depending on which of the two started first.
PROBE = "find /work /tmp -mindepth 1 -not -path '/tmp/.sandboxd*'; set -- /proc/[0-9]*; echo $#"


@dataclass(frozen=True)
class Hostile:
    language: str
    name: str
    directory: Path
    verdicts: tuple[Verdict, ...]
    message_contains: str
    limits: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.language}/{self.name}"

    def job(self) -> Job:
        files = [
            {"path": p.relative_to(self.directory).as_posix(), "encoding": "base64",
             "content": base64.b64encode(p.read_bytes()).decode()}
            for p in sorted(self.directory.rglob("*"))
            if p.is_file() and p.name != META
        ]  # fmt: skip
        return Job.model_validate(
            {"schema": "sandboxd.job/v1", "id": f"hostile-{self.language}-{self.name}",
             "language": self.language, "files": files, "limits": self.limits}
        )  # fmt: skip


def _cases() -> list[Hostile]:
    out = []
    for meta in sorted(RUNNERS.glob(f"*/hostile/*/{META}")):
        doc = json.loads(meta.read_text())
        directory = meta.parent
        out.append(
            Hostile(
                language=directory.parent.parent.name,
                name=directory.name,
                directory=directory,
                verdicts=tuple(Verdict(v) for v in doc["verdicts"]),
                message_contains=doc.get("message_contains", ""),
                limits=doc.get("limits", {}),
            )
        )
    return out


CASES = _cases()


def _subset() -> set[str] | None:
    raw = os.environ.get("SANDBOXD_LANGUAGES", "").strip()
    return {x.strip() for x in raw.split(",") if x.strip()} or None


@pytest.fixture(scope="module")
async def hostile_pool(docker: aiodocker.Docker) -> AsyncIterator[Pool]:
    subset = _subset()
    languages = sorted({c.language for c in CASES if subset is None or c.language in subset})
    specs = {lang: await load_spec(docker, lang) for lang in languages}
    pool = Pool(docker, specs, PoolConfig(size=1, spares=0), host_id=TEST_HOST_ID)
    try:
        await pool.start()
        assert await pool.wait_warm(180), {lang: pool.last_error(lang) for lang in languages}
        yield pool
    finally:
        await pool.close()


async def probe(pool: Pool, language: str) -> tuple[list[str], int]:
    job = Job.model_validate(
        {"schema": "sandboxd.job/v1", "id": f"probe-{language}", "language": language,
         "command": PROBE}
    )  # fmt: skip
    result = await execute(pool, job, CTX)
    assert result.status is Verdict.PASSED, result
    *files, count = result.stdout.split()
    return files, int(count)


def test_the_hostile_cases_are_found() -> None:
    assert {"ruby"} <= {c.language for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
async def test_hostile_case_gets_a_learner_verdict_and_leaves_the_host_ready(
    hostile_pool: Pool, case: Hostile
) -> None:
    subset = _subset()
    if subset is not None and case.language not in subset:
        pytest.skip(f"{case.language} is not in SANDBOXD_LANGUAGES")
    before_files, before_procs = await probe(hostile_pool, case.language)
    assert before_files == []
    result = await execute(hostile_pool, case.job(), CTX)
    assert result.status in case.verdicts, result
    assert case.message_contains in result.message, result.message
    files, procs = await probe(hostile_pool, case.language)
    assert files == [], f"left for the next job: {files}"
    assert procs == before_procs, "a process of the hostile job is still there"
    canary = min(
        (c for c in find_cases(RUNNERS / case.language / "fixtures", case.language)
         if c.verdict is Verdict.PASSED),
        key=lambda c: sum(p.stat().st_size for p in c.directory.rglob("*") if p.is_file()),
    )  # fmt: skip
    run = await run_case(hostile_pool, canary)
    assert run.ok, run.summary()
