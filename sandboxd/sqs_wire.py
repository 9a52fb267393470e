"""The hot path's SQS transport: SQS's JSON protocol over kept-alive HTTP/1.1, signed here.

Every job costs the daemon three SQS calls (receive, send the result, delete). Through
aiobotocore each costs some 4 ms of CPU on a 2-core host (request objects, event hooks,
the user-agent string rebuilt per call, aiohttp underneath); the same request written
and parsed here costs well under 1 ms (`bench/sqs_path.py`). So the calls the daemon
makes per job (`ReceiveMessage`, `SendMessage`, `DeleteMessage`, their batch forms and
`ChangeMessageVisibility`) go through `SqsWire`; everything else (creating and looking up
queues, attributes) stays with aioboto3, and so does the whole client where this
transport does not apply (a proxy configured for the endpoint).

What it does, and no more:
- `POST /` with `X-Amz-Target: AmazonSQS.<Operation>` and a JSON body (awsJson1_0, what
  botocore itself speaks to SQS), signed with Signature Version 4; the signing key is
  derived once per day, region and secret, the credentials are asked for per call (the
  provider's own caching decides when they refresh).
- Persistent connections (TLS for https endpoints), one request at a time each, up to
  `max_connections`; a server that says `Connection: close` gets a new one per call. A
  kept connection that turns out closed before any byte of the answer came back is
  retried once on a new one (the usual keep-alive race).
- Errors come back as botocore's `ClientError` (same `Error.Code`, `QueryErrorCode`,
  HTTP status), connection trouble as `OSError` and timeouts as `TimeoutError`, so the
  caller classifies them exactly as it does aiobotocore's.
- Received bodies are checked against their MD5, as botocore does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import hmac
import json
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

from botocore.exceptions import ClientError

_JSON_TYPE = "application/x-amz-json-1.0"
_MAX_HEADER_LINES = 100
_MAX_BODY_BYTES = 64 * 1024 * 1024  # a batch of ten 256 KiB messages is far below this


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None


CredentialsProvider = Callable[[], Awaitable[Credentials]]


class ChecksumError(OSError):
    """A received message's body does not match its MD5: corrupted on the way."""


def proxied(endpoint_url: str) -> bool:
    """Whether the environment routes `endpoint_url` through a proxy (this transport does
    not speak to proxies; the caller keeps aiobotocore for such an endpoint)."""
    parts = urlsplit(endpoint_url)
    host = parts.hostname or ""
    proxies = getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not proxy_bypass(host)


