"""Golden fixtures of the Python runner: find them, run them, compare the results.

`runners/python/fixtures/<case>/` holds an exercise (solution and test file) and
`expected_results.json`, the results.json a learner should get for it. The host test
(`tests/test_runner_python_host.py`) runs the runner with the host's Debian `python3`; the
same helpers serve to check the real image: run the case there, then `compare_results`.

Regenerate the golden files (then read every diff: they are the spec):

    .venv/bin/python tests/runner_fixtures.py [case ...]   (the runner itself runs with
    the host's /usr/bin/python3, as the image's Debian python3)
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandboxd.conformance import (
    CASE_NAME,
    EXPECTED_NAME,
    INPUT_DIR_TOKEN,
    compare_results,
    normalise,
)

__all__ = ["EXPECTED_NAME", "INPUT_DIR_TOKEN", "compare_results", "normalise"]

REPO = Path(__file__).resolve().parent.parent
RUNNER_DIR = REPO / "runners" / "python"
RUNNER = RUNNER_DIR / "run"
FIXTURES_DIR = RUNNER_DIR / "fixtures"
RESULTS_NAME = "results.json"
HOST_PYTHON = "/usr/bin/python3"
RUN_TIMEOUT_SECONDS = 120
JOB_UID = 10001


def fixture_cases() -> list[str]:
    """The names of all fixture cases, sorted."""
    return sorted(p.name for p in FIXTURES_DIR.iterdir() if (p / EXPECTED_NAME).is_file())


def load_expected(case: str) -> dict[str, Any]:
    """The golden results document of a case."""
    data: dict[str, Any] = json.loads((FIXTURES_DIR / case / EXPECTED_NAME).read_text("utf-8"))
    return data


def copy_exercise(case: str, dest: Path) -> Path:
    """Copy a case's exercise files (everything but the golden file) into `dest`."""
    ignore = shutil.ignore_patterns(EXPECTED_NAME, CASE_NAME)
    shutil.copytree(FIXTURES_DIR / case, dest, ignore=ignore)
    return dest


def image_env(home: Path) -> dict[str, str]:
    """The environment the image gives the runner (see images/python/)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
    }


def run_runner(
    input_dir: Path,
    output_dir: Path,
    *,
    command: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run the runner (by default with the host's Debian python3) as the image would."""
    argv = [*(command or [HOST_PYTHON, str(RUNNER)]), str(input_dir), str(output_dir)]
    return subprocess.run(
        argv,
        cwd=input_dir,
        env=env if env is not None else image_env(output_dir.parent),
        capture_output=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )


