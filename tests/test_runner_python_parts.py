"""Pieces of the Python runner that the tests' own code can reach: its event file, its
output directory, the size of what it reports, and pytest's capture of a test's output.

The pure parts are loaded from `runners/python/run` itself; the capture is checked by
running the runner on the host's Debian python3 (the image's interpreter and pytest)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from runner_fixtures import HOST_PYTHON, RUNNER, image_env


def _load_runner() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("sandboxd_python_runner", str(RUNNER))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


run = _load_runner()


def test_make_test_trusts_nothing_in_the_event_file() -> None:
    """Forged events of the wrong types or sizes become a well-formed, capped test."""
    start = {"name": "n" * 10_000, "test_code": ["not", "text"], "task_id": True}
    result = {"status": "passed!", "message": "m" * 10_000, "output": {"x": 1}}
    test = run.make_test(start, result)
    assert test == {
        "name": "n" * (run.NAME_LIMIT - 1) + "…",
        "status": "error",
        "message": "m" * (run.MESSAGE_LIMIT - 1) + "…",
    }


def test_events_nested_too_deeply_are_skipped() -> None:
    """A line of the events that json cannot load (here 100,000 arrays deep) is
    skipped, not the end of the runner."""
    deep = b"[" * 100_000 + b"]" * 100_000
    raw = b'{"e":"start","name":"a"}\n' + deep + b'\n{"e":"result","status":"pass"}\n'
    assert run.parse_events(raw) == [
        {"e": "start", "name": "a"},
        {"e": "result", "status": "pass"},
    ]


def test_results_are_fitted_under_the_cap() -> None:
    """Too big a report loses test code, then output, then messages, then trailing tests
    (said in its message), and is then within the cap."""
    tests = [
        {"name": f"t{i}", "status": "fail", "message": "m" * 50, "test_code": "c" * 100}
        for i in range(2000)
    ]
    without_code = [{k: v for k, v in t.items() if k != "test_code"} for t in tests]
    cap = len(run.encode(run.results("fail", None, without_code)))
    data = run.fit(run.results("fail", None, [dict(t) for t in tests]), cap=cap)
    assert len(data) <= cap
    fitted = json.loads(data)
    assert len(fitted["tests"]) == 2000 and "test_code" not in fitted["tests"][0]
    assert fitted["tests"][0]["message"] == "m" * 50
    small = run.fit(run.results("fail", None, [dict(t) for t in tests]), cap=40_000)
    cut = json.loads(small)
    assert len(small) <= 40_000 and 0 < len(cut["tests"]) < 2000
    assert cut["message"] == f"Only the first {len(cut['tests'])} of 2000 tests fit in the results."


@pytest.mark.parametrize("obstacle", ["links", "directory"])
def test_results_are_written_whatever_was_planted(tmp_path: Path, obstacle: str) -> None:
    """Symlinks at the temporary and final names are not followed, a directory at the
    final name is removed: results.json is a regular file with the report."""
    outside = tmp_path / "outside"
    outside.write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    if obstacle == "links":
        for name in ["results.json", "results.json.tmp"] + [
            f".results-{os.getpid()}-{n}.tmp" for n in range(5)
        ]:
            (out / name).symlink_to(outside)
    else:
        (out / "results.json" / "inner").mkdir(parents=True)
    run.write_results(str(out), run.results("pass", None, [{"name": "a", "status": "pass"}]))
    assert outside.read_text() == "keep"
    assert not (out / "results.json").is_symlink()
    assert json.loads((out / "results.json").read_text())["status"] == "pass"


FLOOD = """\
def test_small():
    print("hello")


def test_flood():
    for _ in range(20_000):
        print("x" * 99)


def test_after():
    print("after")
"""


def test_captured_output_past_the_threshold_goes_out_where_it_is_counted(
    tmp_path: Path,
) -> None:
    """What a test prints beyond 64 KiB of pytest's capture reaches the runner's own
    stdout (the daemon counts it against the output limit), to the byte; a test's output
    below that stays captured, as pytest does, and every test keeps its `output`."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "flood_test.py").write_text(FLOOD)
    proc = subprocess.run(
        [HOST_PYTHON, str(RUNNER), str(work), str(tmp_path / "out")],
        capture_output=True, env=image_env(work), timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    printed = ("x" * 99 + "\n") * 20_000
    assert proc.stdout.count(b"x") == printed[64 * 1024 :].count("x")
    assert b"hello" not in proc.stdout and b"after" not in proc.stdout
    tests = json.loads((tmp_path / "out" / "results.json").read_text())["tests"]
    assert [(t["name"], t["output"][:5]) for t in tests] == [
        ("small", "hello"),
        ("flood", "xxxxx"),
        ("after", "after"),
    ]
