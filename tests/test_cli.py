"""The `sandboxd` command line, run as a user would: a subprocess against the real engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hostile_exercises as hostile
import pytest

from sandboxd.cli import UsageError, _LiveOutput, _print_summary, job_from_dir, render_result
from sandboxd.images import languages
from sandboxd.models import Result

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


def sandboxd_bytes(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "sandboxd", *args],
        capture_output=True, cwd=ROOT, timeout=120, check=False,
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


@pytest.mark.docker
def test_unknown_language_lists_the_known_ones(tmp_path: Path) -> None:
    """An unknown `--language` (no recipe, no image) exits 2 naming the languages there are."""
    proc = sandboxd("run", str(tmp_path), "--language", "klingon")
    assert proc.returncode == 2
    known = ", ".join(languages())  # python today; a new language folder adds itself
    assert "python" in known
    assert proc.stderr == f"sandboxd: unknown language 'klingon' (known: {known})\n"


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


# -- what reaches the author's terminal ------------------------------------------------------

OSC52_CLEAR = hostile.OSC52_CLEAR
HOSTILE = Result.model_validate(
    {
        "id": "x",
        "status": "failed",
        "message": "1 of 1 test did not pass.\x1b]0;title\x07",
        "tests": [
            {"name": "t \u202eevil", "status": "fail", "message": f"boom {OSC52_CLEAR}\rover"},
        ],
    }
)


def test_render_result_escapes_names_and_messages() -> None:
    """A test's name and message and the verdict message show their control sequences."""
    text = render_result(HOSTILE, color=False)
    assert "\x1b" not in text and "\u202e" not in text and "\r" not in text
    assert "  FAIL  t \\u202eevil" in text
    assert "boom \\x1b]52;c;aGk=\\x07\\x1b[2J\\rover" in text
    assert "FAILED: 1 of 1 test did not pass.\\x1b]0;title\\x07 (run" in text


def test_render_result_keeps_our_colours_only() -> None:
    """On a TTY our colour codes stay while the learner's escape sequences are shown."""
    text = render_result(HOSTILE, color=True)
    assert "\x1b[31mFAIL\x1b[0m" in text and "\x1b[1;31mFAILED\x1b[0m" in text
    ours_removed = text.replace("\x1b[31m", "").replace("\x1b[1;31m", "").replace("\x1b[0m", "")
    assert "\x1b" not in ours_removed and ours_removed == render_result(HOSTILE, color=False)


def test_render_result_raw_is_untouched() -> None:
    """--raw prints names and messages exactly as they came."""
    text = render_result(HOSTILE, color=False, raw=True)
    assert f"boom {OSC52_CLEAR}\rover" in text and "t \u202eevil" in text


def test_summary_table_escapes_directory_names(capsys: pytest.CaptureFixture[str]) -> None:
    """The multi-DIR table shows an exercise directory's odd name escaped."""
    _print_summary([(Path("ex\x1b[2J"), HOSTILE)], raw=False)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "ex\\x1b[2J" in out


def test_live_output_decodes_across_chunks(capsys: pytest.CaptureFixture[str]) -> None:
    """Streamed chunks that split a character show it once, with ESC escaped, per stream."""
    live = _LiveOutput(raw=False)
    snowman = "☃".encode()
    live("stdout", b"\x1b[2J" + snowman[:2])
    live("stderr", b"err")  # another stream between the halves does not disturb the decoder
    live("stdout", snowman[2:] + b"\xe2")
    live.close()
    out, err = capsys.readouterr()
    assert out == "\\x1b[2J☃\ufffd" and err == "err"


def test_error_line_stays_one_escaped_line(tmp_path: Path) -> None:
    """An error quoting a name with a newline and ESC is still one line, escaped."""
    proc = sandboxd_bytes("run", str(tmp_path / "a\nb\x1b[2J"))
    assert proc.returncode == 2
    assert proc.stderr.count(b"\n") == 1 and b"\x1b" not in proc.stderr
    assert b"a\\nb\\x1b[2J: not a directory" in proc.stderr


@pytest.mark.docker
def test_run_escapes_what_the_learner_prints(tmp_path: Path) -> None:
    """`sandboxd run DIR` shows the streamed output, test name and message escaped: no ESC."""
    proc = sandboxd_bytes("run", str(hostile.terminal_escapes(tmp_path / "hx")))
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout.decode()
    assert not any(ord(ch) < 0x20 and ch not in "\n\t" for ch in out), out
    assert "\u202e" not in out
    assert f"{hostile.ESCAPED_OSC52_CLEAR}\n" in out, "the streamed output, escaped"
    assert f"  FAIL  {hostile.ESCAPED_TEST_NAME}\n" in out
    assert f"          {hostile.ESCAPED_MESSAGE}\n" in out


@pytest.mark.docker
def test_run_raw_passes_the_stream_through(tmp_path: Path) -> None:
    """With --raw the learner's bytes arrive untouched, and --json stays exact JSON."""
    exercise = str(hostile.terminal_escapes(tmp_path / "hx"))
    proc = sandboxd_bytes("run", exercise, "--raw")
    assert proc.returncode == 1, proc.stderr
    assert f"{hostile.OSC52_CLEAR}\n".encode() in proc.stdout
    assert f"  FAIL  {hostile.TEST_NAME}\n".encode() in proc.stdout
    doc = json.loads(sandboxd_bytes("run", exercise, "--json").stdout)
    assert doc["stdout"].startswith(f"{hostile.OSC52_CLEAR}\n")
    assert doc["tests"][0]["name"] == hostile.TEST_NAME
    assert doc["tests"][0]["message"].startswith(hostile.MESSAGE)


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
