"""What a job can leave behind in its sandbox's namespaces, seen from the host.

Every job of a sandbox shares its IPC and network namespaces, so the reset must prove
them empty before the next job arrives:

- **IPC**: System V shared memory, semaphore sets and message queues live as long as
  the namespace, not as long as the job. One job's semaphore values would be another's
  to read, and the kernel memory they pin is charged to the container's memory cgroup.
  `/proc/sysvipc/*` lists the objects of the *reader's* IPC namespace, so a dedicated
  thread of ours joins the sandbox's namespace (`setns`), lists and removes what is
  there (`IPC_RMID`, as host root), and returns to its own.
- **Network**: TCP connections outlive their processes (TIME_WAIT, orphaned closes):
  the next job could not bind the port and would read the earlier job's peers.
  `/proc/<pid>/net/*` describes the network namespace of `<pid>` (its `sockstat`
  counters, its Unix and ping socket tables); the sandbox's init is that pid, reached
  through its pinned `/proc/<pid>` fd.

Pure parsing is separate from the I/O and tested directly.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

CLONE_NEWIPC = 0x08000000
IPC_RMID = 0
SYSVIPC_KINDS = ("shm", "sem", "msg")
# The per-namespace socket counters of /proc/<pid>/net/sockstat{,6} a job can raise:
# (line, field) -> the name reported. TCP is read here rather than from /proc/net/tcp,
# whose every read walks the kernel's whole connection table (5 ms, per table).
SOCKSTAT_COUNTERS = {
    ("TCP", "inuse"): "tcp", ("TCP", "tw"): "tcp time-wait", ("UDP", "inuse"): "udp",
    ("UDPLITE", "inuse"): "udplite", ("RAW", "inuse"): "raw", ("TCP6", "inuse"): "tcp6",
    ("UDP6", "inuse"): "udp6", ("UDPLITE6", "inuse"): "udplite6", ("RAW6", "inuse"): "raw6",
}  # fmt: skip
# Tables with no such counter, cheap to list: ping sockets and Unix sockets.
SOCKET_TABLES = ("icmp", "icmp6", "unix")


class NamespaceError(OSError):
    """A namespace could not be joined, read or left: the sandbox cannot be proven clean."""


def parse_table_ids(text: str) -> list[int]:
    """The ids (second column) of a /proc/sysvipc/* table; the first line is a header."""
    ids = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 2 and fields[1].lstrip("-").isdigit():
            ids.append(int(fields[1]))
    return ids


def parse_sockstat(text: str) -> dict[str, int]:
    """The counters SOCKSTAT_COUNTERS names, from sockstat lines such as
    `TCP: inuse 1 orphan 0 tw 0 alloc 1 mem 11`."""
    counts = {}
    for line in text.splitlines():
        label, _, rest = line.partition(":")
        fields = rest.split()
        for key, value in zip(fields[::2], fields[1::2], strict=False):
            name = SOCKSTAT_COUNTERS.get((label, key))
            if name is not None and value.isdigit():
                counts[name] = int(value)
    return counts


def count_rows(text: str) -> int:
    """Entries of a /proc/net/* table: every non-empty line after the header."""
    return sum(1 for line in text.splitlines()[1:] if line.strip())


@dataclass(frozen=True)
class IpcObjects:
    """System V IPC objects by kind ("shm", "sem", "msg") -> ids."""

    ids: dict[str, list[int]]

    @property
    def empty(self) -> bool:
        return not any(self.ids.values())

    def describe(self) -> str:
        parts = [f"{len(v)} {k}" for k, v in self.ids.items() if v]
        return ", ".join(parts) or "none"


# -- IPC: a thread of ours that visits the sandbox's namespace ----------------------------


class _IpcVisitor:
    """One worker thread that joins a sandbox's IPC namespace, works, and comes back.

    A namespace is a property of a thread: only this thread ever leaves ours, and it
    runs nothing but the functions below. Should it fail to come back, it is abandoned
    (never used again) and a new one takes its place.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._home: dict[int, int] = {}  # thread id -> fd of its own IPC namespace
        libc = ctypes.CDLL(None, use_errno=True)
        self._setns = libc.setns
        self._shmctl = libc.shmctl
        self._semctl = libc.semctl
        self._msgctl = libc.msgctl

    def run(self, ns_fd: int, fn: Callable[[], T]) -> T:
        """Run `fn` in the IPC namespace `ns_fd`, on the visitor thread (blocking)."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="sandboxd-ipc")
            executor = self._executor
        try:
            return executor.submit(self._visit, ns_fd, fn).result()
        except _Stranded:
            with self._lock:
                if self._executor is executor:
                    executor.shutdown(wait=False)
                    self._executor = None
            raise NamespaceError("the IPC visitor could not return to its namespace") from None

    def _visit(self, ns_fd: int, fn: Callable[[], T]) -> T:
        tid = threading.get_ident()
        home = self._home.get(tid)
        if home is None:
            home = os.open("/proc/thread-self/ns/ipc", os.O_RDONLY | os.O_CLOEXEC)
            self._home[tid] = home
        if self._setns(ns_fd, CLONE_NEWIPC) != 0:
            err = ctypes.get_errno()
            why = os.strerror(err)
            raise NamespaceError(err, f"cannot join the sandbox's IPC namespace: {why}")
        try:
            return fn()
        finally:
            if self._setns(home, CLONE_NEWIPC) != 0:
                raise _Stranded()

    # These run on the visitor thread, inside the sandbox's namespace.

    def list_objects(self) -> IpcObjects:
        ids = {}
        for kind in SYSVIPC_KINDS:
            with open(f"/proc/sysvipc/{kind}", encoding="ascii", errors="replace") as f:
                ids[kind] = parse_table_ids(f.read())
        return IpcObjects(ids)

    def remove(self, objects: IpcObjects) -> None:
        for ident in objects.ids.get("shm", []):
            self._shmctl(ident, IPC_RMID, None)
        for ident in objects.ids.get("sem", []):
            self._semctl(ident, 0, IPC_RMID)
        for ident in objects.ids.get("msg", []):
            self._msgctl(ident, IPC_RMID, None)

    def empty_namespace(self) -> tuple[IpcObjects, IpcObjects]:
        """(what was there, what is left after removing it)."""
        found = self.list_objects()
        if found.empty:
            return found, found
        self.remove(found)
        return found, self.list_objects()


class _Stranded(Exception):
    pass


_visitor: _IpcVisitor | None = None
_visitor_lock = threading.Lock()


def _the_visitor() -> _IpcVisitor:
    global _visitor
    with _visitor_lock:
        if _visitor is None:
            _visitor = _IpcVisitor()
        return _visitor


def empty_ipc(proc_fd: int) -> tuple[IpcObjects, IpcObjects]:
    """Remove every System V IPC object of the IPC namespace of the process `proc_fd`
    (an fd of its /proc/<pid>); return (found, left). Blocking: call from a thread."""
    try:
        ns_fd = os.open("ns/ipc", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_fd)
    except OSError as exc:
        raise NamespaceError(exc.errno, f"cannot open the sandbox's IPC namespace: {exc}") from None
    try:
        visitor = _the_visitor()
        return visitor.run(ns_fd, visitor.empty_namespace)
    finally:
        os.close(ns_fd)


# -- network: the sandbox's own /proc/<pid>/net ---------------------------------------------


def socket_counts(proc_fd: int) -> dict[str, int]:
    """Sockets by kind (tcp, tcp time-wait, udp6, unix...) in the network namespace of
    the process `proc_fd`; what this kernel does not have is skipped."""
    counts: dict[str, int] = {}
    try:
        net = os.open("net", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc_fd)
    except OSError as exc:
        raise NamespaceError(exc.errno, f"cannot read the sandbox's sockets: {exc}") from None
    try:
        for name in ("sockstat", "sockstat6", *SOCKET_TABLES):
            try:
                fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=net)
            except FileNotFoundError:
                continue
            with os.fdopen(fd, encoding="ascii", errors="replace") as f:
                text = f.read()
            if name.startswith("sockstat"):
                counts.update(parse_sockstat(text))
            else:
                counts[name] = count_rows(text)
    finally:
        os.close(net)
    return counts
