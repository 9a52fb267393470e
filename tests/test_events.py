"""Building output events (EventStream) and fanning them out (EventHub). No Docker, no I/O."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandboxd.events import EventHub, EventStream, JobNotFound, SubscriberDropped
from sandboxd.models import Event, EventKind, TestResult, TestStatus


def collect(job_id: str = "j1", max_chunk: int = 16384) -> tuple[EventStream, list[Event]]:
    events: list[Event] = []
    return EventStream(job_id, events.append, max_chunk=max_chunk), events


def texts(events: list[Event], kind: EventKind) -> list[str]:
    out = []
    for e in events:
        if e.kind is kind:
            assert isinstance(e.data, dict)
            text = e.data["text"]
            assert isinstance(text, str)
            out.append(text)
    return out


# -- EventStream ----------------------------------------------------------------------------


def test_started_is_seq_zero_and_finished_is_last() -> None:
    """A run yields started (seq 0), its output, then finished, with seq counting up by one."""
    stream, events = collect()
    stream.started({"language": "python"})
    stream.output("stdout", b"hi\n")
    stream.finished({"status": "passed"})
    assert [(e.seq, e.kind) for e in events] == [
        (0, EventKind.STARTED),
        (1, EventKind.STDOUT),
        (2, EventKind.FINISHED),
    ]
    assert events[0].data == {"language": "python"}
    assert events[1].data == {"text": "hi\n"}
    assert events[2].data == {"status": "passed"}
    assert all(e.id == "j1" for e in events)


def test_output_before_started_still_begins_with_started() -> None:
    """Output arriving before started() is preceded by an automatic started event."""
    stream, events = collect()
    stream.output("stderr", b"x")
    stream.started()  # late call is a no-op
    stream.finished()
    assert [e.kind for e in events] == [EventKind.STARTED, EventKind.STDERR, EventKind.FINISHED]


def test_consecutive_chunks_of_one_stream_are_coalesced() -> None:
    """Many small chunks of the same stream become a single event."""
    stream, events = collect()
    stream.started()
    for ch in b"hello world":
        stream.output("stdout", bytes([ch]))
    stream.finished()
    assert texts(events, EventKind.STDOUT) == ["hello world"]


def test_a_stream_change_flushes_and_keeps_order() -> None:
    """Switching between stdout and stderr emits the buffered text first, preserving order."""
    stream, events = collect()
    stream.output("stdout", b"a")
    stream.output("stdout", b"b")
    stream.output("stderr", b"E")
    stream.output("stdout", b"c")
    stream.finished()
    assert [(e.kind, e.data) for e in events[1:-1]] == [
        (EventKind.STDOUT, {"text": "ab"}),
        (EventKind.STDERR, {"text": "E"}),
        (EventKind.STDOUT, {"text": "c"}),
    ]


def test_large_output_is_split_at_max_chunk_bytes() -> None:
    """A buffer over max_chunk is emitted in pieces of at most max_chunk UTF-8 bytes."""
    stream, events = collect(max_chunk=10)
    data = "é" * 25  # 50 bytes; pieces must not split a character
    stream.output("stdout", data.encode())
    stream.finished()
    pieces = texts(events, EventKind.STDOUT)
    assert "".join(pieces) == data
    assert len(pieces) > 1
    assert all(len(p.encode()) <= 10 for p in pieces)


def test_a_character_split_across_chunks_is_decoded_whole() -> None:
    """A multi-byte character cut at a chunk boundary is carried into the next chunk."""
    stream, events = collect()
    snowman = "☃".encode()
    stream.output("stdout", b"a" + snowman[:1])
    stream.output("stderr", b"err")  # an interleaved stream does not disturb stdout's decoder
    stream.output("stdout", snowman[1:] + b"b")
    stream.finished()
    assert "".join(texts(events, EventKind.STDOUT)) == "a☃b"
    assert texts(events, EventKind.STDERR) == ["err"]


def test_invalid_and_truncated_bytes_become_replacement_characters() -> None:
    """Invalid UTF-8 becomes U+FFFD, and so does an incomplete character left at the end."""
    stream, events = collect()
    stream.output("stdout", b"ok\xff")
    stream.output("stdout", "☃".encode()[:2])
    stream.finished()
    assert "".join(texts(events, EventKind.STDOUT)) == "ok\ufffd\ufffd"
    assert events[-1].kind is EventKind.FINISHED


def test_test_event_comes_after_the_output_before_it() -> None:
    """A test result flushes pending output first, and carries the result's fields."""
    stream, events = collect()
    stream.output("stdout", b"running\n")
    stream.test(TestResult(name="test_add", status=TestStatus.PASS))
    stream.test({"name": "test_sub", "status": "fail", "message": "1 != 2"})
    stream.finished()
    assert [e.kind for e in events] == [
        EventKind.STARTED,
        EventKind.STDOUT,
        EventKind.TEST,
        EventKind.TEST,
        EventKind.FINISHED,
    ]
    assert events[2].data == {"name": "test_add", "status": "pass"}
    assert events[3].data == {"name": "test_sub", "status": "fail", "message": "1 != 2"}


