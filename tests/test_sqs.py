"""The queue client and the embedded server, against a real moto SQS server on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqs_fixtures import boto3_client, visible_and_hidden

from sandboxd.config import Settings, load_settings
from sandboxd.models import Job
from sandboxd.sqs import (
    HELLO_JOB,
    EmbeddedSQS,
    EmbeddedSQSError,
    QueueClient,
    QueueNotFound,
    QueueSetupError,
    QueueUnavailable,
    QueueUrls,
    aws_cli_hint,
    aws_queue_urls,
    queue_name,
    redrive_target_name,
    sqs_safe,
)


@pytest.fixture(params=["lean", "botocore"])
async def queue(
    request: pytest.FixtureRequest, sqs_server: EmbeddedSQS, sqs_settings: Settings
) -> AsyncIterator[QueueClient]:
    """The client, once with each transport of the per-job calls."""
    settings = sqs_settings.model_copy(update={"sqs_client": request.param})
    async with QueueClient(settings, sqs_server.endpoint_url, backoff_base=0.01) as client:
        assert client.transport == request.param
        yield client


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_round_trip(queue: QueueClient, sqs_queues: QueueUrls) -> None:
    """A sent body comes back intact with its id, first receive count and send time."""
    body = json.dumps({"id": "job-1", "text": 'héllo ✓ "quoted"\n'})
    before = int(time.time() * 1000)
    message_id = await queue.send(sqs_queues.jobs, body)
    after = int(time.time() * 1000)
    [message] = await queue.receive(sqs_queues.jobs, max_messages=10, wait_seconds=1)
    assert message.body == body
    assert message.message_id == message_id
    assert message.receive_count == 1
    assert before - 1000 <= message.sent_timestamp_ms <= after + 1000
    assert message.receipt_handle


async def test_receive_from_empty_queue_returns_nothing(
    queue: QueueClient, sqs_queues: QueueUrls
) -> None:
    """An empty queue answers an empty list, after no more than the wait asked for."""
    began = time.monotonic()
    assert await queue.receive(sqs_queues.jobs, wait_seconds=0) == []
    assert time.monotonic() - began < 1.0


async def test_delete_removes_the_message(
    queue: QueueClient, sqs_queues: QueueUrls, sqs_server: EmbeddedSQS
) -> None:
    """A deleted message is gone from the queue, not merely hidden."""
    await queue.send(sqs_queues.jobs, "x")
    [message] = await queue.receive(sqs_queues.jobs, wait_seconds=1)
    assert visible_and_hidden(sqs_server.endpoint_url, sqs_queues.jobs) == (0, 1)
    await queue.delete(sqs_queues.jobs, message.receipt_handle)
    assert visible_and_hidden(sqs_server.endpoint_url, sqs_queues.jobs) == (0, 0)


async def test_change_visibility_zero_releases_at_once(
    queue: QueueClient, sqs_queues: QueueUrls
) -> None:
    """Visibility 0 puts a received message straight back for the next receive."""
    await queue.send(sqs_queues.jobs, "x")
    [first] = await queue.receive(sqs_queues.jobs, wait_seconds=1, visibility_timeout=60)
    assert await queue.receive(sqs_queues.jobs, wait_seconds=0) == []
    await queue.change_visibility(sqs_queues.jobs, first.receipt_handle, 0)
    [again] = await queue.receive(sqs_queues.jobs, wait_seconds=0)
    assert (again.message_id, again.receive_count) == (first.message_id, 2)


async def test_change_visibility_extends_the_hiding(
    queue: QueueClient, sqs_queues: QueueUrls
) -> None:
    """A heartbeat's longer visibility keeps a message hidden past its first timeout."""
    await queue.send(sqs_queues.jobs, "x")
    [message] = await queue.receive(sqs_queues.jobs, wait_seconds=1, visibility_timeout=1)
    await queue.change_visibility(sqs_queues.jobs, message.receipt_handle, 30)
    await asyncio.sleep(1.2)
    assert await queue.receive(sqs_queues.jobs, wait_seconds=0) == []


