"""The HTTP API over real HTTP: uvicorn on a loopback port, httpx as the client."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sandboxd import openapi
from sandboxd.api import ApiState, HttpServer, HttpServerError, create_app
from sandboxd.events import EventHub, EventStream
from sandboxd.metrics import Metrics
from sandboxd.models import Event, EventKind
from sandboxd.pool import PoolStats

DOCS = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


class Readiness:
    """A readiness stub the test can flip."""

    def __init__(self) -> None:
        self.ready = True
        self.reasons: list[str] = []

    async def __call__(self) -> tuple[bool, list[str]]:
        return self.ready, self.reasons


class Api:
    def __init__(self, state: ApiState, server: HttpServer, client: httpx.AsyncClient) -> None:
        self.state = state
        self.server = server
        self.client = client

    @property
    def hub(self) -> EventHub:
        return self.state.hub


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api() -> AsyncIterator[ApiFactory]:
    """Factory: an app served on 127.0.0.1 (free port) plus a client; all stopped after."""
    made: list[Api] = []

    async def factory(
        readiness: Callable[[], Awaitable[tuple[bool, list[str]]]] | None = None,
        hub: EventHub | None = None,
        **state_fields: Any,
    ) -> Api:
        pools = [
            PoolStats("python", 2, 1, 1, 0, target=3, slots=2, demand=1.25, fixed=False),
            PoolStats("ruby", size=1, idle=0, busy=0, starting=1, target=1, slots=1,
                      unavailable="canary hello: failed, not passed: 1 of 1 tests did not pass."),
        ]  # fmt: skip
        state = ApiState(
            metrics=Metrics(["python", "ruby"]),
            hub=hub or EventHub(),
            readiness=readiness or Readiness(),
            pools=lambda: pools,
            version="9.9.9-test",
            **state_fields,
        )
        server = HttpServer(create_app(state), "127.0.0.1", 0)
        await server.start()
        # trust_env=False: never route loopback traffic through a proxy from the environment.
        client = httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10)
        api = Api(state, server, client)
        made.append(api)
        return api

    yield factory
    for api in made:
        await api.client.aclose()
        api.hub.close()
        await api.server.stop()


async def read_sse(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """Parse an SSE body into messages ({field: value}; comments under the key ':')."""
    message: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if message:
                yield message
            message = {}
        elif line.startswith(":"):
            yield {":": line[1:].strip()}
        else:
            field, _, value = line.partition(":")
            message[field] = value.removeprefix(" ")


async def stream_events(
    api: Api, job_id: str, headers: dict[str, str] | None = None
) -> list[dict[str, str]]:
    async with api.client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        return [m async for m in read_sse(resp) if ":" not in m]


def run_of(job_id: str, n: int) -> list[Event]:
    events = [Event(id=job_id, seq=0, kind=EventKind.STARTED, data={})]
    events += [
        Event(id=job_id, seq=i, kind=EventKind.STDOUT, data={"text": f"line {i}\n"})
        for i in range(1, n - 1)
    ]
    events.append(Event(id=job_id, seq=n - 1, kind=EventKind.FINISHED, data={"status": "passed"}))
    return events


# -- probes, metrics, pools --------------------------------------------------------------------


async def test_healthz_says_ok(make_api: ApiFactory) -> None:
    """/healthz answers 200 {"status": "ok"} whatever the readiness."""
    api = await make_api(readiness=Readiness())
    resp = await api.client.get("/healthz")
    assert (resp.status_code, resp.json()) == (200, {"status": "ok"})


async def test_readyz_follows_the_readiness_check_and_sets_the_gauge(make_api: ApiFactory) -> None:
    """/readyz is 200 when ready, 503 with reasons when not, and sandboxd_ready follows."""
    check = Readiness()
    api = await make_api(readiness=check)
    resp = await api.client.get("/readyz")
    assert (resp.status_code, resp.json()) == (200, {"ready": True, "reasons": []})
    assert api.state.metrics.registry.get_sample_value("sandboxd_ready") == 1

    check.ready, check.reasons = False, ["docker unreachable", "pool python not warm"]
    resp = await api.client.get("/readyz")
    assert resp.status_code == 503
    reasons = ["docker unreachable", "pool python not warm"]
    assert resp.json() == {"ready": False, "reasons": reasons}
    assert api.state.metrics.registry.get_sample_value("sandboxd_ready") == 0


async def test_readyz_is_503_when_the_check_fails_or_hangs(make_api: ApiFactory) -> None:
    """A readiness check that raises or exceeds its timeout makes the host not ready."""

    async def broken() -> tuple[bool, list[str]]:
        raise ConnectionError("sqs down")

    api = await make_api(readiness=broken)
    resp = await api.client.get("/readyz")
    assert resp.status_code == 503
    assert resp.json()["reasons"] == ["readiness check failed: sqs down"]

    async def hangs() -> tuple[bool, list[str]]:
        await asyncio.sleep(60)
        return True, []

    api = await make_api(readiness=hangs, readiness_timeout=0.05)
    resp = await api.client.get("/readyz")
    assert resp.status_code == 503
    assert "took over" in resp.json()["reasons"][0]


async def test_metrics_endpoint_serves_the_registry(make_api: ApiFactory) -> None:
    """/metrics is Prometheus text that a parser reads, and it shows counters moving."""
    api = await make_api()

    async def jobs_passed() -> float:
        resp = await api.client.get("/metrics")
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
        for fam in text_string_to_metric_families(resp.text):
            for s in fam.samples:
                if s.name == "sandboxd_jobs_total" and s.labels == {
                    "language": "python",
                    "verdict": "passed",
                }:
                    return s.value
        raise AssertionError("sandboxd_jobs_total{language=python,verdict=passed} missing")

    assert await jobs_passed() == 0
    api.state.metrics.job_finished("python", "passed", 0.01, 0.001, 0.5, 0.6)
    assert await jobs_passed() == 1


async def test_pools_lists_every_pool(make_api: ApiFactory) -> None:
    """/v1/pools lists each pool with its sandboxes by state, slots, target and demand, and
    whether its language serves (a failed canary says why)."""
    api = await make_api()
    resp = await api.client.get("/v1/pools")
    assert resp.status_code == 200
    assert resp.json() == [
        {"pool": "python", "size": 2, "idle": 1, "busy": 1, "starting": 0,
         "slots": 2, "target": 3, "demand": 1.25, "fixed": False,
         "ready": True, "reason": None},
        {"pool": "ruby", "size": 1, "idle": 0, "busy": 0, "starting": 1,
         "slots": 1, "target": 1, "demand": 0.0, "fixed": True, "ready": False,
         "reason": "canary hello: failed, not passed: 1 of 1 tests did not pass."},
    ]  # fmt: skip


# -- server-sent events ------------------------------------------------------------------------


async def test_sse_delivers_live_events_in_order_and_ends_after_finished(
    make_api: ApiFactory,
) -> None:
    """A client streaming a job gets every event, in order, as SSE, and the stream then ends."""
    api = await make_api()
    events = run_of("job-1", 8)

    async def producer() -> None:
        while api.hub.subscriber_count("job-1") == 0:
            await asyncio.sleep(0.01)
        for e in events:
            api.hub.publish(e)
            await asyncio.sleep(0)

    task = asyncio.create_task(producer())
    got = await asyncio.wait_for(stream_events(api, "job-1"), 10)
    await task
    assert [m["id"] for m in got] == [str(i) for i in range(8)]
    assert [m["event"] for m in got] == [e.kind.value for e in events]
    assert [Event.model_validate_json(m["data"]) for m in got] == events


async def test_sse_end_to_end_from_output_bytes(make_api: ApiFactory) -> None:
    """Output fed to an EventStream publishing into the hub reaches the SSE client as text."""
    api = await make_api()
    stream = EventStream("job-2", api.hub.publish)

    async def producer() -> None:
        while api.hub.subscriber_count("job-2") == 0:
            await asyncio.sleep(0.01)
        stream.started({"language": "python"})
        for chunk in (b"hello ", "w\u00f6".encode()[:2], "\u00f6".encode()[1:] + b"rld\n"):
            stream.output("stdout", chunk)
            await asyncio.sleep(0)
        stream.output("stderr", b"warn\n")
        stream.test({"name": "test_one", "status": "pass"})
        stream.finished({"status": "passed"})

    task = asyncio.create_task(producer())
    got = await asyncio.wait_for(stream_events(api, "job-2"), 10)
    await task
    data = [json.loads(m["data"]) for m in got]
    assert [d["seq"] for d in data] == list(range(len(data)))
    stdout = "".join(d["data"]["text"] for d in data if d["kind"] == "stdout")
    assert stdout == "hello w\u00f6rld\n"
    assert data[-1]["kind"] == "finished"


async def test_last_event_id_replays_only_later_events(make_api: ApiFactory) -> None:
    """Reconnecting with Last-Event-ID gets the events after it; with the last one, 204."""
    api = await make_api()
    for e in run_of("job-3", 6):
        api.hub.publish(e)
    got = await stream_events(api, "job-3", headers={"Last-Event-ID": "2"})
    assert [m["id"] for m in got] == ["3", "4", "5"]
    resp = await api.client.get("/v1/jobs/job-3/events", headers={"Last-Event-ID": "5"})
    assert resp.status_code == 204
    got = await stream_events(api, "job-3", headers={"Last-Event-ID": "not-a-number"})
    assert [m["id"] for m in got] == [str(i) for i in range(6)]


async def test_sse_sends_keep_alive_comments_while_idle(make_api: ApiFactory) -> None:
    """While a job is quiet the stream carries comment lines, then resumes with events."""
    api = await make_api(keepalive_seconds=0.02)
    api.hub.publish(Event(id="job-4", seq=0, kind=EventKind.STARTED, data={}))
    comments = 0
    kinds = []
    async with api.client.stream("GET", "/v1/jobs/job-4/events") as resp:
        async for m in read_sse(resp):
            if ":" in m:
                comments += 1
                if comments == 2:
                    api.hub.publish(Event(id="job-4", seq=1, kind=EventKind.FINISHED, data={}))
            else:
                kinds.append(m["event"])
    assert comments >= 2
    assert kinds == ["started", "finished"]


async def test_unknown_job_ends_with_a_not_found_notice(make_api: ApiFactory) -> None:
    """A job that never appears ends the stream with a not_found notice and no event ids."""
    api = await make_api(hub=EventHub(wait_timeout=0.05))
    got = await asyncio.wait_for(stream_events(api, "ghost"), 10)
    assert [m["event"] for m in got] == ["notice"]
    assert "id" not in got[0]
    assert json.loads(got[0]["data"])["notice"] == "not_found"


async def test_closing_the_hub_ends_open_streams_and_stop_returns(make_api: ApiFactory) -> None:
    """On shutdown, hub.close() ends open streams with a notice, and the server stops."""
    api = await make_api()
    api.hub.publish(Event(id="job-5", seq=0, kind=EventKind.STARTED, data={}))

    async def close_when_subscribed() -> None:
        while api.hub.subscriber_count("job-5") == 0:
            await asyncio.sleep(0.01)
        api.hub.close()

    task = asyncio.create_task(close_when_subscribed())
    got = await asyncio.wait_for(stream_events(api, "job-5"), 10)
    await task
    assert [m["event"] for m in got] == ["started", "notice"]
    assert json.loads(got[1]["data"])["notice"] == "closed"
    await asyncio.wait_for(api.server.stop(), 10)


async def test_a_client_that_goes_away_is_unsubscribed(make_api: ApiFactory) -> None:
    """When the client disconnects mid-stream, its subscription leaves the hub."""
    api = await make_api()
    api.hub.publish(Event(id="job-6", seq=0, kind=EventKind.STARTED, data={}))
    async with api.client.stream("GET", "/v1/jobs/job-6/events") as resp:
        async for _ in read_sse(resp):
            break  # got the first event; leave
    for _ in range(500):
        if api.hub.subscriber_count("job-6") == 0:
            break
        await asyncio.sleep(0.01)
    assert api.hub.subscriber_count("job-6") == 0


# -- server --------------------------------------------------------------------------------


async def test_server_leaves_the_daemons_signal_handlers_alone(make_api: ApiFactory) -> None:
    """Serving never replaces SIGTERM/SIGINT handlers: draining on a signal is the daemon's."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    api = await make_api()
    assert (await api.client.get("/healthz")).status_code == 200
    assert {sig: signal.getsignal(sig) for sig in before} == before
    await api.server.stop()
    assert {sig: signal.getsignal(sig) for sig in before} == before


