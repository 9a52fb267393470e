"""The Python runner (`runners/python/run`) on the host's Debian python3, against its fixtures.

The image runs Debian trixie's Python 3.13 and pytest 8.3 (tests/test_language_fixtures.py
checks the same fixtures there); the host is bookworm (3.11, pytest 7.2). A pass on both
means the runner and its golden files hold across two interpreter and pytest generations.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runner_fixtures import (
    FIXTURES_DIR,
    HOST_PYTHON,
    RESULTS_NAME,
    RUNNER,
    WarmRunner,
    compare_results,
    copy_exercise,
    fixture_cases,
    image_env,
    job_readable,
    load_expected,
    read_results,
    run_runner,
)

from sandboxd.results import parse_report


def _host_pytest_missing() -> str | None:
    try:
        proc = subprocess.run(
            [HOST_PYTHON, "-c", "import pytest"], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{HOST_PYTHON} cannot be run ({exc})"
    if proc.returncode != 0:
        return f"{HOST_PYTHON} cannot import pytest: apt-get install -y python3-pytest"
    return None


_missing = _host_pytest_missing()
if _missing is not None:
    pytest.skip(_missing, allow_module_level=True)

CASES = fixture_cases()


class Run:
    """One runner run of a fixture case: where it ran and what it left."""

    def __init__(self, case: str, root: Path) -> None:
        self.input_dir = copy_exercise(case, root / "work")
        self.output_dir = root / "out"
        self.inputs_before = _tree(self.input_dir)
        self.proc = run_runner(self.input_dir, self.output_dir)
        self.results: dict[str, Any] = read_results(self.output_dir)


def _tree(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() if p.is_file() else b""
        for p in sorted(path.rglob("*"))
    }


class Runs:
    """Each case run at most once per module, on first use, in its own temporary dir."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self._factory = factory
        self._runs: Runs = {}

    def __getitem__(self, case: str) -> Run:
        if case not in self._runs:
            self._runs[case] = Run(case, self._factory.mktemp(case))
        return self._runs[case]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """The shared, lazily filled runs of the fixture cases."""
    return Runs(tmp_path_factory)


def test_every_fixture_dir_has_golden_results() -> None:
    """Every directory under runners/python/fixtures/ carries an expected_results.json,
    but those whose case.json names a verdict that has no results (a limit's)."""
    dirs = sorted(p.name for p in FIXTURES_DIR.iterdir() if p.is_dir())
    limit_cases = sorted(
        d for d in dirs if not (FIXTURES_DIR / d / "expected_results.json").exists()
    )
    assert sorted(set(dirs) - set(limit_cases)) == CASES
    assert len(CASES) >= 11
    for case in limit_cases:
        verdict = json.loads((FIXTURES_DIR / case / "case.json").read_text())["verdict"]
        assert verdict in ("timeout", "output_limit", "memory_limit"), (case, verdict)


@pytest.mark.parametrize("case", CASES)
def test_results_match_golden_file(case: str, runs: Runs) -> None:
    """The runner reports exactly the fixture's expected_results.json."""
    run = runs[case]
    diffs = compare_results(run.results, load_expected(case), input_dir=str(run.input_dir))
    assert diffs == [], "\n".join(diffs)


@pytest.mark.parametrize("case", CASES)
def test_runner_exits_zero_whatever_the_tests_did(case: str, runs: Runs) -> None:
    """The runner exits 0 for passing, failing, broken and crashing exercises alike."""
    assert runs[case].proc.returncode == 0, runs[case].proc.stderr.decode(errors="replace")


@pytest.mark.parametrize("case", CASES)
def test_leaves_only_results_json(case: str, runs: Runs) -> None:
    """Only results.json is written: no events file, .pytest_cache or __pycache__ anywhere."""
    run = runs[case]
    assert sorted(os.listdir(run.output_dir)) == [RESULTS_NAME]
    assert _tree(run.input_dir) == run.inputs_before


@pytest.mark.parametrize("case", CASES)
def test_daemon_parser_accepts_results(case: str, runs: Runs) -> None:
    """sandboxd's own results.json parser accepts every fixture's results unchanged."""
    raw = (runs[case].output_dir / RESULTS_NAME).read_bytes()
    report = parse_report(raw)
    assert [t.name for t in report.tests] == [t["name"] for t in runs[case].results["tests"]]
    assert report.status == runs[case].results["status"]