async def test_redrive_to_dead_letter_queue(
    queue: QueueClient, sqs_queues: QueueUrls, sqs_settings: Settings, sqs_server: EmbeddedSQS
) -> None:
    """A message received max_receive_count times without a delete moves to the DLQ."""
    await queue.send(sqs_queues.jobs, "poison")
    for count in range(1, sqs_settings.max_receive_count + 1):
        [message] = await queue.receive(sqs_queues.jobs, wait_seconds=1, visibility_timeout=0)
        assert message.receive_count == count
    assert await queue.receive(sqs_queues.jobs, wait_seconds=0) == []
    got = boto3_client(sqs_server.endpoint_url).receive_message(
        QueueUrl=sqs_queues.dead_letter, WaitTimeSeconds=1
    )
    assert [m["Body"] for m in got["Messages"]] == ["poison"]


async def test_create_queues_is_idempotent_and_updates_the_redrive(
    sqs_server: EmbeddedSQS, sqs_env: dict[str, str], sqs_queues: QueueUrls
) -> None:
    """Creating the queues again keeps their URLs and applies changed settings."""
    changed = load_settings(
        {**sqs_env, "SANDBOXD_MAX_RECEIVE_COUNT": "9", "SANDBOXD_VISIBILITY_TIMEOUT": "40"}
    )
    assert await sqs_server.create_queues(changed) == sqs_queues
    got = boto3_client(sqs_server.endpoint_url).get_queue_attributes(
        QueueUrl=sqs_queues.jobs, AttributeNames=["RedrivePolicy", "VisibilityTimeout"]
    )["Attributes"]
    assert int(json.loads(got["RedrivePolicy"])["maxReceiveCount"]) == 9
    assert got["VisibilityTimeout"] == "40"
    assert queue_name(sqs_queues.jobs) == sqs_env["SANDBOXD_JOBS_QUEUE"]


async def test_resolve_names_and_urls(queue: QueueClient, sqs_queues: QueueUrls) -> None:
    """A queue name resolves to the server's URL; a URL is taken as it is."""
    assert await queue.resolve(queue_name(sqs_queues.results)) == sqs_queues.results
    assert await queue.resolve(sqs_queues.jobs) == sqs_queues.jobs


async def test_create_and_delete_a_queue(queue: QueueClient, sqs_server: EmbeddedSQS) -> None:
    """A queue the client creates takes messages; deleting it twice is harmless."""
    name = f"reply-{uuid.uuid4().hex[:12]}"
    url = await queue.create_queue(name)
    assert await queue.create_queue(name) == url
    assert await queue.resolve(name) == url
    await queue.send(url, "reply")
    assert visible_and_hidden(sqs_server.endpoint_url, url) == (1, 0)
    await queue.delete_queue(url)
    await queue.delete_queue(url)
    with pytest.raises(QueueNotFound):
        await queue.resolve(name)


async def test_missing_queue_is_not_found_without_retrying(
    sqs_server: EmbeddedSQS, sqs_settings: Settings
) -> None:
    """A queue that does not exist fails at once with QueueNotFound, not after retries."""
    async with QueueClient(sqs_settings, sqs_server.endpoint_url, backoff_base=5) as queue:
        began = time.monotonic()
        with pytest.raises(QueueNotFound, match="does not exist") as by_name:
            await queue.resolve("no-such-queue")
        with pytest.raises(QueueNotFound):
            await queue.send(f"{sqs_server.endpoint_url}/123456789012/no-such-queue", "x")
        with pytest.raises(QueueNotFound):
            await queue.ping()  # this test created no queues
        assert time.monotonic() - began < 2.0
    assert by_name.value.code


async def test_ping(queue: QueueClient, sqs_queues: QueueUrls) -> None:
    """Ping succeeds while the jobs queue answers."""
    await queue.ping()


