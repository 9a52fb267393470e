"""Results are cut to fit one SQS message, least important parts first. Pure."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sandboxd.fit import SQS_MAX_BYTES, fit, fit_json, size
from sandboxd.models import Result, TestResult, Verdict

_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=3000)
_tests = st.lists(
    st.builds(
        TestResult,
        name=st.text(max_size=80),
        status=st.sampled_from(["pass", "fail", "error"]),
        message=st.none() | _text,
        output=st.none() | st.text(max_size=520),
        test_code=st.none() | st.text(max_size=500),
    ),
    max_size=200,
)
_results = st.builds(
    Result,
    id=st.text(alphabet="abcdef0123456789-", min_size=1, max_size=128),
    status=st.sampled_from(list(Verdict)),
    message=st.text(max_size=500),
    stdout=st.text(max_size=70_000),
    stderr=st.text(max_size=70_000),
    tests=_tests,
    metadata=st.none() | st.dictionaries(st.text(max_size=10), st.text(max_size=2000), max_size=5),
)


@settings(max_examples=60, deadline=None)
@given(result=_results, max_bytes=st.integers(8_000, 300_000))
def test_fit_always_fits_and_keeps_what_identifies_the_result(
    result: Result, max_bytes: int
) -> None:
    cut = fit(result, max_bytes)
    assert size(cut) <= max_bytes
    assert fit_json(result, max_bytes) == cut.to_json()  # the body the daemon sends
    assert (cut.id, cut.status, cut.attempt, cut.timing) == (
        result.id,
        result.status,
        result.attempt,
        result.timing,
    )
    if size(result) <= max_bytes:
        assert cut == result
    if cut.stdout != result.stdout:
        assert cut.stdout_truncated and result.stdout.startswith(cut.stdout)
    if cut.stderr != result.stderr:
        assert cut.stderr_truncated and result.stderr.startswith(cut.stderr)
    assert [t.name for t in cut.tests] == [t.name for t in result.tests][: len(cut.tests)]
    if len(cut.tests) < len(result.tests):
        assert "more tests not shown" in cut.message


def test_escaped_control_characters_are_what_gets_cut() -> None:
    """64 KiB of \\x01 is 384 KiB of JSON: the output is cut, the tests stay."""
    tests = [TestResult(name=f"t{i}", status="pass") for i in range(50)]
    result = Result(id="j", status=Verdict.PASSED, stdout="\x01" * 65536, tests=tests)
    assert size(result) > SQS_MAX_BYTES
    cut = fit(result)
    assert size(cut) < SQS_MAX_BYTES
    assert cut.stdout_truncated and len(cut.stdout) >= 16_000
    assert cut.tests == tests
