"""The Python image beyond the fixtures' own test (tests/test_language_fixtures.py): the
same cases through the runner started cold, and the warm runner under job limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace

import aiodocker
import pytest
from conftest import TEST_HOST_ID
from runner_fixtures import FIXTURES_DIR

from sandboxd.conformance import case_job, find_cases, run_case
from sandboxd.limits import DEFAULT_MAXIMA, clamp
from sandboxd.models import LimitsRequest
from sandboxd.pool import Pool, PoolConfig
from sandboxd.sandbox import RunnerMode, SandboxSpec

pytestmark = pytest.mark.docker

# The work dir inside the sandbox, which the runner's messages must never reveal.
INPUT_DIR = "/work"

CASES = {c.name: c for c in find_cases(FIXTURES_DIR, "python")}


@pytest.fixture(scope="module")
async def cold_pool(docker: aiodocker.Docker, python_spec: SandboxSpec) -> AsyncIterator[Pool]:
    """A pool whose sandboxes start the runner per job, as the job user (cold)."""
    spec = replace(python_spec, runner_mode=RunnerMode.COLD)
    p = Pool(docker, {"python": spec}, PoolConfig(size=1), host_id=TEST_HOST_ID)
    try:
        await p.start()
        assert await p.wait_warm(120), p.last_error("python")
        yield p
    finally:
        await p.close()


@pytest.mark.parametrize("case", sorted(CASES))
async def test_fixture_with_the_runner_started_per_job(cold_pool: Pool, case: str) -> None:
    """The image's own mode (fork) is run by tests/test_language_fixtures.py; the same
    cases give the same results and verdicts from the runner started cold, per job."""
    assert cold_pool.spec("python").runner_mode is RunnerMode.COLD
    run = await run_case(cold_pool, CASES[case])
    assert run.ok, "\n".join([run.summary(), run.message, *run.differences])


async def test_a_smaller_memory_limit_is_the_jobs_through_the_warm_runner(pool: Pool) -> None:
    """A job asking for less memory than the pool's default still runs in the warm
    runner, and the cgroup's limit is the job's (back to the default after the reset)."""
    job = case_job(CASES["all_pass"]).model_copy(update={"limits": LimitsRequest(memory_mb=128)})
    limits = clamp(job.limits, defaults=pool.spec("python").limits, maxima=DEFAULT_MAXIMA)
    async with pool.sandbox("python", limits) as box:
        served = box.warm_jobs
        out = await box.run(job, limits)
        assert box.warm_jobs == served + 1
        assert box.cgroup.memory_limit() == 128 << 20
    assert out.results is not None and json.loads(out.results)["status"] == "pass"
    await box_reset_done(pool)
    assert box.cgroup.memory_limit() == pool.spec("python").limits.memory_bytes


async def box_reset_done(pool: Pool) -> None:
    """Wait until no sandbox of the pool is being reset."""
    for _ in range(400):
        if pool.stats()[0].idle == pool.stats()[0].size:
            return
        await asyncio.sleep(0.01)
