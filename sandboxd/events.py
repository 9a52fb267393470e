"""Live output events of a job: building them (`EventStream`) and fanning them out (`EventHub`).

An `EventStream` turns the raw byte chunks a sandbox reports into `sandboxd.event/v1`
documents whose `seq` runs 0, 1, 2, ... without gaps, so a client can order them and
detect loss. Consecutive chunks of one stream are coalesced into one event, so a
program printing one character at a time does not produce one message per character.

An `EventHub` keeps a bounded backlog per job and hands events to live subscribers (the
SSE endpoint). Publishing never blocks and never fails because of a subscriber: a
subscriber that falls too far behind is dropped with a notice and may reconnect with
the last `seq` it saw.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Final, Literal

from pydantic import JsonValue

from sandboxd.models import Event, EventKind, TestResult

log = logging.getLogger(__name__)

StreamName = Literal["stdout", "stderr"]
EventSink = Callable[[Event], None]

_KINDS: Final[dict[str, EventKind]] = {"stdout": EventKind.STDOUT, "stderr": EventKind.STDERR}


def _split_utf8(text: str, max_bytes: int) -> list[str]:
    """Split `text` into pieces of at most `max_bytes` UTF-8 bytes, never inside a character."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return [text]
    pieces = []
    start = 0
    while start < len(raw):
        end = min(start + max_bytes, len(raw))
        # Back off over continuation bytes (0b10xxxxxx) to a character boundary.
        while end < len(raw) and end > start and raw[end] & 0xC0 == 0x80:
            end -= 1
        if end == start:  # max_bytes smaller than one character: take the whole character
            end = start + 1
            while end < len(raw) and raw[end] & 0xC0 == 0x80:
                end += 1
        pieces.append(raw[start:end].decode("utf-8"))
        start = end
    return pieces


class EventStream:
    """The events of one run of one job, handed to `on_event` in `seq` order.

    Call `started()`, then `output()` / `test()` as they happen, then `finished()`.
    Not thread-safe: call it from the event loop (the sandbox's output callback runs there).
    Without a running event loop the time-based flush is skipped; output is still
    flushed when the stream changes, the buffer is full, or the job finishes.
    """

    def __init__(
        self,
        job_id: str,
        on_event: EventSink,
        *,
        max_chunk: int = 16384,
        flush_interval: float = 0.05,
    ) -> None:
        if max_chunk < 4:
            raise ValueError("max_chunk must be at least 4 bytes (one UTF-8 character)")
        self.job_id = job_id
        self._on_event = on_event
        self._max_chunk = max_chunk
        self._flush_interval = flush_interval
        self._seq = 0
        self._closed = False
        # One decoder per stream: a character split across two stdout chunks must be
        # joined even when a stderr chunk arrives in between.
        self._decoders = {
            name: codecs.getincrementaldecoder("utf-8")(errors="replace") for name in _KINDS
        }
        self._buf_stream: StreamName | None = None
        self._buf: list[str] = []
        self._buf_bytes = 0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def next_seq(self) -> int:
        """The `seq` the next event will carry (equals the number of events emitted)."""
        return self._seq

    @property
    def closed(self) -> bool:
        return self._closed

    def started(self, data: Mapping[str, JsonValue] | None = None) -> None:
        """Emit the `started` event (seq 0). Idempotent."""
        if self._closed or self._seq > 0:
            return
        self._emit(EventKind.STARTED, dict(data) if data is not None else {})

    def output(self, stream: StreamName, data: bytes) -> None:
        """Take a chunk of a job's output; signature matches `sandbox.OutputSink`."""
        if self._closed or not data:
            return
        if stream not in self._decoders:
            raise ValueError(f"unknown stream {stream!r}")
        self.started()
        if self._buf_stream is not None and self._buf_stream != stream:
            self.flush()
        text = self._decoders[stream].decode(data)
        if not text:
            return  # only the start of a multi-byte character so far
        self._buf_stream = stream
        self._buf.append(text)
        self._buf_bytes += len(text.encode("utf-8"))
        if self._buf_bytes >= self._max_chunk:
            self.flush()
        else:
            self._arm_timer()

    def test(self, result: TestResult | Mapping[str, JsonValue]) -> None:
        """Emit one test's result (after any output buffered before it)."""
        if self._closed:
            return
        self.started()
        self.flush()
        if isinstance(result, TestResult):
            data: dict[str, JsonValue] = result.model_dump(mode="json", exclude_none=True)
        else:
            data = dict(result)
        self._emit(EventKind.TEST, data)

    def finished(self, summary: Mapping[str, JsonValue] | None = None) -> None:
        """Flush all output (an incomplete character becomes U+FFFD), emit `finished`, close."""
        if self._closed:
            return
        self.started()
        self.flush()
        for name, decoder in self._decoders.items():
            tail = decoder.decode(b"", final=True)
            if tail:
                self._emit(_KINDS[name], {"text": tail})
        self._emit(EventKind.FINISHED, dict(summary) if summary is not None else {})
        self._closed = True

    def flush(self) -> None:
        """Emit the buffered output now (in pieces of at most `max_chunk` bytes)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._buf_stream is None:
            return
        kind = _KINDS[self._buf_stream]
        text = "".join(self._buf)
        self._buf_stream = None
        self._buf = []
        self._buf_bytes = 0
        for piece in _split_utf8(text, self._max_chunk):
            self._emit(kind, {"text": piece})

    def _arm_timer(self) -> None:
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(self._flush_interval, self.flush)

    def _emit(self, kind: EventKind, data: JsonValue) -> None:
        event = Event(id=self.job_id, seq=self._seq, kind=kind, data=data)
        self._seq += 1
        try:
            self._on_event(event)
        except Exception:
            # A failing consumer (a full reply queue, a bug in a subscriber) must not
            # break the job that produces the output; the gap in seq shows the loss.
            log.exception("event consumer failed", extra={"job_id": self.job_id})


# -- fan-out ------------------------------------------------------------------------------


class SubscriberDropped(Exception):
    """The subscriber fell too far behind and was dropped; `last_seq` is the last it got."""

    def __init__(self, job_id: str, last_seq: int | None) -> None:
        super().__init__(f"subscriber of job {job_id!r} fell behind and was dropped")
        self.job_id = job_id
        self.last_seq = last_seq


class JobNotFound(Exception):
    """No event of the job appeared within the subscription's wait timeout."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no events for job {job_id!r}")
        self.job_id = job_id


