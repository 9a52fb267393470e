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


def test_a_report_nested_two_hundred_thousand_deep_is_a_report_error() -> None:
    """json's recursion limit is the file's fault, not a crash of ours (a RecursionError
    once escaped parse_report, and `sandboxd run` died with a traceback)."""
    for raw in (b"[" * 200_000 + b"]" * 200_000, b'{"status": "pass", "tests": ' + b"[" * 200_000):
        with pytest.raises(ReportError, match=r"nested too deeply|not valid JSON"):
            parse_report(raw)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["name", "status", "tests", "message", "task_id",
                                      "output", "test_code", "x"]), children, max_size=6),
    max_leaves=30,
)  # fmt: skip


@given(
    st.fixed_dictionaries(
        {"status": st.sampled_from(["pass", "fail", "error"]), "tests": st.lists(JSON)}
    )
    | JSON
)
def test_any_json_shape_parses_or_raises_report_error(doc: object) -> None:
    """Whatever shape a forged file has, the outcome is a report or a ReportError."""
    try:
        report = parse_report(json.dumps(doc).encode())
    except ReportError:
        return
    Result(id="x", status=Verdict.FAILED, tests=list(report.tests)).to_json()


def test_oversized_fields_are_cut() -> None:
    """A 5 MB test name and a 1 MB message are cut to their limits, not refused."""
    test = {"name": "n" * 5_000_000, "status": "pass", "message": "m" * 1_000_000}
    report = parse_report(json.dumps({"status": "pass", "tests": [test]}).encode())
    (parsed,) = report.tests
    assert len(parsed.name) == 500 and parsed.name.endswith("…")
    assert parsed.message is not None and len(parsed.message) == 4000
