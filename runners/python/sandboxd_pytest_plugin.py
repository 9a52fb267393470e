"""The pytest side of sandboxd's Python runner.

`run` loads this module into its child pytest process (`-p sandboxd_pytest_plugin`, or
imported ahead by a warm runner). It writes one JSON line per event to the runner's
events pipe (fd $SANDBOXD_EVENTS_FD, or the one `use_events_fd` names) and never holds
results back: whatever happens to the process later (os._exit, a segfault, a kill), the
runner still has every test that finished. The runner turns the lines into the results
(see README.md for the line format).

Runs under Debian trixie's pytest 8.3 (the image) and bookworm's 7.2 with pluggy 1.0 (the
host's tests), so old-style `hookwrapper=True`. Only public pytest API is used.

PYTEST_DONT_REWRITE: the warm runner imports this module before pytest starts; without
this marker pytest would warn, in the learner's output, that it cannot rewrite it.
"""

from __future__ import annotations

import inspect
import io
import json
import json.encoder
import os
import re
import stat
import sys
import textwrap
import threading
import time
import tokenize
import traceback
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import pytest

EVENTS_ENV = "SANDBOXD_EVENTS_FD"
NAME_LIMIT = 500  # a parametrisation id can be megabytes long
MESSAGE_LIMIT = 1000
TOP_MESSAGE_LIMIT = 2000
TEST_CODE_LIMIT = 4000
OUTPUT_LIMIT = 500
OUTPUT_TRUNCATED = "\n...\nOutput was truncated. Please limit to 500 chars."
MAX_FRAMES = 5
SPILL_AFTER = 64 * 1024
SPILL_POLL_S = 0.025

# Popped at import (before any learner code runs) so tests never see it.
_EVENTS_FD = os.environ.pop(EVENTS_ENV, None)
# A JSON string literal, non-ASCII kept (the C implementation json.dumps uses).
_json_string = json.encoder.encode_basestring

# pytest's assertion explanations point at command-line flags the learner cannot pass.
_FLAG_HINTS = re.compile(
    r", use -v to show$|, use -vv to show$|, use '-vv' to show$|^Use -v to get more diff\n?",
    re.MULTILINE,
)
# pytest ascii-escapes parametrisation ids (`café` -> `caf\xe9`); names should read as written.
_ID_ESCAPE = re.compile(r"\\(\\|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})")


def _json_line(event: dict[str, Any]) -> bytes:
    """One event as a JSON line. Hand-made (keys are ours, values mostly strings): a
    third of json.dumps' cost, paid twice per test."""
    parts = []
    for key, value in event.items():
        text = _json_string(value) if isinstance(value, str) else json.dumps(value)
        parts.append(f'"{key}":{text}')
    # "replace" turns lone surrogates (possible in learner strings) into "?".
    return ("{" + ",".join(parts) + "}\n").encode("utf-8", "replace")


class _Events:
    """Append-only JSON-lines writer to the runner's events pipe.

    Every line reaches the pipe before anything else can happen to the process: a
    test's result is held only until the next test starts (one write(2) for both),
    which is the next moment learner code runs; the last test's result goes at once."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._held = b""

    def emit(self, event: dict[str, Any], *, hold: bool = False) -> None:
        data = self._held + _json_line(event)
        if hold:
            self._held = data
            return
        self._held = b""
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]


def _events_from(value: str | None) -> _Events | None:
    return _Events(int(value)) if value and value.isdigit() else None


_events = _events_from(_EVENTS_FD)


def use_events_fd(fd: int) -> None:
    """The warm runner's child: events go to `fd` (this module was imported before)."""
    global _events
    _events = _Events(fd)


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _humanise(function_name: str) -> str:
    name = function_name[5:] if function_name.startswith("test_") else function_name
    return name.replace("_", " ").strip() or function_name


