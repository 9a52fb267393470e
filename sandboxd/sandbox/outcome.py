"""What happened in one run: the raw evidence, before any verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

from sandboxd.reasons import Retirement, RetireReason


@dataclass
class Outcome:
    """Everything measured about one run, by the supervisor and from the host."""

    exit_code: int | None = None  # None: a signal ended it (see `signal`), or unknown
    signal: int | None = None
    killed_by_us: bool = False
    wall_timed_out: bool = False
    cpu_exceeded: bool = False
    output_exceeded: bool = False
    oom_killed: bool = False
    pids_limit_hit: bool = False
    disk_full: bool = False
    cpu_ns: int | None = None
    peak_memory_bytes: int | None = None
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    output_bytes: int = 0
    # The test runner's report (results.json v3) and whether the runner finished: only
    # a runner that finished reported anything worth believing.
    results: bytes | None = None
    results_error: str | None = None
    runner_finished: bool = False
    run_ms: int = 0

    def limit_retirement(self) -> Retirement | None:
        """Why the sandbox must not serve again after this run: a runaway program was
        stopped by a limit, and whatever it was doing may not be over. None if no limit."""
        for hit, reason, detail in (
            (self.wall_timed_out, RetireReason.TIMEOUT, "wall-clock limit"),
            (self.cpu_exceeded, RetireReason.TIMEOUT, "CPU-time limit"),
            (self.oom_killed, RetireReason.MEMORY, "memory limit"),
            (self.output_exceeded, RetireReason.OUTPUT, "output limit"),
            (self.pids_limit_hit, RetireReason.PIDS, "pids limit"),
            (self.disk_full, RetireReason.DISK, "disk limit"),
        ):
            if hit:
                return Retirement(reason, detail)
        return None
