"""cli/json_text.py writes what json.dumps(rows, indent=2, ensure_ascii=True)
writes, character for character, for every flat row, and leaves the rest to json."""

from __future__ import annotations

import json

from chadthrottle.cli.json_text import dumps_rows
from hypothesis import given, settings
from hypothesis import strategies as st

_SCALARS = (
    st.text(
        st.characters(exclude_categories=())
    )  # every code point: controls, quotes, backslashes, lone surrogates, astral
    | st.integers()
    | st.floats()  # nan, infinities, -0.0
    | st.booleans()
    | st.none()
)
_VALUES = _SCALARS | st.lists(_SCALARS, max_size=4) | st.tuples(st.integers(), st.text())
_ROWS = st.lists(st.dictionaries(st.text(), _VALUES, max_size=6), max_size=4)


@settings(max_examples=200)
@given(_ROWS)
def test_flat_rows_are_written_as_json_writes_them(rows: list[dict[str, object]]) -> None:
    assert dumps_rows(rows) == json.dumps(rows, indent=2, ensure_ascii=True)


def test_what_is_not_flat_is_json_s_to_write() -> None:
    for rows in (
        [{"a": {"b": 1}}],
        [{"a": [[1]]}],
        [{1: "not a string key"}],
        [{"a": 1}, {"b": [{"c": None}]}],
    ):
        assert dumps_rows(rows) == json.dumps(rows, indent=2, ensure_ascii=True)


def test_a_listed_application_is_written_as_json_writes_it() -> None:
    row = {"id": "app:org.example.Éditeur\u202e\n", "uids": [1000], "pids": [], "down_bps": 1.5e-7,
           "rx_bytes": 2**64 - 1, "running": True, "priority": "normal", "name": '"\\\x7f\U0001f600'}  # fmt: skip
    assert dumps_rows([row, row]) == json.dumps([row, row], indent=2, ensure_ascii=True)