def test_found_through_a_symlink(tmp_path: Path) -> None:
    """Run via a symlink (as installed elsewhere), the runner finds its plugin by real path."""
    link = tmp_path / "bin" / "run"
    link.parent.mkdir()
    link.symlink_to(RUNNER)
    input_dir = copy_exercise("all_pass", tmp_path / "work")
    proc = run_runner(input_dir, tmp_path / "out", command=[str(link)])
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    results = read_results(tmp_path / "out")
    assert compare_results(results, load_expected("all_pass"), input_dir=str(input_dir)) == []


def test_ignores_outer_pytest_config_and_environment(tmp_path: Path) -> None:
    """An ini file above the input dir, PYTEST_ADDOPTS and CI=true change nothing."""
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -x -k nothing --strict-markers\n")
    input_dir = copy_exercise("some_fail", tmp_path / "work")
    env = image_env(tmp_path) | {
        "PYTEST_ADDOPTS": "-x -p no:unittest",
        "PYTEST_PLUGINS": "nonexistent_plugin",
        "CI": "true",
        "PYTHONPATH": str(tmp_path / "elsewhere"),
    }
    proc = run_runner(input_dir, tmp_path / "out", env=env)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    results = read_results(tmp_path / "out")
    assert compare_results(results, load_expected("some_fail"), input_dir=str(input_dir)) == []


