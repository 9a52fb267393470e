"""Hostile exercises written on demand (a conftest.py kept under tests/ would act on our own
test run): each is a directory `sandboxd run` or `sandboxd submit` can be pointed at."""

from __future__ import annotations

from pathlib import Path

OSC52_CLEAR = "\x1b]52;c;aGk=\x07\x1b[2J"  # write the clipboard, then clear the screen
ESCAPED_OSC52_CLEAR = "\\x1b]52;c;aGk=\\x07\\x1b[2J"
TEST_NAME = "named \x1b]0;title\x07 here"  # sets the terminal's window title
ESCAPED_TEST_NAME = "named \\x1b]0;title\\x07 here"
MESSAGE = "AssertionError: boom \x1b[31m red \u202e"  # a colour and a right-to-left override
ESCAPED_MESSAGE = "AssertionError: boom \\x1b[31m red \\u202e"


def terminal_escapes(directory: Path) -> Path:
    """A failing pytest exercise whose output, test name and assertion message carry
    control sequences: the output goes straight to the stream, past pytest's capture."""
    directory.mkdir()
    (directory / "conftest.py").write_text(
        "def pytest_collection_modifyitems(items):\n"
        "    for item in items:\n"
        f"        item.originalname = {'test_' + TEST_NAME!r}\n"
    )
    (directory / "hostile_test.py").write_text(
        "def test_hostile(capsys):\n"
        "    with capsys.disabled():\n"
        f"        print({OSC52_CLEAR!r}, flush=True)\n"
        f"    assert False, {MESSAGE.removeprefix('AssertionError: ')!r}\n"
    )
    return directory
