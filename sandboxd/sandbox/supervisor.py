"""The daemon's end of the channel to a sandbox's supervisor.

The supervisor (images/base/supervisor/, a static binary started with the container)
listens on a Unix socket in a directory only its own uid may enter, accepts one
connection — ours, from outside the sandbox's pid namespace — and then serves it alone.
Every message either way is a frame: a 4-byte little-endian length of what follows, a
type byte, the payload. Requests are tagged NUL-terminated fields, an empty field, then
raw data; answers are `key=value` lines or raw bytes. The full protocol:
images/base/supervisor/README.md.

One reader task takes every frame off the socket: log lines go to our log, the rest to a
queue that the one consumer of the moment (a job's run, a ping, a warm-up) reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
MAX_FRAME = 16 << 20

# To the supervisor.
RUN = b"R"
WARM = b"W"
PING = b"P"
# From it.
HELLO = "h"
STARTED = "s"
FAILED = "f"
STDOUT = "o"
STDERR = "e"
REPORT = "t"
EXIT = "x"
WARMED = "w"
PONG = "p"
LOG = "l"


class SupervisorError(RuntimeError):
    """The channel failed, or the supervisor said something it should not: our side."""


def encode_request(
    mode: str,
    argv: Iterable[str] = (),
    env: Iterable[str] = (),
    cwd: str | None = None,
    runner_request: bytes | None = None,
    data: bytes = b"",
) -> bytes:
    """A run or warm request: tagged fields (m mode, a arg, e env, c cwd, r what a warm
    runner is told), an empty field, then the data (the job's stdin). Pure."""
    fields = [b"m" + mode.encode()]
    fields += [b"a" + arg.encode() for arg in argv]
    fields += [b"e" + entry.encode() for entry in env]
    if cwd is not None:
        fields.append(b"c" + cwd.encode())
    if runner_request is not None:
        fields.append(b"r" + runner_request)
    for f in fields:
        if b"\0" in f:
            raise ValueError("a request field cannot hold NUL")
    return b"\0".join(fields) + b"\0\0" + data


def parse_fields(payload: bytes) -> dict[str, str]:
    """`key=value` lines. Pure."""
    out: dict[str, str] = {}
    for line in payload.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


def field_int(fields: Mapping[str, str], key: str, default: int = 0) -> int:
    try:
        return int(fields.get(key, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class Exit:
    """How a job's process ended, as its supervisor (or warm runner) saw it."""

    code: int | None  # its exit code, None when a signal ended it
    signal: int | None
    cpu_us: int
    maxrss_kb: int
    finished: bool  # a warm runner said it finished the job (and reported)
    runner_error: str  # a fork runner (ours) says it failed: not the job's doing

    @classmethod
    def parse(cls, payload: bytes) -> Exit:
        f = parse_fields(payload)
        code = field_int(f, "code", -1)
        sig = field_int(f, "signal", 0)
        return cls(
            code=None if code < 0 else code,
            signal=sig or None,
            cpu_us=field_int(f, "utime_us") + field_int(f, "stime_us"),
            maxrss_kb=field_int(f, "maxrss_kb"),
            finished=f.get("finished") == "1",
            runner_error=f.get("runner_error", ""),
        )


class SupervisorChannel:
    """One connection to one sandbox's supervisor."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._name = name
        self._frames: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._read_all())
        self.hello: dict[str, str] = {}

    @classmethod
    async def connect(cls, path: str, name: str) -> SupervisorChannel:
        """Connect and take the supervisor's greeting (its version and pid)."""
        try:
            reader, writer = await asyncio.open_unix_connection(path, limit=MAX_FRAME)
        except OSError as exc:
            raise SupervisorError(f"cannot reach the supervisor: {exc}") from None
        channel = cls(reader, writer, name)
        try:
            kind, payload = await asyncio.wait_for(channel.receive(), 10)
        except (TimeoutError, SupervisorError):
            await channel.close()
            raise SupervisorError("the supervisor did not greet") from None
        hello = parse_fields(payload)
        if kind != HELLO or field_int(hello, "version") != PROTOCOL_VERSION:
            await channel.close()
            raise SupervisorError(f"the supervisor speaks another protocol: {payload[:80]!r}")
        channel.hello = hello
        return channel

    @property
    def pid(self) -> int:
        """The supervisor's pid inside the sandbox."""
        return field_int(self.hello, "pid")

    async def _read_all(self) -> None:
        try:
            while True:
                head = await self._reader.readexactly(5)
                (length,) = struct.unpack("<I", head[:4])
                if not 1 <= length <= MAX_FRAME:
                    raise SupervisorError(f"a frame of {length} bytes")
                payload = await self._reader.readexactly(length - 1) if length > 1 else b""
                kind = chr(head[4])
                if kind == LOG:
                    text = payload.decode("utf-8", "replace").rstrip()
                    log.debug("sandbox %s: supervisor: %s", self._name, text)
                    continue
                self._frames.put_nowait((kind, payload))
        except (asyncio.IncompleteReadError, ConnectionError, SupervisorError) as exc:
            log.debug("sandbox %s: supervisor channel closed: %r", self._name, exc)
        finally:
            self._frames.put_nowait(None)

    async def receive(self) -> tuple[str, bytes]:
        """The next frame (not a log line); SupervisorError once the channel is closed."""
        frame = await self._frames.get()
        if frame is None:
            self._frames.put_nowait(None)  # every later receive sees the end too
            raise SupervisorError("the supervisor's channel is closed")
        return frame

    async def send(self, kind: bytes, payload: bytes = b"") -> None:
        self._writer.write(struct.pack("<I", len(payload) + 1) + kind + payload)
        try:
            await self._writer.drain()
        except ConnectionError as exc:
            raise SupervisorError(f"the supervisor's channel is closed: {exc}") from None

    async def ping(self) -> dict[str, str]:
        """The supervisor's state: runner_pid, runner (none/starting/idle/busy), job."""
        await self.send(PING)
        kind, payload = await self.receive()
        if kind != PONG:
            raise SupervisorError(f"ping answered with {kind!r}")
        return parse_fields(payload)

    def pending(self) -> bool:
        """Whether a frame is waiting (one not consumed would confuse the next job)."""
        return not self._frames.empty()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
