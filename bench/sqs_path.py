"""End-to-end latency through SQS, next to its two parts, measured in one run.

    sqs only      boto3 send -> long-poll receive on the same moto server (no daemon):
                  what the queue itself costs, twice per job (job in, result out)
    in-process    jobs.execute() through a warm pool: the job without any queue
    through SQS   boto3 send of the job -> `sandboxd serve` (a child process, pool of 2)
                  -> result received by boto3 from the results queue

Also prints the moto server's own ceiling (sequential send+receive+delete per second), so
nobody mistakes it for the daemon's. Bounded: N iterations each (default 20).
Run with `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiodocker

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from daemon_process import DaemonProcess, daemon_env, job_doc, make_queues  # noqa: E402
from sqs_fixtures import boto3_client  # noqa: E402

from sandboxd.catalog import load_spec  # noqa: E402
from sandboxd.jobs import RunContext, execute  # noqa: E402
from sandboxd.models import Verdict, parse_job  # noqa: E402
from sandboxd.pool import Pool, PoolConfig  # noqa: E402
from sandboxd.sqs import EmbeddedSQS  # noqa: E402

WARMUP = 2


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def bench_sqs_only(client: Any, n: int) -> tuple[list[float], float]:
    """Send -> receive round trips; and sequential send+receive+delete operations/s."""
    url = client.create_queue(QueueName=f"bench-raw-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    samples = []
    for i in range(n + WARMUP):
        t0 = time.perf_counter()
        client.send_message(QueueUrl=url, MessageBody=job_doc(f"raw-{i}"))
        while True:
            got = client.receive_message(QueueUrl=url, WaitTimeSeconds=5).get("Messages", [])
            if got:
                break
        elapsed = time.perf_counter() - t0
        client.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
        if i >= WARMUP:
            samples.append(elapsed)
    t0 = time.perf_counter()
    ops = 0
    while time.perf_counter() - t0 < 3.0:
        client.send_message(QueueUrl=url, MessageBody="x")
        got = client.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
        for m in got:
            client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        ops += 1
    rate = ops / (time.perf_counter() - t0)
    client.delete_queue(QueueUrl=url)
    return samples, rate


async def bench_in_process(n: int) -> list[float]:
    docker = aiodocker.Docker()
    try:
        spec = await load_spec(docker, "python")
        pool = Pool(docker, {"python": spec}, PoolConfig(size=2), host_id="bench-sqs")
        await pool.start()
        if not await pool.wait_warm(120):
            raise SystemExit(f"pool did not warm up: {pool.last_error('python')}")
        samples = []
        for i in range(n + WARMUP):
            job = parse_job(job_doc(f"inproc-{i}"))
            t0 = time.perf_counter()
            result = await execute(pool, job, RunContext())
            elapsed = time.perf_counter() - t0
            if result.status is not Verdict.PASSED:
                raise SystemExit(f"unexpected verdict {result.status}: {result.message}")
            if i >= WARMUP:
                samples.append(elapsed)
        await pool.close()
        return samples
    finally:
        await docker.close()


def bench_through_sqs(client: Any, endpoint: str, n: int, tmp: Path) -> list[float]:
    suffix = uuid.uuid4().hex[:8]
    queues = make_queues(client, suffix)
    env = daemon_env(endpoint, suffix, tmp / "state", SANDBOXD_POOL_SIZES="python=2")
    daemon = DaemonProcess(env, tmp / "daemon.log").start()
    try:
        daemon.wait_ready()
        samples = []
        for i in range(n + WARMUP):
            job_id = f"e2e-{suffix}-{i}"
            t0 = time.perf_counter()
            client.send_message(QueueUrl=queues["jobs"], MessageBody=job_doc(job_id))
            result = None
            while result is None:
                got = client.receive_message(QueueUrl=queues["results"], WaitTimeSeconds=5)
                for m in got.get("Messages", []):
                    handle = m["ReceiptHandle"]
                    client.delete_message(QueueUrl=queues["results"], ReceiptHandle=handle)
                    doc = json.loads(m["Body"])
                    if doc.get("id") == job_id:
                        result = doc
            elapsed = time.perf_counter() - t0
            if result["status"] != "passed":
                raise SystemExit(f"unexpected result {result['status']}: {result['message']}")
            if i >= WARMUP:
                samples.append(elapsed)
        return samples
    finally:
        daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="iterations per method (default 20)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedSQS(port=0, log_path=Path(tmp) / "moto.log")
        server.start()
        try:
            client = boto3_client(server.endpoint_url)
            raw, rate = bench_sqs_only(client, args.n)
            inproc = asyncio.run(bench_in_process(args.n))
            e2e = bench_through_sqs(client, server.endpoint_url, args.n, Path(tmp))
        finally:
            server.stop()

    print(f"1-test pytest job, {args.n} runs each (after {WARMUP} warm-up runs)\n")
    print(f"{'path':<34} {'median ms':>10} {'p95 ms':>10} {'vs in-process':>14}")
    base, _ = summary(inproc)
    for name, samples in (
        ("sqs only: send -> receive", raw),
        ("in-process: execute()", inproc),
        ("through SQS: send -> result", e2e),
    ):
        median, p95 = summary(samples)
        print(f"{name:<34} {median * 1000:>10.1f} {p95 * 1000:>10.1f} {median / base:>13.2f}x")
    overhead = summary(e2e)[0] - base
    print(f"\nSQS adds {overhead * 1000:.0f} ms per job (two queue trips: job in, result out).")
    print(f"moto's own ceiling: {rate:.0f} sequential send+receive+delete per second.")


if __name__ == "__main__":
    main()
