"""The daemon's resident memory as jobs go through it: VmRSS of one `sandboxd serve` at
100, 1,000 and 10,000 jobs, and the drift from 1,000 to 10,000.

One daemon (--slots slots and a spare, SANDBOXD_SQS=aws at a moto server on loopback);
jobs are streamed through SQS with at most --window of them outstanding (sent, result
not yet received), so the queue stays short. The job is the cheapest one that goes the
whole way (received, run in a sandbox, verdict, result stored and sent, message deleted,
sandbox reset): a command-mode job running `true` (`"command": "true"`, no files);
--job tests sends the 1-test pytest job instead. VmRSS is read from /proc/<pid>/status
when the count of results reaches each mark (and every --every jobs, for the curve).
The CPU per job by part over the whole stream is printed too: it includes replacing
each sandbox after its 200 jobs, which a 200-job burst does not see.

Bounded: --jobs (default 10,000) and a --deadline (default 900 s); at the deadline it
stops, stops the daemon and reports how far it got.

    python bench/rss.py [--jobs 10000] [--marks 100,1000,10000] [--deadline 900]
                        [--json bench/data/rss.json]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path
from typing import Any

from common import (
    CpuMeter,
    boto3_client,
    moto_server,
    receive_results,
    save_json,
    send_batch,
    serve,
    stop_on_sigterm,
    tests_job,
    tmpdir,
    verdict,
    vm_rss_kb,
)

GOAL_DRIFT = 0.10  # flat within 10 % from 1,000 to 10,000 jobs


def command_job(job_id: str) -> str:
    return json.dumps(
        {"schema": "sandboxd.job/v1", "id": job_id, "language": "python", "command": "true"}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--marks", default="100,1000,10000")
    parser.add_argument("--every", type=int, default=250, help="also sample every N jobs")
    parser.add_argument("--window", type=int, default=20, help="jobs outstanding at most")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--job", choices=["command", "tests"], default="command")
    parser.add_argument("--deadline", type=float, default=900.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    stop_on_sigterm()
    marks = sorted({int(x) for x in args.marks.split(",") if x} | {0})
    make = command_job if args.job == "command" else tests_job

    curve: list[tuple[int, int, float]] = []  # (jobs, VmRSS kB, seconds)
    at_mark: dict[int, int] = {}
    statuses: dict[str, int] = {}
    done = sent = 0
    stopped_by = "jobs"
    with tmpdir() as tmp_name:
        tmp = Path(tmp_name)
        with moto_server(tmp) as server:
            client = boto3_client(server.endpoint_url)
            with serve(client, server.endpoint_url, tmp, args.slots) as served:
                pid = served.daemon.pid
                tag = uuid.uuid4().hex[:6]
                assert server.pid is not None
                meter = CpuMeter(pid, server.pid, served.host_id, period=0.5).start()
                t0 = time.perf_counter()
                at_mark[0] = vm_rss_kb(pid)
                curve.append((0, at_mark[0], 0.0))
                next_sample = args.every
                while done < args.jobs:
                    if time.perf_counter() - t0 > args.deadline:
                        stopped_by = "deadline"
                        break
                    # Topped up ten at a time (one batch call), never past the window.
                    room = min(args.window - (sent - done), args.jobs - sent)
                    if room > 0 and room >= min(10, args.jobs - sent):
                        ids = [f"rss-{tag}-{sent + k}" for k in range(room)]
                        send_batch(client, served.queues["jobs"], [(i, make(i)) for i in ids])
                        sent += room
                    for doc, _ in receive_results(client, served.queues["results"]):
                        statuses[doc["status"]] = statuses.get(doc["status"], 0) + 1
                        done += 1
                        elapsed = time.perf_counter() - t0
                        if done in marks:
                            at_mark[done] = vm_rss_kb(pid)
                            print(
                                f"{done:>6} jobs  VmRSS {at_mark[done] / 1024:7.1f} MiB  "
                                f"{elapsed:6.0f} s",
                                flush=True,
                            )
                        if done >= next_sample:
                            curve.append((done, vm_rss_kb(pid), elapsed))
                            next_sample += args.every
                elapsed = time.perf_counter() - t0
                split = meter.stop()
                final = vm_rss_kb(pid)
                curve.append((done, final, elapsed))

    what = "`true` in command mode" if args.job == "command" else "the 1-test pytest job"
    print(
        f"\ndaemon VmRSS, {what}, {args.slots} slots + 1 spare, "
        f"{done} jobs in {elapsed:.0f} s ({done / elapsed:.1f} jobs/s), "
        f"stopped by {stopped_by}; verdicts: {statuses}\n"
    )
    print(f"{'jobs':>7} {'VmRSS MiB':>10}")
    for mark in marks:
        if mark in at_mark:
            print(f"{mark:>7} {at_mark[mark] / 1024:>10.1f}")
        else:
            print(f"{mark:>7} {'(not reached)':>10}")
    lo, hi = (marks[-2], marks[-1]) if len(marks) >= 3 else (marks[0], marks[-1])
    if lo in at_mark and hi in at_mark:
        drift = at_mark[hi] / at_mark[lo] - 1
        print(
            f"\ngoal: flat within {GOAL_DRIFT:.0%} from {lo} to {hi} jobs: "
            f"{drift:+.1%}  {verdict(abs(drift) <= GOAL_DRIFT)}"
        )
    else:
        print(f"\ngoal: flat from {lo} to {hi} jobs: not measured ({done} jobs done)")
    print(f"\nCPU per job over the whole stream ({split.started_ours} sandboxes started):")
    parts = split.per_job_ms(done)
    for name, ms in parts.items():
        print(f"  {name:<52} {ms:>7.1f} ms")
    if split.foreign_containers or "shims (other containers)" in split.engine:
        print(f"  (caution: {split.foreign_containers} containers not ours used CPU meanwhile)")
    doc: dict[str, Any] = {
        "job": args.job,
        "slots": args.slots,
        "done": done,
        "seconds": elapsed,
        "stopped_by": stopped_by,
        "statuses": statuses,
        "rss_kb_at": at_mark,
        "curve": curve,
    }
    save_json(args.json, doc)


if __name__ == "__main__":
    main()