async def test_unavailable_after_bounded_retries(
    tmp_path: Path, sqs_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """With the server gone, calls give up with QueueUnavailable after their attempts."""
    server = EmbeddedSQS(port=0, log_path=tmp_path / "moto.log")
    server.start()
    try:
        urls = await server.create_queues(sqs_settings)
        async with QueueClient(sqs_settings, server.endpoint_url, backoff_base=0.001) as queue:
            await queue.ping()
            server.stop()
            caplog.set_level(logging.WARNING, logger="sandboxd.sqs")
            with pytest.raises(QueueUnavailable, match="gave up after 3 attempts"):
                await queue.send(urls.jobs, "x", attempts=3)
            assert sum("retrying" in r.getMessage() for r in caplog.records) == 2
            with pytest.raises(QueueUnavailable):
                await queue.receive(urls.jobs, wait_seconds=0)
            with pytest.raises(QueueUnavailable):
                await queue.ping()
    finally:
        server.stop()


async def test_cancelled_receive_leaves_the_client_usable(
    queue: QueueClient, sqs_queues: QueueUrls
) -> None:
    """Cancelling an in-flight long poll returns at once, and the client goes on working."""
    polling = asyncio.create_task(queue.receive(sqs_queues.jobs, wait_seconds=1))
    await asyncio.sleep(0.2)
    began = time.monotonic()
    polling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await polling
    assert time.monotonic() - began < 0.5
    await queue.ping()
    await queue.send(sqs_queues.results, "after")
    [message] = await queue.receive(sqs_queues.results, wait_seconds=1)
    assert message.body == "after"


async def test_cancelled_receive_releases_what_its_poll_took(
    sqs_server: EmbeddedSQS, sqs_settings: Settings, sqs_queues: QueueUrls
) -> None:
    """A message the abandoned poll took server-side is visible again once the client closes."""
    async with QueueClient(sqs_settings, sqs_server.endpoint_url) as queue:
        polling = asyncio.create_task(
            queue.receive(sqs_queues.jobs, wait_seconds=1, visibility_timeout=60)
        )
        await asyncio.sleep(0.2)
        polling.cancel()
        with pytest.raises(asyncio.CancelledError):
            await polling
        # Arrives while the abandoned request is still polling: that request takes it.
        boto3_client(sqs_server.endpoint_url).send_message(
            QueueUrl=sqs_queues.jobs, MessageBody="taken"
        )
        began = time.monotonic()
    assert time.monotonic() - began < 3.0
    got = boto3_client(sqs_server.endpoint_url).receive_message(
        QueueUrl=sqs_queues.jobs, WaitTimeSeconds=0, MessageSystemAttributeNames=["All"]
    )
    [message] = got["Messages"]
    assert message["Body"] == "taken"
    assert message["Attributes"]["ApproximateReceiveCount"] == "2"  # the poll did take it


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_messages": 0}, "max_messages"),
        ({"max_messages": 11}, "max_messages"),
        ({"wait_seconds": 21}, "wait_seconds"),
        ({"visibility_timeout": -1}, "visibility_timeout"),
    ],
)
async def test_receive_refuses_values_sqs_would(
    queue: QueueClient, kwargs: dict[str, int], error: str
) -> None:
    """Out-of-range receive arguments fail before any request."""
    with pytest.raises(ValueError, match=error):
        await queue.receive("http://127.0.0.1:1/0/q", **kwargs)


async def test_client_must_be_open_and_embedded_needs_an_endpoint(sqs_settings: Settings) -> None:
    """Calls outside `async with` and an embedded client without endpoint are refused."""
    with pytest.raises(ValueError, match="endpoint_url"):
        QueueClient(sqs_settings)
    closed = QueueClient(sqs_settings, "http://127.0.0.1:1")
    with pytest.raises(RuntimeError, match="not open"):
        await closed.send("http://127.0.0.1:1/0/q", "x")


