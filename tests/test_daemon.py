"""`sandboxd serve` against real parts: a moto SQS server on loopback, the Docker engine,
real HTTP. The client side is plain boto3 (not our code), as a web app's would be.

One daemon serves the module's non-destructive tests; the drills that kill, stop or cut
off a daemon get one of their own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hostile_exercises as hostile
import pytest
from daemon_process import (
    REPO,
    DaemonProcess,
    daemon_env,
    end_embedded_server,
    free_port,
    job_doc,
    make_queues,
    receive_all,
    results_for,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqs_fixtures import boto3_client

from sandboxd.models import JobRejected, parse_job
from sandboxd.sqs import EmbeddedSQS, queue_name

pytestmark = pytest.mark.docker


class Drill:
    """A daemon and its queues, seen from outside."""

    def __init__(self, server_url: str, tmp: Path, **env: str) -> None:
        self.suffix = uuid.uuid4().hex[:10]
        self.tmp = tmp
        self.sqs = boto3_client(server_url)
        self.queues = make_queues(self.sqs, self.suffix)
        self.env = daemon_env(server_url, self.suffix, tmp / f"state-{self.suffix}", **env)
        self._daemons: list[DaemonProcess] = []
        self.daemon = self.new_daemon(tmp / f"daemon-{self.suffix}.log")

    def new_daemon(self, log_path: Path | None = None) -> DaemonProcess:
        """A daemon (not started) on this drill's queues, stopped by `stop()`."""
        daemon = DaemonProcess(self.env, log_path or self.daemon.log_path)
        self._daemons.append(daemon)
        return daemon

    def stop(self) -> None:
        """Stop every daemon this drill made, whichever of them the test replaced."""
        for daemon in self._daemons:
            daemon.stop()

    def send(self, body: str) -> None:
        self.sqs.send_message(QueueUrl=self.queues["jobs"], MessageBody=body)

    def result(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        got = receive_all(
            self.sqs, self.queues["results"], timeout, until=lambda m: results_for(m, job_id)
        )
        found = results_for(got, job_id)
        assert found, f"no result for {job_id} in {timeout} s:\n{self.daemon.log()}"
        return found[0]

    def queue_count(self, name: str) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.queues[name],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        )


@pytest.fixture(scope="module")
def shared(sqs_server: EmbeddedSQS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drill]:
    drill = Drill(sqs_server.endpoint_url, tmp_path_factory.mktemp("daemon"))
    try:
        drill.daemon.start().wait_ready()
        yield drill
    finally:
        drill.stop()


@pytest.fixture
def own(sqs_server: EmbeddedSQS, tmp_path: Path) -> Iterator[Drill]:
    drill = Drill(sqs_server.endpoint_url, tmp_path)
    try:
        yield drill
    finally:
        drill.stop()


# -- the happy path ------------------------------------------------------------------------


def test_a_job_sent_with_boto3_gets_its_result(shared: Drill) -> None:
    job_id = f"e2e-{uuid.uuid4().hex[:8]}"
    shared.send(job_doc(job_id, metadata={"user": 42}))
    result = shared.result(job_id)
    assert result["status"] == "passed", result
    assert result["attempt"] == 1
    assert result["metadata"] == {"user": 42}
    assert [t["name"] for t in result["tests"]] == ["a name given"]
    assert result["host"] == shared.env["SANDBOXD_HOST_ID"]
    time.sleep(0.5)
    assert shared.queue_count("jobs") == 0, "the message is deleted once answered"


