"""Which files of an exercise directory `sandboxd run`/`submit` send: nothing from outside it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sandboxd.cli import UsageError, job_from_dir
from sandboxd.exercise import read_capped
from sandboxd.models import MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES

ROOT = Path(__file__).resolve().parent.parent


def refusal(directory: Path) -> str:
    with pytest.raises(UsageError) as info:
        job_from_dir(directory, "python")
    return str(info.value)


@pytest.fixture
def exercise(tmp_path: Path) -> Path:
    """An exercise directory with one ordinary file, beside a secret that must stay out."""
    (tmp_path / "secret.txt").write_text("the CLI user's secret\n")
    ex = tmp_path / "ex"
    ex.mkdir()
    (ex / "solution.py").write_text("x = 1\n")
    return ex


def test_symlink_to_proc_environ_is_refused_by_name(exercise: Path) -> None:
    """A link to /proc/self/environ is refused, naming the link, so the environment stays home."""
    (exercise / "env.txt").symlink_to("/proc/self/environ")
    message = refusal(exercise)
    assert f"{exercise}/env.txt: symlink to /proc/self/environ" in message
    assert "outside" in message and "\n" not in message


def test_relative_symlink_climbing_out_is_refused(exercise: Path) -> None:
    """A relative link that climbs out of the directory is refused, even through a subdir."""
    (exercise / "sub").mkdir()
    (exercise / "sub" / "s.txt").symlink_to("../../secret.txt")
    assert f"{exercise}/sub/s.txt: symlink to ../../secret.txt" in refusal(exercise)


def test_symlink_to_a_file_inside_is_sent_as_its_content(exercise: Path) -> None:
    """A link to a regular file inside the directory is sent as that file's content."""
    (exercise / "data").mkdir()
    (exercise / "data" / "words.txt").write_text("alpha\nbeta\n")
    (exercise / "words.txt").symlink_to("data/words.txt")
    (exercise / "data" / "again.txt").symlink_to("../words.txt")  # a chain, still inside
    files = {f.path: f.data() for f in job_from_dir(exercise, "python").files}
    assert files["words.txt"] == files["data/again.txt"] == b"alpha\nbeta\n"
    assert set(files) == {"solution.py", "data/words.txt", "words.txt", "data/again.txt"}


def test_dangling_symlink_is_refused(exercise: Path) -> None:
    """A link to nothing is refused by name rather than silently dropped."""
    (exercise / "gone.py").symlink_to("missing.py")
    message = refusal(exercise)
    assert f"{exercise}/gone.py: symlink to missing.py" in message and "dangling" in message


def test_symlink_to_a_directory_is_refused(exercise: Path) -> None:
    """A link to a directory is refused, even one inside the exercise."""
    (exercise / "pkg").mkdir()
    (exercise / "pkg" / "m.py").write_text("")
    (exercise / "alias").symlink_to("pkg")
    message = refusal(exercise)
    assert f"{exercise}/alias: symlink to pkg" in message and "directory" in message


def test_symlink_into_a_skipped_dir_is_refused(exercise: Path) -> None:
    """A link into .git is refused: what is never sent is not sent through a link either."""
    (exercise / ".git").mkdir()
    (exercise / ".git" / "config").write_text("url = https://token@example.invalid/\n")
    (exercise / "config").symlink_to(".git/config")
    assert f"{exercise}/config: symlink to .git/config, inside .git/" in refusal(exercise)


def test_fifo_is_refused_without_being_opened(exercise: Path) -> None:
    """A FIFO is refused by name from its stat, and the walk does not hang on it."""
    os.mkfifo(exercise / "pipe")
    assert refusal(exercise) == f"{exercise}/pipe: a FIFO, not a regular file"


def test_socket_is_refused(tmp_path: Path) -> None:
    """A Unix socket is refused by name."""
    ex = tmp_path / "e"  # short: a socket path has a length limit
    ex.mkdir()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(ex / "s"))
        assert refusal(ex) == f"{ex}/s: a socket, not a regular file"


def test_sparse_huge_file_is_refused_by_its_size(exercise: Path) -> None:
    """A 5 GiB (sparse) file is refused from its size, naming the file and the limit."""
    big = exercise / "huge.bin"
    big.touch()
    os.truncate(big, 5 * 1024**3)
    message = refusal(exercise)
    assert message == (f"{big}: {5 * 1024**3} bytes; the limit is {MAX_FILE_BYTES} bytes a file")


def test_total_size_is_refused_before_the_file_that_tips_it(exercise: Path) -> None:
    """Files within the per-file limit but over the total are refused at the one that tips it."""
    for i in range(MAX_TOTAL_BYTES // MAX_FILE_BYTES + 1):
        path = exercise / f"part{i}.bin"
        path.touch()
        os.truncate(path, MAX_FILE_BYTES)
    message = refusal(exercise)
    last = MAX_TOTAL_BYTES // MAX_FILE_BYTES
    assert message.startswith(f"{exercise}/part{last}.bin: the files reach")
    assert f"the limit is {MAX_TOTAL_BYTES} bytes in all" in message


def test_too_many_files_are_refused(exercise: Path) -> None:
    """One file more than the job limit is refused by name, with the limit."""
    for i in range(MAX_FILES):  # with solution.py: one too many
        (exercise / f"f{i:03}.txt").write_text("")
    message = refusal(exercise)
    assert f"more than {MAX_FILES} files" in message and message.startswith(str(exercise))


def test_read_capped_stops_one_byte_past_the_limit() -> None:
    """A read takes at most limit + 1 bytes, so a file growing under us costs nothing more."""
    r, w = os.pipe()
    try:
        os.write(w, b"x" * 100)
        assert read_capped(r, 10) == b"x" * 11
        assert len(os.read(r, 1000)) == 89, "the rest was left unread"
    finally:
        os.close(r)
        os.close(w)


def test_caches_are_still_skipped(exercise: Path) -> None:
    """Skipped directories stay skipped, even when they hold a link that would be refused."""
    (exercise / ".venv" / "bin").mkdir(parents=True)
    (exercise / ".venv" / "bin" / "python").symlink_to("/usr/bin/python3")
    assert [f.path for f in job_from_dir(exercise, "python").files] == ["solution.py"]


def test_cli_refuses_a_link_out_with_one_line_before_docker(exercise: Path) -> None:
    """`sandboxd run` exits 2 with one stderr line naming the link, before it asks Docker."""
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock", "HOME": "/nonexistent"}
    env.pop("DOCKER_CONTEXT", None)

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sandboxd", "run", str(exercise)],
            capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=False,
        )  # fmt: skip

    control = run()
    assert control.returncode == 3 and "Docker engine" in control.stderr, "Docker is unreachable"
    (exercise / "env.txt").symlink_to("/proc/self/environ")
    proc = run()
    assert proc.returncode == 2
    assert proc.stderr.endswith("\n") and proc.stderr.count("\n") == 1
    assert f"{exercise}/env.txt: symlink to /proc/self/environ" in proc.stderr
    assert proc.stdout == ""