_DROPPED: Final = object()
_CLOSED: Final = object()


class Subscription:
    """One subscriber's view of a job: backlog replay first, then live events.

    Iterate it (`async for event in sub`) or call `get(timeout)`; it ends after the
    `finished` event. `close()` unsubscribes (also on leaving `async with`).
    """

    def __init__(self, hub: EventHub, job_id: str, after_seq: int | None, max_queue: int) -> None:
        self._hub = hub
        self.job_id = job_id
        self._after = after_seq
        self.last_seq = after_seq
        self._max_queue = max_queue
        self._replay: deque[Event] = deque()
        self._queue: asyncio.Queue[Event | object] = asyncio.Queue()
        self._accepting = True  # the hub may still offer events
        self._ended = False  # the consumer has reached the end
        self._seen_any = False
        self.finished = False  # the `finished` event was delivered

    # Called by the hub (synchronously, on the loop).

    def _offer(self, event: Event, *, replay: bool = False) -> None:
        if not self._accepting:
            return
        if self._after is not None and event.seq <= self._after:
            return  # the client saw it before it reconnected
        if replay:
            self._replay.append(event)
        elif self._queue.qsize() >= self._max_queue:
            # Never block the publisher: end this subscription with a notice instead.
            self._stop(_DROPPED)
        else:
            self._queue.put_nowait(event)
        if event.kind is EventKind.FINISHED:
            self._accepting = False

    def _stop(self, marker: object = None) -> None:
        """No more events for this subscriber; the consumer sees `marker` after the queued ones."""
        if not self._accepting:
            return
        self._accepting = False
        self._queue.put_nowait(_CLOSED if marker is None else marker)
        self._hub._unsubscribe(self)

    # Called by the consumer.

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event; None if none arrived within `timeout` seconds.

        Raises StopAsyncIteration after `finished` (or when the hub closes),
        `SubscriberDropped` if the subscriber fell behind, `JobNotFound` if the job
        did not appear within the hub's wait timeout.
        """
        if self._ended:
            raise StopAsyncIteration
        if self._replay:
            return self._deliver(self._replay.popleft())
        try:
            async with asyncio.timeout(timeout):
                item = await self._queue.get()
        except TimeoutError:
            return None
        if isinstance(item, Event):
            return self._deliver(item)
        self._ended = True
        if item is _DROPPED:
            raise SubscriberDropped(self.job_id, self.last_seq)
        if not self._seen_any and not self._hub._known(self.job_id):
            raise JobNotFound(self.job_id)
        raise StopAsyncIteration

    def _deliver(self, event: Event) -> Event:
        self._seen_any = True
        self.last_seq = event.seq
        if event.kind is EventKind.FINISHED:
            self._ended = True
            self.finished = True
        return event

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        event = await self.get(None)
        assert event is not None  # no timeout given
        return event

    def close(self) -> None:
        """Unsubscribe; later `get()` calls end the iteration."""
        self._accepting = False
        self._ended = True
        self._hub._unsubscribe(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class _JobLog:
    def __init__(self, max_backlog: int) -> None:
        self.events: deque[Event] = deque(maxlen=max_backlog)
        self.subscribers: set[Subscription] = set()
        self.finished_at: float | None = None


class EventHub:
    """In-process pub/sub of job events for live subscribers.

    Per job it keeps the last `max_backlog` events, so a subscriber that arrives late (or
    reconnects) gets what it missed; a job is forgotten `retain_seconds` after its
    `finished` event. A subscriber whose queue holds `max_queue` undelivered events is
    dropped. A subscription to a job with no events yet waits `wait_timeout` seconds
    for the job to appear. At most `max_jobs` jobs are kept (the oldest go first).
    """

    def __init__(
        self,
        *,
        max_backlog: int = 1000,
        retain_seconds: float = 60.0,
        max_queue: int = 1000,
        wait_timeout: float = 30.0,
        max_jobs: int = 10000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_backlog = max_backlog
        self.retain_seconds = retain_seconds
        self.max_queue = max_queue
        self.wait_timeout = wait_timeout
        self.max_jobs = max_jobs
        self._clock = clock
        self._jobs: OrderedDict[str, _JobLog] = OrderedDict()
        self._waiting: dict[str, set[Subscription]] = {}
        self._finished: deque[tuple[float, str]] = deque()
        self._closed = False

    def publish(self, event: Event) -> None:
        """Record `event` and hand it to the job's subscribers. Never blocks, never raises."""
        self._prune()
        job = self._jobs.get(event.id)
        if job is not None and event.seq == 0 and job.events:
            # A new attempt of the job (a redelivery): its seq starts again. Subscribers
            # of the old attempt end here rather than see seq jump back.
            self._drop_job(event.id)
            job = None
        if job is None:
            job = _JobLog(self.max_backlog)
            self._jobs[event.id] = job
            job.subscribers |= self._waiting.pop(event.id, set())
            self._evict()
        job.events.append(event)
        for sub in list(job.subscribers):
            sub._offer(event)
        if event.kind is EventKind.FINISHED:
            job.finished_at = self._clock()
            self._finished.append((job.finished_at, event.id))
            job.subscribers.clear()

    def subscribe(self, job_id: str, after_seq: int | None = None) -> Subscription:
        """Events of `job_id` with `seq > after_seq`: the backlog, then live ones, to `finished`.

        Use as `async with hub.subscribe(id) as sub: async for event in sub: ...`.
        """
        self._prune()
        sub = Subscription(self, job_id, after_seq, self.max_queue)
        if self._closed:
            sub._stop()
            return sub
        job = self._jobs.get(job_id)
        if job is None:
            self._waiting.setdefault(job_id, set()).add(sub)
            asyncio.get_running_loop().call_later(self.wait_timeout, self._give_up, sub)
            return sub
        for event in job.events:
            sub._offer(event, replay=True)
        if job.finished_at is None:
            job.subscribers.add(sub)
        else:
            sub._stop()  # ends after the replay (a no-op if it holds `finished`)
        return sub

    def close(self) -> None:
        """End every subscription (on shutdown), so open SSE responses finish."""
        self._closed = True
        for job in self._jobs.values():
            for sub in list(job.subscribers):
                sub._stop()
        for subs in list(self._waiting.values()):
            for sub in list(subs):
                sub._stop()

    def seen_all(self, job_id: str, after_seq: int | None) -> bool:
        """Whether `job_id` has finished and a client holding `after_seq` has every event."""
        self._prune()
        job = self._jobs.get(job_id)
        if job is None or job.finished_at is None or after_seq is None:
            return False
        return after_seq >= job.events[-1].seq

    def subscriber_count(self, job_id: str) -> int:
        """Live subscribers of `job_id`, including those still waiting for it to appear."""
        job = self._jobs.get(job_id)
        live = len(job.subscribers) if job is not None else 0
        return live + len(self._waiting.get(job_id, ()))

    def backlog(self, job_id: str) -> list[Event]:
        """The events of `job_id` still kept (for tests and debugging)."""
        self._prune()
        job = self._jobs.get(job_id)
        return list(job.events) if job is not None else []

    def _known(self, job_id: str) -> bool:
        return job_id in self._jobs

    def _give_up(self, sub: Subscription) -> None:
        if sub in self._waiting.get(sub.job_id, ()):
            sub._stop()

    def _unsubscribe(self, sub: Subscription) -> None:
        job = self._jobs.get(sub.job_id)
        if job is not None:
            job.subscribers.discard(sub)
        waiting = self._waiting.get(sub.job_id)
        if waiting is not None:
            waiting.discard(sub)
            if not waiting:
                del self._waiting[sub.job_id]

    def _drop_job(self, job_id: str) -> None:
        job = self._jobs.pop(job_id)
        for sub in list(job.subscribers):
            sub._stop()

    def _prune(self) -> None:
        now = self._clock()
        while self._finished and now - self._finished[0][0] >= self.retain_seconds:
            finished_at, job_id = self._finished.popleft()
            job = self._jobs.get(job_id)
            # The entry may belong to a newer attempt by now; only drop the one that finished.
            if job is not None and job.finished_at == finished_at:
                del self._jobs[job_id]

    def _evict(self) -> None:
        while len(self._jobs) > self.max_jobs:
            self._drop_job(next(iter(self._jobs)))
