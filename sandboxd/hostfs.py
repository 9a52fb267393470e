"""Files inside a sandbox, reached from the host through /proc/<pid>/root.

Every path is walked one component at a time with O_NOFOLLOW relative to a directory
file descriptor, so a symlink the learner's code planted can never lead us to a file
of the host: `/proc/<pid>/root/tmp/x -> /etc/shadow` would otherwise be resolved
against *our* root. These functions only run while no job process is alive (before a
run, after the reset killed everything), so nothing changes under our feet.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(OSError):
    """A path inside the sandbox is not what it should be (a symlink, a FIFO...)."""


def open_proc(pid: int) -> int:
    """An fd of /proc/<pid>, to be kept: it names that process for good. If the process
    dies and its pid is reused, paths opened relative to this fd fail instead of
    reaching the new process (which could be a host process, rooted at the host's /)."""
    return os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def open_root(proc_fd: int) -> int:
    """A directory fd for the root filesystem of the process `proc_fd` (see `open_proc`)."""
    return os.open("root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc_fd)


def open_dir(base_fd: int, relpath: str) -> int:
    """Open directory `relpath` under `base_fd`, never following a symlink."""
    return _walk(base_fd, relpath, None)


def make_dirs(base_fd: int, relpath: str, uid: int, gid: int, mode: int = 0o755) -> int:
    """Create directories along `relpath` (owned by uid:gid) and return an fd of the last."""
    return _walk(base_fd, relpath, (uid, gid, mode))


def _walk(base_fd: int, relpath: str, create: tuple[int, int, int] | None) -> int:
    """An fd of `relpath` under `base_fd`, one component at a time with O_NOFOLLOW;
    missing directories are made (uid, gid, mode) when `create` says so."""
    fd = os.dup(base_fd)
    try:
        for part in relpath.strip("/").split("/"):
            if not part:
                continue
            if create is not None:
                uid, gid, mode = create
                try:
                    os.mkdir(part, mode, dir_fd=fd)
                    os.chown(part, uid, gid, dir_fd=fd, follow_symlinks=False)
                except FileExistsError:
                    pass
            new = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = new
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_files(
    base_fd: int, files: Iterable[tuple[str, bytes, int | None]], uid: int, gid: int
) -> None:
    """Write each (normalised relative path, data, mode) under `base_fd`, owned by uid:gid."""
    for path, data, mode in files:
        parent, _, name = path.rpartition("/")
        dir_fd = make_dirs(base_fd, parent, uid, gid) if parent else os.dup(base_fd)
        try:
            fd = os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o644 if mode is None else mode,
                dir_fd=dir_fd,
            )
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fchown(fd, uid, gid)
                if mode is not None:
                    os.fchmod(fd, mode)  # the umask must not change what the job asked for
            finally:
                os.close(fd)
        finally:
            os.close(dir_fd)


def read_capped(base_fd: int, relpath: str, cap: int) -> bytes | None:
    """Read a regular file of at most `cap` bytes; None when it does not exist.

    Raises UnsafePath for a symlink, a FIFO or anything else not a regular file, and
    for a file larger than `cap`.
    """
    parent, _, name = relpath.strip("/").rpartition("/")
    try:
        dir_fd = open_dir(base_fd, parent) if parent else os.dup(base_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UnsafePath(f"{parent}: {exc.strerror}") from None
    try:
        try:
            fd = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
            )
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UnsafePath(f"{relpath}: {exc.strerror}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafePath(f"{relpath} is not a regular file")
            if st.st_size > cap:
                raise UnsafePath(f"{relpath} is larger than {cap} bytes")
            chunks = []
            remaining = cap + 1
            while remaining > 0:
                chunk = os.read(fd, min(remaining, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
            data = b"".join(chunks)
            if len(data) > cap:
                raise UnsafePath(f"{relpath} is larger than {cap} bytes")
            return data
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


# tmpfs counts 20 bytes of a directory's size per entry (BOGO_DIRENT_SIZE): a
# directory's size says how many entries it holds before a single one is read. (On
# block-based filesystems the estimate is high: a 4 KiB directory counts as ~200.)
TMPFS_DIRENT_BYTES = 20


class TooMuchToRemove(OSError):
    """A job left more entries than a reset may spend time on: retire, do not clean."""


class RemovalBudget:
    """How much more work a reset may do: a unit per entry moved or removed, and
    DIRECTORY_COST per directory opened and removed (a directory costs some ten times a
    file: a 3000-level tree would otherwise take 75 ms to refuse)."""

    DIRECTORY_COST = 10

    def __init__(self, entries: int) -> None:
        self.left = entries

    def spend(self, n: int = 1) -> None:
        self.left -= n
        if self.left < 0:
            raise TooMuchToRemove("more entries left behind than a reset removes")

    def check_size(self, dir_fd: int) -> None:
        """Refuse at once a directory whose size says it holds more than is left."""
        if os.fstat(dir_fd).st_size // TMPFS_DIRENT_BYTES > self.left + 2:
            raise TooMuchToRemove("a directory holds more entries than a reset removes")


def empty_dir(dir_fd: int, budget: RemovalBudget) -> None:
    """Remove everything inside the directory `dir_fd` (symlink-safe, permission-proof),
    spending at most `budget`: past it, TooMuchToRemove is raised at once, so the cost of
    a reset is bounded whatever a job left (800,000 hard links, a 10,000-level tree).

    Iterative, whatever the depth: the entries of each subdirectory are moved up into
    `dir_fd` (a rename within the same filesystem) and the emptied subdirectory removed,
    so a deep tree costs no recursion and at most two open fds. As root on the host we
    may list, move and remove what the job made unreadable (mode 000).
    """
    hoisted = 0
    while True:
        budget.check_size(dir_fd)
        with os.scandir(dir_fd) as it:
            entries = [entry for _, entry in zip(range(budget.left + 1), it, strict=False)]
        if not entries:
            return
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not is_dir:
                budget.spend()
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.name, dir_fd=dir_fd)
                continue
            budget.spend(RemovalBudget.DIRECTORY_COST)
            sub = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                budget.check_size(sub)
                for inner in os.listdir(sub):
                    budget.spend()
                    while True:
                        hoisted += 1
                        target = f".sandboxd-reset-{hoisted}"
                        try:
                            os.stat(target, dir_fd=dir_fd, follow_symlinks=False)
                        except FileNotFoundError:
                            break
                    os.rename(inner, target, src_dir_fd=sub, dst_dir_fd=dir_fd)
            finally:
                os.close(sub)
            os.rmdir(entry.name, dir_fd=dir_fd)


def is_empty(dir_fd: int) -> bool:
    return not os.listdir(dir_fd)


def free_bytes(dir_fd: int) -> int:
    st = os.fstatvfs(dir_fd)
    return st.f_bavail * st.f_frsize