def _unescape_id(text: str) -> str:
    if "\\" not in text:
        return text

    def decode(match: re.Match[str]) -> str:
        code = match.group(1)
        if code == "\\":
            return match.group(0)
        try:
            char = chr(int(code[1:], 16))
        except ValueError:
            return match.group(0)
        return char if char.isprintable() and not char.isascii() else match.group(0)

    return _ID_ESCAPE.sub(decode, text)


def _header_end(source: str) -> tuple[int, int] | None:
    """(row, col) just past the colon that ends the `def` header."""
    depth = 0
    in_def = False
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.string == "def" and depth == 0:
            in_def = True
        elif tok.type == tokenize.OP:
            if tok.string in ("(", "[", "{"):
                depth += 1
            elif tok.string in (")", "]", "}"):
                depth -= 1
            elif in_def and depth == 0 and tok.string == ":":
                return tok.end
    return None


def function_body(func: Any) -> str | None:
    """The dedented source of a function's body, without decorators and `def` line."""
    try:
        lines, _ = inspect.getsourcelines(func)
        source = textwrap.dedent("".join(lines))
        end = _header_end(source)
    except (OSError, TypeError, SyntaxError, tokenize.TokenError):
        return None
    if end is None:
        return None
    row, col = end
    source_lines = source.splitlines()
    rest = source_lines[row - 1][col:].strip()
    if rest and not rest.startswith("#"):
        return rest  # a one-line body: `def test_x(): assert f() == 1`
    body = textwrap.dedent("\n".join(source_lines[row:])).strip("\n").rstrip()
    return body or None


