"""Make a result fit in one SQS message. Pure.

SQS takes at most 256 KiB per message. A result carries up to 64 KiB each of stdout and
stderr, which JSON escaping can multiply by six, and one entry per test (a thousand
parametrised tests with messages add up). A result that does not fit is cut, least
important first, and says so: output (flagged truncated), then per-test output, test
code and long messages, then tests beyond the first ones (counted in the message), and
last the echoed metadata.
"""

from __future__ import annotations

from collections.abc import Callable

from sandboxd.models import Result, TestResult

SQS_MAX_BYTES = 262_144
# Room for the message envelope; a result is sent as the whole message body.
DEFAULT_MAX_BYTES = SQS_MAX_BYTES - 2048
SHORT_MESSAGE = 300


def size(result: Result) -> int:
    return len(result.to_json().encode("utf-8"))


def approx_size(result: Result) -> int:
    """Roughly its JSON's length, without serialising it: its texts and a little per test."""
    n = len(result.message) + len(result.stdout) + len(result.stderr) + 1024
    for t in result.tests:
        n += 64 + len(t.name) + len(t.message or "") + len(t.output or "") + len(t.test_code or "")
    return n


def fit_json(result: Result, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The JSON body of `result`, cut (see `fit`) when it would not fit in `max_bytes`.
    A result that fits, nearly every one, is serialised exactly once."""
    body = result.to_json()
    if len(body.encode("utf-8")) <= max_bytes:
        return body
    return fit(result, max_bytes).to_json()


def fit(result: Result, max_bytes: int = DEFAULT_MAX_BYTES) -> Result:
    """`result` if it fits in `max_bytes` of JSON, else a cut copy that does."""
    if size(result) <= max_bytes:
        return result
    for step in _STEPS:
        result = step(result, max_bytes)
        if size(result) <= max_bytes:
            return result
    raise ValueError(f"a result cannot be made smaller than {size(result)} bytes")


def _cut_output(result: Result, max_bytes: int) -> Result:
    """Shorten stdout and stderr, the longer first, until the result fits."""
    while size(result) > max_bytes and (result.stdout or result.stderr):
        if len(result.stdout) >= len(result.stderr):
            result = result.model_copy(
                update={
                    "stdout": result.stdout[: len(result.stdout) // 2],
                    "stdout_truncated": True,
                }
            )
        else:
            result = result.model_copy(
                update={
                    "stderr": result.stderr[: len(result.stderr) // 2],
                    "stderr_truncated": True,
                }
            )
    return result


def _each_test(change: Callable[[TestResult], TestResult]) -> Callable[[Result, int], Result]:
    def step(result: Result, max_bytes: int) -> Result:
        return result.model_copy(update={"tests": [change(t) for t in result.tests]})

    return step


def _short(text: str | None) -> str | None:
    if text is None or len(text) <= SHORT_MESSAGE:
        return text
    return text[: SHORT_MESSAGE - 1] + "…"


def _drop_tests(result: Result, max_bytes: int) -> Result:
    """Keep as many tests as fit (binary search), and say how many were left out."""
    tests = result.tests
    lo, hi = 0, len(tests)

    def keeping(n: int) -> Result:
        left_out = len(tests) - n
        note = f" ({left_out} more tests not shown: the result was too large.)"
        return result.model_copy(update={"tests": tests[:n], "message": result.message + note})

    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size(keeping(mid)) <= max_bytes:
            lo = mid
        else:
            hi = mid - 1
    return keeping(lo) if lo < len(tests) else result


def _drop_metadata(result: Result, max_bytes: int) -> Result:
    note = " (The job's metadata was too large to echo back.)"
    return result.model_copy(update={"metadata": None, "message": result.message + note})


def _short_message(result: Result, max_bytes: int) -> Result:
    return result.model_copy(update={"message": result.message[:2000]})


_STEPS: list[Callable[[Result, int], Result]] = [
    _cut_output,
    _each_test(lambda t: t.model_copy(update={"output": None})),
    _each_test(lambda t: t.model_copy(update={"test_code": None})),
    _each_test(lambda t: t.model_copy(update={"message": _short(t.message)})),
    _drop_tests,
    _drop_metadata,
    _short_message,
]
