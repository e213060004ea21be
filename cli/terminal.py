"""Text from the helper made safe to print on a terminal.

Names in the helper's replies come from the kernel and from files other users
can write. The helper escapes control characters (docs/helper.md, "Names from
the kernel"), but chadthrottle-ctl does not rely on that: a raw escape
sequence in a table cell could rewrite the administrator's terminal, a raw
newline could forge a row, and bidirectional overrides could reorder what is
shown. Such characters are printed as \\xNN (\\uNNNN above U+00FF), so an id the
helper escaped is printed exactly as it is and can be pasted back.
"""

from __future__ import annotations

import unicodedata

# Characters a terminal acts on or that move text around: controls (C0, DEL,
# C1), lone surrogates, line and paragraph separators, bidirectional controls.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def _shown(char: str) -> str:
    if unicodedata.category(char) not in _UNSAFE_CATEGORIES and char not in _BIDI_CONTROLS:
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def for_terminal(text: str) -> str:
    """text with every character a terminal could act on shown as an escape."""
    if text.isprintable() and text.isascii():
        return text  # the common case, at no cost
    return "".join(_shown(char) for char in text)
