"""SQS: the embedded SQS server for local use, and the queue client the daemon talks through.

`EmbeddedSQS` runs moto's SQS-compatible server as a child process on 127.0.0.1, so a
laptop or CI needs no AWS account. `QueueClient` is the one place the daemon touches SQS;
it works the same against the embedded server and real AWS, which is chosen by
`Settings.sqs` alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import http.client
import importlib.util
import json
import logging
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aioboto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from sandboxd.config import Settings, env_name, is_queue_url
from sandboxd.sqs_wire import Credentials, SqsWire, proxied

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

# moto accepts any credentials. Fixed dummy ones keep the embedded client from ever
# looking up real ones (the credential chain may ask an instance metadata service).
EMBEDDED_ACCESS_KEY = "sandboxd-embedded"
EMBEDDED_SECRET_KEY = "sandboxd-embedded"

_NOT_FOUND_CODES = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
_EXISTS_CODES = frozenset({"QueueAlreadyExists", "QueueNameExists"})
_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "AWS.SimpleQueueService.RequestThrottled",
        "TooManyRequestsException",
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "KmsThrottled",
        "KMS.ThrottlingException",
    }
)

# Attributes every received message carries; SentTimestamp lets the daemon measure queue
# wait, ApproximateReceiveCount tells it how close a job is to the dead-letter queue.
_MESSAGE_ATTRIBUTES = ["ApproximateReceiveCount", "SentTimestamp"]

# The per-job operations, by their aioboto3 method names.
_SNAKE = {
    "ReceiveMessage": "receive_message",
    "SendMessage": "send_message",
    "DeleteMessage": "delete_message",
    "ChangeMessageVisibility": "change_message_visibility",
    "SendMessageBatch": "send_message_batch",
    "DeleteMessageBatch": "delete_message_batch",
}

# How long after its long poll should have ended `QueueClient` waits, on close, for a
# receive that was cancelled mid-poll to come back so it can release what it took.
_ABANDONED_SLACK_SECONDS = 5.0

# A DLQ keeps its messages for SQS's maximum (14 days), so poison jobs can be inspected
# long after their first delivery.
_DLQ_RETENTION_SECONDS = 14 * 24 * 3600


class QueueError(Exception):
    """An SQS call failed; `code` is SQS's error code when it gave one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class QueueNotFound(QueueError):
    """The named queue does not exist at the endpoint."""


class QueueUnavailable(QueueError):
    """SQS could not be reached, or kept throttling or failing, through every attempt."""


class EmbeddedSQSError(RuntimeError):
    """The embedded SQS server could not be started."""


class QueueSetupError(Exception):
    """The queues exist but cannot serve as configured; the message is one line."""


@dataclass(frozen=True)
class ReceivedMessage:
    body: str
    receipt_handle: str
    message_id: str
    receive_count: int  # ApproximateReceiveCount: 1 on first delivery
    sent_timestamp_ms: int  # SentTimestamp: epoch milliseconds when it was sent


@dataclass(frozen=True)
class QueueUrls:
    jobs: str
    results: str
    dead_letter: str


def sqs_safe(body: str) -> str:
    """`body` with the two characters SQS refuses in a message (U+FFFE, U+FFFF) written
    as JSON escapes. Both can only occur inside JSON strings, where the escape means the
    same character, so a JSON document stays the same document."""
    if "\ufffe" in body or "\uffff" in body:
        body = body.replace("\ufffe", "\\ufffe").replace("\uffff", "\\uffff")
    return body


def queue_name(name_or_url: str) -> str:
    """`http://host/123456789012/jobs` -> `jobs`; a name is returned as it is."""
    if is_queue_url(name_or_url):
        return name_or_url.rstrip("/").rsplit("/", 1)[-1]
    return name_or_url


def redrive_target_name(policy: str) -> str | None:
    """The dead-letter queue a `RedrivePolicy` attribute names: the last `:` field of its
    `deadLetterTargetArn` (SQS keeps a DLQ in its source queue's account and region, so
    the name is enough). None when the policy names none."""
    try:
        arn = json.loads(policy).get("deadLetterTargetArn")
    except (ValueError, AttributeError):
        return None
    if not isinstance(arn, str) or not arn.startswith("arn:"):
        return None
    return arn.rsplit(":", 1)[-1] or None