class _Signer:
    """SigV4 for one region and the service `sqs`, the derived key cached per day."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._key: tuple[str, str, bytes] | None = None  # (secret, date, key)

    def _signing_key(self, secret: str, date: str) -> bytes:
        cached = self._key
        if cached is not None and cached[0] == secret and cached[1] == date:
            return cached[2]
        key = hmac.new(b"AWS4" + secret.encode(), date.encode(), hashlib.sha256).digest()
        for part in (self.region, "sqs", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        self._key = (secret, date, key)
        return key

    def headers(
        self,
        creds: Credentials,
        host: str,
        path: str,
        target: str,
        body: bytes,
        now: datetime.datetime | None = None,
    ) -> list[tuple[str, str]]:
        now = now or datetime.datetime.now(datetime.UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        date = amz_date[:8]
        signed = [
            ("content-type", _JSON_TYPE),
            ("host", host),
            ("x-amz-date", amz_date),
        ]
        if creds.token:
            signed.append(("x-amz-security-token", creds.token))
        signed.append(("x-amz-target", target))  # sorted: t after s
        names = ";".join(name for name, _ in signed)
        canonical = "\n".join(
            (
                "POST",
                path,
                "",
                "".join(f"{name}:{value}\n" for name, value in signed),
                names,
                hashlib.sha256(body).hexdigest(),
            )
        )
        scope = f"{date}/{self.region}/sqs/aws4_request"
        to_sign = "\n".join(
            ("AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest())
        )
        key = self._signing_key(creds.secret_key, date)
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        signed.append(
            (
                "authorization",
                f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
                f"SignedHeaders={names}, Signature={signature}",
            )
        )
        return signed


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = False  # has answered a request: a failure may be the keep-alive race

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _StaleConnection(OSError):
    """A kept connection was closed by the server before it answered anything."""


class SqsWire:
    """`await wire.call("SendMessage", {...})`: the operation's JSON answer, as a dict."""

    def __init__(
        self,
        endpoint_url: str,
        region: str,
        credentials: CredentialsProvider,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_connections: int = 32,
    ) -> None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {endpoint_url!r}")
        self.endpoint_url = endpoint_url
        self._host = parts.hostname
        self._tls = parts.scheme == "https"
        self._port = parts.port or (443 if self._tls else 80)
        default_port = parts.port is None or parts.port == (443 if self._tls else 80)
        self._host_header = self._host if default_port else f"{self._host}:{self._port}"
        self._path = parts.path or "/"
        self._signer = _Signer(region)
        self._credentials = credentials
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(max_connections)
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if self._tls else None
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            conn = self._idle.popleft()
            conn.close()
            with contextlib.suppress(Exception):
                await conn.writer.wait_closed()

    async def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if self._closed:
            raise RuntimeError("SqsWire is closed")
        body = json.dumps(params, separators=(",", ":")).encode()
        creds = await self._credentials()
        target = f"AmazonSQS.{operation}"
        headers = self._signer.headers(creds, self._host_header, self._path, target, body)
        head = [f"POST {self._path} HTTP/1.1"]
        head += [f"{name}: {value}" for name, value in headers]
        head.append(f"content-length: {len(body)}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        async with self._slots:
            async with asyncio.timeout(self._read_timeout):
                try:
                    status, reply_headers, data = await self._exchange(request, reuse=True)
                except _StaleConnection:
                    status, reply_headers, data = await self._exchange(request, reuse=False)
        return self._answer(operation, status, reply_headers, data)

    async def _connect(self) -> _Connection:
        async with asyncio.timeout(self._connect_timeout):
            reader, writer = await asyncio.open_connection(
                self._host, self._port, ssl=self._ssl, limit=1 << 20
            )
        return _Connection(reader, writer)

    async def _exchange(self, request: bytes, *, reuse: bool) -> tuple[int, dict[str, str], bytes]:
        conn = self._idle.pop() if reuse and self._idle else await self._connect()
        keep = False
        try:
            conn.writer.write(request)
            try:
                status_line = await conn.reader.readline()
            except (ConnectionError, OSError) as exc:
                if conn.used:
                    raise _StaleConnection(str(exc)) from exc
                raise
            if not status_line:
                if conn.used:
                    raise _StaleConnection("the server closed a kept connection")
                raise ConnectionResetError("the server closed the connection without answering")
            status, headers, data = await self._read_rest(conn.reader, status_line)
            keep = headers.get("connection", "").lower() != "close" and not status_line.startswith(
                b"HTTP/1.0"
            )
            conn.used = True
            return status, headers, data
        finally:
            if keep and not self._closed:
                self._idle.append(conn)
            else:
                conn.close()

    @staticmethod
    async def _read_rest(
        reader: asyncio.StreamReader, status_line: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise ConnectionError(f"not an HTTP answer: {status_line[:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADER_LINES):
            line = await reader.readline()
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise ConnectionError("the connection closed inside the answer's headers")
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            raise ConnectionError("too many header lines in the answer")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            total = 0
            while True:
                size_line = await reader.readline()
                size = int(size_line.split(b";", 1)[0].strip() or b"x", 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                total += size
                if total > _MAX_BODY_BYTES:
                    raise ConnectionError("the answer is too large")
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            return status, headers, b"".join(chunks)
        if "content-length" in headers:
            length = int(headers["content-length"])
            if length > _MAX_BODY_BYTES:
                raise ConnectionError("the answer is too large")
            return status, headers, await reader.readexactly(length)
        headers["connection"] = "close"  # the body runs to the end of the connection
        return status, headers, await reader.read(_MAX_BODY_BYTES)

    @staticmethod
    def _answer(
        operation: str, status: int, headers: dict[str, str], data: bytes
    ) -> dict[str, Any]:
        try:
            decoded: Any = json.loads(data) if data else {}
        except ValueError:
            decoded = None
        if 200 <= status < 300:
            if not isinstance(decoded, dict):
                raise ConnectionError(f"{operation}: the answer is not a JSON object")
            if operation == "ReceiveMessage":
                _check_bodies(decoded)
            return decoded
        error: dict[str, Any] = {"Message": ""}
        if isinstance(decoded, dict):
            kind = str(decoded.get("__type") or decoded.get("code") or "")
            error["Code"] = kind.rsplit("#", 1)[-1]
            error["Message"] = str(decoded.get("message") or decoded.get("Message") or "")
        else:
            error["Code"] = str(status)
            error["Message"] = data[:200].decode("utf-8", "replace")
        query = headers.get("x-amzn-query-error", "")
        if query:
            error["QueryErrorCode"] = query.split(";", 1)[0]
        response: Any = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}
        raise ClientError(response, operation)


def _check_bodies(answer: dict[str, Any]) -> None:
    for message in answer.get("Messages") or []:
        expected = message.get("MD5OfBody")
        body = message.get("Body")
        if not expected or not isinstance(body, str):
            continue
        if hashlib.md5(body.encode(), usedforsecurity=False).hexdigest() != expected:
            raise ChecksumError(f"message {message.get('MessageId')}: body MD5 mismatch")
