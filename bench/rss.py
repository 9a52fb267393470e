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

--baseline REV runs a second daemon from commit REV's sandboxd (extracted with git
archive) on its own queues, streamed at the same time as this checkout's: before and
after a change, in one run (no CPU split then: the two share the machine).
--tracemalloc traces the daemon's allocations and prints what grew most between marks.

Bounded: --jobs (default 10,000) per daemon and a --deadline (default 900 s); at the
deadline it stops, stops the daemons and reports how far each got.

    python bench/rss.py [--jobs 10000] [--marks 100,1000,10000] [--deadline 900]
                        [--baseline REV] [--json bench/data/rss.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    CpuMeter,
    CpuSplit,
    Served,
    baseline_checkout,
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


@dataclass
class Stream:
    """One daemon's stream of jobs and what was seen of its memory."""

    label: str
    served: Served
    done: int = 0
    seconds: float = 0.0
    stopped_by: str = "jobs"
    at_mark: dict[int, int] = field(default_factory=dict)
    curve: list[tuple[int, int, float]] = field(default_factory=list)  # jobs, kB, s
    statuses: dict[str, int] = field(default_factory=dict)
    error: BaseException | None = None


def run_stream(
    stream: Stream,
    endpoint: str,
    make: Callable[[str], str],
    args: argparse.Namespace,
    marks: list[int],
    stop: threading.Event,
) -> None:
    """Send jobs to one daemon, at most `args.window` outstanding, and read VmRSS."""
    client = boto3_client(endpoint)  # one client per thread
    queues = stream.served.queues
    pid = stream.served.daemon.pid
    tag = uuid.uuid4().hex[:6]
    sent = 0
    t0 = time.perf_counter()
    stream.at_mark[0] = vm_rss_kb(pid)
    stream.curve.append((0, stream.at_mark[0], 0.0))
    next_sample = args.every
    try:
        while stream.done < args.jobs:
            if stop.is_set() or time.perf_counter() - t0 > args.deadline:
                stream.stopped_by = "deadline"
                break
            # Topped up ten at a time (one batch call), never past the window.
            room = min(args.window - (sent - stream.done), args.jobs - sent)
            if room > 0 and room >= min(10, args.jobs - sent):
                ids = [f"rss-{tag}-{sent + k}" for k in range(room)]
                send_batch(client, queues["jobs"], [(i, make(i)) for i in ids])
                sent += room
            for doc, _ in receive_results(client, queues["results"]):
                stream.statuses[doc["status"]] = stream.statuses.get(doc["status"], 0) + 1
                stream.done += 1
                elapsed = time.perf_counter() - t0
                if stream.done in marks:
                    stream.at_mark[stream.done] = kb = vm_rss_kb(pid)
                    if args.tracemalloc:
                        stream.served.daemon.signal(signal.SIGUSR2)
                    print(
                        f"{stream.label:>10} {stream.done:>6} jobs  VmRSS {kb / 1024:7.1f} MiB"
                        f"  {elapsed:6.0f} s",
                        flush=True,
                    )
                if stream.done >= next_sample:
                    stream.curve.append((stream.done, vm_rss_kb(pid), elapsed))
                    next_sample += args.every
    except BaseException as exc:
        stream.error = exc
        stop.set()  # the other stream stops too
    finally:
        stream.seconds = time.perf_counter() - t0
        with contextlib.suppress(OSError):
            stream.curve.append((stream.done, vm_rss_kb(pid), stream.seconds))


def wait_for_traces(trace: Path, wanted: int) -> str:
    """A snapshot of a traced daemon takes seconds: wait for each one asked for."""
    end = time.monotonic() + 60
    text = ""
    while time.monotonic() < end:
        text = trace.read_text() if trace.exists() else ""
        if text.count("--- ") >= wanted:
            break
        time.sleep(0.5)
    return text


def report(stream: Stream, marks: list[int], what: str, slots: int) -> dict[str, Any]:
    rate = stream.done / stream.seconds if stream.seconds else 0.0
    print(
        f"\n{stream.label}: daemon VmRSS, {what}, {slots} slots + 1 spare, {stream.done} jobs "
        f"in {stream.seconds:.0f} s ({rate:.1f} jobs/s), stopped by {stream.stopped_by}; "
        f"verdicts: {stream.statuses}"
    )
    print(f"{'jobs':>7} {'VmRSS MiB':>10}")
    for mark in marks:
        shown = f"{stream.at_mark[mark] / 1024:.1f}" if mark in stream.at_mark else "(not reached)"
        print(f"{mark:>7} {shown:>10}")
    lo, hi = (marks[-2], marks[-1]) if len(marks) >= 3 else (marks[0], marks[-1])
    drift = None
    if lo in stream.at_mark and hi in stream.at_mark:
        drift = stream.at_mark[hi] / stream.at_mark[lo] - 1
        met = verdict(abs(drift) <= GOAL_DRIFT)
        print(f"goal: flat within {GOAL_DRIFT:.0%} from {lo} to {hi} jobs: {drift:+.1%}  {met}")
    else:
        print(f"goal: flat from {lo} to {hi} jobs: not measured ({stream.done} jobs done)")
    return {
        "done": stream.done,
        "seconds": stream.seconds,
        "stopped_by": stream.stopped_by,
        "statuses": stream.statuses,
        "rss_kb_at": stream.at_mark,
        "curve": stream.curve,
        "drift": drift,
    }


def print_split(split: CpuSplit, jobs: int) -> dict[str, float]:
    print(f"\nCPU per job over the whole stream ({split.started_ours} sandboxes started):")
    parts = split.per_job_ms(jobs)
    for name, ms in parts.items():
        print(f"  {name:<52} {ms:>7.1f} ms")
    others = split.engine.get("shims (other containers)", 0.0) * 1000 / max(1, jobs)
    if split.foreign_containers or others >= 0.5:
        print(
            f"  (caution: other containers were busy meanwhile ({split.foreign_containers} "
            f"cgroups, their shims {others:.1f} ms/job): the engine's figure is an upper bound)"
        )
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--marks", default="100,1000,10000")
    parser.add_argument("--every", type=int, default=250, help="also sample every N jobs")
    parser.add_argument("--window", type=int, default=20, help="jobs outstanding at most")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--job", choices=["command", "tests"], default="command")
    parser.add_argument("--deadline", type=float, default=900.0)
    parser.add_argument("--baseline", metavar="REV", help="also run commit REV's daemon")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="trace the daemon's allocations; print what grew most between the marks",
    )
    args = parser.parse_args()
    stop_on_sigterm()
    marks = sorted({int(x) for x in args.marks.split(",") if x} | {0})
    make = command_job if args.job == "command" else tests_job
    what = "`true` in command mode" if args.job == "command" else "the 1-test pytest job"

    streams: list[Stream] = []
    split: CpuSplit | None = None
    traces: dict[str, str] = {}
    with tmpdir() as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        server = stack.enter_context(moto_server(tmp))
        client = boto3_client(server.endpoint_url)
        arms: list[tuple[str, Path | None]] = [("this", None)]
        if args.baseline:
            arms.insert(
                0, (args.baseline[:10], stack.enter_context(baseline_checkout(args.baseline)))
            )
        for label, checkout in arms:
            trace = tmp / f"growth-{label}.txt"
            extra = {"BENCH_TRACEMALLOC": str(trace)} if args.tracemalloc else {}
            served = stack.enter_context(
                serve(client, server.endpoint_url, tmp, args.slots, None, checkout, **extra)
            )
            streams.append(Stream(label, served))
        meter = None
        if len(streams) == 1:
            assert server.pid is not None
            s = streams[0].served
            meter = CpuMeter(s.daemon.pid, server.pid, s.host_id, period=0.5).start()
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=run_stream,
                args=(st, server.endpoint_url, make, args, marks, stop),
                daemon=True,
            )
            for st in streams
        ]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        if meter is not None:
            split = meter.stop()
        for st in streams:
            if st.error is not None:
                raise st.error
            if args.tracemalloc:
                wanted = sum(1 for m in marks if m in st.at_mark and m > 0)
                traces[st.label] = wait_for_traces(tmp / f"growth-{st.label}.txt", wanted)

    for label, text in traces.items():
        print(f"\n{label}: allocations that grew most, mark to mark\n{text}")
    docs = {st.label: report(st, marks, what, args.slots) for st in streams}
    doc: dict[str, Any] = {"job": args.job, "slots": args.slots, **docs["this"]}
    if split is not None:
        parts = print_split(split, streams[0].done)
        doc.update(cpu_per_job_ms=parts, sandboxes_started=split.started_ours)
    if args.baseline:
        doc["baseline"] = {"rev": args.baseline, **docs[args.baseline[:10]]}
    save_json(args.json, doc)


if __name__ == "__main__":
    main()
