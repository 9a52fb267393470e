from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandboxd.results import MAX_TEST_OUTPUT_CHARS, ReportError, parse_report


def test_parses_v3_document() -> None:
    """A runner's v3 document becomes a report with tests in order."""
    doc = {
        "version": 3,
        "status": "fail",
        "tests": [
            {"name": "a", "status": "pass", "test_code": "assert 1"},
            {"name": "b", "status": "fail", "message": "boom", "output": "x" * 900, "task_id": 2},
        ],
    }
    report = parse_report(json.dumps(doc).encode())
    assert report.status == "fail"
    assert [t.name for t in report.tests] == ["a", "b"]
    assert report.tests[1].message == "boom"
    assert report.tests[1].task_id == 2
    assert len(report.tests[1].output or "") == MAX_TEST_OUTPUT_CHARS


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"nope",
        b"[]",
        b'{"status": "maybe"}',
        b'{"status": "pass", "tests": {}}',
        b'{"status": "pass", "tests": [1]}',
        b'{"status": "pass", "tests": [{"status": "pass"}]}',
        b'{"status": "pass", "tests": [{"name": "x", "status": "meh"}]}',
    ],
)
def test_invalid_documents_raise_report_error(raw: bytes) -> None:
    """Anything not a valid v3 document is a ReportError, never a crash."""
    with pytest.raises(ReportError):
        parse_report(raw)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_report_error(raw: bytes) -> None:
    """The results file is learner-influenced: arbitrary bytes never raise anything else."""
    with contextlib.suppress(ReportError):
        parse_report(raw)
