"""The daemon's HTTP side: health, readiness, metrics, pool state and live job events.

`create_app(state)` builds the FastAPI app from what the daemon hands in; `HttpServer`
runs it with uvicorn inside the daemon's own event loop, leaving SIGTERM and SIGINT to
the daemon (which drains jobs before it stops serving).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import uvicorn
from fastapi import FastAPI, Header, Path, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from sandboxd import __version__
from sandboxd.events import EventHub, JobNotFound, SubscriberDropped
from sandboxd.metrics import Metrics, PoolStatsLike
from sandboxd.models import MAX_ID_CHARS, Event

log = logging.getLogger(__name__)

ReadinessFn = Callable[[], Awaitable[tuple[bool, list[str]]]]
PoolsFn = Callable[[], Iterable[PoolStatsLike]]

SSE_MEDIA_TYPE: Final = "text/event-stream"


@dataclass
class ApiState:
    """What the HTTP side needs from the daemon."""

    metrics: Metrics
    hub: EventHub
    readiness: ReadinessFn  # -> (ready, reasons it is not)
    pools: PoolsFn  # e.g. `Pool.stats`
    version: str = __version__
    keepalive_seconds: float = 15.0  # SSE comment interval, so proxies keep the stream open
    readiness_timeout: float = 5.0


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool
    reasons: list[str] = Field(
        default_factory=list, description="Why the host is not ready (empty when it is)."
    )


class PoolInfo(BaseModel):
    pool: str = Field(description="Language (or `image:<name>`) the pool serves.")
    size: int = Field(description="Sandboxes the pool holds now, in any state.")
    idle: int
    busy: int
    starting: int
    slots: int = Field(description="Jobs the pool may run at once: its share of the host's slots.")
    target: int = Field(description="Warm sandboxes the pool is kept at: its slots and spares.")
    demand: float = Field(
        description="Jobs the pool held at once recently: arrival rate x hold time "
        "(Little's law); what its slots are planned from."
    )
    fixed: bool = Field(
        description="Its size is configured (SANDBOXD_POOL_SIZES), not planned from demand."
    )
    ready: bool = Field(True, description="Its language serves jobs (its canary passed at start).")
    reason: str | None = Field(
        None, description="Why its language does not serve jobs, when it does not."
    )


_EVENTS_DESCRIPTION = """\
Server-Sent Events of one job. Each message is `id: <seq>`, `event: <kind>` and
`data: <event JSON>`, the JSON being a `sandboxd.event/v1` document
(docs/schemas/event.v1.schema.json). Events the host still holds are replayed first
(those with `seq` above `Last-Event-ID` when that header is sent), then live ones
follow; the stream ends after the `finished` event. A comment line is sent every 15 s
while nothing happens. A client that already has the `finished` event (per
`Last-Event-ID`) gets 204, which stops an EventSource from reconnecting.

