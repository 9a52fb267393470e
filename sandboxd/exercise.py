"""Reading an exercise directory into a job's files without ever leaving it.

`sandboxd run DIR` and `sandboxd submit DIR` send what lies below DIR to a sandbox where
the learner's code reads it, so nothing outside DIR may be read: a symlink to
/proc/self/environ would hand the learner the CLI's environment. Every name is opened
relative to a descriptor of its own directory with O_NOFOLLOW, so no symlink is followed
on the way, and sizes are checked from stat before anything is read.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from sandboxd.models import MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES

# Directories never sent as part of an exercise.
SKIP_DIRS = frozenset(
    {".git", "__pycache__", ".pytest_cache", ".mypy_cache", "node_modules", ".venv"}
)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: should a FIFO be swapped in between our stat and our open, the open must
# not hang waiting for a writer (the fstat after it then refuses the FIFO).
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_READ_CHUNK = 1 << 20


class ExerciseError(ValueError):
    """A file below the directory cannot be sent; the message names it."""


@dataclass(frozen=True)
class LocalFile:
    path: str  # relative to the directory, POSIX separators
    data: bytes
    mode: int  # permission bits


def read_exercise(directory: Path) -> list[LocalFile]:
    """Every file below `directory`, in path order, with SKIP_DIRS left out.

    A symlink is sent as the content of the file it leads to when that is a regular file
    inside the directory; any other symlink, and anything not a regular file, is refused.
    """
    real = Path(os.path.realpath(directory))
    try:
        root_fd = os.open(real, _DIR_FLAGS)
    except OSError as exc:
        raise ExerciseError(f"{directory}: {exc.strerror}") from None
    try:
        reader = _Reader(directory, real, root_fd)
        reader.walk(root_fd, PurePosixPath())
        return reader.files
    finally:
        os.close(root_fd)


def read_capped(fd: int, limit: int) -> bytes:
    """At most `limit` + 1 bytes of `fd`: one more than allowed is enough to refuse, even
    for a file that grew after its size was checked."""
    chunks: list[bytes] = []
    left = limit + 1
    while left > 0:
        chunk = os.read(fd, min(left, _READ_CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _kind(mode: int) -> str:
    kinds = {
        stat.S_IFIFO: "a FIFO",
        stat.S_IFSOCK: "a socket",
        stat.S_IFCHR: "a character device",
        stat.S_IFBLK: "a block device",
        stat.S_IFDIR: "a directory",
        stat.S_IFLNK: "a symlink",
    }
    return kinds.get(stat.S_IFMT(mode), "something else")


@dataclass
class _Reader:
    shown: Path  # the directory as the user named it, for messages
    real: Path  # its real path: what "inside" means for a symlink's target
    root_fd: int
    files: list[LocalFile] = field(default_factory=list)
    total: int = 0

    def _show(self, rel: PurePosixPath) -> str:
        return str(self.shown / rel)

    def walk(self, dir_fd: int, rel: PurePosixPath) -> None:
        with os.scandir(dir_fd) as entries:
            names = sorted(entry.name for entry in entries)
        for name in names:
            try:
                self._entry(dir_fd, rel / name)
            except OSError as exc:
                raise ExerciseError(f"{self._show(rel / name)}: {exc.strerror}") from None

    def _entry(self, dir_fd: int, rel: PurePosixPath) -> None:
        st = os.stat(rel.name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            if rel.name in SKIP_DIRS:
                return
            fd = os.open(rel.name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                self.walk(fd, rel)
            finally:
                os.close(fd)
        elif stat.S_ISLNK(st.st_mode):
            self._link(dir_fd, rel)
        else:
            self._file(dir_fd, rel.name, rel)

    def _link(self, dir_fd: int, rel: PurePosixPath) -> None:
        """Send the file a symlink leads to, if it is a regular file inside the directory."""
        shown = f"{self._show(rel)}: symlink to {os.readlink(rel.name, dir_fd=dir_fd)}"
        inner = self._inside(rel, shown)
        # Open the target again from our own descriptor, one name at a time and following
        # nothing: realpath worked on path strings, and paths can change under us.
        parent = self.root_fd
        try:
            for part in inner[:-1]:
                fd = os.open(part, _DIR_FLAGS, dir_fd=parent)
                if parent != self.root_fd:
                    os.close(parent)
                parent = fd
            target = os.stat(inner[-1], dir_fd=parent, follow_symlinks=False)
            if stat.S_ISDIR(target.st_mode):
                raise ExerciseError(f"{shown}, a directory; only links to files are sent")
            self._file(parent, inner[-1], rel)
        except FileNotFoundError:
            raise ExerciseError(f"{shown}, which does not exist (dangling)") from None
        except OSError as exc:
            raise ExerciseError(f"{shown}, which cannot be followed ({exc.strerror})") from None
        finally:
            if parent != self.root_fd:
                os.close(parent)

    def _inside(self, rel: PurePosixPath, shown: str) -> tuple[str, ...]:
        """The path, relative to the directory, that the link at `rel` finally leads to."""
        # realpath only lstats and reads link texts: nothing outside is opened.
        resolved = Path(os.path.realpath(self.real / rel))
        if not resolved.is_relative_to(self.real):
            raise ExerciseError(f"{shown}, which is outside {self.shown}; not sent")
        inner = resolved.relative_to(self.real).parts
        if not inner:
            raise ExerciseError(f"{shown}, a directory; only links to files are sent")
        skipped = next((part for part in inner if part in SKIP_DIRS), None)
        if skipped is not None:
            raise ExerciseError(f"{shown}, inside {skipped}/, which is never sent")
        return inner

    def _file(self, dir_fd: int, name: str, rel: PurePosixPath) -> None:
        """Read the regular file `name` of `dir_fd` as `rel`, within the limits."""
        self._check(rel, os.stat(name, dir_fd=dir_fd, follow_symlinks=False))
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        try:
            st = os.fstat(fd)
            self._check(rel, st)  # what we opened may not be what we checked
            data = read_capped(fd, MAX_FILE_BYTES)
        finally:
            os.close(fd)
        self._check_size(rel, len(data))  # it may have grown since the fstat
        self.total += len(data)
        self.files.append(LocalFile(rel.as_posix(), data, st.st_mode & 0o777))

    def _check(self, rel: PurePosixPath, st: os.stat_result) -> None:
        if not stat.S_ISREG(st.st_mode):
            raise ExerciseError(f"{self._show(rel)}: {_kind(st.st_mode)}, not a regular file")
        if len(self.files) >= MAX_FILES:
            raise ExerciseError(
                f"{self._show(rel)}: more than {MAX_FILES} files; the limit is {MAX_FILES}"
            )
        self._check_size(rel, st.st_size)

    def _check_size(self, rel: PurePosixPath, size: int) -> None:
        if size > MAX_FILE_BYTES:
            raise ExerciseError(
                f"{self._show(rel)}: {size} bytes; the limit is {MAX_FILE_BYTES} bytes a file"
            )
        if self.total + size > MAX_TOTAL_BYTES:
            raise ExerciseError(
                f"{self._show(rel)}: the files reach {self.total + size} bytes with this one; "
                f"the limit is {MAX_TOTAL_BYTES} bytes in all"
            )
