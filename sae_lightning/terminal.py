"""Text from a run's store or labels, made safe to print to a terminal: control characters (the
ESC of ANSI/OSC sequences, carriage returns, C1 codes) and bidirectional overrides are shown as
visible escapes, so a text cannot clear the screen, set the window title or reorder what follows."""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: object) -> str:
    """`text` on one line, every unsafe character written as its escape (\\x1b, \\n, \\u202e)."""

    def escape(m: re.Match) -> str:
        ch = m.group()
        return _NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")

    return _UNSAFE.sub(escape, str(text))