A stream may instead end with `event: notice` (no `id`), whose data is
`{"notice": "dropped" | "not_found" | "closed", "message": ...}`: the client fell too
far behind (reconnect with `Last-Event-ID`), no job with this id appeared in time on
this host, or the host is shutting down.
"""


def sse_message(event: Event) -> bytes:
    """One SSE message for `event` (its JSON is a single line: newlines are escaped)."""
    payload = event.model_dump_json(by_alias=True)
    return f"id: {event.seq}\nevent: {event.kind.value}\ndata: {payload}\n\n".encode()


def _notice(notice: str, message: str, **extra: Any) -> bytes:
    payload = json.dumps({"notice": notice, "message": message, **extra})
    return f"event: notice\ndata: {payload}\n\n".encode()


def _last_seq(header: str | None) -> int | None:
    if header is None:
        return None
    try:
        value = int(header.strip())
    except ValueError:
        return None  # not one of our ids: replay everything
    return value if value >= 0 else None


def create_app(state: ApiState) -> FastAPI:
    app = FastAPI(
        title="sandboxd",
        version=state.version,
        summary="Health, readiness, metrics, pool state and live job events of one sandboxd host.",
        # The interactive docs pages load their scripts from a CDN; the schema is enough.
        docs_url=None,
        redoc_url=None,
    )

    @app.get("/healthz", response_model=Health, tags=["probes"], summary="Liveness")
    async def healthz() -> Health:
        return Health()

    @app.get(
        "/readyz",
        response_model=Readiness,
        tags=["probes"],
        summary="Readiness: Docker reachable, queue reachable, pools warm",
        responses={503: {"model": Readiness, "description": "Not ready; `reasons` say why."}},
    )
    async def readyz() -> JSONResponse:
        try:
            async with asyncio.timeout(state.readiness_timeout):
                ready, reasons = await state.readiness()
        except TimeoutError:
            ready, reasons = False, [f"readiness check took over {state.readiness_timeout:g} s"]
        except Exception as exc:
            log.exception("readiness check failed")
            ready, reasons = False, [f"readiness check failed: {exc}"]
        state.metrics.set_ready(ready)
        body = Readiness(ready=ready, reasons=[] if ready else list(reasons))
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

    @app.get(
        "/metrics",
        tags=["observability"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics(request: Request) -> Response:
        body, content_type = state.metrics.render(request.headers.get("accept", ""))
        return Response(content=body, headers={"Content-Type": content_type})

    @app.get(
        "/v1/pools",
        response_model=list[PoolInfo],
        tags=["observability"],
        summary="Warm pools: sandboxes by state, slots, target and demand",
    )
    async def pools() -> list[PoolInfo]:
        return [
            PoolInfo(
                pool=s.pool,
                size=s.size,
                idle=s.idle,
                busy=s.busy,
                starting=s.starting,
                slots=getattr(s, "slots", s.size),
                target=getattr(s, "target", s.size),
                demand=getattr(s, "demand", 0.0),
                fixed=getattr(s, "fixed", True),
                ready=getattr(s, "unavailable", None) is None,
                reason=getattr(s, "unavailable", None),
            )
            for s in state.pools()
        ]

    @app.get(
        "/v1/jobs/{job_id}/events",
        tags=["jobs"],
        summary="Live output events of a job (Server-Sent Events)",
        description=_EVENTS_DESCRIPTION,
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "An event stream.",
                "content": {SSE_MEDIA_TYPE: {"schema": {"type": "string"}}},
            },
            204: {"description": "The job has finished and the client has every event."},
        },
    )
    async def job_events(
        job_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)],
        last_event_id: Annotated[
            str | None, Header(description="The `seq` of the last event the client has.")
        ] = None,
    ) -> Response:
        after = _last_seq(last_event_id)
        if state.hub.seen_all(job_id, after):
            # 204 tells an EventSource not to reconnect: there is nothing more to come.
            return Response(status_code=204)

        async def body() -> AsyncIterator[bytes]:
            # Subscribe only once the body is iterated: a client gone before that
            # leaves nothing behind in the hub.
            async with state.hub.subscribe(job_id, after) as subscription:
                while True:
                    try:
                        event = await subscription.get(state.keepalive_seconds)
                    except StopAsyncIteration:
                        if not subscription.finished:
                            yield _notice("closed", "the host closed the stream")
                        return
                    except SubscriberDropped as exc:
                        yield _notice("dropped", str(exc), last_seq=exc.last_seq)
                        return
                    except JobNotFound as exc:
                        yield _notice("not_found", str(exc))
                        return
                    yield b": keep-alive\n\n" if event is None else sse_message(event)

        return StreamingResponse(
            body(),
            media_type=SSE_MEDIA_TYPE,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return app


# -- serving ----------------------------------------------------------------------------


class HttpServerError(RuntimeError):
    """The HTTP server could not start (e.g. the port is in use)."""


class _Server(uvicorn.Server):
    """uvicorn in a loop it does not own: no signal handlers, and a start-up event."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn would replace SIGINT/SIGTERM handlers with its own for as long as it
        # serves; the daemon owns those signals and stops this server itself.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


class HttpServer:
    """Serve `app` on host:port in the running event loop.

    `await start()` returns once the socket listens (port 0 picks a free port; see
    `port`). `await stop()` stops accepting, lets open requests finish for up to
    `grace_seconds`, then cancels them. Close the `EventHub` first so open event
    streams end at once instead of being cut.
    """

    def __init__(
        self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, *, grace_seconds: float = 5.0
    ) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self.grace_seconds = grace_seconds
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _bind(self) -> socket.socket:
        # Bind here rather than in uvicorn: uvicorn answers a bind failure with
        # sys.exit(), which must not happen inside the daemon.
        try:
            infos = socket.getaddrinfo(
                self.host, self._requested_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except socket.gaierror as exc:
            raise HttpServerError(f"cannot listen on {self.host!r}: {exc}") from None
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError as exc:
            sock.close()
            raise HttpServerError(
                f"cannot listen on {self.host}:{self._requested_port}: {exc.strerror or exc}"
            ) from None
        sock.set_inheritable(False)
        return sock

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the server is already started")
        sock = self._bind()
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_level="warning",
            log_config=None,  # logging belongs to the daemon
            access_log=False,
            http="h11",
            ws="none",
            timeout_graceful_shutdown=max(1, round(self.grace_seconds)),
            server_header=False,
        )
        self._server = server = _Server(config)
        self._task = task = asyncio.create_task(server.serve(sockets=[sock]), name="http-server")
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
        if not listening.done():
            listening.cancel()
            sock.close()
            self._task = None
            exc = task.exception() if not task.cancelled() else None
            raise HttpServerError(f"the HTTP server did not start: {exc!r}")

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await self._task
        finally:
            self._task = None
            self._server = None