# One aioboto3 session per event loop: each new session re-reads botocore's service data
# (some 0.1 s), while credential refreshing holds asyncio locks tied to one loop.
_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def _session() -> Any:
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None:
        session = _sessions[loop] = aioboto3.Session()
    return session


def _client_config(*, loopback: bool, max_connections: int) -> Config:
    return Config(
        # QueueClient retries itself, per operation; botocore retrying underneath would
        # multiply attempts and hide how long a call really took.
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=5,
        # Long polls wait up to 20 s server-side before answering.
        read_timeout=60,
        max_pool_connections=max_connections,
        # An HTTP(S)_PROXY in the environment must not carry loopback traffic elsewhere;
        # an empty mapping (not None) stops botocore from reading the environment.
        proxies={} if loopback else None,
    )


# --- the embedded server ------------------------------------------------------------------


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_in_use(port: int) -> bool:
    """True when something already listens on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server itself will: connections lingering in TIME_WAIT do not block it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def _answers(port: int) -> bool:
    """True once moto's server on `port` answers its own API root."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=1.0)
    try:
        conn.request("GET", "/moto-api/")
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _reap(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Terminate `proc` (and only it), killing it if it does not exit within `timeout`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("embedded SQS (pid %d) ignored SIGTERM; killing it", proc.pid)
            proc.kill()
            proc.wait()


def _end_adopted(pid: int, timeout: float) -> None:
    """SIGTERM, then SIGKILL, a server that is not our child (we cannot wait for it)."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not _alive(pid):
                return
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for its (new) parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class _ExitedEarly(Exception):
    def __init__(self, returncode: int, output: str) -> None:
        super().__init__(returncode, output)
        self.returncode = returncode
        self.output = output


class EmbeddedSQS:
    """moto's SQS server as a child process on 127.0.0.1.

    `port=0` picks a free port. Use as `with`/`async with`, or `start()` and `stop()`.
    """

    def __init__(
        self,
        port: int = 9324,
        *,
        log_path: Path | None = None,
        start_timeout: float = 20.0,
        pid_file: Path | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535, not {port}")
        self._requested_port = port
        self._log_path = log_path
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self.start_seconds: float | None = None  # how long the last start() took
        # Where the server's pid is kept, so that a daemon restarted after a crash finds
        # the server its predecessor started, and the jobs queued in it.
        self._pid_file = pid_file
        self._adopted: int | None = None  # pid of a server a previous process started

    @classmethod
    def from_settings(cls, settings: Settings, *, log_path: Path | None = None) -> EmbeddedSQS:
        """The server `settings` ask for, logging to `settings.embedded_sqs_log` by default."""
        return cls(
            settings.embedded_sqs_port,
            log_path=settings.embedded_sqs_log if log_path is None else log_path,
            pid_file=settings.state_dir / "embedded-sqs.pid",
        )

    @property
    def endpoint_url(self) -> str:
        if self._port is None:
            raise EmbeddedSQSError("embedded SQS is not running")
        return f"http://{LOOPBACK}:{self._port}"

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def log_path(self) -> Path | None:
        """Where the server's output goes (None: discarded)."""
        return self._log_path

    @property
    def pid(self) -> int | None:
        return self._adopted if self._proc is None else self._proc.pid

    @property
    def adopted(self) -> bool:
        """The server was left running by a previous process and taken over."""
        return self._adopted is not None

    def _adopt(self) -> bool:
        """Take over the server a crashed predecessor left on our port, if there is one.

        Only the process named in our pid file, still a moto server for this very port
        and answering on it: nothing else is ever touched.
        """
        if self._pid_file is None or self._requested_port == 0:
            return False
        try:
            pid_text, port_text = self._pid_file.read_text().split()
            pid, port = int(pid_text), int(port_text)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return False
        # Ours, or one an older sandboxd started (`python -c "... moto.server ..."`).
        named = b"sandboxd.embedded_sqs_server" in cmdline or b"moto.server" in b" ".join(cmdline)
        ours = port == self._requested_port and named
        if not ours or str(port).encode() not in cmdline or not _answers(port):
            return False
        self._adopted, self._port = pid, port
        self.start_seconds = 0.0
        log.warning(
            "embedded SQS: took over the server (pid %d) a previous sandboxd left on %s; "
            "the jobs queued in it are kept",
            pid,
            self.endpoint_url,
        )
        return True

    def _write_pid_file(self, pid: int, port: int) -> None:
        if self._pid_file is None:
            return
        try:
            self._pid_file.parent.mkdir(parents=True, exist_ok=True)
            self._pid_file.write_text(f"{pid} {port}\n")
        except OSError as exc:
            log.warning("embedded SQS: cannot write %s: %s", self._pid_file, exc)

    def start(self) -> None:
        """Start the server and return once it answers, or raise `EmbeddedSQSError`."""
        if self._proc is not None or self._adopted is not None:
            raise EmbeddedSQSError("embedded SQS is already running")
        if self._adopt():
            return
        if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
            raise EmbeddedSQSError(
                "embedded SQS needs moto's server: pip install 'moto[server]>=5', "
                "or set SANDBOXD_SQS=aws"
            )
        began = time.monotonic()
        # A port we picked can be taken by someone else before moto binds it; pick again.
        tries = 3 if self._requested_port == 0 else 1
        for attempt in range(1, tries + 1):
            port = self._requested_port or _free_loopback_port()
            try:
                in_use = _port_in_use(port)
            except OSError as exc:
                raise EmbeddedSQSError(
                    f"cannot start embedded SQS: cannot bind 127.0.0.1:{port}: {exc.strerror}"
                ) from None
            if in_use:
                if attempt < tries:
                    continue
                raise EmbeddedSQSError(
                    f"cannot start embedded SQS: 127.0.0.1:{port} is already in use "
                    "(another sandboxd or SQS server?); set SANDBOXD_EMBEDDED_SQS_PORT"
                )
            proc = self._spawn(port)
            try:
                self._wait_until_ready(proc, port, began + self._start_timeout)
            except BaseException as exc:
                # Its own session keeps it alive past a Ctrl-C; never leave it behind.
                _reap(proc, 5.0)
                if not isinstance(exc, _ExitedEarly):
                    raise
                if attempt < tries:
                    log.info("embedded SQS exited on port %d; trying another port", port)
                    continue
                in_use = "Address already in use" in exc.output
                reason = (
                    f"127.0.0.1:{port} is already in use"
                    if in_use
                    else f"moto exited with code {exc.returncode}"
                )
                tail = exc.output.strip().splitlines()[-5:]
                detail = ": " + " | ".join(tail) if tail else " (pass log_path to see its output)"
                raise EmbeddedSQSError(f"cannot start embedded SQS: {reason}{detail}") from None
            self._proc = proc
            self._port = port
            self._write_pid_file(proc.pid, port)
            # Safety net: a daemon that dies without stop() still ends its server at exit.
            self._finalizer = weakref.finalize(self, _reap, proc, 5.0)
            self.start_seconds = time.monotonic() - began
            log.info(
                "embedded SQS on %s (pid %d) ready in %.2f s",
                self.endpoint_url,
                proc.pid,
                self.start_seconds,
            )
            return

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        cmd = [
            sys.executable,
            "-m",
            "sandboxd.embedded_sqs_server",
            "-H",
            LOOPBACK,
            "-p",
            str(port),
        ]
        if self._log_path is None:
            return subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                # Its own session: a Ctrl-C meant for the daemon must not kill the queue
                # server while the daemon is still draining and sending results.
                start_new_session=True,
            )
        try:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            # Truncated: the log is this run's (so its tail explains this start, not an old
            # one). The child keeps its own copy of the descriptor; ours can close at once.
            log_file = self._log_path.open("wb")
        except OSError as exc:
            raise EmbeddedSQSError(
                f"cannot start embedded SQS: cannot write its log {self._log_path}: {exc.strerror}"
            ) from None
        with log_file:
            return subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_until_ready(self, proc: subprocess.Popen[bytes], port: int, deadline: float) -> None:
        while True:
            returncode = proc.poll()
            if returncode is not None:
                raise _ExitedEarly(returncode, self._log_tail())
            # Checked after poll(): an answer from a server that is not ours (it took the
            # port first, and ours exited) must not count.
            if _answers(port) and proc.poll() is None:
                return
            if time.monotonic() > deadline:
                _reap(proc, 5.0)
                raise EmbeddedSQSError(
                    f"embedded SQS on 127.0.0.1:{port} did not answer within "
                    f"{self._start_timeout:g} s"
                    + ("" if self._log_path is None else f"; see {self._log_path}")
                )
            time.sleep(0.05)

    def _log_tail(self) -> str:
        if self._log_path is None:
            return ""
        try:
            data = self._log_path.read_bytes()[-4096:]
        except OSError:
            return ""
        return data.decode("utf-8", "replace")

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the server this object started (SIGTERM, then SIGKILL). Idempotent."""
        proc, self._proc, self._port = self._proc, None, None
        adopted, self._adopted = self._adopted, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if proc is not None:
            _reap(proc, timeout)
            log.info("embedded SQS (pid %d) stopped", proc.pid)
        if adopted is not None:
            _end_adopted(adopted, timeout)
            log.info("embedded SQS (pid %d) stopped", adopted)
        if (proc is not None or adopted is not None) and self._pid_file is not None:
            with contextlib.suppress(OSError):
                self._pid_file.unlink()

    async def create_queues(self, settings: Settings) -> QueueUrls:
        """Create the dead-letter, jobs (redriving to it) and results queues; their URLs."""
        async with _session().client(
            "sqs",
            endpoint_url=self.endpoint_url,
            region_name=settings.region,
            aws_access_key_id=EMBEDDED_ACCESS_KEY,
            aws_secret_access_key=EMBEDDED_SECRET_KEY,
            config=_client_config(loopback=True, max_connections=2),
        ) as client:
            dlq = await _ensure_queue(
                client,
                queue_name(settings.embedded_dead_letter_queue),
                {"MessageRetentionPeriod": str(_DLQ_RETENTION_SECONDS)},
            )
            got = await client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
            redrive = {
                "deadLetterTargetArn": got["Attributes"]["QueueArn"],
                "maxReceiveCount": str(settings.max_receive_count),
            }
            jobs = await _ensure_queue(
                client,
                queue_name(settings.jobs_queue),
                {
                    "RedrivePolicy": json.dumps(redrive),
                    "VisibilityTimeout": str(settings.visibility_timeout),
                },
            )
            results = await _ensure_queue(client, queue_name(settings.results_queue), {})
        log.info("embedded SQS queues: jobs %s, results %s, dead letter %s", jobs, results, dlq)
        return QueueUrls(jobs=jobs, results=results, dead_letter=dlq)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        # start() polls for up to start_timeout; a thread keeps the event loop responsive.
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)


async def _ensure_queue(client: Any, name: str, attributes: dict[str, str]) -> str:
    """Create queue `name` with `attributes`, or bring an existing one to them."""
    try:
        created = await client.create_queue(QueueName=name, Attributes=attributes)
        return str(created["QueueUrl"])
    except ClientError as exc:
        if _error_code(exc) not in _EXISTS_CODES:
            raise
    # SQS refuses to re-create a queue with different attributes; set them instead.
    found = await client.get_queue_url(QueueName=name)
    url = str(found["QueueUrl"])
    if attributes:
        await client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url


# --- the client ---------------------------------------------------------------------------


def _error_code(exc: Any) -> str:
    error = exc.response.get("Error", {})
    return str(error.get("Code", ""))


def _error_codes(exc: Any) -> set[str]:
    # SQS speaks JSON now but also reports the older query-protocol code; check both.
    error = exc.response.get("Error", {})
    return {str(error.get("Code", "")), str(error.get("QueryErrorCode", ""))} - {""}


class QueueClient:
    """The daemon's SQS connection: one aioboto3 client kept open for its lifetime.

    `async with QueueClient(settings, endpoint_url=embedded.endpoint_url) as q: ...`.
    With `settings.sqs == "aws"` leave `endpoint_url` None: region comes from settings,
    credentials from the standard AWS chain, and `AWS_ENDPOINT_URL_SQS` is honoured.
    """

    def __init__(
        self,
        settings: Settings,
        endpoint_url: str | None = None,
        *,
        backoff_base: float = 0.2,
        backoff_cap: float = 5.0,
        max_connections: int = 32,
    ) -> None:
        if settings.sqs == "embedded" and endpoint_url is None:
            # Without an endpoint botocore would go to real AWS with dummy credentials.
            raise ValueError("with sqs='embedded' pass the embedded server's endpoint_url")
        self._settings = settings
        self._endpoint_url = endpoint_url
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._max_connections = max_connections
        self._urls: dict[str, str] = {}
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        # The per-job calls' transport (None: they go through aioboto3 too).
        self._wire: SqsWire | None = None
        # Receives cancelled mid-poll, each with the loop time by which its poll has ended.
        self._abandoned: dict[asyncio.Task[None], float] = {}

    @property
    def endpoint_url(self) -> str:
        """Where requests go (botocore's resolved endpoint once open)."""
        if self._client is not None:
            return str(self._client.meta.endpoint_url)
        return self._endpoint_url or f"sqs.{self._settings.region}.amazonaws.com"

    async def __aenter__(self) -> Self:
        kwargs: dict[str, Any] = {"region_name": self._settings.region}
        if self._endpoint_url is not None:
            kwargs["endpoint_url"] = self._endpoint_url
        if self._settings.sqs == "embedded":
            kwargs["aws_access_key_id"] = EMBEDDED_ACCESS_KEY
            kwargs["aws_secret_access_key"] = EMBEDDED_SECRET_KEY
        loopback = self._settings.sqs == "embedded"
        kwargs["config"] = _client_config(loopback=loopback, max_connections=self._max_connections)
        stack = AsyncExitStack()
        self._client = await stack.enter_async_context(_session().client("sqs", **kwargs))
        self._stack = stack
        endpoint = str(self._client.meta.endpoint_url)
        if self._settings.sqs_client == "lean" and (loopback or not proxied(endpoint)):
            self._wire = SqsWire(
                endpoint,
                self._settings.region,
                self._static_credentials if loopback else self._chain_credentials,
                connect_timeout=5,
                read_timeout=60,
                max_connections=self._max_connections,
            )
            stack.push_async_callback(self._wire.close)
        return self

    @staticmethod
    async def _static_credentials() -> Credentials:
        return Credentials(EMBEDDED_ACCESS_KEY, EMBEDDED_SECRET_KEY)

    async def _chain_credentials(self) -> Credentials:
        """The standard chain's credentials, as the aioboto3 client uses (refreshed by
        the provider when they near their expiry)."""
        found = await _session().get_credentials()
        if found is None:
            raise QueueError("no AWS credentials found (the standard AWS credential chain)")
        frozen = await found.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    @property
    def transport(self) -> str:
        """What the per-job calls go through: "lean" or "botocore"."""
        return "lean" if self._wire is not None else "botocore"

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._settle_abandoned()
        finally:
            stack, self._stack, self._client, self._wire = self._stack, None, None, None
            if stack is not None:
                await stack.aclose()

    async def _settle_abandoned(self) -> None:
        """Let receives cancelled mid-poll finish and release what they took, within bounds."""
        if not self._abandoned:
            return
        tasks = list(self._abandoned)
        timeout = max(0.0, max(self._abandoned.values()) - asyncio.get_running_loop().time())
        try:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if pending:
            log.warning(
                "closed with %d cancelled receive(s) still polling; what they took "
                "reappears after its visibility timeout",
                len(pending),
            )

    def _per_job(self, operation: str, params: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
        """The call for one of the per-job operations: through the lean transport when it
        is on, else aioboto3's method of the same name (same parameters, same answer)."""
        client = self._open()
        wire = self._wire
        if wire is not None:
            return lambda: wire.call(operation, params)
        method = getattr(client, _SNAKE[operation])
        return lambda: method(**params)

    def _open(self) -> Any:
        if self._client is None:
            raise RuntimeError("QueueClient is not open; use `async with QueueClient(...)`")
        return self._client

    async def resolve(self, name_or_url: str) -> str:
        """A queue's URL; a URL is returned unchanged, a name is looked up once."""
        if is_queue_url(name_or_url):
            return name_or_url
        cached = self._urls.get(name_or_url)
        if cached is not None:
            return cached
        client = self._open()
        found = await self._call(
            "GetQueueUrl", name_or_url, lambda: client.get_queue_url(QueueName=name_or_url), 3
        )
        url = str(found["QueueUrl"])
        self._urls[name_or_url] = url
        return url

    async def receive(
        self,
        queue_url: str,
        max_messages: int = 1,
        wait_seconds: int = 10,
        visibility_timeout: int = 60,
    ) -> list[ReceivedMessage]:
        """Up to `max_messages` messages, long-polling up to `wait_seconds`; [] if none.

        Not retried: the caller's receive loop is the retry, and a retried long poll would
        double its wait.

        Cancelling it (as on shutdown) returns at once and leaves the client usable. The
        request already sent keeps polling server-side, though, and whatever it takes would
        stay hidden for `visibility_timeout`: so it is left to finish in the background and
        its messages are made visible again at once. Closing the client waits for that, at
        most until the poll's `wait_seconds` are up.
        """
        if not 1 <= max_messages <= 10:
            raise ValueError(f"max_messages must be 1..10, not {max_messages}")
        if not 0 <= wait_seconds <= 20:
            raise ValueError(f"wait_seconds must be 0..20, not {wait_seconds}")
        if not 0 <= visibility_timeout <= 43200:
            raise ValueError(f"visibility_timeout must be 0..43200, not {visibility_timeout}")
        params = {
            "QueueUrl": queue_url,
            "MaxNumberOfMessages": max_messages,
            "WaitTimeSeconds": wait_seconds,
            "VisibilityTimeout": visibility_timeout,
            "MessageSystemAttributeNames": _MESSAGE_ATTRIBUTES,
        }
        request = asyncio.ensure_future(
            self._call("ReceiveMessage", queue_url, self._per_job("ReceiveMessage", params), 1)
        )
        try:
            response = await asyncio.shield(request)
        except asyncio.CancelledError:
            self._abandon(request, queue_url, wait_seconds)
            raise
        messages: list[ReceivedMessage] = []
        for raw in response.get("Messages", []):
            attributes = raw.get("Attributes", {})
            messages.append(
                ReceivedMessage(
                    body=str(raw["Body"]),
                    receipt_handle=str(raw["ReceiptHandle"]),
                    message_id=str(raw["MessageId"]),
                    receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
                    sent_timestamp_ms=int(attributes.get("SentTimestamp", 0)),
                )
            )
        return messages

    def _abandon(self, request: asyncio.Future[Any], queue_url: str, wait_seconds: int) -> None:
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._release_taken(request, queue_url))
        self._abandoned[task] = loop.time() + wait_seconds + _ABANDONED_SLACK_SECONDS
        task.add_done_callback(lambda done: self._abandoned.pop(done, None))

    async def _release_taken(self, request: asyncio.Future[Any], queue_url: str) -> None:
        """Make visible again whatever a cancelled receive's request took."""
        try:
            response = await request
        except QueueError:
            return  # it took nothing
        except Exception:
            log.exception("a cancelled receive failed")
            return
        taken = response.get("Messages", [])
        for raw in taken:
            try:
                await self.change_visibility(queue_url, str(raw["ReceiptHandle"]), 0)
            except QueueError as exc:
                log.warning("could not release message %s: %s", raw.get("MessageId"), exc)
        if taken:
            log.info("released %d message(s) taken by a cancelled receive", len(taken))

    async def send(self, queue_url: str, body: str, *, attempts: int = 5) -> str:
        """Send `body`; its message id. Transient failures are retried with backoff.

        A retry after a lost reply can deliver twice, as SQS standard queues may anyway;
        readers deduplicate by job id.
        """
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        params = {"QueueUrl": queue_url, "MessageBody": sqs_safe(body)}
        sent = await self._call(
            "SendMessage", queue_url, self._per_job("SendMessage", params), attempts
        )
        return str(sent["MessageId"])

    async def delete(self, queue_url: str, receipt_handle: str) -> None:
        """Delete a received message, so it is never delivered again."""
        params = {"QueueUrl": queue_url, "ReceiptHandle": receipt_handle}
        await self._call("DeleteMessage", queue_url, self._per_job("DeleteMessage", params), 3)

    async def change_visibility(self, queue_url: str, receipt_handle: str, seconds: int) -> None:
        """Hide a received message for `seconds` more from now (0: visible at once)."""
        if not 0 <= seconds <= 43200:
            raise ValueError(f"seconds must be 0..43200, not {seconds}")
        params = {
            "QueueUrl": queue_url,
            "ReceiptHandle": receipt_handle,
            "VisibilityTimeout": seconds,
        }
        await self._call(
            "ChangeMessageVisibility",
            queue_url,
            self._per_job("ChangeMessageVisibility", params),
            3,
        )

    async def create_queue(self, name: str, attributes: Mapping[str, str] | None = None) -> str:
        """Create standard queue `name` (e.g. a private reply queue); its URL.

        Creating an existing queue with the same attributes returns its URL.
        """
        client = self._open()
        created = await self._call(
            "CreateQueue",
            name,
            lambda: client.create_queue(QueueName=name, Attributes=dict(attributes or {})),
            3,
        )
        url = str(created["QueueUrl"])
        self._urls[name] = url
        return url

    async def delete_queue(self, queue_url: str) -> None:
        """Delete a queue and its messages. A queue already gone counts as deleted, so a
        retry after a lost reply does not fail."""
        client = self._open()
        with suppress(QueueNotFound):
            await self._call(
                "DeleteQueue", queue_url, lambda: client.delete_queue(QueueUrl=queue_url), 3
            )
        self._urls = {name: url for name, url in self._urls.items() if url != queue_url}

    async def redrive_target(self, queue_url: str) -> str | None:
        """The URL of the dead-letter queue `queue_url`'s redrive policy sends to; None
        when it has no policy."""
        client = self._open()
        got = await self._call(
            "GetQueueAttributes",
            queue_url,
            lambda: client.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]
            ),
            3,
        )
        policy = got.get("Attributes", {}).get("RedrivePolicy")
        if not policy:
            return None
        name = redrive_target_name(str(policy))
        if name is None:
            log.warning(
                "queue %r: its RedrivePolicy names no queue: %s", queue_name(queue_url), policy
            )
            return None
        return await self.resolve(name)

    async def ping(self) -> None:
        """Raise `QueueError` unless the jobs queue answers (one cheap call, not retried
        once the queue's URL is known)."""
        client = self._open()
        url = await self.resolve(self._settings.jobs_queue)
        await self._call(
            "GetQueueAttributes",
            url,
            lambda: client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]),
            1,
        )

    async def _call(
        self,
        operation: str,
        queue: str,
        call: Callable[[], Awaitable[Any]],
        attempts: int,
    ) -> Any:
        """`call()`, retrying transient failures up to `attempts` times in all."""
        for attempt in range(1, attempts + 1):
            try:
                return await call()
            except (ClientError, BotoCoreError, OSError) as exc:
                error, transient = self._classify(operation, queue, exc)
                if not transient:
                    raise error from exc
                if attempt == attempts:
                    raise QueueUnavailable(
                        f"{error} (gave up after {attempts} attempt{'s' * (attempts > 1)})",
                        error.code,
                    ) from exc
                # Full jitter: many daemons retrying after one outage spread out.
                delay = random.uniform(
                    0, min(self._backoff_cap, self._backoff_base * 2 ** (attempt - 1))
                )
                log.warning(
                    "%s (attempt %d of %d); retrying in %.2f s", error, attempt, attempts, delay
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def _classify(self, operation: str, queue: str, exc: Exception) -> tuple[QueueError, bool]:
        """The `QueueError` to raise for `exc`, and whether trying again may help."""
        name = queue_name(queue)
        where = f"queue {name!r} at {self.endpoint_url}"
        if isinstance(exc, ClientError):
            codes = _error_codes(exc)
            code = _error_code(exc) or None
            message = exc.response.get("Error", {}).get("Message", "")
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if codes & _NOT_FOUND_CODES:
                return (
                    QueueNotFound(f"queue {name!r} does not exist at {self.endpoint_url}", code),
                    False,
                )
            transient = bool(codes & _THROTTLING_CODES) or status >= 500
            return QueueError(f"{operation} on {where}: {code}: {message}", code), transient
        transient = isinstance(exc, HTTPClientError | BotoConnectionError | OSError)
        return QueueError(f"{operation} on {where}: {exc}"), transient


# --- the queues on real SQS --------------------------------------------------------------


async def aws_queue_urls(queue: QueueClient, settings: Settings) -> QueueUrls:
    """The URLs of the queues `settings` name on real SQS, where they must exist.

    The dead-letter queue is the jobs queue's redrive target; `SANDBOXD_DEAD_LETTER_QUEUE`
    only overrides it (with a warning when the two differ). With neither: QueueSetupError.
    """
    jobs = await queue.resolve(settings.jobs_queue)
    results = await queue.resolve(settings.results_queue)
    target = await queue.redrive_target(jobs)
    variable = env_name("dead_letter_queue")
    if settings.dead_letter_queue is None:
        if target is None:
            raise QueueSetupError(
                f"the jobs queue {queue_name(jobs)!r} has no redrive policy and {variable} "
                "is not set: give the jobs queue a dead-letter queue, or set the variable"
            )
        return QueueUrls(jobs=jobs, results=results, dead_letter=target)
    dead_letter = await queue.resolve(settings.dead_letter_queue)
    if target is not None and queue_name(target) != queue_name(dead_letter):
        log.warning(
            "%s=%s overrides the jobs queue's redrive target %s: unreadable messages go "
            "to %s, but SQS's redrive still sends the jobs that use up their deliveries to %s",
            variable,
            queue_name(dead_letter),
            queue_name(target),
            queue_name(dead_letter),
            queue_name(target),
        )
    return QueueUrls(jobs=jobs, results=results, dead_letter=dead_letter)


# --- a hint for people --------------------------------------------------------------------

# The job the hint submits: the smallest one that runs something and has a verdict.
HELLO_JOB: dict[str, str] = {
    "schema": "sandboxd.job/v1",
    "id": "hello-1",
    "language": "python",
    "command": 'python3 -c "print(42)"',
}


def aws_cli_hint(settings: Settings, urls: QueueUrls, endpoint_url: str | None) -> str:
    """Shell lines (bash) that submit a job with the AWS CLI and read a result back.

    With `settings.sqs == "embedded"` the commands carry the endpoint and moto's dummy
    credentials; for real SQS they rely on the user's own AWS configuration.
    """
    body = json.dumps(HELLO_JOB, separators=(",", ":"))
    # Assignments in front of the command, so nothing is left set in the user's shell.
    env = "AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x " if settings.sqs == "embedded" else ""
    where = [] if endpoint_url is None else ["--endpoint-url", endpoint_url]
    where += ["--region", settings.region]
    send = ["aws", "sqs", "send-message", *where, "--queue-url", urls.jobs]
    send += ["--message-body", body]
    receive = ["aws", "sqs", "receive-message", *where, "--queue-url", urls.results]
    receive += ["--wait-time-seconds", "20", "--query", "Messages[0].Body", "--output", "text"]
    return "\n".join(
        [
            "# Submit a job with the AWS CLI:",
            env + shlex.join(send),
            "# Read a result (waits up to 20 s; the message stays queued until deleted):",
            env + shlex.join(receive),
        ]
    )
