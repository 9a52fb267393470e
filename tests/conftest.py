"""Shared fixtures. Docker tests share one engine connection and warm pools per session."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import aiodocker
import pytest

from sandboxd.catalog import load_spec
from sandboxd.models import Job
from sandboxd.pool import Pool, PoolConfig
from sandboxd.sandbox import SandboxSpec

# A real SQS server (moto) for the session and queues per test: tests/sqs_fixtures.py.
pytest_plugins = ["sqs_fixtures"]

# Unique per test process, so a daemon or another test run on this host is left alone.
TEST_HOST_ID = f"pytest-{os.getpid()}"


def make_job(files: dict[str, str] | None = None, job_id: str = "test-job", **fields: Any) -> Job:
    """A job from a {path: text} mapping; other fields as keyword arguments."""
    doc: dict[str, Any] = {
        "schema": "sandboxd.job/v1",
        "id": job_id,
        "language": "python",
        "files": [{"path": p, "content": c} for p, c in (files or {}).items()],
        **fields,
    }
    return Job.model_validate(doc)


@pytest.fixture(scope="session")
async def docker() -> AsyncIterator[aiodocker.Docker]:
    client = aiodocker.Docker()
    try:
        await client.version()
    except Exception as exc:
        await client.close()
        pytest.fail(f"no Docker engine reachable ({exc}); `make test` starts one", pytrace=False)
    yield client
    await client.close()


@pytest.fixture(scope="session")
async def python_spec(docker: aiodocker.Docker) -> SandboxSpec:
    return await load_spec(docker, "python")


@pytest.fixture(scope="session")
async def pool(docker: aiodocker.Docker, python_spec: SandboxSpec) -> AsyncIterator[Pool]:
    """The session's warm Python pool (two sandboxes)."""
    p = Pool(docker, {"python": python_spec}, PoolConfig(size=2), host_id=TEST_HOST_ID)
    try:
        await p.start()
        assert await p.wait_warm(120), p.last_error("python")
        yield p
    finally:  # a pool that never got warm still has containers to remove
        await p.close()


@pytest.fixture
async def make_pool(docker: aiodocker.Docker, python_spec: SandboxSpec) -> AsyncIterator[Any]:
    """Factory for private pools (e.g. size 1 to pin reuse of one sandbox); closed after."""
    made: list[Pool] = []

    async def factory(size: int = 1, **config: Any) -> Pool:
        p = Pool(
            docker,
            {"python": python_spec},
            PoolConfig(size=size, **config),
            host_id=TEST_HOST_ID,
        )
        made.append(p)  # before anything can fail: closed whatever happens
        await p.start()  # leaves this process's own sandboxes alone
        assert await p.wait_warm(120), p.last_error("python")
        return p

    try:
        yield factory
    finally:
        for p in made:
            await p.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that reaches the engine through the `docker` fixture carries the
    `docker` marker, so `-m "not docker"` is the suite that needs no engine."""
    unmarked = [
        item.nodeid
        for item in items
        if "docker" in getattr(item, "fixturenames", ())
        and item.get_closest_marker("docker") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "tests that use the Docker engine but are not marked docker: " + ", ".join(unmarked)
        )
