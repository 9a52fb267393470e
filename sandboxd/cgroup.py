"""A container's cgroup, read and steered from the host (cgroup v1 and v2).

The cgroup's own counters are the evidence for memory, pids and CPU verdicts, and its
freezer makes "kill every job process" atomic even under a fork bomb. sandboxd runs on
the Docker host as root, so it reads these files directly: no exec round trip, and
nothing the learner's code can tamper with.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Parsing is pure and tested directly; the class below does the I/O.


def parse_mountinfo(text: str) -> tuple[dict[str, Path], Path | None]:
    """Cgroup mount points from /proc/self/mountinfo: ({v1 controller: path}, v2 path)."""
    v1: dict[str, Path] = {}
    v2: Path | None = None
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        rfields = right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        fstype, super_opts = rfields[0], rfields[2]
        mount_point = Path(fields[4])
        if fstype == "cgroup2":
            if v2 is None:
                v2 = mount_point
        elif fstype == "cgroup":
            for opt in super_opts.split(","):
                # Named hierarchies (name=systemd) and mount options are not controllers.
                if opt in ("rw", "ro") or "=" in opt:
                    continue
                v1.setdefault(opt, mount_point)
    return v1, v2


def parse_proc_cgroup(text: str) -> tuple[dict[str, str], str | None]:
    """/proc/<pid>/cgroup -> ({v1 controller: path}, v2 path)."""
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            v2 = path
        else:
            for c in controllers.split(","):
                v1[c] = path
    return v1, v2


def parse_flat_keyed(text: str) -> dict[str, int]:
    """`key value` lines (memory.events, pids.events, cpu.stat, memory.oom_control)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value.strip())
        except ValueError:
            continue
    return out


@dataclass(frozen=True)
class Counters:
    """A snapshot of a cgroup's counters; deltas between two snapshots are a job's own."""

    cpu_ns: int
    oom_kills: int
    pids_max_events: int
    memory_peak: int | None


class CgroupError(RuntimeError):
    pass