def test_streamed_output_arrives_in_order_before_the_result(shared: Drill) -> None:
    job_id = f"stream-{uuid.uuid4().hex[:8]}"
    program = "import sys, time\nfor i in range(5):\n    print('line', i, flush=True)\n"
    program += "    time.sleep(0.3)\nprint('oops', file=sys.stderr)\n"
    shared.send(job_doc(job_id, {"main.py": program}, command="python3 main.py", stream=True))
    got = receive_all(
        shared.sqs, shared.queues["results"], 60, until=lambda m: results_for(m, job_id)
    )
    events = sorted(
        (m for m in got if m.get("schema") == "sandboxd.event/v1" and m["id"] == job_id),
        key=lambda e: e["seq"],
    )
    assert [e["seq"] for e in events] == list(range(len(events))), "seq has no gaps"
    assert events[0]["kind"] == "started" and events[-1]["kind"] == "finished"
    stdout = "".join(e["data"]["text"] for e in events if e["kind"] == "stdout")
    stderr = "".join(e["data"]["text"] for e in events if e["kind"] == "stderr")
    assert stdout == "".join(f"line {i}\n" for i in range(5))
    assert stderr == "oops\n"
    assert sum(1 for e in events if e["kind"] == "stdout") >= 2, "output came in several events"
    assert results_for(got, job_id)[0]["status"] == "passed"
    # The host's SSE endpoint replays the same events (kept a while after the job ends).
    status, body = shared.daemon.get(f"/v1/jobs/{job_id}/events")
    assert status == 200
    sse = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    assert [(e["seq"], e["kind"], e["data"]) for e in sse if e.get("id") == job_id] == [
        (e["seq"], e["kind"], e["data"]) for e in events
    ]


def test_metrics_and_readiness_over_http_follow_the_jobs(shared: Drill) -> None:
    assert shared.daemon.get("/healthz")[0] == 200
    status, body = shared.daemon.get("/readyz")
    assert status == 200, body
    passed = shared.daemon.metric("sandboxd_jobs_total", language="python", verdict="passed")
    runs = shared.daemon.metric("sandboxd_run_seconds_count", language="python")
    job_id = f"metrics-{uuid.uuid4().hex[:8]}"
    sleeper = {"main.py": "import time\ntime.sleep(1.5)\n"}
    shared.send(job_doc(job_id, sleeper, command="python3 main.py"))
    shared.daemon.wait_metric("sandboxd_jobs_in_flight", 1)
    assert shared.result(job_id)["status"] == "passed"
    shared.daemon.wait_metric(
        "sandboxd_jobs_total", passed + 1, language="python", verdict="passed"
    )
    assert shared.daemon.metric("sandboxd_run_seconds_count", language="python") == runs + 1
    assert shared.daemon.metric("sandboxd_jobs_in_flight") == 0
    pools = json.loads(shared.daemon.get("/v1/pools")[1])
    assert [p["pool"] for p in pools] == ["python"]


def test_a_duplicate_job_is_answered_from_the_store_not_run_again(shared: Drill) -> None:
    job_id = f"dup-{uuid.uuid4().hex[:8]}"
    program = {"main.py": "import random\nprint(random.random())\n"}
    body = job_doc(job_id, program, command="python3 main.py")
    runs = shared.daemon.metric("sandboxd_run_seconds_count", language="python")
    shared.send(body)
    first = shared.result(job_id)
    shared.send(body)
    second = shared.result(job_id)
    assert second == first, "the same result, including the same random output"
    assert shared.daemon.metric("sandboxd_run_seconds_count", language="python") == runs + 1
    assert shared.daemon.metric("sandboxd_duplicate_deliveries_total") >= 1


def test_two_jobs_in_a_row_share_no_processes_or_files(shared: Drill) -> None:
    leave = (
        "import subprocess\nsubprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
        "open('/tmp/left-by-job-1', 'w').write('x')\nopen('secret.txt', 'w').write('x')\n"
    )
    look = (
        "import os\nprocs = [open(f'/proc/{p}/cmdline').read() for p in os.listdir('/proc')"
        " if p.isdigit()]\nprint(any(p.startswith('sleep') for p in procs),"
        " sorted(os.listdir('/tmp')), sorted(os.listdir('.')))\n"
    )
    first, second = f"leave-{uuid.uuid4().hex[:8]}", f"look-{uuid.uuid4().hex[:8]}"
    shared.send(job_doc(first, {"a.py": leave}, command="python3 a.py"))
    assert shared.result(first)["status"] == "passed"
    shared.send(job_doc(second, {"b.py": look}, command="python3 b.py"))
    result = shared.result(second)
    assert result["stdout"] == "False ['.sandboxd'] ['b.py']\n", result


KILLS_ITS_RUNNER = {
    "k_test.py": (
        "import json, os, signal\n\n\n"
        "def test_forges_and_kills():\n"
        "    doc = {'version': 3, 'status': 'pass', 'tests': [{'name': 'x', 'status': 'pass'}]}\n"
        "    with open('/tmp/.sandboxd/out/results.json', 'w') as f:\n"
        "        json.dump(doc, f)\n"
        "    os.kill(os.getppid(), signal.SIGKILL)\n"
    ),
}