async def test_a_port_in_use_is_a_clear_error(make_api: ApiFactory) -> None:
    """Starting on a port that is taken raises HttpServerError naming the address."""
    api = await make_api()
    other = HttpServer(create_app(api.state), "127.0.0.1", api.server.port)
    with pytest.raises(HttpServerError, match=rf"127\.0\.0\.1:{api.server.port}"):
        await other.start()
    # The failed attempt leaves the running server serving.
    assert (await api.client.get("/healthz")).status_code == 200


async def test_stop_frees_the_port(make_api: ApiFactory) -> None:
    """After stop() the port can be bound again."""
    api = await make_api()
    port = api.server.port
    await api.server.stop()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


# -- OpenAPI -------------------------------------------------------------------------------


async def test_openapi_is_served_and_published(make_api: ApiFactory) -> None:
    """The app serves its OpenAPI document, and docs/openapi.json is the current one."""
    api = await make_api()
    served = (await api.client.get("/openapi.json")).json()
    assert set(served["paths"]) == {
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/pools",
        "/v1/jobs/{job_id}/events",
    }
    published = DOCS.read_text(encoding="utf-8")
    assert published == openapi.render(), "run `python -m sandboxd.openapi` to refresh"
    served["info"]["version"] = json.loads(published)["info"]["version"]
    assert served == json.loads(published)
