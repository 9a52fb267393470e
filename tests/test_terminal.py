"""Escaping untrusted text for the terminal: pure, no engine."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from sandboxd.terminal import StreamEscaper, escape, escape_line

_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def _dangerous(ch: str) -> bool:
    code = ord(ch)
    return (code < 0x20 and ch not in "\n\t") or 0x7F <= code <= 0x9F or ch in _BIDI


def test_known_sequences_read_as_escapes() -> None:
    """OSC 52, a screen clear, CR, BEL, NUL, DEL, a C1 CSI and an RLO are spelled out."""
    text = "\x1b]52;c;aGk=\x07\x1b[2J\r\x00\x7f\x9b\u202eok"
    assert escape(text) == "\\x1b]52;c;aGk=\\x07\\x1b[2J\\r\\x00\\x7f\\u009b\\u202eok"


def test_layout_and_ordinary_text_are_kept() -> None:
    """Newlines, tabs, accents, CJK and emoji pass through unchanged."""
    text = "a\tb\nçé 漢字 🙂 \\x1b stays literal\n"
    assert escape(text) == text


def test_escape_line_keeps_one_line() -> None:
    """escape_line also spells out newlines and tabs, so an error stays one line."""
    assert escape_line("a\nb\tc\x1b") == "a\\nb\\tc\\x1b"


@given(st.text())
def test_nothing_that_drives_a_terminal_survives(text: str) -> None:
    """Whatever the text, the escaped form holds no control character but \\n and \\t."""
    assert not any(_dangerous(ch) for ch in escape(text))


@given(st.text())
def test_escape_line_output_is_one_line_of_printables(text: str) -> None:
    """escape_line's output has no character below 0x20 at all, nor DEL, C1 or bidi."""
    out = escape_line(text)
    assert not any(_dangerous(ch) or ch in "\n\t" for ch in out)


@given(st.text(), st.data())
def test_stream_split_anywhere_decodes_as_a_whole(text: str, data: st.DataObject) -> None:
    """Chunks cut anywhere, even inside a character, give what one chunk would."""
    raw = text.encode("utf-8")
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=5)))
    bounds = [0, *cuts, len(raw)]
    escaper = StreamEscaper()
    out = "".join(escaper.feed(raw[a:b]) for a, b in itertools.pairwise(bounds))
    assert out + escaper.flush() == escape(text)


def test_stream_split_character_is_not_two_replacements() -> None:
    """A UTF-8 character split across two chunks is shown once, not as two U+FFFD."""
    escaper = StreamEscaper()
    snowman = "☃".encode()
    assert escaper.feed(snowman[:1]) + escaper.feed(snowman[1:]) == "☃"


def test_stream_flush_shows_an_incomplete_tail() -> None:
    """Bytes of an unfinished character at the end are shown as one U+FFFD on flush."""
    escaper = StreamEscaper()
    assert escaper.feed(b"ok\xe2\x98") == "ok"
    assert escaper.flush() == "\ufffd"


@given(st.binary())
def test_stream_of_any_bytes_is_safe(raw: bytes) -> None:
    """Arbitrary bytes, invalid UTF-8 included, come out with no ESC or other control."""
    escaper = StreamEscaper()
    out = escaper.feed(raw) + escaper.flush()
    assert not any(_dangerous(ch) for ch in out)
