"""`sandboxd serve` as a child process, for the daemon's drills.

The daemon under test talks to a real SQS server (moto) on loopback and the real Docker
engine; the tests talk to it the way a web app and an operator would: boto3 on the queues,
HTTP on /readyz and /metrics.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
# No proxy from the environment may carry our loopback requests anywhere else.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))
START_TIMEOUT = 90.0

# A tests-mode job that passes: what most drills send.
TWO_FER = {
    "two_fer.py": "def two_fer(name='you'):\n    return f'One for {name}, one for me.'\n",
    "two_fer_test.py": (
        "from two_fer import two_fer\n\n\ndef test_a_name_given():\n"
        "    assert two_fer('Alice') == 'One for Alice, one for me.'\n"
    ),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def job_doc(job_id: str | None = None, files: dict[str, str] | None = None, **fields: Any) -> str:
    doc = {
        "schema": "sandboxd.job/v1",
        "id": job_id or f"drill-{uuid.uuid4().hex[:12]}",
        "language": "python",
        "files": [{"path": p, "content": c} for p, c in (files or TWO_FER).items()],
        **fields,
    }
    return json.dumps(doc)


def daemon_env(endpoint: str, suffix: str, state_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a daemon on `endpoint` (an SQS server the test owns). No
    dead-letter queue is named: the daemon takes the jobs queue's redrive target."""
    keep = ("PATH", "HOME", "LANG", "DOCKER_HOST", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        {
            "SANDBOXD_SQS": "aws",
            "AWS_ENDPOINT_URL_SQS": endpoint,
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "SANDBOXD_REGION": "us-east-1",
            "SANDBOXD_JOBS_QUEUE": f"jobs-{suffix}",
            "SANDBOXD_RESULTS_QUEUE": f"results-{suffix}",
            "SANDBOXD_HTTP_ADDR": f"127.0.0.1:{free_port()}",
            "SANDBOXD_POOL_SIZES": "python=1",
            "SANDBOXD_VISIBILITY_TIMEOUT": "4",
            "SANDBOXD_HEARTBEAT_SECONDS": "1",
            "SANDBOXD_WAIT_TIME_SECONDS": "1",
            "SANDBOXD_GRACE_SECONDS": "20",
            "SANDBOXD_STATE_DIR": str(state_dir),
            "SANDBOXD_HOST_ID": f"pytest-daemon-{suffix}",
        }
    )
    env.update(extra)
    return env


def _end(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL, one child of ours."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class DaemonProcess:
    """One `python -m sandboxd serve`; its log goes to a file shown on failure.

    `with DaemonProcess(...).start() as daemon:` stops it on the way out, whatever
    happened inside; a `wait_ready()` that fails stops it too.
    """

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = "http://" + env["SANDBOXD_HTTP_ADDR"]
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def start(self) -> DaemonProcess:
        with self.log_path.open("ab") as log:
            # cwd=REPO: `-m` imports the package from the checkout these tests are in
            # (a worktree's own copy), not whatever the venv's editable install points at.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sandboxd", "serve"],
                env=self.env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        # Safety net: a daemon no fixture stopped (an interrupted setup) ends with pytest.
        self._finalizer = weakref.finalize(self, _end, self.proc)
        return self

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")[-6000:]
        except OSError:
            return ""

    def get(self, path: str) -> tuple[int, str]:
        try:
            with _HTTP.open(self.http + path, timeout=10) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Return once /readyz says ready; else stop the daemon and fail with its log."""
        try:
            self._wait_ready(timeout)
        except BaseException:
            # The caller never gets a daemon to stop: a fixture whose setup fails runs no
            # teardown, and the next test would find this one on its queues.
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        last = ""
        while time.monotonic() < end:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            try:
                status, body = self.get("/readyz")
                if status == 200:
                    return
                last = body
            except OSError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise AssertionError(f"daemon not ready in {timeout} s ({last}):\n{self.log()}")

    def wait_not_ready(self, timeout: float, because: str = "") -> str:
        """The /readyz body once it says not ready (with `because` among the reasons)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                status, body = self.get("/readyz")
            except OSError:
                status, body = 0, ""  # not listening yet
            if status == 503 and because in body:
                return body
            time.sleep(0.2)
        raise AssertionError(f"daemon still ready after {timeout} s:\n{self.log()}")

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of /metrics (0 when absent)."""
        status, body = self.get("/metrics")
        assert status == 200
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0

    def wait_metric(self, name: str, at_least: float, timeout: float = 30, **labels: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.metric(name, **labels) >= at_least:
                return
            time.sleep(0.1)
        raise AssertionError(f"{name}{labels} stayed below {at_least}:\n{self.log()}")

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signum)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"daemon did not exit in {timeout} s:\n{self.log()}") from None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL; only our own child, by its pid. Idempotent."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            # Killed, it could not stop the SQS server it started in its own session.
            end_embedded_server(Path(self.env["SANDBOXD_STATE_DIR"]))


def end_embedded_server(state_dir: Path) -> None:
    """SIGKILL the embedded SQS server a daemon of ours recorded in `state_dir`, if that
    pid is still an embedded SQS server (a pid can be reused)."""
    pid_file = state_dir / "embedded-sqs.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return
    if b"sandboxd.embedded_sqs_server" in cmdline or b"moto.server" in cmdline:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def receive_all(client: Any, url: str, seconds: float, until: Any = None) -> list[dict[str, Any]]:
    """Every message on `url` for `seconds` (or until `until(messages)`), deleted as read."""
    got: list[dict[str, Any]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        response = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in response.get("Messages", []):
            got.append(json.loads(message["Body"]))
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if until is not None and until(got):
            break
    return got


def results_for(messages: list[dict[str, Any]], job_id: str) -> list[dict[str, Any]]:
    return [
        m for m in messages if m.get("id") == job_id and m.get("schema") == "sandboxd.result/v1"
    ]


def make_queues(client: Any, suffix: str, max_receive_count: int = 3) -> dict[str, str]:
    """The jobs (redriving to the DLQ), results and dead-letter queues of one drill."""
    dlq = client.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
    redrive = {
        "deadLetterTargetArn": arn["Attributes"]["QueueArn"],
        "maxReceiveCount": str(max_receive_count),
    }
    jobs = client.create_queue(
        QueueName=f"jobs-{suffix}",
        Attributes={"RedrivePolicy": json.dumps(redrive), "VisibilityTimeout": "4"},
    )["QueueUrl"]
    results = client.create_queue(QueueName=f"results-{suffix}")["QueueUrl"]
    return {"jobs": jobs, "results": results, "dlq": dlq}
