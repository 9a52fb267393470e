"""The intake loop: SQS jobs in, results (and output events) out, at least once, made safe.

- Never holds more received messages than the pools have sandboxes (backpressure).
- Extends a running job's visibility (heartbeat) so no other host takes it.
- Deletes a message only after its result was sent; a crash anywhere loses nothing.
- A job id already answered by this host is answered again from the result store
  (`ResultStore`), not run again, so a redelivery cannot produce a second verdict.
- Bad input never stops the loop: a `rejected` result where an id can be read, else the
  dead-letter queue. Our own failures return the message for a later retry; when the
  deliveries run out the job gets a final `internal_error` result.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import json
import logging
import os
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sandboxd import offload
from sandboxd.config import Settings
from sandboxd.events import EventHub, EventStream
from sandboxd.fit import approx_size, fit_json
from sandboxd.jobs import RunContext, execute, rejected
from sandboxd.metrics import Metrics
from sandboxd.models import Event, Job, JobRejected, Result, Verdict, parse_job
from sandboxd.pool import Pool
from sandboxd.sqs import (
    QueueClient,
    QueueError,
    QueueNotFound,
    QueueUnavailable,
    QueueUrls,
    ReceivedMessage,
)

log = logging.getLogger(__name__)
job_log = logging.getLogger("sandboxd.job")

# Our own failure on delivery n waits this long before the message is visible again.
RETRY_BASE_SECONDS = 5
RETRY_CAP_SECONDS = 300
# How long a result we cannot send is retried before the next attempt (grows to the cap).
SEND_BACKOFF_CAP_SECONDS = 10.0
# A shutdown that lands while a result is being sent and its message deleted lets that
# step finish for up to this long; past it (SQS away: the send would retry for ever) the
# step is cut and the message goes back to the queue.
FINAL_STEP_SECONDS = 10.0
# Output events sent to a reply queue are coalesced over this period (SQS messages cost).
STREAM_FLUSH_SECONDS = 0.2
MAX_TEST_EVENTS = 100


class _Undeliverable(Exception):
    """SQS refuses a result for good (not an outage)."""


class ResultStore:
    """The results this host sent, by job id: in memory, and on disk when given a dir.

    On disk each result is one file named by a hash of the id, so a restarted daemon
    still answers a redelivered job with the verdict it already gave. Bounded: the
    oldest entries are dropped beyond `max_entries`. With a directory, memory holds only
    the newest `max_memory_entries` (a redelivery mostly comes within a visibility
    timeout; an older one is read from disk), so the daemon's memory stays flat however
    many jobs it answers rather than growing with every result up to `max_entries`.
    """

    def __init__(
        self,
        directory: Path | None,
        max_entries: int = 10_000,
        max_memory_bytes: int = 64 << 20,
        max_memory_entries: int = 1_000,
    ) -> None:
        self._dir = directory
        self._max = max_entries
        # Without a directory, memory is the store itself.
        self._max_in_memory = (
            max_entries if directory is None else min(max_entries, max_memory_entries)
        )
        # A result can be 256 KiB: the memory copy is bounded by bytes too (the disk keeps
        # the rest, so a redelivery is still answered from it).
        self._max_memory = max_memory_bytes
        self._memory_bytes = 0
        self._memory: OrderedDict[str, str] = OrderedDict()
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def _path(self, job_id: str) -> Path:
        assert self._dir is not None
        return self._dir / (hashlib.sha256(job_id.encode()).hexdigest()[:40] + ".json")

    def get(self, job_id: str) -> str | None:
        body = self._memory.get(job_id)
        if body is not None or self._dir is None:
            return body
        try:
            stored = json.loads(self._path(job_id).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(stored, dict) or stored.get("id") != job_id:
            return None  # a hash collision, or a file cut short
        return json.dumps(stored, separators=(",", ":"), ensure_ascii=False)

    def put(self, job_id: str, body: str) -> None:
        if self.write(job_id, body):
            self.prune()

    def write(self, job_id: str, body: str) -> bool:
        """Keep `body` (memory, and the directory if any); whether a prune is due now
        (now and then: the caller runs `prune`, a directory scan, where it may block)."""
        old = self._memory.pop(job_id, None)
        if old is not None:
            self._memory_bytes -= len(old)
        self._memory[job_id] = body
        self._memory_bytes += len(body)
        while self._memory and (
            len(self._memory) > self._max_in_memory or self._memory_bytes > self._max_memory
        ):
            _, dropped = self._memory.popitem(last=False)
            self._memory_bytes -= len(dropped)
        if self._dir is None:
            return False
        path = self._path(job_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(body, "utf-8")
        os.replace(tmp, path)
        return random.random() <= 0.01

    def prune(self) -> None:
        """Drop the oldest files beyond `max_entries`, now and then (amortised).

        The directory is counted without a list of it, and only the files to drop are
        kept while it is read: listing and sorting all of its up to 10,000 files raised
        the daemon's memory high-water mark with every file, and it stayed raised.
        """
        if self._dir is None:
            return
        with os.scandir(self._dir) as entries:
            excess = sum(1 for e in entries if e.name.endswith(".json")) - self._max
        if excess <= 0:
            return
        with os.scandir(self._dir) as entries:
            oldest = heapq.nsmallest(excess, _mtimes(entries))
        for _, path in oldest:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _mtimes(entries: Iterator[os.DirEntry[str]]) -> Iterator[tuple[float, str]]:
    """(mtime, path) of each result file; one removed meanwhile is skipped."""
    for entry in entries:
        if entry.name.endswith(".json"):
            try:
                yield entry.stat().st_mtime, entry.path
            except OSError:
                continue


@dataclass
class _Delivery:
    """One received message while this host holds it."""

    message: ReceivedMessage
    started: bool = False  # a sandbox was acquired: the job is running
    task: asyncio.Task[None] | None = None
    # Answered and deleted: giving the message back now would have it run again.
    settled: bool = False


class Intake:
    """Receives jobs from the jobs queue and answers them; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        queue: QueueClient,
        urls: QueueUrls,
        pool: Pool,
        metrics: Metrics,
        hub: EventHub,
        store: ResultStore,
        *,
        unavailable: Callable[[str], str | None] = lambda name: None,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.urls = urls
        self.pool = pool
        self.metrics = metrics
        self.hub = hub
        self.store = store
        # Why a language this host should serve cannot run now (its image is missing...).
        self.unavailable = unavailable
        self.queue_error: str | None = None  # the last receive failure, until one succeeds
        self._deliveries: dict[str, _Delivery] = {}  # by receipt handle
        self._running: dict[str, asyncio.Future[str]] = {}  # job id -> its result body
        self._slot_freed = asyncio.Event()
        self._heartbeats: dict[str, asyncio.Task[None]] = {}  # by receipt handle
        self._stopping = asyncio.Event()
        self._results_endpoint = _endpoint(urls.results)

    # -- the loop ---------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return self.pool.capacity

    async def run(self) -> None:
        """Receive and start jobs until `stop_receiving()`."""
        failures = 0
        while not self._stopping.is_set():
            free = self.capacity - len(self._deliveries)
            if free <= 0:
                await self._wait_any(self._slot_freed.wait())
                self._slot_freed.clear()
                continue
            try:
                # Not cancelled on stop: a long poll cut short could lose messages the
                # server already handed out. Whatever it brings after a stop is released.
                messages = await self.queue.receive(
                    self.urls.jobs,
                    max_messages=min(10, free),
                    wait_seconds=self.settings.wait_time_seconds,
                    visibility_timeout=self.settings.visibility_timeout,
                )
            except QueueError as exc:
                failures += 1
                self.metrics.sqs_error("receive")
                if self.queue_error is None:
                    log.error("receiving jobs failed: %s; retrying with backoff", exc)
                self.queue_error = str(exc)
                delay = random.uniform(0.5, min(30.0, 2.0**failures))
                await self._wait_any(asyncio.sleep(delay))
                continue
            if self.queue_error is not None:
                log.info("receiving jobs works again")
            self.queue_error, failures = None, 0
            if messages:
                self.metrics.messages_received(len(messages))
            for message in messages:
                if self._stopping.is_set():
                    await self._release(message, 0)
                    continue
                self._start(message)

    async def _wait_any(self, awaitable: Awaitable[object]) -> None:
        """Wait for `awaitable` or for the stop, whichever comes first."""
        waiter = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            stop.cancel()

    def stop_receiving(self) -> None:
        self._stopping.set()

    async def drain(self, grace: float) -> None:
        """Stop receiving, give back jobs not started, let running ones finish within
        `grace` seconds, then give back what is left (visible again at once)."""
        self.stop_receiving()
        for delivery in list(self._deliveries.values()):
            if not delivery.started and delivery.task is not None:
                delivery.task.cancel()
        tasks = [d.task for d in self._deliveries.values() if d.task is not None]
        if tasks:
            log.info("draining: %d running jobs, up to %.0f s", len(tasks), grace)
            _, pending = await asyncio.wait(tasks, timeout=grace)
            if pending:
                log.warning("grace period over: giving %d jobs back to the queue", len(pending))
                await self.abort()

    async def abort(self) -> None:
        """Cancel every job now; each gives its message back to the queue, except one
        whose result is being sent: that one finishes sending and deleting first."""
        self.stop_receiving()
        tasks = [d.task for d in self._deliveries.values() if d.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            # Long enough for a final step's deadline and the release that may follow it.
            await asyncio.wait(tasks, timeout=FINAL_STEP_SECONDS + 10)

    # -- one message ------------------------------------------------------------------------

    def _start(self, message: ReceivedMessage) -> None:
        delivery = _Delivery(message)
        self._deliveries[message.receipt_handle] = delivery
        delivery.task = asyncio.create_task(self._handle(delivery))

    async def _handle(self, delivery: _Delivery) -> None:
        message = delivery.message
        heartbeat = asyncio.create_task(self._heartbeat(message))
        self._heartbeats[message.receipt_handle] = heartbeat
        try:
            with self.metrics.in_flight():
                await self._process(delivery)
        except asyncio.CancelledError:
            # Stopping: the job goes back to the queue for another host (or our restart).
            if not delivery.settled:
                await asyncio.shield(self._release(message, 0))
            raise
        except Exception:
            if delivery.settled:
                log.exception("message %s: unexpected failure after its answer", message.message_id)
            else:
                log.exception(
                    "message %s: unexpected failure; it will be retried", message.message_id
                )
                await self._release(message, self._retry_delay(message.receive_count))
        finally:
            heartbeat.cancel()
            self._heartbeats.pop(message.receipt_handle, None)
            self._deliveries.pop(message.receipt_handle, None)
            self._slot_freed.set()

    async def _process(self, delivery: _Delivery) -> None:
        message = delivery.message
        now_ms = int(time.time() * 1000)
        queued_ms = max(0, now_ms - message.sent_timestamp_ms) if message.sent_timestamp_ms else 0
        attempt = max(1, message.receive_count)
        ctx = RunContext(host=self.settings.host_id, maxima=self.settings.maxima, attempt=attempt)
        try:
            job = parse_job(message.body)
        except JobRejected as exc:
            await self._reject(message, exc, ctx)
            return
        reply = self._reply_queue(job.reply_to)
        if reply is None:
            why = (
                "reply_to must be the URL of a reply queue on this host's SQS endpoint "
                f"({self._results_endpoint}), not the jobs or dead-letter queue"
            )
            result = rejected(job.id, why, ctx, job.metadata)
            await self._answer(message, self.urls.results, job, result)
            return

        stored = self.store.get(job.id)
        running = self._running.get(job.id)
        if stored is None and running is not None:
            # The same job is running here already (a duplicate send): share its result.
            delivery.started = True
            stored = await asyncio.shield(running)
        if stored is not None:
            self.metrics.duplicate_delivery()
            log.info("job %s: already answered by this host; sending the same result", job.id)
            await self._send_then_delete(message, reply, stored, what=f"job {job.id}: result")
            return

        reason = self.unavailable(job.pool_key)
        if reason is not None:
            await self._our_failure(message, job, reply, ctx, reason)
            return

        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._running[job.id] = future
        try:
            body = await self._run(delivery, job, ctx, reply, queued_ms)
            if body is None:
                future.cancel()
                return
            future.set_result(body)  # what was sent (cut to fit), for a duplicate to share
        finally:
            if not future.done():
                future.cancel()
            self._running.pop(job.id, None)

    async def _run(
        self, delivery: _Delivery, job: Job, ctx: RunContext, reply: str, queued_ms: int
    ) -> str | None:
        """Run the job; send its events and result, whose body it returns. None when the
        job goes back to the queue instead."""
        outbox: asyncio.Queue[Event | None] = asyncio.Queue()

        def on_event(event: Event) -> None:
            self.hub.publish(event)
            if job.stream:
                outbox.put_nowait(event)

        stream = EventStream(
            job.id,
            on_event,
            flush_interval=STREAM_FLUSH_SECONDS if job.stream else 0.05,
            max_chunk=16 * 1024,  # escaped as JSON it stays well under SQS's 256 KiB
        )
        sender = asyncio.create_task(self._send_events(reply, outbox)) if job.stream else None

        def on_acquired() -> None:
            delivery.started = True
            stream.started({"attempt": ctx.attempt, "host": ctx.host})

        try:
            try:
                result = await execute(
                    self.pool, job, ctx, stream.output, queued_ms, on_acquired=on_acquired
                )
            except BaseException:
                # Given back (a stop) or our bug: subscribers still learn the run ended.
                stream.finished({"status": "interrupted", "message": "", "retry": True})
                raise
            retry = (
                result.status is Verdict.INTERNAL_ERROR
                and ctx.attempt < self.settings.max_receive_count
            )
            # The result carries every test; events only the first ones, so a thousand
            # parametrised tests do not hold the result behind a thousand messages.
            for test in result.tests[:MAX_TEST_EVENTS]:
                stream.test(test)
            # `retry`: no result follows this attempt; the job runs again later.
            stream.finished(
                {"status": result.status.value, "message": result.message, "retry": retry}
            )
            if sender is not None:
                outbox.put_nowait(None)
                await sender
        finally:
            if sender is not None and not sender.done():
                sender.cancel()

        if retry:
            log.warning(
                "job %s: internal error on delivery %d (%s); it will be retried",
                job.id, ctx.attempt, result.message,
            )  # fmt: skip
            await self._release(delivery.message, self._retry_delay(ctx.attempt))
            return None
        return await self._answer(delivery.message, reply, job, result)

    async def _send_events(self, reply: str, outbox: asyncio.Queue[Event | None]) -> None:
        """Send a job's events in `seq` order (one at a time: order is what seq checks)."""
        while True:
            event = await outbox.get()
            if event is None:
                return
            body = event.model_dump_json(by_alias=True)
            try:
                await self.queue.send(reply, body)
            except QueueError as exc:
                # Events are best effort: `seq` lets the client see the gap; the result
                # itself is sent with unlimited retries.
                self.metrics.sqs_error("send")
                log.warning("job %s: output event %d not sent: %s", event.id, event.seq, exc)

    async def _our_failure(
        self, message: ReceivedMessage, job: Job, reply: str, ctx: RunContext, reason: str
    ) -> None:
        if ctx.attempt < self.settings.max_receive_count:
            log.warning("job %s: cannot run now (%s); it will be retried", job.id, reason)
            await self._release(message, self._retry_delay(ctx.attempt))
            return
        result = Result(
            id=job.id,
            attempt=ctx.attempt,
            status=Verdict.INTERNAL_ERROR,
            message="The sandbox could not run your code; please try again later.",
            host=ctx.host,
            metadata=job.metadata,
        )
        log.error("job %s: giving up after %d deliveries: %s", job.id, ctx.attempt, reason)
        await self._answer(message, reply, job, result)

    async def _reject(self, message: ReceivedMessage, exc: JobRejected, ctx: RunContext) -> None:
        if exc.job_id is None:
            log.warning(
                "message %s: %s; no job id: to the dead-letter queue", message.message_id, exc
            )
            what = f"message {message.message_id}: dead letter"
            dlq = self.urls.dead_letter
            if await self._send_then_delete(message, dlq, message.body, what=what, count=False):
                self.metrics.dead_lettered()
            return
        reply = self._reply_queue(exc.reply_to) or self.urls.results
        result = rejected(exc.job_id, exc.message, ctx)
        await self._answer(message, reply, None, result)

    async def _answer(
        self, message: ReceivedMessage, reply: str, job: Job | None, result: Result
    ) -> str | None:
        """Store, send, then delete: the order that makes a crash lose nothing. The body
        sent, or None when SQS refused it for good and the message went back."""
        body = await offload.blocking(approx_size(result), fit_json, result)  # big: off the loop
        if result.status is not Verdict.REJECTED:
            # Rejections are not stored: the same id may come back as a valid job.
            try:
                # A small file written to the page cache: inline; the now-and-then
                # scan of the directory for files beyond its bound: in a thread.
                if await offload.blocking(len(body), self.store.write, result.id, body):
                    await asyncio.to_thread(self.store.prune)
            except OSError as exc:
                # The store only spares a redelivery a second run; the answer goes out.
                log.warning("job %s: result not stored: %s", result.id, exc)
        if not await self._send_then_delete(message, reply, body, what=f"job {result.id}: result"):
            return None
        language = job.pool_key if job is not None else "unknown"
        t = result.timing
        self.metrics.job_finished(
            language,
            result.status,
            t.queued_ms / 1000,
            t.acquire_ms / 1000,
            t.run_ms / 1000,
            t.total_ms / 1000,
        )
        fields = {
            "id": result.id,
            "language": language,
            "verdict": result.status.value,
            "attempt": result.attempt,
            "queued_ms": t.queued_ms,
            "acquire_ms": t.acquire_ms,
            "run_ms": t.run_ms,
            "total_ms": t.total_ms,
        }
        job_log.info("job %s %s", result.id, result.status.value, extra={"fields": fields})
        return body

    # -- the final step -----------------------------------------------------------------------

    async def _send_then_delete(
        self, message: ReceivedMessage, queue_url: str, body: str, *, what: str, count: bool = True
    ) -> bool:
        """Send `body`, then delete `message`, as one step a shutdown cannot cut in half.

        False when SQS refused `body` for good: the message went back to the queue instead.
        """
        step = asyncio.ensure_future(self._send_and_delete(message, queue_url, body, count))
        try:
            await self._unbroken(message, step)
        except _Undeliverable as exc:
            # Back to the queue: redeliveries fail the same way until SQS moves the
            # message to the dead-letter queue, where someone can look at it.
            log.error("%s cannot be sent: %s", what, exc)
            await self._release(message, self._retry_delay(message.receive_count))
            return False
        return True

    async def _send_and_delete(
        self, message: ReceivedMessage, queue_url: str, body: str, count: bool
    ) -> None:
        await self._send_result(queue_url, body, count=count)
        await self._delete(message)
        delivery = self._deliveries.get(message.receipt_handle)
        if delivery is not None:
            delivery.settled = True

    async def _unbroken(self, message: ReceivedMessage, step: asyncio.Future[None]) -> None:
        """Wait for `step`; a cancellation of ours (a shutdown) does not reach it but waits
        for it, up to `FINAL_STEP_SECONDS`, then cuts it, and is raised once it ended.

        Cancelled half-way, a step that had sent its result would give the message back
        still answered, and another host would run the job again and answer it twice.
        """
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while not step.done():
            timeout = None if deadline is None else deadline - loop.time()
            if timeout is not None and timeout <= 0:
                break
            try:
                # asyncio.wait, not await: our cancellation must not pass on to the step.
                await asyncio.wait({step}, timeout=timeout)
            except asyncio.CancelledError:
                if deadline is None:
                    deadline = loop.time() + FINAL_STEP_SECONDS
                    log.info(
                        "message %s: stopping once its answer is sent (at most %.0f s)",
                        message.message_id,
                        FINAL_STEP_SECONDS,
                    )
        if not step.done():
            log.warning(
                "message %s: answer not sent within %.0f s of the stop; it goes back",
                message.message_id,
                FINAL_STEP_SECONDS,
            )
            step.cancel()
            # Cancelling an SQS call ends it at once; waiting keeps it from outliving us.
            await asyncio.wait({step})
        if deadline is not None:
            if not step.cancelled() and step.exception() is not None:
                log.error(
                    "message %s: its answer failed while stopping",
                    message.message_id,
                    exc_info=step.exception(),
                )
            raise asyncio.CancelledError
        step.result()

    # -- SQS calls --------------------------------------------------------------------------

    async def _send_result(self, queue_url: str, body: str, *, count: bool = True) -> None:
        """Send until it is sent: a result is never dropped while we hold its message.

        SQS being away (unreachable, throttling, our queues missing while it comes back)
        is waited out. A `reply_to` queue that does not exist gets the answer on the
        results queue instead. Anything else SQS refuses raises `_Undeliverable` after a
        few tries.
        """
        failures = refused = 0
        while True:
            try:
                await self.queue.send(queue_url, body)
                if count:
                    self.metrics.result_sent()
                if failures:
                    log.info("result sent after %d failed attempts", failures)
                return
            except QueueNotFound as exc:
                self.metrics.sqs_error("send")
                if queue_url not in (self.urls.results, self.urls.dead_letter):
                    log.warning("%s; sending to the results queue instead", exc)
                    queue_url = self.urls.results
                    continue
                failures += 1
                error: QueueError = exc
            except QueueUnavailable as exc:
                self.metrics.sqs_error("send")
                failures += 1
                error = exc
            except QueueError as exc:
                self.metrics.sqs_error("send")
                refused += 1
                if refused >= 3:
                    raise _Undeliverable(str(exc)) from exc
                error = exc
            if failures == 1:
                log.error("sending a result failed: %s; holding it and retrying", error)
            cap = min(SEND_BACKOFF_CAP_SECONDS, 2.0 ** max(failures, refused))
            await asyncio.sleep(random.uniform(0.5, cap))

    async def _delete(self, message: ReceivedMessage) -> None:
        try:
            await self.queue.delete(self.urls.jobs, message.receipt_handle)
        except QueueError as exc:
            # The message comes back later and is answered from the result store.
            self.metrics.sqs_error("delete")
            log.warning("message %s: delete failed: %s", message.message_id, exc)

    async def _release(self, message: ReceivedMessage, delay: int) -> None:
        """Make the message visible again after `delay` seconds (0: at once)."""
        # First stop its heartbeat: one in flight would hide the message again.
        heartbeat = self._heartbeats.pop(message.receipt_handle, None)
        if heartbeat is not None:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        try:
            await self.queue.change_visibility(self.urls.jobs, message.receipt_handle, delay)
        except QueueError as exc:
            self.metrics.sqs_error("change_visibility")
            log.warning("message %s: could not release it: %s", message.message_id, exc)

    async def _heartbeat(self, message: ReceivedMessage) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                await self.queue.change_visibility(
                    self.urls.jobs, message.receipt_handle, self.settings.visibility_timeout
                )
            except QueueError as exc:
                self.metrics.sqs_error("change_visibility")
                log.warning("message %s: heartbeat failed: %s", message.message_id, exc)

    # -- helpers ----------------------------------------------------------------------------

    def _retry_delay(self, attempt: int) -> int:
        return int(min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** (max(1, attempt) - 1)))

    def _reply_queue(self, reply_to: str | None) -> str | None:
        """Where a job's answers go: its `reply_to` when on our endpoint, else None.

        A reply queue elsewhere is refused: the daemon sends only to its own SQS endpoint.
        """
        if reply_to is None:
            return self.urls.results
        on_our_endpoint = _endpoint(reply_to) == self._results_endpoint
        if not on_our_endpoint or urlsplit(reply_to).path.count("/") < 2:
            return None
        if _same_queue(reply_to, self.urls.jobs) or _same_queue(reply_to, self.urls.dead_letter):
            return None  # answers would come back in as jobs, or pose as dead letters
        return reply_to


def _same_queue(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
