"""pytest plugin: a real SQS-compatible server (moto) for the session, queues per test.

Loaded from `tests/conftest.py` with `pytest_plugins = ["sqs_fixtures"]`.

- `sqs_server`: one `EmbeddedSQS` on a free loopback port for the whole session.
- `sqs_env`: the `SANDBOXD_*` environment of a test's settings, with queue names unique to
  the test; extend it and `load_settings()` it for other settings on the same queues.
- `sqs_settings`: `load_settings(sqs_env)`.
- `sqs_queues`: the test's queues, created on `sqs_server`, deleted after it.
- `boto3_client(endpoint_url)`: a plain boto3 SQS client, for a test to look at the queues
  as an independent client would.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from sandboxd.config import Settings, load_settings
from sandboxd.sqs import EmbeddedSQS, QueueUrls

REGION = "us-east-1"

# Short enough that a test which lets a message time out stays fast, and heartbeats of a
# daemon under test run often enough to be seen.
VISIBILITY_TIMEOUT = 5
HEARTBEAT_SECONDS = 1
WAIT_TIME_SECONDS = 1


def boto3_client(endpoint_url: str) -> Any:
    """A synchronous boto3 SQS client for `endpoint_url`, with dummy credentials."""
    return boto3.client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        # An HTTP(S)_PROXY in the environment must not carry loopback traffic elsewhere.
        config=Config(proxies={}, retries={"total_max_attempts": 1}),
    )


def visible_and_hidden(endpoint_url: str, queue_url: str) -> tuple[int, int]:
    """(visible, in flight) message counts, as an independent client sees them."""
    got = boto3_client(endpoint_url).get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(got["ApproximateNumberOfMessages"]), int(
        got["ApproximateNumberOfMessagesNotVisible"]
    )


@pytest.fixture(scope="session")
def sqs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSQS]:
    """The session's embedded SQS server (moto) on a free 127.0.0.1 port."""
    server = EmbeddedSQS(port=0, log_path=tmp_path_factory.mktemp("sqs") / "moto.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sqs_env(sqs_server: EmbeddedSQS, tmp_path: Path) -> dict[str, str]:
    """Settings environment for `sqs_server`, with queue names no other test uses."""
    suffix = uuid.uuid4().hex[:12]
    return {
        "SANDBOXD_SQS": "embedded",
        "SANDBOXD_EMBEDDED_SQS_PORT": str(sqs_server.port),
        "SANDBOXD_REGION": REGION,
        "SANDBOXD_JOBS_QUEUE": f"jobs-{suffix}",
        "SANDBOXD_RESULTS_QUEUE": f"results-{suffix}",
        "SANDBOXD_DEAD_LETTER_QUEUE": f"dlq-{suffix}",
        "SANDBOXD_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "SANDBOXD_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        "SANDBOXD_WAIT_TIME_SECONDS": str(WAIT_TIME_SECONDS),
        "SANDBOXD_STATE_DIR": str(tmp_path / "state"),
        "SANDBOXD_HOST_ID": f"pytest-{os.getpid()}",
    }


@pytest.fixture
def sqs_settings(sqs_env: dict[str, str]) -> Settings:
    """Settings for `sqs_server` and this test's own queues (not yet created)."""
    return load_settings(sqs_env)


@pytest.fixture
async def sqs_queues(sqs_server: EmbeddedSQS, sqs_settings: Settings) -> AsyncIterator[QueueUrls]:
    """This test's dead-letter, jobs and results queues on `sqs_server`; deleted after."""
    urls = await sqs_server.create_queues(sqs_settings)
    yield urls
    client = boto3_client(sqs_server.endpoint_url)
    for url in (urls.jobs, urls.results, urls.dead_letter):
        # Each on its own: one a test deleted itself must not leave the others behind.
        with contextlib.suppress(ClientError):
            client.delete_queue(QueueUrl=url)
