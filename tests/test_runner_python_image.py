"""The Python runner's golden fixtures, run in the real image through the warm pool.

Each case is sent as a job (the exercise's files, no command) to the session's pool; the
results.json the runner wrote inside the sandbox must equal the case's
`expected_results.json`, and the verdict sandboxd derives from it must be the one a learner
should see.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiodocker
import pytest
from conftest import TEST_HOST_ID
from runner_fixtures import (
    EXPECTED_NAME,
    FIXTURES_DIR,
    compare_results,
    fixture_cases,
    load_expected,
)

from sandboxd.jobs import evidence_of
from sandboxd.limits import DEFAULT_MAXIMA, clamp
from sandboxd.models import Job, LimitsRequest, Verdict
from sandboxd.pool import Pool, PoolConfig
from sandboxd.sandbox import RunnerMode, SandboxSpec
from sandboxd.verdict import decide

pytestmark = pytest.mark.docker

# The work dir inside the sandbox, which the runner's messages must never reveal.
INPUT_DIR = "/work"

VERDICTS = {
    "all_pass": Verdict.PASSED,
    "exits_early": Verdict.RUNTIME_ERROR,
    "fixture_errors": Verdict.FAILED,
    "import_error": Verdict.COMPILE_ERROR,
    "many_parametrised": Verdict.FAILED,
    "no_tests": Verdict.COMPILE_ERROR,
    "per_test_output": Verdict.FAILED,
    "segfault": Verdict.RUNTIME_ERROR,
    "some_fail": Verdict.FAILED,
    "syntax_error": Verdict.COMPILE_ERROR,
    "task_ids": Verdict.FAILED,
    "unicode": Verdict.FAILED,
    "unittest_classes": Verdict.FAILED,
}


def test_every_case_has_an_expected_verdict() -> None:
    assert sorted(VERDICTS) == fixture_cases()


def case_job(case: str) -> Job:
    """The case's exercise files as a tests-mode job."""
    files: list[dict[str, Any]] = []
    for path in sorted((FIXTURES_DIR / case).rglob("*")):
        if path.is_file() and path.name != EXPECTED_NAME:
            rel = path.relative_to(FIXTURES_DIR / case).as_posix()
            data = base64.b64encode(path.read_bytes()).decode()
            files.append({"path": rel, "content": data, "encoding": "base64"})
    doc = {"schema": "sandboxd.job/v1", "id": f"fixture-{case}", "language": "python"}
    return Job.model_validate({**doc, "files": files})


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


@pytest.mark.parametrize("mode", ["fork", "cold"])
@pytest.mark.parametrize("case", sorted(VERDICTS))
async def test_fixture_in_image(pool: Pool, cold_pool: Pool, case: str, mode: str) -> None:
    """Each golden case gives its results and its verdict in the real image, from the
    fork runner (the image's) and from the runner started per job."""
    job = case_job(case)
    use = pool if mode == "fork" else cold_pool
    limits = clamp(job.limits, defaults=use.spec("python").limits, maxima=DEFAULT_MAXIMA)
    async with use.sandbox("python", limits) as box:
        served = box.warm_jobs
        out = await box.run(job, limits)
        assert box.warm_jobs == served + (mode == "fork"), "the intended path ran"
    assert out.results is not None, f"no results: {out.results_error}; {out.stderr!r}"
    assert out.runner_finished, out
    actual = json.loads(out.results)
    diffs = compare_results(actual, load_expected(case), input_dir=INPUT_DIR)
    assert not diffs, "\n".join(diffs)
    assert INPUT_DIR + "/" not in out.results.decode(), "the runner leaked the work dir path"
    verdict, message = decide(evidence_of(job, limits, out)[0])
    assert verdict == VERDICTS[case], message
    assert message


async def test_a_smaller_memory_limit_is_the_jobs_through_the_warm_runner(pool: Pool) -> None:
    """A job asking for less memory than the pool's default still runs in the warm
    runner, and the cgroup's limit is the job's (back to the default after the reset)."""
    job = case_job("all_pass").model_copy(update={"limits": LimitsRequest(memory_mb=128)})
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