class WarmRunner:
    """`run --fork` or `run --standby` on the host, with this test in the supervisor's
    place: the channel on the runner's fd 3 and, for each job, its stdin, stdout and
    stderr handed over with the request (SCM_RIGHTS), as images/base/supervisor does.

    The host's root runs it: a fork runner's child switches to uid 10001 there as it
    does in the image (the image's tests check the capabilities side)."""

    def __init__(self, mode: str, root: Path) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock = ours
        self.mode = mode
        argv = [HOST_PYTHON, str(RUNNER), f"--{mode}"]
        log = open(root / f"runner-{mode}.log", "wb")  # noqa: SIM115 - closed in close()
        self._log = log
        self.pid = os.posix_spawn(
            HOST_PYTHON, argv, image_env(root),
            file_actions=[
                (os.POSIX_SPAWN_DUP2, theirs.fileno(), 3),
                (os.POSIX_SPAWN_DUP2, log.fileno(), 1),
                (os.POSIX_SPAWN_DUP2, log.fileno(), 2),
            ],
        )  # fmt: skip
        theirs.close()
        self.sock.settimeout(RUN_TIMEOUT_SECONDS)
        kind, _ = self._receive()
        assert kind == b"y", f"the runner did not say it was ready: {kind!r}"

    def _receive(self) -> tuple[bytes, bytes]:
        head = self._exactly(5)
        return head[4:5], self._exactly(int.from_bytes(head[:4], "little") - 1)

    def _exactly(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError("the runner closed its channel")
            data += chunk
        return bytes(data)

    def run(self, input_dir: Path, stdin: bytes = b"") -> WarmRun:
        """One job; its report once the runner sent it."""
        pipes = [os.pipe() for _ in range(3)]
        child = [pipes[0][0], pipes[1][1], pipes[2][1]]
        request = json.dumps(
            {"input_dir": str(input_dir), "output_dir": "/nonexistent", "uid": JOB_UID,
             "gid": JOB_UID}
        ).encode()  # fmt: skip
        socket.send_fds(self.sock, [(len(request) + 1).to_bytes(4, "little") + b"R"], child)
        self.sock.sendall(request)
        for fd in child:
            os.close(fd)
        streams: dict[int, bytes] = {}

        def drain(fd: int) -> None:
            with os.fdopen(fd, "rb") as f:
                streams[fd] = f.read()

        readers = [threading.Thread(target=drain, args=(pipes[i][0],)) for i in (1, 2)]
        for reader in readers:
            reader.start()
        with os.fdopen(pipes[0][1], "wb") as f:
            f.write(stdin)
        kind, payload = self._receive()
        for reader in readers:
            reader.join(RUN_TIMEOUT_SECONDS)
        assert kind == b"d", f"the runner answered {kind!r}"
        head, _, results = payload.partition(b"\n\n")
        fields = dict(line.split("=", 1) for line in head.decode().splitlines())
        return WarmRun(
            status=int(fields["status"]),
            error=fields.get("error"),
            results=json.loads(results),
            stdout=streams[pipes[1][0]],
            stderr=streams[pipes[2][0]],
        )

    def close(self) -> int:
        """End the channel; the runner's exit status."""
        self.sock.close()
        _, status = os.waitpid(self.pid, 0)
        self._log.close()
        return os.waitstatus_to_exitcode(status)


@dataclass
class WarmRun:
    status: int  # the pytest child's wait status
    error: str | None  # the runner's own failure, if any
    results: dict[str, Any]
    stdout: bytes
    stderr: bytes


def job_readable(path: Path) -> Path:
    """Give a directory tree to the job user (uid 10001), as /work is in a sandbox; the
    tree must lie where that user can get to it (not below pytest's 0700 tmp_path)."""
    for p in [path, *path.rglob("*")]:
        os.chown(p, JOB_UID, JOB_UID)
    return path


def read_results(output_dir: Path) -> dict[str, Any]:
    """The results.json the runner wrote."""
    data: dict[str, Any] = json.loads((output_dir / RESULTS_NAME).read_text("utf-8"))
    return data


def run_case_on_host(case: str, workdir: Path) -> dict[str, Any]:
    """Run one case with the host's python3; the normalised results."""
    input_dir = copy_exercise(case, workdir / "work")
    output_dir = workdir / "out"
    proc = run_runner(input_dir, output_dir)
    if proc.returncode != 0:
        raise RuntimeError(
            f"runner exited {proc.returncode}: {proc.stderr.decode(errors='replace')}"
        )
    return normalise(read_results(output_dir), str(input_dir))


def main(argv: list[str]) -> int:
    """Regenerate expected_results.json for the named cases (default: every case dir)."""
    cases = argv or sorted(p.name for p in FIXTURES_DIR.iterdir() if p.is_dir())
    for case in cases:
        with tempfile.TemporaryDirectory() as tmp:
            results = run_case_on_host(case, Path(tmp))
        path = FIXTURES_DIR / case / EXPECTED_NAME
        text = json.dumps(results, ensure_ascii=False, indent=2) + "\n"
        changed = not path.exists() or path.read_text("utf-8") != text
        path.write_text(text, "utf-8")
        print(f"{case}: {results['status']}, {len(results['tests'])} tests", end="")
        print(" (changed)" if changed else "")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