def test_what_the_learner_does_to_the_runner_is_answered_once(shared: Drill) -> None:
    """A job that forges a pass and tries to kill its runner (the image's fork runner:
    another uid, so the kill is refused) gets one learner verdict on its first
    delivery: its test's failure, not a pass, not our failure, not retried."""
    job_id = f"kills-runner-{uuid.uuid4().hex[:8]}"
    shared.send(job_doc(job_id, KILLS_ITS_RUNNER))
    result = shared.result(job_id)
    assert (result["status"], result["attempt"]) == ("failed", 1), result
    assert "PermissionError" in result["tests"][0]["message"]
    assert results_for(receive_all(shared.sqs, shared.queues["results"], 3), job_id) == []
    assert shared.queue_count("jobs") == 0 and shared.queue_count("dlq") == 0


def test_submit_cli_is_a_working_client(shared: Drill) -> None:
    """`sandboxd submit DIR --stream` through the same queues, as a web app would."""
    env = {**shared.env, "SANDBOXD_HTTP_ADDR": f"127.0.0.1:{free_port()}"}
    proc = subprocess.run(
        [sys.executable, "-m", "sandboxd", "submit", "examples/python/two-fer", "--stream"],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode() + out
    assert "3 passed" in out, "the runner's output was streamed"
    assert "PASSED: All 3 tests passed." in out


def test_submit_cli_escapes_the_learners_output_unless_raw(shared: Drill, tmp_path: Path) -> None:
    """`sandboxd submit --stream` shows control sequences escaped; --raw passes them through."""
    env = {**shared.env, "SANDBOXD_HTTP_ADDR": f"127.0.0.1:{free_port()}"}
    exercise = str(hostile.terminal_escapes(tmp_path / "hx"))

    def submit(*flags: str) -> bytes:
        proc = subprocess.run(
            [sys.executable, "-m", "sandboxd", "submit", exercise, "--stream", *flags],
            cwd=REPO, env=env, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr.decode()
        return proc.stdout

    out = submit().decode()
    assert not any(ord(ch) < 0x20 and ch not in "\n\t" for ch in out), out
    assert f"{hostile.ESCAPED_OSC52_CLEAR}\n" in out and hostile.ESCAPED_TEST_NAME in out
    assert hostile.ESCAPED_MESSAGE in out
    raw = submit("--raw")
    assert f"{hostile.OSC52_CLEAR}\n".encode() in raw and hostile.TEST_NAME.encode() in raw


# -- bad input never stops the loop ----------------------------------------------------------

_VALID = json.loads(job_doc("x"))

_bodies = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=100).map(lambda b: b.decode("latin-1")),
    st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=10), max_size=4).map(
        json.dumps
    ),
    st.fixed_dictionaries(
        {
            "schema": st.sampled_from(["sandboxd.job/v1", "sandboxd.job/v2", "nope", 3]),
            "language": st.sampled_from(["python", "cobol", "", None]),
            "files": st.lists(
                st.fixed_dictionaries(
                    {
                        "path": st.sampled_from(
                            ["a.py", "../etc/passwd", "/abs.py", "a/../../b", "", "ok/x.py"]
                        ),
                        "content": st.text(max_size=20),
                    }
                ),
                max_size=2,
            ),
            "limits": st.dictionaries(
                st.sampled_from(["wall_seconds", "memory_mb", "bogus"]),
                st.integers(-5, 10**6),
                max_size=2,
            ),
        }
    ).map(lambda d: json.dumps({**d, "id": f"fuzz-{uuid.uuid4().hex[:10]}"})),
    st.just(json.dumps({**_VALID, "id": "x" * 200})),
    st.just(
        json.dumps({**_VALID, "files": [{"path": "big.py", "content": "#" * 300_000}]})[:250_000]
    ),
)


