"""The `sandboxd` command line, run as a user would: a subprocess against the real engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandboxd.cli import UsageError, job_from_dir

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "python"


def sandboxd(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandboxd", *args],
        capture_output=True, text=True, input=stdin, cwd=ROOT, timeout=120, check=False,
        env=env,
    )  # fmt: skip


def test_job_from_dir_takes_every_file_but_caches(tmp_path: Path) -> None:
    """An exercise directory becomes a job with its files; caches and VCS dirs are skipped."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("x = 1\n")
    (tmp_path / "blob.bin").write_bytes(b"\xff\x00")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "m.pyc").write_bytes(b"junk")
    job = job_from_dir(tmp_path, "python")
    paths = {f.path: f for f in job.files}
    assert set(paths) == {"pkg/m.py", "blob.bin"}
    assert paths["blob.bin"].encoding == "base64" and paths["blob.bin"].data() == b"\xff\x00"


def test_job_from_dir_refuses_a_missing_dir(tmp_path: Path) -> None:
    """A directory that does not exist is a usage error."""
    with pytest.raises(UsageError):
        job_from_dir(tmp_path / "nope", "python")


def test_usage_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    """Bad arguments exit 2 and say what is wrong in a single line."""
    proc = sandboxd("run", str(tmp_path / "missing"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not a directory" in proc.stderr
    proc = sandboxd("run", str(tmp_path), "--stdin", "x")
    assert proc.returncode == 2 and "--command" in proc.stderr
    proc = sandboxd("run", str(tmp_path), "--language", "cobol")
    assert proc.returncode == 2 and "cobol" in proc.stderr and "images build" in proc.stderr


def test_command_mode_right_answer_exits_0(tmp_path: Path) -> None:
    """Command mode with stdin and a matching expected output passes (exit 0)."""
    (tmp_path / "main.py").write_text("print(int(input()) * 2)\n")
    (tmp_path / "in.txt").write_text("21\n")
    (tmp_path / "out.txt").write_text("42\n")
    proc = sandboxd(
        "run", str(tmp_path), "--command", "python3 main.py",
        "--stdin", str(tmp_path / "in.txt"), "--expected-output", str(tmp_path / "out.txt"),
        "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "sandboxd.result/v1"
    assert doc["status"] == "passed" and doc["stdout"] == "42\n"


def test_command_mode_wrong_answer_and_runtime_error_exit_1(tmp_path: Path) -> None:
    """A wrong answer and a non-zero exit are reported with exit status 1."""
    (tmp_path / "main.py").write_text("import sys\nprint(41)\nsys.exit(int(sys.argv[1]))\n")
    (tmp_path / "out.txt").write_text("42\n")
    wrong = sandboxd("run", str(tmp_path), "--command", "python3 main.py 0",
                     "--expected-output", str(tmp_path / "out.txt"))  # fmt: skip
    assert wrong.returncode == 1
    assert "WRONG_ANSWER" in wrong.stdout
    crash = sandboxd("run", str(tmp_path), "--command", "python3 main.py 3", "--json")
    assert crash.returncode == 1
    doc = json.loads(crash.stdout)
    assert doc["status"] == "runtime_error" and doc["exit_code"] == 3


def test_wall_limit_flag_applies(tmp_path: Path) -> None:
    """--wall-seconds reaches the job: a sleeper is cut at the limit with a timeout verdict."""
    (tmp_path / "main.py").write_text("import time\ntime.sleep(30)\n")
    proc = sandboxd("run", str(tmp_path), "--command", "python3 main.py",
                    "--wall-seconds", "1", "--json")  # fmt: skip
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["status"] == "timeout" and doc["message"].startswith("Time limit of 1 s")


@pytest.mark.parametrize("command", [["serve"], ["submit", "examples/python/two-fer"]])
def test_serve_and_submit_warn_once_about_a_misspelt_variable(command: list[str]) -> None:
    """The warning for a misspelt variable reaches stderr exactly once."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SANDBOXD_")}
    # A bad value too, so the command stops right after reading its settings.
    env.update(SANDBOXD_POOL_SIZE="python=1", SANDBOXD_MAX_PIDS="0")
    proc = sandboxd(*command, env=env)
    assert proc.returncode == 2, proc.stderr
    warning = "SANDBOXD_POOL_SIZE is not a setting (did you mean SANDBOXD_POOL_SIZES?)"
    assert proc.stderr.count(warning) == 1, proc.stderr
    if command == ["serve"]:  # one of the daemon's JSON log lines
        [line] = [line for line in proc.stderr.splitlines() if warning in line]
        assert json.loads(line)["level"] == "warning"
    assert "SANDBOXD_MAX_PIDS: must be greater than 0" in proc.stderr
