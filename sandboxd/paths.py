"""Validation of the paths of a job's files: pure, no I/O."""

from __future__ import annotations

MAX_PATH_CHARS = 1024
MAX_COMPONENT_CHARS = 255
MAX_DEPTH = 32


class PathError(ValueError):
    """A file path a job may not use."""


def normalise_path(path: str) -> str:
    """Return `path` in normal form (`a/b/c`) or raise `PathError` saying why it is refused.

    Accepted: relative POSIX paths. `.` components and repeated slashes are dropped.
    Refused: empty paths, absolute paths, `..` anywhere, backslashes, NUL and other
    control characters, and paths too long or too deep.
    """
    if not path:
        raise PathError("file path is empty")
    if len(path) > MAX_PATH_CHARS:
        raise PathError(f"file path is longer than {MAX_PATH_CHARS} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
        raise PathError(f"file path {path[:80]!r} contains a control character")
    if "\\" in path:
        raise PathError(f"file path {path[:80]!r} contains a backslash; use '/'")
    if path.startswith("/"):
        raise PathError(f"file path {path[:80]!r} is absolute; paths must be relative")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts:
        raise PathError(f"file path {path[:80]!r} names no file")
    if ".." in parts:
        raise PathError(f"file path {path[:80]!r} contains '..'")
    if len(parts) > MAX_DEPTH:
        raise PathError(f"file path {path[:80]!r} is deeper than {MAX_DEPTH} directories")
    for part in parts:
        if len(part.encode("utf-8")) > MAX_COMPONENT_CHARS:
            raise PathError(f"a component of {path[:80]!r} is longer than 255 bytes")
    if path.endswith("/"):
        raise PathError(f"file path {path[:80]!r} names a directory, not a file")
    return "/".join(parts)