def _drain(client: Any, url: str) -> None:
    """Delete whatever is on `url` now (PurgeQueue is allowed once a minute only)."""
    while True:
        response = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages = response.get("Messages", [])
        if not messages:
            return
        for m in messages:
            client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def _expectation(body: str) -> tuple[str, str | None]:
    """What the daemon must do with `body`: ("dlq", None), ("rejected", id) or ("run", id)."""
    try:
        job = parse_job(body)
    except JobRejected as exc:
        return ("rejected", exc.job_id) if exc.job_id else ("dlq", None)
    if job.language != "python":  # valid, but not a language this host serves
        return "rejected", job.id
    return "run", job.id


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(bodies=st.lists(_bodies, min_size=4, max_size=8))
def test_malformed_messages_are_rejected_or_dead_lettered(shared: Drill, bodies: list[str]) -> None:
    bodies = [b for b in bodies if b]  # SQS refuses an empty body
    _drain(shared.sqs, shared.queues["dlq"])  # what an earlier (failed) example left
    expected = {body: _expectation(body) for body in bodies}
    for body in bodies:
        shared.send(body)
    ids = {job_id for kind, job_id in expected.values() if job_id is not None}
    dlq_bodies = [body for body in bodies if expected[body][0] == "dlq"]  # repeats too

    def complete(got: list[dict[str, Any]]) -> bool:
        return ids <= {m.get("id") for m in got if m.get("schema") == "sandboxd.result/v1"}

    got = receive_all(shared.sqs, shared.queues["results"], 60, until=complete)
    assert complete(got), f"missing results:\n{shared.daemon.log()}"
    for body, (kind, job_id) in expected.items():
        if job_id is None:
            continue
        status = results_for(got, job_id)[0]["status"]
        if kind == "rejected":
            assert status == "rejected", (body[:300], status)
        else:
            assert status != "rejected", (body[:300], status)

    dead: list[str] = []
    end = time.monotonic() + 30
    while len(dead) < len(dlq_bodies) and time.monotonic() < end:
        response = shared.sqs.receive_message(
            QueueUrl=shared.queues["dlq"], MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for m in response.get("Messages", []):
            dead.append(m["Body"])
            shared.sqs.delete_message(
                QueueUrl=shared.queues["dlq"], ReceiptHandle=m["ReceiptHandle"]
            )
    assert sorted(dead) == sorted(dlq_bodies)

    # The loop is alive and right: the next valid job passes.
    job_id = f"after-fuzz-{uuid.uuid4().hex[:8]}"
    shared.send(job_doc(job_id))
    assert shared.result(job_id)["status"] == "passed"


def test_reply_to_off_our_endpoint_is_refused(shared: Drill) -> None:
    job_id = f"reply-{uuid.uuid4().hex[:8]}"
    shared.send(job_doc(job_id, reply_to="http://203.0.113.9:9324/123456789012/elsewhere"))
    result = shared.result(job_id)
    assert result["status"] == "rejected"
    assert "reply_to" in result["message"]


# -- at least once, made safe ----------------------------------------------------------------


def test_kill_9_mid_job_then_restart_gives_exactly_one_result(own: Drill) -> None:
    own.daemon.start().wait_ready()
    job_id = f"kill9-{uuid.uuid4().hex[:8]}"
    own.send(job_doc(job_id, {"m.py": "import time\ntime.sleep(2)\nprint('done')\n"},
                     command="python3 m.py"))  # fmt: skip
    own.daemon.wait_metric("sandboxd_jobs_in_flight", 1)
    own.daemon.signal(signal.SIGKILL)
    own.daemon.wait_exit(10)
    # A new daemon process on the same host: removes the dead one's sandboxes, and runs
    # the job once its message becomes visible again (visibility timeout 4 s).
    restarted = own.daemon = own.new_daemon()
    restarted.start().wait_ready()
    got = receive_all(own.sqs, own.queues["results"], 60, until=lambda m: results_for(m, job_id))
    first = results_for(got, job_id)
    assert first and first[0]["status"] == "passed", restarted.log()
    assert first[0]["attempt"] == 2, "the second delivery answered it"
    later = receive_all(own.sqs, own.queues["results"], 6)
    assert results_for(later, job_id) == [], "exactly one result for the id"
    assert own.queue_count("jobs") == 0


def test_sigterm_mid_job_sends_its_result_and_exits_0(own: Drill) -> None:
    own.daemon.start().wait_ready()
    job_id = f"term-{uuid.uuid4().hex[:8]}"
    own.send(job_doc(job_id, {"m.py": "import time\ntime.sleep(2)\nprint('done')\n"},
                     command="python3 m.py"))  # fmt: skip
    own.daemon.wait_metric("sandboxd_jobs_in_flight", 1)
    own.daemon.signal(signal.SIGTERM)
    assert own.daemon.wait_exit(40) == 0, own.daemon.log()
    result = own.result(job_id, timeout=10)
    assert result["status"] == "passed" and result["stdout"] == "done\n"
    assert own.queue_count("jobs") == 0


def test_sqs_outage_under_a_running_daemon(tmp_path: Path) -> None:
    """The SQS server stops mid-job and comes back empty: the daemon keeps running,
    reports not-ready meanwhile, and sends the result it held once the queues are back."""
    port = free_port()
    server = EmbeddedSQS(port=port, log_path=tmp_path / "moto.log")
    server.start()
    drill: Drill | None = None
    try:
        drill = Drill(server.endpoint_url, tmp_path)
        drill.daemon.start().wait_ready()
        job_id = f"outage-{uuid.uuid4().hex[:8]}"
        drill.send(job_doc(job_id, {"m.py": "import time\ntime.sleep(2)\nprint('held')\n"},
                           command="python3 m.py"))  # fmt: skip
        drill.daemon.wait_metric("sandboxd_jobs_in_flight", 1)
        server.stop()
        reason = drill.daemon.wait_not_ready(30)
        assert "queue" in reason, reason
        time.sleep(3)  # the job ends while SQS is away; its result is held
        assert drill.daemon.proc is not None and drill.daemon.proc.poll() is None
        server = EmbeddedSQS(port=port, log_path=tmp_path / "moto.log")
        server.start()
        make_queues(drill.sqs, drill.suffix)  # the same names, so the same URLs
        result = drill.result(job_id, timeout=60)
        assert result["status"] == "passed" and result["stdout"] == "held\n"
        drill.daemon.wait_ready(60)
    finally:
        if drill is not None:
            drill.stop()
        server.stop()


def test_serve_with_embedded_sqs_answers_and_stops_cleanly(tmp_path: Path) -> None:
    """No SQS configuration: the daemon runs its own server, prints how to submit, answers
    a job sent by an outside client, and on SIGTERM stops the server and exits 0."""
    sqs_port = free_port()
    env = daemon_env("unused", uuid.uuid4().hex[:8], tmp_path / "state")
    for key in ("SANDBOXD_SQS", "AWS_ENDPOINT_URL_SQS", "SANDBOXD_JOBS_QUEUE",
                "SANDBOXD_RESULTS_QUEUE"):  # fmt: skip
        env.pop(key)
    env["SANDBOXD_EMBEDDED_SQS_PORT"] = str(sqs_port)
    daemon = DaemonProcess(env, tmp_path / "daemon.log")
    try:
        daemon.start().wait_ready()
        assert "aws sqs send-message" in daemon.log()
        client = boto3_client(f"http://127.0.0.1:{sqs_port}")
        jobs = client.get_queue_url(QueueName="sandboxd-jobs")["QueueUrl"]
        results = client.get_queue_url(QueueName="sandboxd-results")["QueueUrl"]
        dlq = client.get_queue_url(QueueName="sandboxd-jobs-dlq")["QueueUrl"]
        redrive = client.get_queue_attributes(QueueUrl=jobs, AttributeNames=["RedrivePolicy"])
        target = json.loads(redrive["Attributes"]["RedrivePolicy"])["deadLetterTargetArn"]
        assert target.rsplit(":", 1)[-1] == queue_name(dlq) == "sandboxd-jobs-dlq"
        job_id = f"embedded-{uuid.uuid4().hex[:8]}"
        client.send_message(QueueUrl=jobs, MessageBody=job_doc(job_id))
        got = receive_all(client, results, 60, until=lambda m: results_for(m, job_id))
        assert results_for(got, job_id)[0]["status"] == "passed", daemon.log()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(40) == 0, daemon.log()
        with pytest.raises(Exception):  # noqa: B017 - any connection error will do
            client.list_queues()
    finally:
        daemon.stop()
        end_embedded_server(tmp_path / "state")  # should the daemon have died without it


def test_a_second_signal_gives_the_job_back_at_once(own: Drill) -> None:
    own.daemon.start().wait_ready()
    job_id = f"force-{uuid.uuid4().hex[:8]}"
    own.send(job_doc(job_id, {"m.py": "import time\ntime.sleep(60)\n"}, command="python3 m.py"))
    own.daemon.wait_metric("sandboxd_jobs_in_flight", 1)
    own.daemon.signal(signal.SIGTERM)
    time.sleep(0.5)
    own.daemon.signal(signal.SIGTERM)
    assert own.daemon.wait_exit(20) == 1, own.daemon.log()
    # Visible again at once (not after the visibility timeout), and never answered.
    response = own.sqs.receive_message(QueueUrl=own.queues["jobs"], WaitTimeSeconds=2)
    bodies = [json.loads(m["Body"]) for m in response.get("Messages", [])]
    assert [b["id"] for b in bodies] == [job_id]
    assert results_for(receive_all(own.sqs, own.queues["results"], 1), job_id) == []


def test_our_failure_is_retried_then_answered_internal_error(own: Drill) -> None:
    """A language this host serves but cannot run (its image is missing): the job goes
    back for a retry, and on the last delivery it gets an internal_error result."""
    own.env["SANDBOXD_POOL_SIZES"] = "python=1,cobol=1"
    own.env["SANDBOXD_MAX_RECEIVE_COUNT"] = "2"
    own.daemon.start()
    reason = own.daemon.wait_not_ready(60, because="cobol")
    assert "language cobol: unknown language 'cobol' (known: " in reason, reason
    job_id = f"cobol-{uuid.uuid4().hex[:8]}"
    own.send(json.dumps({**json.loads(job_doc(job_id)), "language": "cobol"}))
    result = own.result(job_id, timeout=60)
    assert result["status"] == "internal_error", result
    assert result["attempt"] == 2, "retried once, answered on the last delivery"
    assert "Traceback" not in result["message"]
    python_job = f"py-{uuid.uuid4().hex[:8]}"
    own.send(job_doc(python_job))
    assert own.result(python_job)["status"] == "passed", "the other language still works"


def test_a_result_too_large_for_sqs_is_cut_to_fit(shared: Drill) -> None:
    """64 KiB of control characters is 384 KiB of JSON; SQS takes 256 KiB per message."""
    job_id = f"big-{uuid.uuid4().hex[:8]}"
    program = {"m.py": "import sys\nsys.stdout.write('\\x01' * 70000)\n"}
    shared.send(job_doc(job_id, program, command="python3 m.py"))
    result = shared.result(job_id)
    assert result["status"] == "passed"
    assert result["stdout_truncated"] is True
    assert 10_000 < len(result["stdout"]) < 65_536
    assert len(json.dumps(result)) <= 262_144


def test_a_reply_queue_that_does_not_exist_gets_the_answer_on_the_results_queue(
    shared: Drill,
) -> None:
    job_id = f"noq-{uuid.uuid4().hex[:8]}"
    missing = shared.queues["results"].rsplit("/", 1)[0] + "/no-such-queue-" + job_id
    shared.send(job_doc(job_id, reply_to=missing))
    assert shared.result(job_id)["status"] == "passed"


def test_embedded_server_outlives_a_crashed_daemon_and_is_taken_over(tmp_path: Path) -> None:
    """kill -9 of a daemon with its own SQS server: the restarted daemon takes over the
    server it left (the queued job is not lost), answers the job once, and stops it."""
    env = daemon_env("unused", uuid.uuid4().hex[:8], tmp_path / "state")
    for key in ("SANDBOXD_SQS", "AWS_ENDPOINT_URL_SQS"):
        env.pop(key)
    sqs_port = free_port()
    env["SANDBOXD_EMBEDDED_SQS_PORT"] = str(sqs_port)
    first = DaemonProcess(env, tmp_path / "daemon.log")
    second = DaemonProcess(env, tmp_path / "daemon.log")
    try:
        first.start().wait_ready()
        client = boto3_client(f"http://127.0.0.1:{sqs_port}")
        jobs = client.get_queue_url(QueueName=env["SANDBOXD_JOBS_QUEUE"])["QueueUrl"]
        results = client.get_queue_url(QueueName=env["SANDBOXD_RESULTS_QUEUE"])["QueueUrl"]
        job_id = f"takeover-{uuid.uuid4().hex[:8]}"
        body = job_doc(job_id, {"m.py": "import time\ntime.sleep(2)\n"}, command="python3 m.py")
        client.send_message(QueueUrl=jobs, MessageBody=body)
        first.wait_metric("sandboxd_jobs_in_flight", 1)
        first.signal(signal.SIGKILL)
        first.wait_exit(10)
        pid = int((tmp_path / "state" / "embedded-sqs.pid").read_text().split()[0])
        second.start().wait_ready()
        assert "took over the server" in second.log()
        got = receive_all(client, results, 60, until=lambda m: results_for(m, job_id))
        assert [r["attempt"] for r in results_for(got, job_id)] == [2], second.log()
        assert results_for(receive_all(client, results, 5), job_id) == []
        second.signal(signal.SIGTERM)
        assert second.wait_exit(40) == 0, second.log()
        for _ in range(100):
            stat = Path(f"/proc/{pid}/stat")
            if not stat.exists() or stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z":
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"the taken-over server (pid {pid}) is still running")
        assert not (tmp_path / "state" / "embedded-sqs.pid").exists()
    finally:
        first.stop()
        second.stop()
        end_embedded_server(tmp_path / "state")  # left by the first if the second failed


