"""Every language's golden fixtures in its real image: one test for all of them.

`runners/<lang>/fixtures/<case>/` (see sandboxd/conformance.py) is sent as a tests-mode
job through a warm pool of `<lang>`'s image; the verdict and the results must be the
case's. Adding a language adds its cases here without touching this file. With
SANDBOXD_LANGUAGES set (local work on a subset), the other languages' cases are skipped;
CI builds and runs them all.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiodocker
import pytest
from conftest import TEST_HOST_ID

from sandboxd.catalog import load_spec
from sandboxd.conformance import Case, find_cases, run_case
from sandboxd.pool import Pool, PoolConfig
from sandboxd.sandbox import RunnerMode

REPO = Path(__file__).resolve().parent.parent
RUNNERS = REPO / "runners"


def _subset() -> set[str] | None:
    raw = os.environ.get("SANDBOXD_LANGUAGES", "").strip()
    return {x.strip() for x in raw.split(",") if x.strip()} or None


def _languages() -> list[str]:
    return sorted(p.name for p in RUNNERS.iterdir() if (p / "fixtures").is_dir())


def _all_cases() -> list[Case]:
    return [case for lang in _languages() for case in find_cases(RUNNERS / lang / "fixtures", lang)]


CASES = _all_cases()


def test_every_runner_has_fixture_cases_and_each_is_well_formed() -> None:
    """find_cases raises CaseError for a malformed case (at collection, above); each
    language must have some, including a passing one (the canary's)."""
    for lang in _languages():
        cases = [c for c in CASES if c.language == lang]
        assert cases, f"runners/{lang}/fixtures has no cases"
        assert any(c.verdict.value == "passed" for c in cases), f"{lang}: no passing case"


@pytest.fixture(scope="session")
async def language_pool(docker: aiodocker.Docker) -> AsyncIterator[Pool]:
    """One warm sandbox per language under test (its image as built by `make test`)."""
    subset = _subset()
    wanted = [lang for lang in _languages() if subset is None or lang in subset]
    specs = {lang: await load_spec(docker, lang) for lang in wanted}
    pool = Pool(docker, specs, PoolConfig(size=1), host_id=TEST_HOST_ID)
    try:
        await pool.start()
        assert await pool.wait_warm(180), {lang: pool.last_error(lang) for lang in wanted}
        yield pool
    finally:
        await pool.close()


@pytest.mark.docker
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
async def test_fixture_case_in_its_image(language_pool: Pool, case: Case) -> None:
    subset = _subset()
    if subset is not None and case.language not in subset:
        pytest.skip(f"{case.language} is not in SANDBOXD_LANGUAGES")
    run = await run_case(language_pool, case)
    detail = "\n".join([run.summary(), run.message, *run.differences])
    assert run.ok, detail
    assert run.message, "a verdict comes with a message for the learner"
    if language_pool.spec(case.language).runner_mode is not RunnerMode.COLD:
        # The image's warm runner served it (a case with a small memory limit may not).
        assert run.warm or case.limits.memory_mb is not None, "a runner was started for it"
