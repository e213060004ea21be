"""json.dumps(rows, indent=2, ensure_ascii=True) for the CLI's --json lists of
flat records, without the json package.

`list --json` is what scripts and status bars poll. Importing json (its decoder
and scanner too) and its encoder, which with indent= is the pure-Python one,
cost 1.5-2.5 ms of a 25 ms call (issue 19). A record's values are strings,
numbers, booleans and lists of those, which this writes as json does, character
for character (tests/cli/test_json_text.py compares them); anything else is left
to json itself.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's (see cli/ctl.py)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# json's ESCAPE_DCT for the characters it writes with a short escape
_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_INFINITY = float("inf")


class _NotFlat(Exception):
    """A value json.dumps must write (a nested mapping, an unknown type)."""


def _char(char: str) -> str:
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    if 0x20 <= code < 0x7F:
        return char
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as json writes one
    return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"


def _string(text: str) -> str:
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'  # the common case: nothing to escape
    return '"' + "".join(_char(char) for char in text) + '"'


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return _string(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (_INFINITY, -_INFINITY):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    raise _NotFlat


def _value(value: object) -> str:
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        return "[\n      " + ",\n      ".join(_scalar(item) for item in value) + "\n    ]"
    return _scalar(value)


def _row(row: Mapping[str, object]) -> str:
    if not row:
        return "{}"
    fields = ",\n    ".join(f"{_string(key)}: {_value(value)}" for key, value in row.items())
    return "{\n    " + fields + "\n  }"


def dumps_rows(rows: Sequence[Mapping[str, object]]) -> str:
    """json.dumps(list(rows), indent=2, ensure_ascii=True), the same text."""
    if not rows:
        return "[]"
    try:
        if all(type(key) is str for row in rows for key in row):
            return "[\n  " + ",\n  ".join(_row(row) for row in rows) + "\n]"
    except _NotFlat:
        pass
    import json

    return json.dumps(list(rows), indent=2, ensure_ascii=True)
