"""`sandboxd serve`: the daemon's lifecycle around the intake loop.

Start: the embedded SQS server (or AWS), the queues, the Docker engine, the warm pools,
the HTTP server, then the intake loop. SIGTERM/SIGINT: stop receiving, give back jobs not
started, let running jobs finish within the grace period and send their results, stop
everything, exit 0. A second signal gives every job back at once and exits 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import aiodocker

from sandboxd.api import ApiState, HttpServer, HttpServerError, create_app
from sandboxd.canary import run_canary
from sandboxd.catalog import load_spec
from sandboxd.config import Settings
from sandboxd.events import EventHub
from sandboxd.intake import Intake, ResultStore
from sandboxd.jobs import RunContext
from sandboxd.metrics import Metrics
from sandboxd.pool import Pool, PoolConfig
from sandboxd.sandbox import SandboxSpec
from sandboxd.sqs import (
    EmbeddedSQS,
    EmbeddedSQSError,
    QueueClient,
    QueueError,
    QueueNotFound,
    QueueSetupError,
    QueueUrls,
    aws_cli_hint,
    aws_queue_urls,
)

log = logging.getLogger(__name__)

EXIT_FORCED = 1
READINESS_CALL_TIMEOUT = 2.0


class StartupError(Exception):
    """The daemon cannot start; the message is one line for the operator."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "aiobotocore", "aioboto3", "urllib3", "uvicorn", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class Daemon:
    """One running `sandboxd serve`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.hub = EventHub()
        self.embedded: EmbeddedSQS | None = None
        self.unavailable: dict[str, str] = {}  # language -> why it cannot run here
        self.draining = False
        self._stop = asyncio.Event()
        self._forced = asyncio.Event()
        self._signals = 0
        self.docker: aiodocker.Docker | None = None
        self.pool: Pool | None = None
        self.queue: QueueClient | None = None
        self.intake: Intake | None = None
        self.http: HttpServer | None = None

    # -- signals ----------------------------------------------------------------------------

    def on_signal(self, signum: int) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            log.info("%s: draining (again to force)", name)
            self._stop.set()
        else:
            log.warning("%s again: giving every job back and exiting", name)
            self._forced.set()
            self._stop.set()

    def _pool_stats(self) -> list[Any]:
        if self.pool is None:
            return []
        return [replace(s, unavailable=self.unavailable.get(s.pool)) for s in self.pool.stats()]

    # -- readiness ----------------------------------------------------------------------------

    async def readiness(self) -> tuple[bool, list[str]]:
        reasons: list[str] = []
        if self.draining:
            reasons.append("draining: not taking new jobs")
        if self.docker is None:
            reasons.append("Docker engine: not connected yet")
        else:
            try:
                await asyncio.wait_for(self.docker.version(), READINESS_CALL_TIMEOUT)
            except (aiodocker.DockerError, OSError, TimeoutError) as exc:
                reasons.append(f"Docker engine unreachable: {exc or type(exc).__name__}")
        if self.queue is None or self.intake is None:
            reasons.append("queue: not connected yet")
        elif self.intake.queue_error is not None:
            reasons.append(f"queue unreachable: {self.intake.queue_error}")
        else:
            try:
                await asyncio.wait_for(self.queue.ping(), READINESS_CALL_TIMEOUT)
            except (QueueError, TimeoutError) as exc:
                reasons.append(f"queue unreachable: {exc or type(exc).__name__}")
        if self.pool is None:
            reasons.append("pools: not started yet")
        else:
            for name, warm in self.pool.warm().items():
                if not warm:
                    error = self.pool.last_error(name)
                    reasons.append(f"pool {name}: not warm" + (f" ({error})" if error else ""))
        for language, why in sorted(self.unavailable.items()):
            reasons.append(f"language {language}: {why}")
        return not reasons, reasons

    # -- the run ------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.on_signal, signum)
        try:
            async with contextlib.AsyncExitStack() as stack:
                stack.callback(self._remove_signal_handlers)
                await self._start(stack)
                if self._stop.is_set():
                    return EXIT_FORCED if self._forced.is_set() else 0
                assert self.intake is not None
                receiving = asyncio.create_task(self.intake.run(), name="intake")
                stopped = asyncio.create_task(self._stop.wait())
                await asyncio.wait({receiving, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if receiving.done() and not self._stop.is_set():
                    receiving.result()  # the loop died: raise what killed it
                await self._drain(receiving)
                log.info("stopped")
                return EXIT_FORCED if self._forced.is_set() else 0
        finally:
            self._remove_signal_handlers()

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)

    async def _drain(self, receiving: asyncio.Task[None]) -> None:
        assert self.intake is not None
        self.draining = True
        self.metrics.set_ready(False)
        drain = asyncio.create_task(self.intake.drain(self.settings.grace_seconds))
        forced = asyncio.create_task(self._forced.wait())
        await asyncio.wait({drain, forced}, return_when=asyncio.FIRST_COMPLETED)
        if not drain.done():
            await self.intake.abort()
            drain.cancel()
        forced.cancel()
        # The receive loop ends after its current long poll, releasing what that brought.
        try:
            await asyncio.wait_for(receiving, self.settings.wait_time_seconds + 10)
        except TimeoutError:
            log.warning("the receive loop did not stop in time")
        if receiving.done() and not receiving.cancelled() and receiving.exception():
            log.error("the receive loop failed", exc_info=receiving.exception())

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        s = self.settings
        # HTTP first: /healthz and /readyz (with the reasons) answer while we connect.
        app = create_app(ApiState(self.metrics, self.hub, self.readiness, self._pool_stats))
        self.http = HttpServer(app, s.http_host, s.http_port, grace_seconds=2.0)
        try:
            await self.http.start()
        except HttpServerError as exc:
            raise StartupError(str(exc)) from None
        stack.push_async_callback(self.http.stop)
        stack.callback(self.hub.close)  # runs before http.stop: open event streams end
        log.info(
            "listening on %s (/healthz /readyz /metrics /v1/pools /v1/jobs/{id}/events)",
            self.http.url,
        )
        endpoint: str | None = None
        if s.sqs == "embedded":
            s.state_dir.mkdir(parents=True, exist_ok=True)
            self.embedded = EmbeddedSQS.from_settings(s, log_path=s.embedded_sqs_log)
            try:
                await asyncio.to_thread(self.embedded.start)
            except EmbeddedSQSError as exc:
                raise StartupError(str(exc)) from None
            stack.push_async_callback(asyncio.to_thread, self.embedded.stop)
            endpoint = self.embedded.endpoint_url
        self.queue = queue = await stack.enter_async_context(QueueClient(s, endpoint_url=endpoint))
        urls = await self._queue_urls(queue)
        if urls is None:
            return  # stopped while waiting

        self.docker = docker = aiodocker.Docker()
        stack.push_async_callback(docker.close)
        specs = await self._load_specs(docker)
        if specs is None:
            return
        sizes = {lang: size for lang, size in s.pool_sizes.items() if lang in specs}
        self.pool = pool = Pool(
            docker,
            specs,
            PoolConfig(
                size=0,
                sizes=tuple(sizes.items()),
                spares=s.pool_spares,
                slots=s.host_slots,
                floor=s.pool_floor,
                warm_memory_bytes=s.warm_memory_mb << 20 if s.warm_memory_mb else None,
            ),
            host_id=s.host_id,
            on_retire=self.metrics.sandbox_retired,
            on_start=self.metrics.sandbox_started,
        )
        for language in s.served_languages:
            self.metrics.add_language(language)
        self.metrics.watch_pool(pool.stats, host_slots=lambda: pool.host_slots)
        removed = await pool.start()
        stack.push_async_callback(pool.close)
        if removed:
            log.info("removed %d sandboxes an earlier sandboxd left on this host", removed)

        store = ResultStore(s.state_dir / "results" / _safe(s.host_id))
        self.intake = Intake(
            s, queue, urls, pool, self.metrics, self.hub, store,
            unavailable=self.unavailable.get,
        )  # fmt: skip

        if self.embedded is not None:
            hint = aws_cli_hint(s, urls, self.embedded.endpoint_url)
            print(hint, file=sys.stderr, flush=True)
        warm = await self._until(pool.wait_warm(120))
        if warm is not None and await self._until(self._canaries(docker, pool, specs)) is None:
            return  # stopped meanwhile
        if warm:
            shape = ", ".join(f"{p.pool}={p.slots}+{p.target - p.slots}" for p in pool.stats())
            if shape:
                log.info("ready: pools warm (%s slots+spares of %d)", shape, pool.host_slots)
            else:
                log.warning("no language can serve: %s", "; ".join(self.unavailable.values()))
            self.metrics.set_ready(True)
        elif warm is not None:
            log.warning("pools not warm yet: %s", self._pool_errors())

    async def _canaries(
        self, docker: aiodocker.Docker, pool: Pool, specs: dict[str, SandboxSpec]
    ) -> bool:
        """Each language's canary through its pool, at once; a failed one makes its
        language unavailable (with the reason) while the others serve."""
        ctx = RunContext(host=self.settings.host_id, maxima=self.settings.maxima)

        async def one(language: str, spec: SandboxSpec) -> None:
            try:
                info = await docker.images.inspect(spec.image)
            except aiodocker.DockerError as exc:
                why: str | None = f"canary: cannot inspect the image: {exc}"
            else:
                labels = (info.get("Config") or {}).get("Labels") or {}
                why = await run_canary(pool, language, labels, ctx)
            if why is not None:
                self.unavailable[language] = why
                log.error("language %s: not serving: %s", language, why)

        await asyncio.gather(*(one(lang, spec) for lang, spec in specs.items()))
        return True

    def _pool_errors(self) -> str:
        assert self.pool is not None
        errors = [f"{n}: {self.pool.last_error(n)}" for n in self.pool.names]
        return "; ".join(errors) or "still starting"

    async def _until(self, awaitable: Awaitable[bool]) -> bool | None:
        """`awaitable`'s value, or None when a stop came first."""
        task = asyncio.ensure_future(awaitable)
        stop = asyncio.create_task(self._stop.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if task.done():
            return task.result()
        task.cancel()
        return None

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[Any]]) -> Any:
        """Call `attempt` until it succeeds (backing off) or a stop is requested (None)."""
        delay = 0.5
        while not self._stop.is_set():
            try:
                return await attempt()
            except StartupError:
                raise
            except (QueueError, aiodocker.DockerError, OSError) as exc:
                log.error("%s: %s; retrying in %.0f s", what, exc, delay)
            await self._until(asyncio.sleep(delay, result=True))
            delay = min(30.0, delay * 2)
        return None

    async def _queue_urls(self, queue: QueueClient) -> QueueUrls | None:
        s = self.settings

        async def resolve() -> QueueUrls:
            if self.embedded is not None:
                return await self.embedded.create_queues(s)
            try:
                return await aws_queue_urls(queue, s)
            except QueueNotFound as exc:
                raise StartupError(f"{exc} (with SANDBOXD_SQS=aws the queues must exist)") from None
            except QueueSetupError as exc:
                raise StartupError(str(exc)) from None

        urls: QueueUrls | None = await self._retrying("connecting to SQS", resolve)
        if urls is not None:
            log.info("queues: jobs %s, results %s, dead letters %s", *urls.__dict__.values())
        return urls

    async def _load_specs(self, docker: aiodocker.Docker) -> dict[str, SandboxSpec] | None:
        async def engine() -> bool:
            await docker.version()
            return True

        if await self._retrying("connecting to the Docker engine", engine) is None:
            return None
        specs: dict[str, SandboxSpec] = {}
        for language in self.settings.served_languages:
            try:
                specs[language] = await load_spec(docker, language, self.settings.maxima)
            except Exception as exc:
                why = str(exc)
                self.unavailable[language] = why
                log.error("language %s: %s", language, why)
        return specs


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "host"


async def serve(settings: Settings) -> int:
    """Run the daemon until a signal; the process exit code."""
    daemon = Daemon(settings)
    try:
        return await daemon.run()
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        print(f"sandboxd: {exc}", file=sys.stderr)
        return 1