def test_calls_after_finished_are_ignored() -> None:
    """Once finished, the stream emits nothing more."""
    stream, events = collect()
    stream.finished()
    stream.output("stdout", b"late")
    stream.test({"name": "t"})
    stream.finished()
    assert [e.kind for e in events] == [EventKind.STARTED, EventKind.FINISHED]
    assert stream.closed


def test_a_failing_consumer_does_not_break_the_producer() -> None:
    """An exception in on_event is logged, and the job's stream carries on."""
    seen: list[int] = []

    def flaky(event: Event) -> None:
        seen.append(event.seq)
        if event.seq == 1:
            raise RuntimeError("reply queue full")

    stream = EventStream("j", flaky)
    stream.output("stdout", b"x")
    stream.output("stderr", b"y")
    stream.finished()
    assert seen == [0, 1, 2, 3]


async def test_buffered_output_is_flushed_after_the_interval() -> None:
    """With an event loop, buffered output goes out after flush_interval without more input."""
    got: asyncio.Queue[Event] = asyncio.Queue()
    stream = EventStream("j", got.put_nowait, flush_interval=0.01)
    stream.output("stdout", b"partial line")
    assert (await asyncio.wait_for(got.get(), 5)).kind is EventKind.STARTED
    event = await asyncio.wait_for(got.get(), 5)
    assert (event.kind, event.data) == (EventKind.STDOUT, {"text": "partial line"})
    stream.finished()


chunks = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["stdout", "stderr"]), st.binary(max_size=40)),
        st.tuples(st.just("test"), st.text(max_size=5)),
        st.tuples(
            st.sampled_from(["stdout", "stderr"]),
            st.text(max_size=12).map(lambda s: s.encode("utf-8")),
        ),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(chunks, st.integers(min_value=4, max_value=64))
def test_events_reproduce_the_output_exactly_and_without_gaps(
    seq_of_chunks: list[tuple[str, bytes | str]], max_chunk: int
) -> None:
    """For any chunking, each stream's event text is its bytes decoded, and seq is 0..n-1."""
    stream, events = collect(max_chunk=max_chunk)
    raw: dict[str, bytes] = {"stdout": b"", "stderr": b""}
    n_tests = 0
    stream.started()
    for name, payload in seq_of_chunks:
        if name == "test":
            stream.test({"name": str(payload)})
            n_tests += 1
        else:
            assert isinstance(payload, bytes)
            which: Literal["stdout", "stderr"] = "stdout" if name == "stdout" else "stderr"
            stream.output(which, payload)
            raw[name] += payload
    stream.finished({"status": "passed"})

    assert [e.seq for e in events] == list(range(len(events)))
    assert events[0].kind is EventKind.STARTED
    assert [e.kind for e in events].count(EventKind.FINISHED) == 1
    assert events[-1].kind is EventKind.FINISHED
    assert [e.kind for e in events].count(EventKind.TEST) == n_tests
    for name, kind in (("stdout", EventKind.STDOUT), ("stderr", EventKind.STDERR)):
        pieces = texts(events, kind)
        assert "".join(pieces) == raw[name].decode("utf-8", errors="replace")
        assert all(0 < len(p.encode("utf-8")) <= max_chunk for p in pieces)
    for e in events:
        Event.model_validate_json(e.model_dump_json(by_alias=True))  # valid on the wire


# -- EventHub -------------------------------------------------------------------------------


def ev(seq: int, kind: EventKind = EventKind.STDOUT, job_id: str = "j") -> Event:
    data = {"text": f"line {seq}"} if kind in (EventKind.STDOUT, EventKind.STDERR) else {}
    return Event(id=job_id, seq=seq, kind=kind, data=data)


def run_of(n: int, job_id: str = "j") -> list[Event]:
    """started, n-2 stdout events, finished."""
    return (
        [ev(0, EventKind.STARTED, job_id)]
        + [ev(i, job_id=job_id) for i in range(1, n - 1)]
        + [ev(n - 1, EventKind.FINISHED, job_id)]
    )


async def drain(hub: EventHub, job_id: str, after: int | None = None) -> list[int]:
    async with hub.subscribe(job_id, after) as sub:
        return [e.seq async for e in sub]