def test_embedded_refuses_a_port_in_use(sqs_server: EmbeddedSQS) -> None:
    """A second server on a taken port fails with a message naming the port and the fix."""
    assert sqs_server.port is not None
    second = EmbeddedSQS(port=sqs_server.port)
    try:
        with pytest.raises(EmbeddedSQSError) as caught:
            second.start()
    finally:
        second.stop()  # should it have started after all
    message = str(caught.value)
    assert f"127.0.0.1:{sqs_server.port} is already in use" in message
    assert "SANDBOXD_EMBEDDED_SQS_PORT" in message


def test_embedded_refuses_a_port_held_by_any_listener() -> None:
    """Any listener on the port counts, not only an SQS server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        server = EmbeddedSQS(port=port)
        try:
            with pytest.raises(EmbeddedSQSError, match=f"127.0.0.1:{port} is already in use"):
                server.start()
            assert server.pid is None and server.port is None
        finally:
            server.stop()  # should it have started after all


def test_stop_is_idempotent_and_ends_the_process(tmp_path: Path) -> None:
    """stop() ends the server's process, twice is harmless, and the log has no access lines."""
    log_path = tmp_path / "state" / "moto.log"
    with EmbeddedSQS(port=0, log_path=log_path) as server:
        pid, port = server.pid, server.port
        assert pid is not None and port is not None and pid_exists(pid)
        boto3_client(server.endpoint_url).list_queues()
    assert not pid_exists(pid)
    assert server.pid is None and server.port is None
    server.stop()
    with pytest.raises(EmbeddedSQSError, match="not running"):
        _ = server.endpoint_url
    assert "POST /" not in log_path.read_text()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # the port is free again


def test_from_settings_logs_under_the_state_dir(sqs_settings: Settings) -> None:
    """The embedded server's log goes to `<state_dir>/embedded-sqs.log` by default."""
    server = EmbeddedSQS.from_settings(sqs_settings)
    assert server.log_path == sqs_settings.state_dir / "embedded-sqs.log"


def hint_line(hint: str, command: str) -> list[str]:
    [line] = [line for line in hint.splitlines() if command in line]
    return shlex.split(line)


def option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


def test_aws_cli_hint_quotes_for_bash(sqs_settings: Settings) -> None:
    """The hint's send line gives the CLI the exact job body and the right queues."""
    urls = QueueUrls(
        jobs="http://127.0.0.1:9324/123456789012/jobs",
        results="http://127.0.0.1:9324/123456789012/results",
        dead_letter="http://127.0.0.1:9324/123456789012/dlq",
    )
    hint = aws_cli_hint(sqs_settings, urls, "http://127.0.0.1:9324")
    send = hint_line(hint, "send-message")
    body = option(send, "--message-body")
    assert body == (
        '{"schema":"sandboxd.job/v1","id":"hello-1","language":"python",'
        '"command":"python3 -c \\"print(42)\\""}'
    )
    assert Job.model_validate_json(body).command == 'python3 -c "print(42)"'
    assert send[:5] == [
        "AWS_ACCESS_KEY_ID=x",
        "AWS_SECRET_ACCESS_KEY=x",
        "aws",
        "sqs",
        "send-message",
    ]
    assert option(send, "--queue-url") == urls.jobs
    assert option(send, "--endpoint-url") == "http://127.0.0.1:9324"
    assert option(send, "--region") == "us-east-1"
    receive = hint_line(hint, "receive-message")
    assert option(receive, "--queue-url") == urls.results
    assert option(receive, "--endpoint-url") == "http://127.0.0.1:9324"


def test_aws_cli_hint_for_real_sqs_uses_the_users_credentials() -> None:
    """Against real SQS the hint carries neither dummy credentials nor an endpoint."""
    settings = load_settings({"SANDBOXD_SQS": "aws", "SANDBOXD_REGION": "eu-west-1"})
    urls = QueueUrls(
        jobs="https://sqs.eu-west-1.amazonaws.com/1/jobs",
        results="https://sqs.eu-west-1.amazonaws.com/1/results",
        dead_letter="https://sqs.eu-west-1.amazonaws.com/1/dlq",
    )
    hint = aws_cli_hint(settings, urls, None)
    send = hint_line(hint, "send-message")
    assert send[0] == "aws" and "--endpoint-url" not in send
    assert option(send, "--region") == "eu-west-1"
    assert "AWS_SECRET_ACCESS_KEY" not in hint


