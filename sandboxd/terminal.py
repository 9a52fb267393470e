"""Making untrusted text safe to show on an author's terminal.

A learner's output, test names and messages may carry control sequences: move the
cursor, clear the screen, set the window title, write the clipboard (OSC 52). Shown raw,
they act on the author's terminal; escaped, they read as what they are. Pure, no I/O.
"""

from __future__ import annotations

import codecs

# Newline and tab lay text out and cannot drive a terminal; every other C0 control, DEL
# and the C1 controls (0x9b alone is a CSI to many terminals) can.
_CONTROLS = [*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0)]
# Bidirectional embeddings, overrides and isolates reorder what is displayed, so a line
# can read differently from what it holds ("Trojan Source").
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_SHORT = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _escape_of(code: int) -> str:
    if code in _SHORT:
        return _SHORT[code]
    # \u for everything above ASCII, so C1 0x9b never reads like a byte of UTF-8.
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


_TABLE = {code: _escape_of(code) for code in (*_CONTROLS, *_BIDI)}
_ONE_LINE_TABLE = {**_TABLE, 0x09: _escape_of(0x09), 0x0A: _escape_of(0x0A)}


def escape(text: str) -> str:
    """`text` with every character that can drive a terminal written as an escape."""
    return text.translate(_TABLE)


def escape_line(text: str) -> str:
    """Like `escape`, and newlines and tabs too: the text stays on one line."""
    return text.translate(_ONE_LINE_TABLE)


class StreamEscaper:
    """Escapes a byte stream chunk by chunk without breaking a character split across
    chunks (decoding each chunk alone would show one as two replacement characters)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, data: bytes) -> str:
        return escape(self._decoder.decode(data))

    def flush(self) -> str:
        """What is left at the end: an incomplete character becomes U+FFFD."""
        return escape(self._decoder.decode(b"", final=True))
