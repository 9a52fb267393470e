"""Throughput of `sandboxd serve` under a burst: N 1-test jobs sent at once through SQS.

For each pool size (default 1 and 2, the baseline being 1), one daemon process on one moto
server: all N jobs are sent in batches, then every result is read. Prints jobs/s, the
end-to-end latency spread (which includes the time each job waited in the queue), and
whether every job got exactly one `passed` result. Bounded: N jobs (default 60) per pool
size and a 300 s deadline each; it stops by itself. Run with `make bench`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from daemon_process import DaemonProcess, daemon_env, job_doc, make_queues  # noqa: E402
from sqs_fixtures import boto3_client  # noqa: E402

from sandboxd.sqs import EmbeddedSQS  # noqa: E402

DEADLINE_S = 300.0


def burst(client: Any, endpoint: str, n: int, pool_size: int, tmp: Path) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    queues = make_queues(client, suffix)
    env = daemon_env(endpoint, suffix, tmp / f"state-{suffix}")
    env["SANDBOXD_POOL_SIZES"] = f"python={pool_size}"
    env["SANDBOXD_VISIBILITY_TIMEOUT"] = "60"
    env["SANDBOXD_HEARTBEAT_SECONDS"] = "20"
    daemon = DaemonProcess(env, tmp / f"daemon-{suffix}.log").start()
    try:
        daemon.wait_ready()
        sent: dict[str, float] = {}
        t0 = time.perf_counter()
        for start in range(0, n, 10):
            entries = []
            for i in range(start, min(n, start + 10)):
                job_id = f"burst-{suffix}-{i}"
                entries.append({"Id": str(i), "MessageBody": job_doc(job_id)})
                sent[job_id] = time.perf_counter()
            client.send_message_batch(QueueUrl=queues["jobs"], Entries=entries)
        latencies: dict[str, float] = {}
        statuses: dict[str, list[str]] = {}
        while len(latencies) < n and time.perf_counter() - t0 < DEADLINE_S:
            got = client.receive_message(
                QueueUrl=queues["results"], MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            now = time.perf_counter()
            for m in got.get("Messages", []):
                client.delete_message(QueueUrl=queues["results"], ReceiptHandle=m["ReceiptHandle"])
                doc = json.loads(m["Body"])
                statuses.setdefault(doc["id"], []).append(doc["status"])
                latencies.setdefault(doc["id"], now - sent[doc["id"]])
        elapsed = time.perf_counter() - t0
        time.sleep(2)  # any duplicate answer would arrive now
        for m in client.receive_message(
            QueueUrl=queues["results"], MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            doc = json.loads(m["Body"])
            statuses.setdefault(doc["id"], []).append(doc["status"])
        exactly_once = all(s == ["passed"] for s in statuses.values()) and len(statuses) == n
        values = sorted(latencies.values())
        return {
            "pool": pool_size,
            "done": len(latencies),
            "seconds": elapsed,
            "rate": len(latencies) / elapsed,
            "p50": statistics.median(values) if values else float("nan"),
            "p95": values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
            if values
            else float("nan"),
            "exactly_once": exactly_once,
        }
    finally:
        daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=60, help="jobs per burst (default 60)")
    parser.add_argument("--pools", default="1,2", help="pool sizes to compare (default 1,2)")
    args = parser.parse_args()
    sizes = [int(x) for x in args.pools.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedSQS(port=0, log_path=Path(tmp) / "moto.log")
        server.start()
        try:
            client = boto3_client(server.endpoint_url)
            rows = [burst(client, server.endpoint_url, args.n, size, Path(tmp)) for size in sizes]
        finally:
            server.stop()
    print(f"burst of {args.n} 1-test jobs through SQS (moto), one daemon\n")
    print(f"{'pool':>4} {'done':>5} {'seconds':>8} {'jobs/s':>7} {'vs first':>9} "
          f"{'p50 ms':>8} {'p95 ms':>8}  exactly one passed result each")  # fmt: skip
    base = rows[0]["rate"]
    for r in rows:
        print(
            f"{r['pool']:>4} {r['done']:>5} {r['seconds']:>8.1f} {r['rate']:>7.2f} "
            f"{r['rate'] / base:>8.2f}x {r['p50'] * 1000:>8.0f} {r['p95'] * 1000:>8.0f}  "
            f"{'yes' if r['exactly_once'] else 'NO'}"
        )


if __name__ == "__main__":
    main()