@pytest.mark.skipif(shutil.which("aws") is None, reason="no AWS CLI installed")
def test_aws_cli_hint_runs_in_bash(sqs_server: EmbeddedSQS, sqs_settings: Settings) -> None:
    """Pasted into bash, the hint's send line really submits the job to the jobs queue."""
    urls = QueueUrls(
        jobs=boto3_client(sqs_server.endpoint_url).create_queue(QueueName=sqs_settings.jobs_queue)[
            "QueueUrl"
        ],
        results="unused",
        dead_letter="unused",
    )
    [send_line] = [
        line
        for line in aws_cli_hint(sqs_settings, urls, sqs_server.endpoint_url).splitlines()
        if "send-message" in line
    ]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy") and not key.startswith("AWS_")
    }
    # Loopback only, and nothing from the user's own AWS configuration.
    env.update(NO_PROXY="*", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    subprocess.run(["bash", "-c", send_line], env=env, check=True, capture_output=True, timeout=30)
    client = boto3_client(sqs_server.endpoint_url)
    got = client.receive_message(QueueUrl=urls.jobs, WaitTimeSeconds=1)
    [message] = got["Messages"]
    assert json.loads(message["Body"]) == HELLO_JOB
    client.delete_queue(QueueUrl=urls.jobs)


_text_with_nonchars = st.text(
    alphabet=st.characters(codec="utf-8") | st.sampled_from(["\ufffe", "\uffff", "\\"]),
    max_size=50,
)


@given(st.dictionaries(st.text(max_size=5), _text_with_nonchars, max_size=5))
def test_sqs_safe_keeps_the_document_and_drops_what_sqs_refuses(doc: dict[str, str]) -> None:
    body = json.dumps(doc, ensure_ascii=False)
    safe = sqs_safe(body)
    assert json.loads(safe) == doc
    assert "\ufffe" not in safe and "\uffff" not in safe


# -- the dead-letter queue on real SQS (SANDBOXD_SQS=aws) --------------------------------


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """`SANDBOXD_SQS=aws` settings for queues named `orders-*-<suffix>`, with credentials
    from the environment so the AWS chain looks nowhere else."""
    for key in list(os.environ):
        if key.lower().endswith("_proxy"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    suffix = uuid.uuid4().hex[:10]
    return {
        "SANDBOXD_SQS": "aws",
        "SANDBOXD_REGION": "us-east-1",
        "SANDBOXD_JOBS_QUEUE": f"orders-jobs-{suffix}",
        "SANDBOXD_RESULTS_QUEUE": f"orders-results-{suffix}",
    }


def make_orders_queues(endpoint_url: str, env: dict[str, str], redrive: bool) -> dict[str, str]:
    """`orders-jobs-<suffix>` (redriving to `orders-jobs-<suffix>-dlq` if `redrive`), its
    results queue, and that dead-letter queue; their URLs by role."""
    client = boto3_client(endpoint_url)
    jobs = env["SANDBOXD_JOBS_QUEUE"]
    dlq = client.create_queue(QueueName=f"{jobs}-dlq")["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
    policy = {"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": "3"}
    attributes = {"RedrivePolicy": json.dumps(policy)} if redrive else {}
    return {
        "jobs": client.create_queue(QueueName=jobs, Attributes=attributes)["QueueUrl"],
        "results": client.create_queue(QueueName=env["SANDBOXD_RESULTS_QUEUE"])["QueueUrl"],
        "dlq": dlq,
    }


def sqs_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sandboxd.sqs"]


async def resolve_aws(endpoint_url: str, env: dict[str, str]) -> QueueUrls:
    settings = load_settings(env)
    async with QueueClient(settings, endpoint_url) as queue:
        return await aws_queue_urls(queue, settings)


async def test_the_dead_letter_queue_is_the_jobs_queues_redrive_target(
    sqs_server: EmbeddedSQS, aws_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Without SANDBOXD_DEAD_LETTER_QUEUE the daemon dead-letters where SQS's redrive does."""
    made = make_orders_queues(sqs_server.endpoint_url, aws_env, redrive=True)
    caplog.set_level(logging.WARNING, logger="sandboxd.sqs")
    urls = await resolve_aws(sqs_server.endpoint_url, aws_env)
    assert urls == QueueUrls(jobs=made["jobs"], results=made["results"], dead_letter=made["dlq"])
    assert queue_name(urls.dead_letter) == aws_env["SANDBOXD_JOBS_QUEUE"] + "-dlq"
    assert sqs_warnings(caplog) == []


async def test_neither_a_redrive_policy_nor_the_variable_is_refused(
    sqs_server: EmbeddedSQS, aws_env: dict[str, str]
) -> None:
    """A jobs queue without a redrive policy and no variable fail with one line saying so."""
    make_orders_queues(sqs_server.endpoint_url, aws_env, redrive=False)
    with pytest.raises(QueueSetupError) as caught:
        await resolve_aws(sqs_server.endpoint_url, aws_env)
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert f"{aws_env['SANDBOXD_JOBS_QUEUE']!r} has no redrive policy" in message
    assert "SANDBOXD_DEAD_LETTER_QUEUE is not set" in message


async def test_the_variable_names_the_dead_letter_queue_without_a_redrive_policy(
    sqs_server: EmbeddedSQS, aws_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """With no redrive policy, the variable's queue is the dead-letter queue, quietly."""
    made = make_orders_queues(sqs_server.endpoint_url, aws_env, redrive=False)
    caplog.set_level(logging.WARNING, logger="sandboxd.sqs")
    env = {**aws_env, "SANDBOXD_DEAD_LETTER_QUEUE": queue_name(made["dlq"])}
    assert (await resolve_aws(sqs_server.endpoint_url, env)).dead_letter == made["dlq"]
    assert sqs_warnings(caplog) == []


async def test_the_variable_overrides_a_different_redrive_target_with_a_warning(
    sqs_server: EmbeddedSQS, aws_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A variable naming another queue wins, and a warning says where SQS's redrive goes."""
    made = make_orders_queues(sqs_server.endpoint_url, aws_env, redrive=True)
    other = boto3_client(sqs_server.endpoint_url).create_queue(
        QueueName=f"{aws_env['SANDBOXD_JOBS_QUEUE']}-other"
    )["QueueUrl"]
    caplog.set_level(logging.WARNING, logger="sandboxd.sqs")
    same = {**aws_env, "SANDBOXD_DEAD_LETTER_QUEUE": made["dlq"]}
    assert (await resolve_aws(sqs_server.endpoint_url, same)).dead_letter == made["dlq"]
    assert sqs_warnings(caplog) == [], "the same queue by URL is no override"
    env = {**aws_env, "SANDBOXD_DEAD_LETTER_QUEUE": queue_name(other)}
    assert (await resolve_aws(sqs_server.endpoint_url, env)).dead_letter == other
    [warning] = sqs_warnings(caplog)
    assert f"SANDBOXD_DEAD_LETTER_QUEUE={queue_name(other)} overrides" in warning
    assert queue_name(made["dlq"]) in warning


ORDERS_DLQ_ARN = "arn:aws:sqs:eu-west-1:123456789012:orders-dlq"


@pytest.mark.parametrize(
    ("policy", "name"),
    [
        (json.dumps({"deadLetterTargetArn": ORDERS_DLQ_ARN, "maxReceiveCount": "5"}), "orders-dlq"),
        ('{"maxReceiveCount":"5"}', None),
        ('{"deadLetterTargetArn":"orders-dlq"}', None),
        ("not json", None),
        ("[]", None),
    ],
)
def test_redrive_target_name_is_the_arns_last_field(policy: str, name: str | None) -> None:
    """The name is the ARN's last `:` field; a policy without a target ARN names none."""
    assert redrive_target_name(policy) == name