def test_relative_paths_and_missing_output_dir(tmp_path: Path) -> None:
    """Relative input/output paths work and a missing output dir is created."""
    input_dir = copy_exercise("all_pass", tmp_path / "work")
    proc = subprocess.run(
        [HOST_PYTHON, str(RUNNER), ".", "../new/out"],
        cwd=input_dir,
        env=image_env(tmp_path),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert read_results(tmp_path / "new" / "out")["status"] == "pass"


def test_learner_module_cannot_shadow_the_runner(tmp_path: Path) -> None:
    """A learner file named like a stdlib module (json.py) does not break the runner."""
    input_dir = copy_exercise("all_pass", tmp_path / "work")
    (input_dir / "json.py").write_text("raise RuntimeError('shadowed')\n")
    proc = run_runner(input_dir, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert read_results(tmp_path / "out")["status"] == "pass"


def test_usage_error_without_arguments() -> None:
    """Called without its two arguments the runner says how to call it and exits 2."""
    proc = subprocess.run([HOST_PYTHON, str(RUNNER)], capture_output=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert b"usage: run <input_dir> <output_dir> | run --fork | run --standby" in proc.stderr


# -- compare_results, the helper the image tests reuse -------------------------------


def _doc(**test: Any) -> dict[str, Any]:
    return {"version": 3, "status": "pass", "tests": [{"name": "a", "status": "pass", **test}]}


def test_compare_equal_documents_has_no_differences() -> None:
    """compare_results returns [] for identical documents."""
    assert compare_results(_doc(output="hi\n"), _doc(output="hi\n")) == []


def test_compare_names_the_test_and_field() -> None:
    """A differing field is reported with the test's index, name and both values."""
    diffs = compare_results(_doc(status="fail"), _doc())
    assert diffs == ["tests[0] ('a').status: expected 'pass', got 'fail'"]


def test_compare_reports_absent_and_extra_fields() -> None:
    """A field present on one side only is a difference, shown as (absent)."""
    diffs = compare_results(_doc(task_id=1), _doc(message="m"))
    assert diffs == [
        "tests[0] ('a').message: expected 'm', got (absent)",
        "tests[0] ('a').task_id: expected (absent), got 1",
    ]


def test_compare_reports_missing_and_unexpected_tests() -> None:
    """Different test counts name the tests that are missing or extra."""
    two = _doc()
    two["tests"].append({"name": "b", "status": "pass"})
    assert compare_results(_doc(), two) == [
        "tests: expected 2 tests, got 1",
        "tests[1]: missing test {'name': 'b', 'status': 'pass'}",
    ]
    assert compare_results(two, _doc())[-1].startswith("tests[1]: unexpected test")


def test_compare_normalises_input_dir_and_addresses() -> None:
    """The actual run's input dir becomes <input_dir>; object addresses are ignored."""
    actual = _doc(message="FileNotFoundError: /tmp/x/work/data.txt at 0x7f3a2b1c9d40")
    expected = _doc(message="FileNotFoundError: <input_dir>/data.txt at 0x7f00000000ff")
    assert compare_results(actual, expected, input_dir="/tmp/x/work") == []
    assert compare_results(actual, expected) != []


def test_compare_top_level_fields() -> None:
    """Top-level status and message are compared exactly."""
    actual = {"version": 3, "status": "error", "message": "x", "tests": []}
    expected = {"version": 3, "status": "error", "message": "y", "tests": []}
    assert compare_results(actual, expected) == ["message: expected 'y', got 'x'"]


@pytest.fixture
def job_root() -> Iterator[Path]:
    """A directory the job user can reach (mode 0755 below /tmp), removed after."""
    root = Path(tempfile.mkdtemp(prefix="sandboxd-warm-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def fork_runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarmRunner]:
    """One fork runner for the module, serving job after job as in a sandbox."""
    if os.geteuid() != 0:
        pytest.skip("a fork runner's child switches to the job user: needs root")
    runner = WarmRunner("fork", tmp_path_factory.mktemp("fork"))
    yield runner
    assert runner.close() == 0


def _case_files(case: str) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in (FIXTURES_DIR / case).iterdir()
        if p.is_file() and p.name != "expected_results.json"
    }


def _exercise(root: Path, name: str, files: dict[str, bytes]) -> Path:
    work = root / name
    work.mkdir()
    for file, data in files.items():
        (work / file).write_bytes(data)
    return job_readable(work)


@pytest.mark.parametrize("case", CASES)
def test_fork_mode_reports_the_same(case: str, fork_runner: WarmRunner, job_root: Path) -> None:
    """The warm fork runner (pytest imported once, a child per job, jobs one after the
    other in the same parent) gives each case the same results as a cold run."""
    work = _exercise(job_root, "work", _case_files(case))
    run = fork_runner.run(work)
    assert run.error is None
    diffs = compare_results(run.results, load_expected(case), input_dir=str(work))
    assert diffs == [], "\n".join(diffs)


@pytest.mark.parametrize("case", ["all_pass", "exits_early", "syntax_error"])
def test_standby_mode_reports_the_same(case: str, job_root: Path, tmp_path: Path) -> None:
    """A standby runner (ready ahead, one job, then it ends) gives the same results."""
    runner = WarmRunner("standby", tmp_path)
    work = _exercise(job_root, "work", _case_files(case))
    run = runner.run(work)
    assert runner.close() == 0
    diffs = compare_results(run.results, load_expected(case), input_dir=str(work))
    assert diffs == [], "\n".join(diffs)


PROBE = b"""\
import json, os, random, sys


def test_probe():
    status = dict(line.split(":\\t", 1) for line in open("/proc/self/status") if ":\\t" in line)
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the descriptor that listed them
            pass
    print(json.dumps({
        "uid": os.getresuid(), "gid": os.getresgid(), "groups": os.getgroups(),
        "caps": {k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapAmb")},
        "sockets": [link for link in fds.values() if link.startswith("socket:")],
        "env": sorted(k for k in os.environ if k.startswith("SANDBOXD")),
        "random": random.random(),
    }))
"""


def test_a_fork_runners_child_is_the_job_user_and_nothing_of_ours(
    fork_runner: WarmRunner, job_root: Path
) -> None:
    """Each child is uid/gid 10001 with no supplementary group and no capability, holds
    no socket (not the supervisor's channel), sees none of our variables, and draws
    its own random numbers (not the parent's sequence)."""
    seen = []
    for name in ("one", "two"):
        run = fork_runner.run(_exercise(job_root, name, {"probe_test.py": PROBE}))
        (test,) = run.results["tests"]
        assert test["status"] == "pass", run.results
        seen.append(json.loads(test["output"]))
    for probe in seen:
        assert probe["uid"] == [10001, 10001, 10001] and probe["gid"] == [10001] * 3
        assert probe["groups"] == []
        assert set(probe["caps"].values()) == {"0000000000000000"}, probe["caps"]
        assert probe["sockets"] == [] and probe["env"] == []
    assert seen[0]["random"] != seen[1]["random"]


def test_a_fork_runner_gives_the_job_its_stdin_and_streams(
    fork_runner: WarmRunner, job_root: Path
) -> None:
    """The child's stdin, stdout and stderr are the ones handed over with the job."""
    test = (
        b"import os, sys\n\n\ndef test_io(capsys):\n    with capsys.disabled():\n"
        b"        print('out:' + os.read(0, 100).decode())\n"
        b"        print('err', file=sys.stderr)\n"
    )
    run = fork_runner.run(_exercise(job_root, "io", {"io_test.py": test}), stdin=b"given")
    assert b"out:" in run.stdout and b"err" in run.stderr