def test_http_answers_while_sqs_is_unreachable_at_start(tmp_path: Path) -> None:
    """No SQS server at all: the daemon keeps trying, says why it is not ready, and a
    SIGTERM still stops it cleanly."""
    env = daemon_env(f"http://127.0.0.1:{free_port()}", uuid.uuid4().hex[:8], tmp_path)
    daemon = DaemonProcess(env, tmp_path / "daemon.log").start()
    try:
        reason = daemon.wait_not_ready(30)
        assert "queue" in reason, reason
        assert daemon.get("/healthz")[0] == 200
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(20) == 0, daemon.log()
    finally:
        daemon.stop()


def test_reply_to_the_jobs_queue_is_refused(shared: Drill) -> None:
    """Answers sent to the jobs queue would come back in as jobs: refused."""
    job_id = f"loop-{uuid.uuid4().hex[:8]}"
    shared.send(job_doc(job_id, reply_to=shared.queues["jobs"]))
    result = shared.result(job_id)
    assert result["status"] == "rejected"
    assert "not the jobs or dead-letter queue" in result["message"]
    time.sleep(1)
    assert shared.queue_count("jobs") == 0, "nothing was sent back into the jobs queue"


def test_a_daemon_that_never_gets_ready_is_stopped(tmp_path: Path) -> None:
    """When `wait_ready()` gives up, the daemon it waited for is no longer running."""
    env = daemon_env(f"http://127.0.0.1:{free_port()}", uuid.uuid4().hex[:8], tmp_path)
    daemon = DaemonProcess(env, tmp_path / "daemon.log").start()
    try:
        with pytest.raises(AssertionError, match="not ready"):
            daemon.wait_ready(timeout=2)
        assert daemon.proc is not None and daemon.proc.poll() is not None, "still running"
    finally:
        daemon.stop()


