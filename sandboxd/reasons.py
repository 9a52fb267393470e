"""Why a sandbox is retired instead of reused: one closed vocabulary.

The reason is decided where the evidence is (a limit event in the run, the reset's own
checks, the pool's age and job-count limits) and travels as a value of `RetireReason`,
never as a string to be classified later: it is the `reason` label of
`sandboxd_sandbox_retirements_total` as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RetireReason(StrEnum):
    """The retirement metric's `reason` label."""

    # A limit event in the job: the sandbox saw a runaway program.
    TIMEOUT = "timeout"
    MEMORY = "memory"
    OUTPUT = "output"
    PIDS = "pids"
    DISK = "disk"
    # The pool's own limits.
    JOB_COUNT = "job_count"
    AGE = "age"
    # What the reset found and could not undo at a bounded cost.
    PROCESSES = "processes"  # job processes survived the kill
    FILES = "files"  # more left in the work dir, /tmp or /dev/shm than a reset may remove
    IPC = "ipc"  # System V IPC objects or message queues that could not be removed
    SOCKETS = "sockets"  # socket state left in the sandbox's network namespace
    SUPERVISION = "supervision"  # the job's end was never confirmed; it may still run
    DIED = "died"  # the sandbox's own processes or cgroup are gone
    # Our side failed while the job held the sandbox, or during the reset.
    JOB_FAILED = "job_failed"
    RESET_FAILED = "reset_failed"


@dataclass(frozen=True)
class Retirement:
    """A decision to retire a sandbox: the label, and the detail a log line shows."""

    reason: RetireReason
    detail: str

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}"
