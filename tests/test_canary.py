"""The canary's pure parts: which case, and reading it back from an image's labels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sandboxd.canary import canary_from_labels
from sandboxd.images import LABEL_CANARY, canary_case_dir, canary_label

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "runners" / "python" / "fixtures"


def test_the_canary_is_the_smallest_passing_case(tmp_path: Path) -> None:
    fixtures = tmp_path / "runners" / "python" / "fixtures"
    for case in ("all_pass", "some_fail", "syntax_error"):
        shutil.copytree(FIXTURES / case, fixtures / case)
    shutil.copytree(FIXTURES / "all_pass", fixtures / "a_bigger_pass")
    (fixtures / "a_bigger_pass" / "padding.txt").write_text("x" * 10_000)
    chosen = canary_case_dir("python", tmp_path)
    assert chosen is not None and chosen.name == "all_pass"
    shutil.rmtree(fixtures / "all_pass")
    shutil.rmtree(fixtures / "a_bigger_pass")
    assert canary_case_dir("python", tmp_path) is None  # nothing passes: no canary


def test_the_label_round_trips_into_a_job_of_its_own() -> None:
    label = canary_label("python")
    assert label is not None
    case, job = canary_from_labels({LABEL_CANARY: label}, "python", "host-1") or ("", None)
    assert case == "all_pass" and job is not None
    assert job.id.startswith("canary-python-host-1-") and job.language == "python"
    assert job.command is None and {f.path for f in job.files} >= {"leap.py", "leap_test.py"}
    _, again = canary_from_labels({LABEL_CANARY: label}, "python", "host-1") or ("", None)
    assert again is not None and again.id != job.id  # each run its own id


def test_no_label_is_no_canary_and_a_bad_one_says_so() -> None:
    assert canary_from_labels({}, "python", "h") is None
    with pytest.raises(ValueError, match="unreadable"):
        canary_from_labels({LABEL_CANARY: json.dumps({"case": "x"})}, "python", "h")
    with pytest.raises(ValueError, match="unreadable"):
        canary_from_labels({LABEL_CANARY: "{"}, "python", "h")
