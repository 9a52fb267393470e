"""Running one job end to end: acquire a sandbox, run, decide, build the result.

Shared by `sandboxd run` and the daemon, so both give the same verdict for the same job.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import JsonValue

from sandboxd import offload
from sandboxd.limits import DEFAULT_MAXIMA, Limits, clamp
from sandboxd.models import Job, Resources, Result, Timing, Verdict
from sandboxd.pool import Pool
from sandboxd.results import ReportError, RunnerReport, parse_report
from sandboxd.sandbox import Outcome, OutputSink, SandboxError, SandboxInputError
from sandboxd.verdict import Evidence, decide, signal_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunContext:
    """Where and how a job runs: who we are, when it was queued, which delivery this is."""

    host: str = socket.gethostname()
    maxima: Limits = DEFAULT_MAXIMA
    attempt: int = 1


def rejected(job_id: str, message: str, ctx: RunContext, metadata: JsonValue = None) -> Result:
    return Result(
        id=job_id,
        attempt=ctx.attempt,
        status=Verdict.REJECTED,
        message=message,
        host=ctx.host,
        metadata=metadata,
    )


def evidence_of(job: Job, limits: Limits, out: Outcome) -> tuple[Evidence, RunnerReport | None]:
    """Turn a sandbox outcome into verdict evidence. Pure."""
    report: RunnerReport | None = None
    report_error = out.results_error
    # Only a runner that finished reported anything (the sandbox says which did: a warm
    # runner told its supervisor, a cold one exited 0): a report found after any other end
    # (killed, crashed) may be the tests' own code's doing, and is evidence of nothing.
    finished = out.runner_finished and not out.killed_by_us
    if job.command is None and out.results is not None and finished:
        try:
            report = parse_report(out.results)
        except ReportError as exc:
            report_error = str(exc)
    mode: Literal["tests", "command"] = "command" if job.command is not None else "tests"
    ev = Evidence(
        mode=mode,
        limits=limits,
        exit_code=None if out.killed_by_us else out.exit_code,
        signal=9 if out.killed_by_us else out.signal,
        wall_timed_out=out.wall_timed_out,
        cpu_seconds=(out.cpu_ns / 1e9) if out.cpu_ns is not None else None,
        oom_killed=out.oom_killed,
        pids_limit_hit=out.pids_limit_hit,
        output_exceeded=out.output_exceeded,
        disk_full=out.disk_full,
        report=report,
        report_error=report_error,
        expected_output=job.expected_output,
        stdout=out.stdout.decode("utf-8", "replace"),
    )
    return ev, report


async def execute(
    pool: Pool,
    job: Job,
    ctx: RunContext,
    on_output: OutputSink | None = None,
    queued_ms: int = 0,
    on_acquired: Callable[[], None] | None = None,
) -> Result:
    """Run `job` in a sandbox of its pool and return its result. Never raises for the
    job's sake: our failures become `internal_error`, unplaceable input `rejected`.
    `on_acquired` is called once a sandbox is in hand, just before the job starts."""
    t0 = time.monotonic()
    name = job.pool_key
    if name not in pool.names:
        known = ", ".join(pool.names) or "none"
        return rejected(
            job.id, f"unknown language {name!r} on this host (known: {known})", ctx, job.metadata
        )
    spec = pool.spec(name)
    limits = clamp(job.limits, defaults=spec.limits, maxima=ctx.maxima)
    acquire_ms = 0
    try:
        async with pool.sandbox(name, limits) as box:
            acquire_ms = int((time.monotonic() - t0) * 1000)
            if on_acquired is not None:
                on_acquired()
            out = await box.run(job, limits, on_output)
    except SandboxInputError as exc:
        return rejected(job.id, str(exc), ctx, job.metadata)
    except SandboxError as exc:
        log.error("job %s: sandbox failure: %s", job.id, exc)
        total_ms = int((time.monotonic() - t0) * 1000) + queued_ms
        return Result(
            id=job.id,
            attempt=ctx.attempt,
            status=Verdict.INTERNAL_ERROR,
            message="The sandbox failed before your code could be judged; the job may be retried.",
            timing=Timing(queued_ms=queued_ms, acquire_ms=acquire_ms, total_ms=total_ms),
            image=spec.image,
            host=ctx.host,
            metadata=job.metadata,
        )
    # Parsing a results.json of up to 8 MB is kept off the event loop; a small one is not.
    size = len(out.results or b"") + len(out.stdout) + len(out.stderr)
    ev, report = await offload.blocking(size, evidence_of, job, limits, out)
    verdict, message = decide(ev)
    total_ms = int((time.monotonic() - t0) * 1000) + queued_ms
    result = Result(
        id=job.id,
        attempt=ctx.attempt,
        status=verdict,
        message=message,
        tests=list(report.tests) if report is not None else [],
        exit_code=ev.exit_code,
        signal=signal_name(ev.signal),
        stdout=ev.stdout,  # decoded once, in evidence_of
        stderr=out.stderr.decode("utf-8", "replace"),
        stdout_truncated=out.stdout_truncated,
        stderr_truncated=out.stderr_truncated,
        timing=Timing(
            queued_ms=queued_ms, acquire_ms=acquire_ms, run_ms=out.run_ms, total_ms=total_ms
        ),
        resources=Resources(
            cpu_ms=None if out.cpu_ns is None else out.cpu_ns // 1_000_000,
            peak_memory_bytes=out.peak_memory_bytes,
        ),
        image=spec.image,
        host=ctx.host,
        metadata=job.metadata,
    )
    log.debug(
        "job=%s pool=%s verdict=%s queued_ms=%d acquire_ms=%d run_ms=%d total_ms=%d",
        job.id, name, verdict.value, queued_ms, acquire_ms, out.run_ms, total_ms,
    )  # fmt: skip
    return result
