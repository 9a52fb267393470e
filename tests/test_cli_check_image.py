"""`sandboxd check-image`: the conformance kit, run as an image author would (a
subprocess against the real engine and the python image)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "runners" / "python" / "fixtures"

pytestmark = pytest.mark.docker


def check_image(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandboxd", "check-image", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip


def test_the_python_image_conforms_to_its_fixtures() -> None:
    proc = check_image("python")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cases = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
    lines = proc.stdout.splitlines()
    for case in cases:
        assert any(line.split()[:2] == [case, "ok"] for line in lines), (case, proc.stdout)
    assert (
        lines[-1] == f"python: {len(cases)} of {len(cases)} cases as expected: the image conforms"
    )


def test_a_case_that_differs_fails_and_says_how(tmp_path: Path) -> None:
    """Given by image reference with a fixtures dir of the author's: one case expects
    another verdict, one other results; exit 1, both shown, the rest still ok."""
    for case in ("all_pass", "some_fail", "syntax_error"):
        shutil.copytree(FIXTURES / case, tmp_path / case)
    (tmp_path / "all_pass" / "case.json").write_text('{"verdict": "failed"}')
    expected = tmp_path / "some_fail" / "expected_results.json"
    doc = json.loads(expected.read_text())
    doc["tests"][1]["status"] = "fail"
    expected.write_text(json.dumps(doc))
    proc = check_image("sandboxd/python:latest", str(tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "all_pass" in out and "expected failed, got passed" in out
    assert (
        "some_fail" in out
        and "tests[1] ('a name given').status: expected 'fail', got 'pass'" in out
    )
    assert any(line.split()[:2] == ["syntax_error", "ok"] for line in out.splitlines())
    assert out.splitlines()[-1] == "python: 1 of 3 cases as expected: the image does NOT conform"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("klingon",), "unknown language 'klingon'"),
        (("sandboxd/base:latest",), "has no sandboxd.language-config label"),
        (("no-such/image:1",), "no image 'no-such/image:1'"),
        (("python", "/nonexistent/fixtures"), "no fixtures directory /nonexistent/fixtures"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(args: tuple[str, ...], says: str) -> None:
    proc = check_image(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert says in proc.stderr


def test_a_malformed_case_is_refused_naming_it(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "syntax_error", tmp_path / "syntax_error")
    (tmp_path / "syntax_error" / "case.json").unlink()  # status error, no verdict given
    proc = check_image("python", str(tmp_path))
    assert proc.returncode == 2
    assert "python/syntax_error: status 'error' needs the verdict in case.json" in proc.stderr