async def test_subscriber_gets_backlog_then_live_events_until_finished() -> None:
    """A late subscriber first gets what was published, then follows live to finished."""
    hub = EventHub()
    events = run_of(6)
    for e in events[:3]:
        hub.publish(e)
    reader = asyncio.create_task(drain(hub, "j"))
    await asyncio.sleep(0)
    for e in events[3:]:
        hub.publish(e)
    assert await asyncio.wait_for(reader, 5) == [0, 1, 2, 3, 4, 5]
    assert hub.subscriber_count("j") == 0


async def test_after_seq_skips_what_the_client_has() -> None:
    """Subscribing with after_seq (Last-Event-ID) replays only later events."""
    hub = EventHub()
    for e in run_of(5):
        hub.publish(e)
    assert await drain(hub, "j", after=2) == [3, 4]
    assert hub.seen_all("j", 4)
    assert not hub.seen_all("j", 3)


async def test_subscribing_before_the_job_appears_waits_for_it() -> None:
    """A subscription to an unknown job waits, then receives the job's events from seq 0."""
    hub = EventHub(wait_timeout=30)
    reader = asyncio.create_task(drain(hub, "later"))
    await asyncio.sleep(0)
    assert hub.subscriber_count("later") == 1
    for e in run_of(3, "later"):
        hub.publish(e)
    assert await asyncio.wait_for(reader, 5) == [0, 1, 2]


async def test_a_job_that_never_appears_ends_with_job_not_found() -> None:
    """If no event of the job arrives within wait_timeout, the subscription raises JobNotFound."""
    hub = EventHub(wait_timeout=0.01)
    with pytest.raises(JobNotFound):
        await asyncio.wait_for(drain(hub, "nope"), 5)
    assert hub.subscriber_count("nope") == 0


async def test_a_slow_subscriber_is_dropped_without_blocking_the_publisher() -> None:
    """A subscriber with a full queue is dropped (after what it had queued); others are fine."""
    hub = EventHub(max_queue=3)
    slow = hub.subscribe("j")
    fast_reader = asyncio.create_task(drain(hub, "j"))
    await asyncio.sleep(0)
    events = run_of(10)
    for e in events:
        hub.publish(e)  # synchronous: it cannot block
        await asyncio.sleep(0)  # the fast reader keeps up
    got = []
    with pytest.raises(SubscriberDropped) as info:
        while True:
            event = await slow.get(5)
            assert event is not None
            got.append(event.seq)
    assert got == [0, 1, 2]
    assert info.value.last_seq == 2
    assert await asyncio.wait_for(fast_reader, 5) == list(range(10))


async def test_get_returns_none_on_timeout() -> None:
    """get(timeout) gives None when nothing arrives, so a caller can send keep-alives."""
    hub = EventHub()
    hub.publish(ev(0, EventKind.STARTED))
    async with hub.subscribe("j") as sub:
        assert (await sub.get(1)) is not None
        assert await sub.get(0.01) is None


async def test_backlog_is_bounded_and_finished_jobs_are_forgotten() -> None:
    """The hub keeps the last max_backlog events and forgets a job retain_seconds after finish."""
    now = [0.0]
    hub = EventHub(max_backlog=4, retain_seconds=60, clock=lambda: now[0])
    for e in run_of(10):
        hub.publish(e)
    assert [e.seq for e in hub.backlog("j")] == [6, 7, 8, 9]
    now[0] = 59.0
    assert hub.backlog("j")
    now[0] = 60.0
    assert hub.backlog("j") == []


async def test_a_new_attempt_replaces_the_old_one() -> None:
    """A redelivered job's events (seq from 0 again) replace the earlier attempt's backlog."""
    hub = EventHub()
    for e in run_of(5):
        hub.publish(e)
    hub.publish(ev(0, EventKind.STARTED))
    assert [e.seq for e in hub.backlog("j")] == [0]


async def test_max_jobs_evicts_the_oldest() -> None:
    """At most max_jobs jobs are kept; the oldest goes first."""
    hub = EventHub(max_jobs=2)
    for job_id in ("a", "b", "c"):
        hub.publish(ev(0, EventKind.STARTED, job_id))
    assert hub.backlog("a") == []
    assert hub.backlog("b") and hub.backlog("c")


async def test_close_ends_every_subscription() -> None:
    """Closing the hub ends live and waiting subscriptions, so servers can stop."""
    hub = EventHub()
    hub.publish(ev(0, EventKind.STARTED))
    live = asyncio.create_task(drain(hub, "j"))
    waiting = asyncio.create_task(drain(hub, "other"))
    await asyncio.sleep(0)
    hub.close()
    assert await asyncio.wait_for(live, 5) == [0]
    with pytest.raises(JobNotFound):
        await asyncio.wait_for(waiting, 5)
