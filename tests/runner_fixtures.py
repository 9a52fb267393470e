"""Golden fixtures of the Python runner: find them, run them, compare the results.

`runners/python/fixtures/<case>/` holds an exercise (solution and test file) and
`expected_results.json`, the results.json a learner should get for it. The host test
(`tests/test_runner_python_host.py`) runs the runner with the host's Debian `python3`; the
same helpers serve to check the real image: run the case there, then `compare_results`.

Regenerate the golden files (then read every diff: they are the spec):

    /usr/bin/python3 tests/runner_fixtures.py [case ...]
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RUNNER_DIR = REPO / "runners" / "python"
RUNNER = RUNNER_DIR / "run"
FIXTURES_DIR = RUNNER_DIR / "fixtures"
EXPECTED_NAME = "expected_results.json"
RESULTS_NAME = "results.json"
HOST_PYTHON = "/usr/bin/python3"
INPUT_DIR_TOKEN = "<input_dir>"
RUN_TIMEOUT_SECONDS = 120
JOB_UID = 10001

# Object addresses in reprs (`<function f at 0x7f3a...>`) differ from run to run.
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
_TEXT_FIELDS = ("message", "output")
_MAX_DIFFERENCES = 50


def fixture_cases() -> list[str]:
    """The names of all fixture cases, sorted."""
    return sorted(p.name for p in FIXTURES_DIR.iterdir() if (p / EXPECTED_NAME).is_file())


def load_expected(case: str) -> dict[str, Any]:
    """The golden results document of a case."""
    data: dict[str, Any] = json.loads((FIXTURES_DIR / case / EXPECTED_NAME).read_text("utf-8"))
    return data


def copy_exercise(case: str, dest: Path) -> Path:
    """Copy a case's exercise files (everything but the golden file) into `dest`."""
    shutil.copytree(FIXTURES_DIR / case, dest, ignore=shutil.ignore_patterns(EXPECTED_NAME))
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


def normalise(results: dict[str, Any], input_dir: str | None = None) -> dict[str, Any]:
    """A copy with what legitimately varies replaced: the input dir path, object addresses."""

    def clean(text: str) -> str:
        if input_dir:
            text = text.replace(input_dir, INPUT_DIR_TOKEN)
        return _ADDRESS.sub("0x…", text)

    out = dict(results)
    if isinstance(out.get("message"), str):
        out["message"] = clean(out["message"])
    tests = out.get("tests")
    if isinstance(tests, list):
        out["tests"] = [
            {k: clean(v) if k in _TEXT_FIELDS and isinstance(v, str) else v for k, v in t.items()}
            if isinstance(t, dict)
            else t
            for t in tests
        ]
    return out


_ABSENT = object()


def _show(value: object) -> str:
    return "(absent)" if value is _ABSENT else repr(value)


def _compare_fields(
    where: str, actual: dict[str, Any], expected: dict[str, Any], skip: tuple[str, ...] = ()
) -> list[str]:
    diffs = []
    for key in sorted(set(actual) | set(expected), key=lambda k: (k not in expected, k)):
        if key in skip:
            continue
        got, want = actual.get(key, _ABSENT), expected.get(key, _ABSENT)
        if got != want:
            diffs.append(f"{where}{key}: expected {_show(want)}, got {_show(got)}")
    return diffs


def compare_results(
    actual: dict[str, Any], expected: dict[str, Any], *, input_dir: str | None = None
) -> list[str]:
    """Human-readable differences between two results documents; empty when they agree.

    Exact, field by field and test by test, after `normalise` (pass `input_dir` to have the
    actual run's input directory replaced by `<input_dir>`).
    """
    actual = normalise(actual, input_dir)
    expected = normalise(expected)
    diffs = _compare_fields("", actual, expected, skip=("tests",))
    got_tests = actual.get("tests")
    want_tests = expected.get("tests")
    if not isinstance(got_tests, list) or not isinstance(want_tests, list):
        if got_tests != want_tests:
            diffs.append(f"tests: expected {_show(want_tests)}, got {_show(got_tests)}")
        return diffs
    if len(got_tests) != len(want_tests):
        diffs.append(f"tests: expected {len(want_tests)} tests, got {len(got_tests)}")
    for index, (got, want) in enumerate(zip(got_tests, want_tests, strict=False)):
        name = want.get("name") if isinstance(want, dict) else None
        where = f"tests[{index}] ({name!r})."
        if not isinstance(got, dict) or not isinstance(want, dict):
            if got != want:
                diffs.append(f"{where} expected {_show(want)}, got {_show(got)}")
            continue
        diffs.extend(_compare_fields(where, got, want))
    for index in range(len(want_tests), len(got_tests)):
        diffs.append(f"tests[{index}]: unexpected test {_show(got_tests[index])}")
    for index in range(len(got_tests), len(want_tests)):
        diffs.append(f"tests[{index}]: missing test {_show(want_tests[index])}")
    if len(diffs) > _MAX_DIFFERENCES:
        diffs = [*diffs[:_MAX_DIFFERENCES], f"... and {len(diffs) - _MAX_DIFFERENCES} more"]
    return diffs


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
