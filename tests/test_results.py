from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandboxd.models import Result, Verdict
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
    try:
        report = parse_report(raw)
    except ReportError:
        return
    # Whatever was accepted must also go out as a result document.
    Result(id="x", status=Verdict.FAILED, tests=list(report.tests)).to_json()


def test_lone_surrogates_in_a_forged_results_file_are_replaced() -> None:
    """results.json is written where learner code can reach it; whatever it says, the
    result must still serialise."""
    test = b'{"name": "\\ud800x", "status": "fail", "message": "\\udfff"}'
    raw = b'{"version": 3, "status": "fail", "tests": [' + test + b"]}"
    report = parse_report(raw)
    assert report.tests[0].name == "?x"
    assert report.tests[0].message == "?"