class Cgroup:
    """The cgroup of one container, located through its init process."""

    def __init__(
        self,
        memory: Path,
        pids: Path,
        cpu: Path,
        freezer: Path,
        procs: Path,
        version: int,
    ):
        self.memory = memory
        self.pids = pids
        self.cpu = cpu
        self.freezer = freezer
        self.procs_dir = procs
        self.version = version
        # The files read on every job, as plain strings: a job reads a dozen of them,
        # and pathlib's joining and opening cost more than the reads.
        v1 = version == 1
        self._f_cpu = str(cpu / ("cpuacct.usage" if v1 else "cpu.stat"))
        self._f_oom = str(memory / ("memory.oom_control" if v1 else "memory.events"))
        peak = memory / ("memory.max_usage_in_bytes" if v1 else "memory.peak")
        self._f_peak = str(peak) if v1 or peak.exists() else None
        self._f_pids_events = str(pids / "pids.events")
        self._f_procs = str(procs / "cgroup.procs")
        self._f_freeze = str(freezer / ("freezer.state" if v1 else "cgroup.freeze"))
        self._f_frozen = str(freezer / ("freezer.state" if v1 else "cgroup.events"))

    @classmethod
    def of_pid(cls, pid: int, mountinfo: str | None = None) -> Cgroup:
        """Find the cgroup directories of process `pid` (a container's init)."""
        try:
            proc_text = Path(f"/proc/{pid}/cgroup").read_text()
            mounts_text = mountinfo or Path("/proc/self/mountinfo").read_text()
        except OSError as exc:
            raise CgroupError(f"cannot read the cgroup of pid {pid}: {exc}") from None
        v1_mounts, v2_mount = parse_mountinfo(mounts_text)
        v1_paths, v2_path = parse_proc_cgroup(proc_text)
        needed = ("memory", "pids", "cpuacct", "freezer")
        if all(c in v1_paths and c in v1_mounts for c in needed):

            def at(c: str) -> Path:
                return v1_mounts[c] / v1_paths[c].lstrip("/")

            return cls(at("memory"), at("pids"), at("cpuacct"), at("freezer"), at("pids"), 1)
        if v2_mount is not None and v2_path is not None:
            d = v2_mount / v2_path.lstrip("/")
            if (d / "memory.events").exists():
                return cls(d, d, d, d, d, 2)
        raise CgroupError(
            f"cannot find memory, pids, cpu and freezer cgroups of pid {pid}; "
            "sandboxd must run as root on the Docker host"
        )

    def _read(self, path: Path | str) -> str:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise CgroupError(f"cannot read {path}: {exc}") from None
        try:
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            return b"".join(chunks).decode()
        except OSError as exc:
            raise CgroupError(f"cannot read {path}: {exc}") from None
        finally:
            os.close(fd)

    def counters(self) -> Counters:
        cpu = self.cpu_ns()
        oom = parse_flat_keyed(self._read(self._f_oom)).get("oom_kill", 0)
        peak = int(self._read(self._f_peak)) if self._f_peak is not None else None
        pids_events = parse_flat_keyed(self._read(self._f_pids_events)).get("max", 0)
        return Counters(cpu_ns=cpu, oom_kills=oom, pids_max_events=pids_events, memory_peak=peak)

    def cpu_ns(self) -> int:
        if self.version == 1:
            return int(self._read(self._f_cpu))
        return parse_flat_keyed(self._read(self._f_cpu)).get("usage_usec", 0) * 1000

    def reset_peak(self) -> None:
        """Start a new peak-memory measurement (v1 only; v2 keeps the container's peak)."""
        if self.version == 1 and self._f_peak is not None:
            with contextlib.suppress(OSError):
                fd = os.open(self._f_peak, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, b"0")
                finally:
                    os.close(fd)

    def procs(self) -> set[int]:
        """PIDs (host namespace) of every process in the cgroup."""
        return {int(x) for x in self._read(self._f_procs).split()}

    def _write(self, path: Path, value: str) -> None:
        try:
            path.write_text(value)
        except OSError as exc:
            raise CgroupError(f"cannot write {path}: {exc}") from None

    def memory_usage(self) -> int:
        """Bytes the cgroup holds now (page cache and kernel memory included)."""
        name = "memory.usage_in_bytes" if self.version == 1 else "memory.current"
        return int(self._read(self.memory / name).strip())

    def memory_limit(self) -> int:
        name = "memory.limit_in_bytes" if self.version == 1 else "memory.max"
        text = self._read(self.memory / name).strip()
        return (1 << 62) if text == "max" else int(text)

    def set_limits(self, memory_bytes: int, pids: int) -> None:
        """Memory (memory+swap equal: no swap) and pids limits, in place: what
        `docker update` would do, without the engine."""
        if self.version == 1:
            mem = self.memory / "memory.limit_in_bytes"
            memsw = self.memory / "memory.memsw.limit_in_bytes"
            # memory+swap may never be below memory: raise it first, lower it last.
            order = [memsw, mem] if memory_bytes > self.memory_limit() else [mem, memsw]
            for path in order:
                if path.exists():
                    self._write(path, str(memory_bytes))
        else:
            self._write(self.memory / "memory.max", str(memory_bytes))
            swap = self.memory / "memory.swap.max"
            if swap.exists():
                self._write(swap, "0")
        self._write(self.pids / "pids.max", str(pids))

    def _set_frozen(self, frozen: bool) -> None:
        if self.version == 1:
            value = b"FROZEN" if frozen else b"THAWED"
        else:
            value = b"1" if frozen else b"0"
        try:
            fd = os.open(self._f_freeze, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, value)
            finally:
                os.close(fd)
        except OSError as exc:
            raise CgroupError(f"cannot {'freeze' if frozen else 'thaw'} cgroup: {exc}") from None

    def thaw(self) -> None:
        """Let the cgroup run again, whatever left it frozen (or stuck freezing)."""
        self._set_frozen(False)

    def _is_frozen(self) -> bool:
        if self.version == 1:
            return self._read(self._f_frozen).strip() == "FROZEN"
        return parse_flat_keyed(self._read(self._f_frozen)).get("frozen") == 1

    async def kill_all_except(self, keep: Iterable[int], deadline_s: float = 5.0) -> set[int]:
        """SIGKILL every process of the cgroup but `keep`, atomically; return what remains.

        The cgroup is frozen first so nothing can fork between listing and killing
        (a fork bomb cannot outrun us); the kills land when it thaws.
        """
        keep = set(keep)
        if not self.procs() - keep:
            # Nothing but ours, which never start a process unasked: nothing can appear
            # between this look and the next job, so there is nothing to freeze for.
            return set()
        end = time.monotonic() + deadline_s
        self._set_frozen(True)
        try:
            while not self._is_frozen() and time.monotonic() < end:
                await asyncio.sleep(0.002)
            if not self._is_frozen():
                # Unfrozen, a listed process could exit and its pid go to a host process
                # before our kill lands: kill nothing; the caller retires the sandbox.
                return self.procs() - keep
            for pid in self.procs() - keep:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            self._set_frozen(False)
        while True:
            left = self.procs() - keep
            if not left or time.monotonic() >= end:
                return left
            await asyncio.sleep(0.005)