def _task_id(item: pytest.Item) -> int | None:
    marker = item.get_closest_marker("task")
    if marker is None:
        return None
    value = marker.kwargs.get("taskno", marker.args[0] if marker.args else None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _is_failure(exc: BaseException) -> bool:
    """A failed check (assert, unittest assert*, pytest.fail, pytest.raises) vs. a crash."""
    return isinstance(exc, (AssertionError, pytest.fail.Exception))


def _is_unittest_class(node: pytest.Collector | None) -> bool:
    if not isinstance(node, pytest.Class):
        return False
    unittest = sys.modules.get("unittest")
    return unittest is not None and issubclass(node.obj, unittest.TestCase)


def _definition_order(item: pytest.Item) -> tuple[int, int]:
    """Methods defined in the test file by line number; inherited ones after them."""
    func = getattr(item, "obj", None)
    try:
        code = inspect.unwrap(func).__code__ if callable(func) else None
    except (AttributeError, ValueError):
        code = None
    if code is None:
        return (2, 0)
    in_this_file = code.co_filename == str(item.path)
    return (0 if in_this_file else 1, code.co_firstlineno)


class _TestState:
    __slots__ = ("last", "message", "problem", "sections", "skipped", "status")

    def __init__(self, last: bool) -> None:
        self.last = last  # no test after it: its result is not held back
        self.status = "pass"
        self.message: str | None = None
        self.problem: pytest.TestReport | None = None  # the report of the first problem
        self.sections: list[tuple[str, str]] = []
        self.skipped = False


class Recorder:
    """Turns pytest's hooks into events, one test at a time."""

    def __init__(self, config: pytest.Config, events: _Events) -> None:
        self._events = events
        root = str(config.rootpath)
        roots = {root, os.path.realpath(root)}
        # Longest first, so a real path that extends the given one is replaced whole.
        self._prefixes = tuple(
            sorted((r.rstrip(os.sep) + os.sep for r in roots), key=len, reverse=True)
        )
        self._state: _TestState | None = None
        self._code: dict[Any, str | None] = {}
        self._described_cache: dict[tuple[Any, str], tuple[str, str | None]] = {}
        self._skipped = 0
        self._collect_errors: set[str] = set()

    # -- formatting -------------------------------------------------------------------

    def _relative(self, text: str) -> str:
        for prefix in self._prefixes:
            text = text.replace(prefix, "")
        return text

    def _is_learner_file(self, filename: str) -> bool:
        return filename.startswith(self._prefixes)

    def _frames(self, tb: TracebackType | None) -> list[str]:
        """The last few traceback frames that are in the exercise's files."""
        frames = [f for f in traceback.extract_tb(tb) if self._is_learner_file(f.filename)]
        lines: list[str] = []
        previous: tuple[str, int | None, str] | None = None
        repeats = 0
        for frame in frames:
            key = (frame.filename, frame.lineno, frame.name)
            if key == previous:
                repeats += 1
                continue
            if repeats:
                lines.append(f"  [Previous line repeated {repeats} more times]")
                repeats = 0
            previous = key
            entry = f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}'
            if frame.line:
                entry += f"\n    {frame.line}"
            lines.append(entry)
        if repeats:
            lines.append(f"  [Previous line repeated {repeats} more times]")
        return lines[-MAX_FRAMES:]

    def describe(self, exc: BaseException, *, frames: bool) -> str:
        """The exception line first, then (optionally) where it happened in the learner's files."""
        if isinstance(exc, SyntaxError):
            head = f"{type(exc).__name__}: {exc}"
        else:
            head = "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
        parts = [head]
        if frames:
            parts.extend(self._frames(exc.__traceback__))
            if isinstance(exc, SyntaxError) and exc.filename:
                # Where the parser stopped: `File "x.py", line 3` plus the caret line.
                location = traceback.format_exception_only(type(exc), exc)[:-1]
                parts.append("".join(location).rstrip("\n"))
        return self._relative("\n".join(p for p in parts if p))

    def _test_message(self, exc: BaseException | None, longrepr: object, status: str) -> str:
        if exc is None:
            text = str(longrepr)  # failed without an exception: only a strict xfail does that
            if text.startswith("[XPASS(strict)]"):
                reason = text[len("[XPASS(strict)]") :].strip()
                text = "The test passed, but it is marked as expected to fail (strict xfail)."
                text += f" Reason: {reason}" if reason else ""
        elif isinstance(exc, pytest.FixtureLookupError):
            text = exc.msg or f"fixture '{exc.argname}' not found"
        else:
            text = self.describe(exc, frames=status == "error")
        text = _FLAG_HINTS.sub("", text).rstrip()
        if status == "fail":
            # pytest >= 8 separates the diff with a blank line; 7.2 does not. Keep one shape.
            text = "\n".join(line for line in text.split("\n") if line.strip())
        return _cap(self._relative(text), MESSAGE_LIMIT)

    def _test_code(self, item: pytest.Item) -> str | None:
        func = getattr(item, "obj", None)
        if not callable(func):
            return None
        try:
            func = inspect.unwrap(func)
        except ValueError:
            return None
        func = getattr(func, "__func__", func)
        key = getattr(func, "__code__", None)
        if key is None:
            return None
        if key not in self._code:
            self._code[key] = function_body(func)
        return self._code[key]

    # -- tests ------------------------------------------------------------------------

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        # unittest's loader sorts a TestCase's methods by name; learners expect file order.
        start = 0
        while start < len(items):
            parent = items[start].parent
            end = start + 1
            while end < len(items) and items[end].parent is parent:
                end += 1
            if _is_unittest_class(parent) and end - start > 1:
                items[start:end] = sorted(items[start:end], key=_definition_order)
            start = end

    def _described(self, item: pytest.Item) -> tuple[str, str | None]:
        """(name without the parametrisation id, test code) of an item: the same for
        every parametrisation of a function, so computed once per function."""
        key = (item.parent, getattr(item, "originalname", None) or item.name)
        known = self._described_cache.get(key)
        if known is None:
            classes = [node.name for node in item.listchain() if isinstance(node, pytest.Class)]
            code = self._test_code(item)
            known = (
                " > ".join([*classes, _humanise(key[1])]),
                _cap(code, TEST_CODE_LIMIT) if code else None,
            )
            self._described_cache[key] = known
        return known

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        name, code = self._described(item)
        callspec = getattr(item, "callspec", None)
        if callspec is not None:
            name = f"{name} [{_unescape_id(callspec.id)}]"
        event: dict[str, Any] = {"e": "start", "name": _cap(name, NAME_LIMIT)}
        if code:
            event["test_code"] = code
        task_id = _task_id(item)
        if task_id is not None:
            event["task_id"] = task_id
        self._events.emit(event)
        self._state = _TestState(last=nextitem is None)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        state = self._state
        if state is None:
            return
        state.sections = report.sections  # accumulates over setup, call, teardown
        if report.skipped:
            if not hasattr(report, "wasxfail"):  # an expected failure that failed is a pass
                state.skipped = True
            return
        if report.passed or state.status != "pass":
            return  # keep the first problem: a teardown error after a failure adds nothing
        # Until pytest_exception_interact says which exception it was (if any: a strict
        # xfail that passed fails without one).
        state.status = "fail" if report.when == "call" else "error"
        state.problem = report

    def _test_problem(self, report: pytest.TestReport, exc: BaseException) -> None:
        state = self._state
        if state is None or state.problem is not report:
            return
        if report.when == "call" and _is_failure(exc):
            state.status = "fail"
        else:
            state.status = "error"
        state.message = self._test_message(exc, report.longrepr, state.status)

    def pytest_runtest_logfinish(self, nodeid: str, location: object) -> None:
        state, self._state = self._state, None
        if state is None:
            return
        if state.skipped and state.status == "pass":
            self._skipped += 1
            self._events.emit({"e": "result", "status": "skip"}, hold=not state.last)
            return
        event: dict[str, Any] = {"e": "result", "status": state.status}
        if state.status != "pass":
            message = state.message
            if message is None and state.problem is not None:
                message = self._test_message(None, state.problem.longrepr, state.status)
            event["message"] = message or "(no message)"
        output = ""
        for title, content in state.sections:
            if title.startswith(("Captured stdout", "Captured stderr", "Captured log")):
                if output and not output.endswith("\n"):
                    output += "\n"  # log sections have no final newline
                output += content
        if output:
            if len(output) > OUTPUT_LIMIT:
                output = output[:OUTPUT_LIMIT] + OUTPUT_TRUNCATED
            event["output"] = output
        self._events.emit(event, hold=not state.last)

    # -- the session ------------------------------------------------------------------

    def _error(self, message: str) -> None:
        self._events.emit({"e": "error", "message": _cap(message, TOP_MESSAGE_LIMIT)})

    def pytest_exception_interact(
        self, node: pytest.Item | pytest.Collector, call: pytest.CallInfo[Any], report: Any
    ) -> None:
        if call.excinfo is None:
            return
        exc: BaseException = call.excinfo.value
        if isinstance(report, pytest.TestReport):
            self._test_problem(report, exc)
            return
        if isinstance(exc, pytest.Collector.CollectError) and exc.__cause__ is None:
            message = self._relative(str(exc))  # pytest's own words, e.g. skip misuse
        else:
            message = self.describe(exc.__cause__ or exc, frames=True)
        self._collect_errors.add(report.nodeid)
        self._error(message)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and report.nodeid not in self._collect_errors:
            self._collect_errors.add(report.nodeid)
            self._error(self._relative(str(report.longrepr)))

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        if isinstance(excinfo.value, pytest.Session.Interrupted) and self._collect_errors:
            return  # pytest's own "Interrupted: 1 error during collection": already reported
        exc = excinfo.value
        if isinstance(exc, pytest.exit.Exception):
            self._error(f"The tests were stopped early by pytest.exit(): {exc.msg}")
        else:
            self._error(f"The tests were interrupted ({self.describe(exc, frames=False)}).")

    def pytest_internalerror(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self._error(f"The test runner failed ({self.describe(excinfo.value, frames=False)}).")

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._events.emit({"e": "done", "exitstatus": int(exitstatus), "skipped": self._skipped})


def _conftest_cause(exc: BaseException) -> BaseException:
    for candidate in (
        getattr(exc, "cause", None),  # pytest >= 8.1
        getattr(exc, "excinfo", (None, None))[1],  # pytest 7: ConftestImportFailure.excinfo
        exc.__cause__,
    ):
        if isinstance(candidate, BaseException):
            return candidate
    return exc


class _Spill:
    """Passes what a test writes past SPILL_AFTER bytes of pytest's capture file on to the
    real stdout or stderr, where the daemon counts it against the job's output limit.

    pytest captures a test's output (fd 1 and 2) into a temporary file in /tmp: left
    alone, a test printing in a loop fills the disk and fails with ENOSPC instead of
    being stopped at the output limit. A test's first SPILL_AFTER bytes stay captured
    exactly as pytest does it (its `output` in the results); beyond that the output goes
    out as it comes, read from the capture file by one thread that looks every
    SPILL_POLL_S. The capture file is told from anything else on fd 1/2 by being a
    regular file with no name (pytest's is unlinked at creation).
    """

    def __init__(self) -> None:
        self._real: dict[int, int] = {}
        self._sent = {1: 0, 2: 0}
        self._lock = threading.Lock()

    def keep_real_streams(self) -> None:
        """Before pytest's capture starts: our own copies of the real fd 1 and 2."""
        for fd in (1, 2):
            try:
                self._real[fd] = os.dup(fd)  # not inherited by the tests' children
            except OSError:
                continue

    def start(self) -> None:
        if self._real:
            threading.Thread(target=self._run, name="sandboxd-spill", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(SPILL_POLL_S)
            self.pass_on()

    def pass_on(self) -> None:
        """Pass on what is due now (the thread's look)."""
        with self._lock:
            for fd, real in self._real.items():
                try:
                    self._pass_on(fd, real)
                except OSError:
                    continue

    def pass_on_last(self) -> None:
        """As a test's call ends, still captured: its last bytes count too. Called for
        every test, so the usual case (little output) costs one fstat per stream."""
        for fd in self._real:
            try:
                if os.fstat(fd).st_size > SPILL_AFTER:
                    self.pass_on()
                    return
            except OSError:
                continue

    def _pass_on(self, fd: int, real: int) -> None:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 0:
            self._sent[fd] = 0  # not capturing now: the next phase starts from nothing
            return
        sent = self._sent[fd]
        if st.st_size < sent:  # pytest read and emptied it between two looks
            sent = 0
        start = max(sent, SPILL_AFTER)
        while start < st.st_size:
            data = os.pread(fd, min(st.st_size - start, 1 << 20), start)
            if not data:
                break
            view = memoryview(data)
            while view:
                view = view[os.write(real, view) :]
            start += len(data)
        self._sent[fd] = max(sent, start)


_spill = _Spill()


@pytest.hookimpl(trylast=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    # After the test function returned (trylast), still inside the capture plugin's
    # wrapper: the call's last bytes are passed on too. A plain hook, not a wrapper, for
    # its cost per test; a call that raised, and set-up and teardown, are left to the
    # thread (within SPILL_POLL_S).
    _spill.pass_on_last()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Iterable[None]:
    # tryfirst: this runs before the capture plugin's own wrapper starts capturing.
    if _events is not None and early_config.known_args_namespace.capture == "fd":
        _spill.keep_real_streams()
    # A broken conftest.py stops pytest before pytest_configure: report it from here.
    outcome: Any = yield
    if outcome.excinfo is not None and _events is not None:
        exc = _conftest_cause(outcome.excinfo[1])
        recorder = Recorder(early_config, _events)
        recorder._error(recorder.describe(exc, frames=True))


def pytest_configure(config: pytest.Config) -> None:
    _spill.start()
    config.addinivalue_line("markers", "task(taskno): the exercise task this test belongs to")
    if _events is not None and not config.pluginmanager.has_plugin("sandboxd-recorder"):
        config.pluginmanager.register(Recorder(config, _events), "sandboxd-recorder")
