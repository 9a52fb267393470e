"""Throughput under a burst of 1-test pytest jobs, in-process and through SQS, against the
bare host running the same pytest invocations as many at once as it has cores; the CPU
each job costs, split by part; and throughput against the number of job slots.

    bare host     N `python3 -m pytest -q` runs of the job's files, os.cpu_count() at once
    in-process    N jobs.execute() calls at once through a warm pool of --slots slots and
                  a spare (they queue for a sandbox)
    through SQS   N jobs sent at once (ten to a call) to `sandboxd serve` (--slots slots
                  and a spare, SANDBOXD_SQS=aws at a moto server on loopback); the clock
                  stops when the last result is received. Every job must get exactly one
                  `passed` result.

--rounds R runs the three, interleaved, R times; the rates' medians are compared. During
each SQS burst the CPU is sampled by part (every 0.2 s, so processes and containers that
come and go are counted): the daemon and its children, the SQS server, the Docker engine
(dockerd, containerd, the containerd shims), the sandboxes (their cgroups' CPU counters),
this bench client, and the whole machine (/proc/stat); the CPU goals are judged on all
rounds pooled, which with 3 rounds of 200 includes one sandbox replacement per 200 jobs,
as in steady state. The daemon's SQS calls per job are counted too. Then, with --sweep,
the three again for each number of slots K (SANDBOXD_POOL_SIZES=python=K, the bare host
K at once). With --baseline REV, each round's SQS burst is run once more by REV's daemon
(its sandboxd from `git archive`, the same images, queue server and instrumentation):
the before and after of a change to the daemon, in one run.

Bounded: N jobs (default 200) per burst, each burst stops at --deadline seconds
(default 300) and reports how far it got.

    python bench/throughput.py [-n 200] [--rounds 1] [--sweep 1,2,3,4] [--sweep-n 60]
                               [--json bench/data/throughput.json] [--profile OUT]
                               [--baseline REV]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from common import (
    BareHost,
    CpuMeter,
    CpuSplit,
    WarmPool,
    baseline_checkout,
    boto3_client,
    machine_cpu_s,
    moto_server,
    own_cpu_s,
    receive_results,
    save_json,
    send_batch,
    serve,
    stop_on_sigterm,
    tests_job,
    tmpdir,
    verdict,
)

GOAL_RATIO = 1.5
GOAL_DAEMON_MS = 5.0
GOAL_ENGINE_MS = 2.0


def bare_burst(host: BareHost, n: int, at_once: int) -> dict[str, Any]:
    cpu0 = machine_cpu_s()
    seconds = host.burst(n, at_once)
    return {
        "done": n,
        "seconds": seconds,
        "rate": n / seconds,
        "machine_ms": (machine_cpu_s() - cpu0) * 1000 / n,
    }


def in_process_burst(pool: WarmPool, n: int, deadline: float) -> dict[str, Any]:
    pool.settle()
    tag = uuid.uuid4().hex[:6]
    docs = [tests_job(f"inproc-{tag}-{i}") for i in range(n)]
    cpu0 = machine_cpu_s()
    me0 = own_cpu_s()
    seconds, results = pool.burst(docs, timeout=deadline)
    pool.settle()  # the last resets are part of the cost
    passed = sum(r.status.value == "passed" for r in results)
    if passed != n:
        raise SystemExit(f"in-process burst: {passed} of {n} passed")
    return {
        "done": n,
        "seconds": seconds,
        "rate": n / seconds,
        "machine_ms": (machine_cpu_s() - cpu0) * 1000 / n,
        # This process is the daemon's side of execute() here: pool, sandbox, verdict.
        "execute_ms": (own_cpu_s() - me0) * 1000 / n,
    }


def sqs_burst(
    client: Any, served: Any, sqs_pid: int, n: int, deadline: float, meter: bool
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    docs = [(f"burst-{tag}-{i}", tests_job(f"burst-{tag}-{i}")) for i in range(n)]
    calls0 = served.daemon.sqs_calls()
    cpu = CpuMeter(served.daemon.pid, sqs_pid, served.host_id).start() if meter else None
    cpu0 = machine_cpu_s()
    t0 = time.perf_counter()
    sent = {job_id: time.perf_counter() for job_id, _ in docs}
    send_batch(client, served.queues["jobs"], docs)
    statuses: dict[str, list[str]] = {}
    latencies: dict[str, float] = {}
    while len(latencies) < n and time.perf_counter() - t0 < deadline:
        for doc, at in receive_results(client, served.queues["results"]):
            statuses.setdefault(doc["id"], []).append(doc["status"])
            latencies.setdefault(doc["id"], at - sent[doc["id"]])
    seconds = time.perf_counter() - t0
    machine_ms = (machine_cpu_s() - cpu0) * 1000 / max(1, len(latencies))
    split: CpuSplit | None = None
    if cpu is not None:
        split = cpu.stop()
    calls = served.daemon.sqs_calls()
    calls = {op: k - calls0.get(op, 0) for op, k in calls.items() if k > calls0.get(op, 0)}
    # A duplicate answer would arrive now.
    for doc, _ in receive_results(client, served.queues["results"], wait=2):
        statuses.setdefault(doc["id"], []).append(doc["status"])
    once = len(statuses) == n and all(s == ["passed"] for s in statuses.values())
    values = sorted(latencies.values())
    return {
        "done": len(latencies),
        "seconds": seconds,
        "rate": len(latencies) / seconds,
        "machine_ms": machine_ms,
        "exactly_once": once,
        "p50_ms": statistics.median(values) * 1000 if values else None,
        "split": split,
        "daemon_sqs_calls": calls,
    }


def print_split(split: CpuSplit, jobs: int, calls: dict[str, int]) -> dict[str, float]:
    """Print (and return) the CPU ms per job by part."""
    parts = split.per_job_ms(jobs)
    print(
        f"\nCPU per job during the SQS burst ({jobs} jobs, {split.seconds:.1f} s, "
        f"{split.samples} samples):"
    )
    for name, ms in parts.items():
        print(f"  {name:<52} {ms:>7.1f} ms")
    per_job = ", ".join(f"{op} {k / jobs:.2f}" for op, k in sorted(calls.items()))
    print(f"  SQS calls per job by the daemon: {sum(calls.values()) / jobs:.2f} ({per_job})")
    print(f"  our sandboxes started in the window: {split.started_ours}")
    others = split.engine.get("shims (other containers)", 0.0) * 1000 / jobs
    if split.foreign_containers or others >= 0.5:
        print(
            f"  (caution: other containers were busy meanwhile ({split.foreign_containers} "
            f"cgroups, their shims {others:.1f} ms/job); dockerd and containerd serve them "
            "too, so the engine's figure is an upper bound)"
        )
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="jobs per burst (default 200)")
    parser.add_argument(
        "--slots",
        type=int,
        default=os.cpu_count() or 2,
        help="job slots of the pools (default: the CPU count)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (default 1)")
    parser.add_argument("--sweep", default="", help="slot counts for the sweep, e.g. 1,2,3,4")
    parser.add_argument("--sweep-n", type=int, default=60, help="jobs per sweep burst")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds per burst")
    parser.add_argument("--json", type=Path, help="write the figures here (for plot.py)")
    parser.add_argument("--profile", type=Path, help="cProfile the daemon into this file")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run each round's SQS burst with REV's daemon (git archive), for an A/B",
    )
    args = parser.parse_args()
    stop_on_sigterm()
    cores = os.cpu_count() or 1
    rows: dict[str, list[dict[str, Any]]] = {"bare host": [], "in-process": [], "through SQS": []}
    sweep: list[dict[str, Any]] = []
    baseline_rows: list[dict[str, Any]] = []

    with tmpdir() as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        old = stack.enter_context(baseline_checkout(args.baseline)) if args.baseline else None
        host = BareHost(tmp / "files")
        with moto_server(tmp) as server:
            client = boto3_client(server.endpoint_url)
            assert server.pid is not None
            with (
                serve(client, server.endpoint_url, tmp, args.slots, args.profile) as served,
                WarmPool(args.slots) as pool,
            ):
                # Warm Python's own caches on both paths before anything is timed.
                in_process_burst(pool, 2 * args.slots, args.deadline)
                sqs_burst(client, served, server.pid, 2 * args.slots, args.deadline, False)
                for r in range(args.rounds):
                    print(f"round {r + 1} of {args.rounds}...", flush=True)
                    rows["bare host"].append(bare_burst(host, args.n, cores))
                    rows["in-process"].append(in_process_burst(pool, args.n, args.deadline))
                    pool.settle()  # the last resets
                    rows["through SQS"].append(
                        sqs_burst(client, served, server.pid, args.n, args.deadline, True)
                    )
                    if old is not None:
                        with serve(client, server.endpoint_url, tmp, args.slots, None, old) as was:
                            sqs_burst(client, was, server.pid, 2 * args.slots, args.deadline, False)
                            baseline_rows.append(
                                sqs_burst(client, was, server.pid, args.n, args.deadline, True)
                            )
            for k in [int(x) for x in args.sweep.split(",") if x]:
                print(f"sweep: {k} slots...", flush=True)
                row: dict[str, Any] = {"slots": k}
                row["bare host"] = bare_burst(host, args.sweep_n, k)["rate"]
                with WarmPool(k) as pool:
                    in_process_burst(pool, 2 * k, args.deadline)
                    row["in-process"] = in_process_burst(pool, args.sweep_n, args.deadline)["rate"]
                with serve(client, server.endpoint_url, tmp, k) as served:
                    sqs_burst(client, served, server.pid, 2 * k, args.deadline, False)
                    got = sqs_burst(client, served, server.pid, args.sweep_n, args.deadline, False)
                    row["through SQS"] = got["rate"]
                    row["through SQS done"] = got["done"]
                sweep.append(row)

    print(
        f"\nburst of {args.n} 1-test jobs, {args.rounds} round(s); pools of {args.slots} "
        f"slots + 1 spare; bare host {cores} at once\n"
    )
    print(
        f"{'method':<14} {'done':>5} {'seconds':>8} {'jobs/s':>7} {'vs bare':>8} "
        f"{'machine CPU ms/job':>19}  exactly one passed each"
    )
    medians: dict[str, float] = {}
    for name, runs in rows.items():
        medians[name] = statistics.median(r["rate"] for r in runs)
    base = medians["bare host"]
    for name, runs in rows.items():
        for r in runs:
            once = r.get("exactly_once")
            print(
                f"{name:<14} {r['done']:>5} {r['seconds']:>8.1f} {r['rate']:>7.2f} "
                f"{r['rate'] / base:>7.2f}x {r['machine_ms']:>19.0f}  "
                f"{'' if once is None else ('yes' if once else 'NO')}"
            )
    ratio = medians["through SQS"] / base
    print(
        f"\ngoal burst through SQS >= {GOAL_RATIO}x bare host: {ratio:.2f}x  "
        f"{verdict(ratio >= GOAL_RATIO)}"
    )
    print(f"(in-process: {medians['in-process'] / base:.2f}x)")

    per_job = [
        print_split(r["split"], r["done"], r["daemon_sqs_calls"]) for r in rows["through SQS"]
    ]
    # The goals are judged on all the rounds pooled: a sandbox is replaced after its 200
    # jobs, which lands in some bursts and not in others; pooled over enough jobs, the
    # figure is the steady state's (the hot path plus replacements amortised).
    sqs_rows = rows["through SQS"]
    jobs = sum(r["done"] for r in sqs_rows)
    replaced = sum(r["split"].started_ours for r in sqs_rows)

    def pooled(part: str) -> float:
        return sum(p[part] * r["done"] for p, r in zip(per_job, sqs_rows, strict=True)) / jobs

    daemon_ms = pooled("daemon (sandboxd serve, children included)")
    engine_ms = pooled("Docker engine (ours: dockerd+containerd+our shims)")
    hot = [
        p["Docker engine (ours: dockerd+containerd+our shims)"]
        for p, r in zip(per_job, sqs_rows, strict=True)
        if r["split"].started_ours == 0
    ]
    execute_ms = statistics.median(r["execute_ms"] for r in rows["in-process"])
    every = f" (one per {jobs / replaced:.0f} jobs)" if replaced else ""
    print(
        f"\npooled over the {len(sqs_rows)} SQS burst(s): {jobs} jobs, "
        f"{replaced} sandboxes replaced{every}"
    )
    print(f"(execute() alone cost {execute_ms:.1f} ms of CPU per job in-process)")
    print(
        f"goal daemon <= {GOAL_DAEMON_MS:g} ms CPU per job: {daemon_ms:.1f} ms  "
        f"{verdict(daemon_ms <= GOAL_DAEMON_MS)}"
    )
    print(
        f"goal Docker engine <= {GOAL_ENGINE_MS:g} ms CPU per job: {engine_ms:.1f} ms  "
        f"{verdict(engine_ms <= GOAL_ENGINE_MS)}"
    )
    if hot:
        print(f"  (bursts with no sandbox replaced: {statistics.median(hot):.1f} ms, median)")

    if baseline_rows:
        key = "daemon (sandboxd serve, children included)"
        print(f"\nA/B through SQS, the same bursts, {args.baseline} against this checkout:")
        print(f"{'daemon':<22} {'jobs/s':>7} {'daemon CPU ms/job':>18} {'SQS calls/job':>14}")
        for label, runs in ((args.baseline[:12], baseline_rows), ("this checkout", sqs_rows)):
            for r in runs:
                ms = r["split"].per_job_ms(r["done"])[key]
                calls = sum(r["daemon_sqs_calls"].values()) / max(1, r["done"])
                print(f"{label:<22} {r['rate']:>7.2f} {ms:>18.1f} {calls:>14.2f}")

    if sweep:
        print(f"\njobs/s against job slots ({args.sweep_n} jobs per burst):")
        print(f"{'slots':>5} {'bare host':>10} {'in-process':>11} {'through SQS':>12}")
        for row in sweep:
            print(
                f"{row['slots']:>5} {row['bare host']:>10.2f} {row['in-process']:>11.2f} "
                f"{row['through SQS']:>12.2f}"
            )

    for r in rows["through SQS"] + baseline_rows:
        r["split"] = r["split"].__dict__
    save_json(
        args.json,
        {
            "n": args.n,
            "slots": args.slots,
            "rounds": rows,
            "cpu_per_job_ms": per_job,
            "sweep_n": args.sweep_n,
            "sweep": sweep,
            "baseline": {"rev": args.baseline, "through SQS": baseline_rows},
        },
    )


if __name__ == "__main__":
    main()
