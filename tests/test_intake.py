"""The intake loop in this process, against a real moto SQS server and the real pool.

The queue client is the real one; where a test needs to stop the loop at one exact point
it wraps a single call (the SQS traffic itself stays real).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from daemon_process import TWO_FER, job_doc
from sqs_fixtures import boto3_client, visible_and_hidden

from sandboxd import intake as intake_module
from sandboxd.config import Settings
from sandboxd.events import EventHub
from sandboxd.intake import Intake, ResultStore
from sandboxd.metrics import Metrics
from sandboxd.pool import Pool
from sandboxd.sqs import EmbeddedSQS, QueueClient, QueueUrls

pytestmark = pytest.mark.docker


class HeldDelete(QueueClient):
    """The real client, except that `delete` says it began and then waits for `go`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deleting = asyncio.Event()
        self.go = asyncio.Event()
        self.delete_cancelled = False

    async def delete(self, queue_url: str, receipt_handle: str) -> None:
        self.deleting.set()
        try:
            await self.go.wait()
        except asyncio.CancelledError:
            self.delete_cancelled = True
            raise
        await super().delete(queue_url, receipt_handle)


@pytest.fixture
async def held(sqs_server: EmbeddedSQS, sqs_settings: Settings) -> AsyncIterator[HeldDelete]:
    async with HeldDelete(sqs_settings, sqs_server.endpoint_url, backoff_base=0.01) as client:
        yield client


@pytest.fixture
def make_intake(
    sqs_settings: Settings, sqs_queues: QueueUrls, pool: Pool
) -> Callable[[QueueClient, ResultStore], Intake]:
    def factory(queue: QueueClient, store: ResultStore) -> Intake:
        return Intake(sqs_settings, queue, sqs_queues, pool, Metrics(), EventHub(), store)

    return factory


def results_on(endpoint_url: str, queue_url: str) -> list[dict[str, Any]]:
    """Every message now on `queue_url`, read (and deleted) by an independent client."""
    client = boto3_client(endpoint_url)
    got: list[dict[str, Any]] = []
    while True:
        response = client.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        messages = response.get("Messages", [])
        if not messages:
            return got
        for message in messages:
            got.append(json.loads(message["Body"]))
            client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


async def stop_between_send_and_delete(intake: Intake, held: HeldDelete) -> None:
    """Run `intake` until a delete begins, stop it as a forced shutdown does, then let
    the delete go on and wait for the loop to end."""
    receiving = asyncio.create_task(intake.run())
    try:
        await asyncio.wait_for(held.deleting.wait(), 120)
        aborting = asyncio.create_task(intake.abort())
        # Let the abort cancel the job's task while the delete is still held.
        await asyncio.sleep(0.2)
        held.go.set()
        await asyncio.wait_for(aborting, 60)
        await asyncio.wait_for(receiving, 30)
    finally:
        receiving.cancel()


async def test_a_shutdown_between_send_and_delete_still_deletes(
    held: HeldDelete,
    make_intake: Callable[[QueueClient, ResultStore], Intake],
    sqs_server: EmbeddedSQS,
    sqs_queues: QueueUrls,
) -> None:
    """A job whose result was sent when the shutdown came is deleted, not given back."""
    job_id = f"shield-{uuid.uuid4().hex[:8]}"
    await held.send(sqs_queues.jobs, job_doc(job_id, TWO_FER))
    await stop_between_send_and_delete(make_intake(held, ResultStore(None)), held)
    assert visible_and_hidden(sqs_server.endpoint_url, sqs_queues.jobs) == (0, 0), "deleted"
    assert not held.delete_cancelled
    results = results_on(sqs_server.endpoint_url, sqs_queues.results)
    assert [(r["id"], r["status"]) for r in results] == [(job_id, "passed")]


async def test_a_shutdown_between_resend_and_delete_still_deletes(
    held: HeldDelete,
    make_intake: Callable[[QueueClient, ResultStore], Intake],
    sqs_server: EmbeddedSQS,
    sqs_queues: QueueUrls,
) -> None:
    """A duplicate answered from the store is deleted too when the shutdown comes mid-way."""
    job_id = f"shield-dup-{uuid.uuid4().hex[:8]}"
    store = ResultStore(None)
    store.put(job_id, json.dumps({"id": job_id, "status": "passed"}))
    await held.send(sqs_queues.jobs, job_doc(job_id, TWO_FER))
    await stop_between_send_and_delete(make_intake(held, store), held)
    assert visible_and_hidden(sqs_server.endpoint_url, sqs_queues.jobs) == (0, 0), "deleted"
    results = results_on(sqs_server.endpoint_url, sqs_queues.results)
    assert [r["id"] for r in results] == [job_id]


async def test_a_final_step_that_cannot_finish_is_cut_at_its_deadline(
    held: HeldDelete,
    make_intake: Callable[[QueueClient, ResultStore], Intake],
    sqs_server: EmbeddedSQS,
    sqs_queues: QueueUrls,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A delete that never ends is cancelled at the deadline and the message goes back."""
    monkeypatch.setattr(intake_module, "FINAL_STEP_SECONDS", 0.5)
    job_id = f"shield-cut-{uuid.uuid4().hex[:8]}"
    store = ResultStore(None)
    store.put(job_id, json.dumps({"id": job_id, "status": "passed"}))
    await held.send(sqs_queues.jobs, job_doc(job_id, TWO_FER))
    intake = make_intake(held, store)
    receiving = asyncio.create_task(intake.run())
    try:
        await asyncio.wait_for(held.deleting.wait(), 60)
        await asyncio.wait_for(intake.abort(), 30)  # `go` is never set
        await asyncio.wait_for(receiving, 30)
    finally:
        receiving.cancel()
    assert held.delete_cancelled, "the held delete outlived the abort"
    assert visible_and_hidden(sqs_server.endpoint_url, sqs_queues.jobs) == (1, 0), "given back"
