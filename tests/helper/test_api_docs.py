"""docs/helper.md's table of methods says what contract.METHODS declares:
each method, its argument names, signatures and polkit action."""

from __future__ import annotations

import re
from pathlib import Path

from chadthrottle.contract import METHODS, Action, LimitAuthorization

HELPER_DOC = Path(__file__).resolve().parents[2] / "docs" / "helper.md"
_ROW = re.compile(r"^\| `(\w+)\(([^)]*)\)` \|([^|]*)\|([^|]*)\|([^|]*)\|$")


def _signature(cell: str) -> str:
    found = re.search(r"`([^`]*)`", cell)
    return found.group(1) if found else ""


def _table() -> dict[str, tuple[list[str], str, str, str]]:
    rows = {}
    for line in HELPER_DOC.read_text("utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            name, args, in_cell, out_cell, action = match.groups()
            names = [arg.strip() for arg in args.split(",") if arg.strip()]
            rows[name] = (names, _signature(in_cell), _signature(out_cell), action.strip())
    return rows


def test_the_table_lists_every_method_as_declared() -> None:
    table = _table()
    assert sorted(table) == sorted(METHODS)
    for name, spec in METHODS.items():
        names, in_signature, out_signature, action = table[name]
        assert names == [arg.name for arg in spec.in_args], name
        assert (in_signature, out_signature) == (spec.in_signature, spec.out_signature), name
        if isinstance(spec.action, Action):
            assert action.startswith(f"`{spec.action.value.rsplit('.', 1)[1]}`"), name
        else:
            assert spec.action is LimitAuthorization.BY_SCOPE
            assert "`limit-own`" in action and "`limit-any`" in action, name
