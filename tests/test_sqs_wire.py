"""The lean SQS transport (sandboxd/sqs_wire.py): its signature is botocore's, byte for byte;
its HTTP handling holds against the answers a server may give (scripted here on a loopback
socket); against the real SQS server (moto) it is what the daemon's per-job calls use,
and tests/test_sqs.py runs every client test with it and with aioboto3."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
from collections.abc import Awaitable, Callable
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError

from sandboxd.config import Settings
from sandboxd.sqs import EmbeddedSQS, QueueClient, QueueNotFound, QueueUrls
from sandboxd.sqs_wire import ChecksumError, Credentials, SqsWire, _Signer, proxied

NOW = datetime.datetime(2026, 12, 2, 1, 2, 3, tzinfo=datetime.UTC)


@pytest.mark.parametrize("token", [None, "session-token/with+chars="])
@pytest.mark.parametrize("host", ["127.0.0.1:9324", "sqs.eu-west-1.amazonaws.com"])
def test_signature_is_botocores(token: str | None, host: str) -> None:
    body = json.dumps({"QueueUrl": f"http://{host}/123/q", "MessageBody": "héllo"}).encode()
    target = "AmazonSQS.SendMessage"
    ours = dict(
        _Signer("eu-west-1").headers(
            Credentials("AKID", "secret", token), host, "/", target, body, NOW
        )
    )
    request = AWSRequest(
        method="POST",
        url=f"http://{host}/",
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target},
    )
    request.context["payload_signing_enabled"] = True
    auth = SigV4Auth(BotoCredentials("AKID", "secret", token), "sqs", "eu-west-1")
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        auth.add_auth(request)
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")


def test_signing_key_is_derived_once_a_day() -> None:
    signer = _Signer("us-east-1")
    creds = Credentials("a", "s")
    with mock.patch("sandboxd.sqs_wire.hmac.new", wraps=__import__("hmac").new) as new:
        signer.headers(creds, "h", "/", "AmazonSQS.X", b"{}", NOW)
        first = new.call_count
        signer.headers(creds, "h", "/", "AmazonSQS.X", b"{}", NOW)
        assert new.call_count - first == 1  # only the signature itself
        signer.headers(creds, "h", "/", "AmazonSQS.X", b"{}", NOW + datetime.timedelta(days=1))
        assert new.call_count - first == 1 + first


def test_proxied_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert not proxied("https://sqs.us-east-1.amazonaws.com")
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    assert proxied("https://sqs.us-east-1.amazonaws.com")
    monkeypatch.setenv("no_proxy", "amazonaws.com")
    assert not proxied("https://sqs.us-east-1.amazonaws.com")


# -- the HTTP side, against a scripted server ----------------------------------------------

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return await reader.readexactly(length)


class Scripted:
    """A loopback server answering each request with `script(reader, writer, n)`; the
    script returns whether to keep the connection open."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests = 0
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    await _read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.requests += 1
                if not await self.script(reader, writer, self.requests):
                    return
        finally:
            writer.close()

    async def __aenter__(self) -> SqsWire:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]

        async def creds() -> Credentials:
            return Credentials("a", "s")

        self.wire = SqsWire(f"http://127.0.0.1:{port}", "us-east-1", creds, read_timeout=5)
        return self.wire

    async def __aexit__(self, *exc: object) -> None:
        await self.wire.close()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def _reply(status: int, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", *headers]
    if not any(h.lower().startswith("transfer-encoding") for h in headers):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def test_keeps_one_connection_for_many_calls() -> None:
    async def ok(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        w.write(_reply(200, b'{"MessageId": "%d"}' % n))
        return True

    server = Scripted(ok)
    async with server as wire:
        for i in range(1, 6):
            assert await wire.call("SendMessage", {"QueueUrl": "q"}) == {"MessageId": str(i)}
    assert (server.requests, server.connections) == (5, 1)


async def test_a_server_that_closes_gets_a_new_connection_per_call() -> None:
    async def close(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        w.write(_reply(200, b"{}", "Connection: close"))
        return False

    server = Scripted(close)
    async with server as wire:
        for _ in range(3):
            assert await wire.call("DeleteMessage", {}) == {}
    assert (server.requests, server.connections) == (3, 3)


async def test_a_kept_connection_closed_unannounced_is_retried_once() -> None:
    async def once(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        w.write(_reply(200, b"{}"))
        await w.drain()
        return False  # closes without saying so: the next call finds it dead

    server = Scripted(once)
    async with server as wire:
        assert await wire.call("SendMessage", {}) == {}
        await asyncio.sleep(0.05)
        assert await wire.call("SendMessage", {}) == {}
    assert (server.requests, server.connections) == (2, 2)


async def test_a_fresh_connection_closed_without_an_answer_is_an_error() -> None:
    async def hang_up(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        return False

    server = Scripted(hang_up)
    async with server as wire:
        with pytest.raises(ConnectionError):
            await wire.call("SendMessage", {})
    assert server.requests == 1  # not sent twice: nothing says the first did not arrive


async def test_chunked_answers_are_read_whole() -> None:
    async def chunked(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        body = b'{"Messages": []}'
        w.write(_reply(200, b"", "Transfer-Encoding: chunked"))
        w.write(
            b"5\r\n"
            + body[:5]
            + b"\r\n"
            + b"%x\r\n" % (len(body) - 5)
            + body[5:]
            + b"\r\n0\r\n\r\n"
        )
        return True

    async with Scripted(chunked) as wire:
        assert await wire.call("ReceiveMessage", {}) == {"Messages": []}
        assert await wire.call("ReceiveMessage", {}) == {"Messages": []}


async def test_errors_are_botocores_client_errors() -> None:
    async def error(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        body = b'{"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "gone"}'
        w.write(
            _reply(400, body, "x-amzn-query-error: AWS.SimpleQueueService.NonExistentQueue;Sender")
        )
        return True

    async with Scripted(error) as wire:
        with pytest.raises(ClientError) as caught:
            await wire.call("SendMessage", {})
    err = caught.value.response
    assert err["Error"] == {
        "Code": "QueueDoesNotExist",
        "Message": "gone",
        "QueryErrorCode": "AWS.SimpleQueueService.NonExistentQueue",
    }
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400


async def test_a_server_error_without_json_is_a_client_error_with_its_status() -> None:
    async def broken(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        w.write(_reply(503, b"<html>busy</html>"))
        return True

    async with Scripted(broken) as wire:
        with pytest.raises(ClientError) as caught:
            await wire.call("ReceiveMessage", {})
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert "busy" in caught.value.response["Error"]["Message"]


async def test_a_received_body_that_does_not_match_its_md5_is_refused() -> None:
    good = hashlib.md5(b"job").hexdigest()

    async def corrupt(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        body = "jobs" if n == 1 else "job"
        answer = {"Messages": [{"MessageId": "m", "Body": body, "MD5OfBody": good}]}
        w.write(_reply(200, json.dumps(answer).encode()))
        return True

    async with Scripted(corrupt) as wire:
        with pytest.raises(ChecksumError):
            await wire.call("ReceiveMessage", {})
        assert (await wire.call("ReceiveMessage", {}))["Messages"][0]["Body"] == "job"


async def test_a_silent_server_times_out() -> None:
    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        await asyncio.sleep(10)
        return False

    server = Scripted(silent)
    async with server as wire:
        wire._read_timeout = 0.2
        with pytest.raises(TimeoutError):
            await wire.call("SendMessage", {})


# -- against the real server -----------------------------------------------------------------


async def test_the_daemons_client_uses_it_and_moto_agrees(
    sqs_server: EmbeddedSQS, sqs_settings: Settings, sqs_queues: QueueUrls
) -> None:
    """Through the lean transport, what one client sends another (aioboto3) receives, and
    an unknown queue is QueueNotFound, as through aioboto3."""
    boto = sqs_settings.model_copy(update={"sqs_client": "botocore"})
    async with (
        QueueClient(sqs_settings, sqs_server.endpoint_url) as lean,
        QueueClient(boto, sqs_server.endpoint_url) as plain,
    ):
        assert (lean.transport, plain.transport) == ("lean", "botocore")
        body = json.dumps({"id": "j", "text": "ünïcode ✓" * 100})
        await lean.send(sqs_queues.jobs, body)
        [got] = await plain.receive(sqs_queues.jobs, wait_seconds=1)
        assert got.body == body
        await plain.send(sqs_queues.jobs, body)
        [again] = await lean.receive(sqs_queues.jobs, wait_seconds=1)
        assert again.body == body and again.receive_count == 1
        await lean.delete(sqs_queues.jobs, again.receipt_handle)
        await plain.delete(sqs_queues.jobs, got.receipt_handle)
        assert await lean.receive(sqs_queues.jobs, wait_seconds=0) == []
        with pytest.raises(QueueNotFound):
            await lean.send(f"{sqs_server.endpoint_url}/123456789012/no-such-queue", "x")
