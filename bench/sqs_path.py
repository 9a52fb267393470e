"""Latency of a warm 1-test pytest job, in-process and through SQS, against bare pytest on
the host, interleaved in one run.

    bare host     `python3 -m pytest -q` of the same files on the host (no isolation):
                  the baseline every goal is a ratio of
    in-process    jobs.execute() through a warm pool (2 slots and a spare): files in,
                  the fork runner, verdict in hand
    through SQS   boto3 send of the job -> `sandboxd serve` (a child process, 2 slots and
                  a spare, SANDBOXD_SQS=aws at a moto server on loopback) -> the result
                  long-polled back by boto3 from the results queue
    sqs only      boto3 send -> long-poll receive on the same moto server, no daemon:
                  what one queue trip costs (a job makes two)

Round i runs each method once, in an order that rotates, with a 0.2 s gap after each
run and every sandbox idle again first (the job meets a warm pool, not the last job's
reset). Prints medians, p95, ratios to the bare host and the goals' verdicts, and moto's
own sequential ceiling. Bounded: N rounds (default 20) after 2 warm-up rounds.

    python bench/sqs_path.py [-n 20] [--json bench/data/latency.json] [--profile OUT]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path
from typing import Any

from common import (
    WARMUP,
    BareHost,
    WarmPool,
    boto3_client,
    job_doc,
    moto_server,
    save_json,
    serve,
    stop_on_sigterm,
    summary,
    tests_job,
    tmpdir,
    verdict,
)

GAP_S = 0.2
GOAL_SQS = 0.5  # send -> result through SQS, as a fraction of bare host pytest
GOAL_IN_PROCESS = 0.35


def sqs_round_trip(client: Any, url: str, i: int) -> float:
    t0 = time.perf_counter()
    client.send_message(QueueUrl=url, MessageBody=job_doc(f"raw-{i}"))
    while True:
        got = client.receive_message(QueueUrl=url, WaitTimeSeconds=5).get("Messages", [])
        if got:
            break
    elapsed = time.perf_counter() - t0
    client.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
    return elapsed


def through_sqs(client: Any, queues: dict[str, str], job_id: str) -> float:
    t0 = time.perf_counter()
    client.send_message(QueueUrl=queues["jobs"], MessageBody=tests_job(job_id))
    while True:
        got = client.receive_message(QueueUrl=queues["results"], WaitTimeSeconds=5)
        messages = got.get("Messages", [])
        if messages:
            break
    elapsed = time.perf_counter() - t0
    for m in messages:
        client.delete_message(QueueUrl=queues["results"], ReceiptHandle=m["ReceiptHandle"])
        doc = json.loads(m["Body"])
        if doc.get("id") != job_id or doc["status"] != "passed":
            raise SystemExit(f"unexpected result: {doc.get('id')} {doc.get('status')}")
    return elapsed


def moto_ceiling(client: Any, url: str, seconds: float = 3.0) -> float:
    """Sequential send + receive + delete per second from one client."""
    t0 = time.perf_counter()
    ops = 0
    while time.perf_counter() - t0 < seconds:
        client.send_message(QueueUrl=url, MessageBody="x")
        got = client.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
        for m in got:
            client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        ops += 1
    return ops / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="rounds (default 20)")
    parser.add_argument("--slots", type=int, default=2, help="job slots of both pools")
    parser.add_argument("--json", type=Path, help="write every sample here (for plot.py)")
    parser.add_argument("--profile", type=Path, help="cProfile the daemon into this file")
    args = parser.parse_args()
    stop_on_sigterm()

    names = ["bare host", "in-process", "through SQS", "sqs only"]
    samples: dict[str, list[float]] = {name: [] for name in names}
    with tmpdir() as tmp_name:
        tmp = Path(tmp_name)
        host = BareHost(tmp / "files")
        with moto_server(tmp) as server:
            client = boto3_client(server.endpoint_url)
            raw_url = client.create_queue(QueueName=f"bench-raw-{uuid.uuid4().hex[:8]}")["QueueUrl"]
            with (
                serve(client, server.endpoint_url, tmp, args.slots, args.profile) as served,
                WarmPool(args.slots) as pool,
            ):
                suffix = uuid.uuid4().hex[:6]

                def in_process(i: int) -> float:
                    elapsed, result = pool.execute(tests_job(f"inproc-{suffix}-{i}"))
                    if result.status.value != "passed":
                        raise SystemExit(f"in-process: {result.status.value}: {result.message}")
                    return elapsed

                run = {
                    "bare host": lambda i: host.run_once(),
                    "in-process": in_process,
                    "through SQS": lambda i: through_sqs(
                        client, served.queues, f"e2e-{suffix}-{i}"
                    ),
                    "sqs only": lambda i: sqs_round_trip(client, raw_url, i),
                }
                for i in range(args.n + WARMUP):
                    order = names[i % len(names) :] + names[: i % len(names)]
                    for name in order:
                        pool.settle()
                        elapsed = run[name](i)
                        if i >= WARMUP:
                            samples[name].append(elapsed)
                        time.sleep(GAP_S)
            rate = moto_ceiling(client, raw_url)

    base, _ = summary(samples["bare host"])
    print(
        f"\nwarm 1-test pytest job (two-fer), {args.n} interleaved rounds after {WARMUP} "
        f"warm-up rounds, pools of {args.slots} slots + 1 spare\n"
    )
    print(f"{'path':<34} {'median ms':>10} {'p95 ms':>10} {'vs bare host':>13}")
    for name, label in (
        ("bare host", "bare host: python3 -m pytest"),
        ("in-process", "in-process: execute()"),
        ("through SQS", "through SQS: send -> result"),
        ("sqs only", "sqs only: send -> receive"),
    ):
        median, high = summary(samples[name])
        print(f"{label:<34} {median * 1000:>10.1f} {high * 1000:>10.1f} {median / base:>12.2f}x")
    inproc = summary(samples["in-process"])[0] / base
    e2e = summary(samples["through SQS"])[0] / base
    met = verdict(inproc <= GOAL_IN_PROCESS)
    print(f"\ngoal in-process  <= {GOAL_IN_PROCESS}x bare host: {inproc:.2f}x  {met}")
    print(f"goal through SQS <= {GOAL_SQS}x bare host: {e2e:.2f}x  {verdict(e2e <= GOAL_SQS)}")
    overhead = summary(samples["through SQS"])[0] - summary(samples["in-process"])[0]
    print(f"SQS adds {overhead * 1000:.0f} ms per job over in-process (job in, result out).")
    print(f"moto's own ceiling: {rate:.0f} sequential send+receive+delete per second.")
    save_json(
        args.json,
        {"rounds": args.n, "slots": args.slots, "samples_s": samples, "moto_ops_per_s": rate},
    )


if __name__ == "__main__":
    main()