def test_a_daemon_dead_letters_to_the_jobs_queues_redrive_target(
    sqs_server: EmbeddedSQS, tmp_path: Path
) -> None:
    """With no SANDBOXD_DEAD_LETTER_QUEUE, a daemon on `orders-jobs` (redriving to
    `orders-jobs-dlq`) gets ready and sends an unreadable message to that queue."""
    suffix = uuid.uuid4().hex[:8]
    client = boto3_client(sqs_server.endpoint_url)
    dlq = client.create_queue(QueueName=f"orders-jobs-{suffix}-dlq")["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
    policy = {"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": "3"}
    jobs = client.create_queue(
        QueueName=f"orders-jobs-{suffix}", Attributes={"RedrivePolicy": json.dumps(policy)}
    )["QueueUrl"]
    client.create_queue(QueueName=f"orders-results-{suffix}")
    env = daemon_env(sqs_server.endpoint_url, suffix, tmp_path / "state")
    env["SANDBOXD_JOBS_QUEUE"] = f"orders-jobs-{suffix}"
    env["SANDBOXD_RESULTS_QUEUE"] = f"orders-results-{suffix}"
    assert "SANDBOXD_DEAD_LETTER_QUEUE" not in env
    with DaemonProcess(env, tmp_path / "daemon.log").start() as daemon:
        daemon.wait_ready()
        client.send_message(QueueUrl=jobs, MessageBody="not a job")
        got = client.receive_message(QueueUrl=dlq, WaitTimeSeconds=20)
        assert [m["Body"] for m in got.get("Messages", [])] == ["not a job"], daemon.log()


def test_a_daemon_with_nowhere_to_dead_letter_does_not_start(
    sqs_server: EmbeddedSQS, tmp_path: Path
) -> None:
    """No redrive policy on the jobs queue and no SANDBOXD_DEAD_LETTER_QUEUE: exit 1 with
    one line saying so."""
    suffix = uuid.uuid4().hex[:8]
    client = boto3_client(sqs_server.endpoint_url)
    client.create_queue(QueueName=f"jobs-{suffix}")
    client.create_queue(QueueName=f"results-{suffix}")
    env = daemon_env(sqs_server.endpoint_url, suffix, tmp_path / "state")
    with DaemonProcess(env, tmp_path / "daemon.log").start() as daemon:
        assert daemon.wait_exit(60) == 1, daemon.log()
        [line] = [line for line in daemon.log().splitlines() if line.startswith("sandboxd: ")]
        assert f"'jobs-{suffix}' has no redrive policy" in line
        assert "SANDBOXD_DEAD_LETTER_QUEUE is not set" in line


def test_a_language_whose_canary_fails_is_not_ready_and_the_others_serve(own: Drill) -> None:
    """An image whose canary (its smallest passing fixture, in its label) does not pass:
    its language is not ready, with the reason, in /readyz and /v1/pools; python's
    canary passes and python serves."""
    from sandboxd.conformance import case_job, load_case
    from sandboxd.images import LABEL_CANARY, LABEL_CONFIG, LABEL_IMAGE, language_config

    root = Path(__file__).resolve().parent.parent
    failing = case_job(load_case("python", root / "runners/python/fixtures/some_fail"))
    canary = {"case": "some_fail", "job": failing.model_dump(mode="json", by_alias=True)}
    config = {**language_config("python"), "language": "canarytest"}
    tag = f"sandboxd/canarytest:{uuid.uuid4().hex[:8]}"
    context = own.tmp / "canary-image"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM sandboxd/python:latest\n")
    build = subprocess.run(
        ["docker", "build", "--pull=false", "-q",
         "--label", f"{LABEL_IMAGE}=canarytest",
         "--label", f"{LABEL_CONFIG}={json.dumps(config)}",
         "--label", f"{LABEL_CANARY}={json.dumps(canary)}",
         "-t", tag, "-t", "sandboxd/canarytest:latest", str(context)],
        capture_output=True, text=True, check=False, env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    try:
        own.env["SANDBOXD_POOL_SIZES"] = "python=1,canarytest=1"
        own.daemon.start()
        reason = own.daemon.wait_not_ready(90, because="canary some_fail")
        assert "language canarytest: canary some_fail: failed, not passed" in reason, reason
        assert "language python" not in reason, reason
        pools = {p["pool"]: p for p in json.loads(own.daemon.get("/v1/pools")[1])}
        assert pools["canarytest"]["ready"] is False
        assert "canary some_fail" in pools["canarytest"]["reason"]
        assert pools["python"]["ready"] is True and pools["python"]["reason"] is None
        # The canaries run at once: python's may end after canarytest's verdict is out.
        end = time.monotonic() + 60
        while "language python: canary all_pass passed" not in own.daemon.log():
            assert time.monotonic() < end, own.daemon.log()
            time.sleep(0.2)
        python_job = f"py-{uuid.uuid4().hex[:8]}"
        own.send(job_doc(python_job))
        assert own.result(python_job)["status"] == "passed"
    finally:
        own.daemon.stop()
        subprocess.run(
            ["docker", "rmi", "-f", tag, "sandboxd/canarytest:latest"],
            capture_output=True,
            check=False,
        )
