"""How the applications are ordered: which column, which way, held or not.

Pure Python, so the order rules (ties broken by name, reading alphabetically
in both directions) are testable without Qt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from chadthrottle.gui.models.columns import Column

Row = TypeVar("Row")


@dataclass(frozen=True)
class RowOrder:
    column: int = Column.ACTIVITY  # -1: the order rows arrived in
    descending: bool = True
    frozen: bool = False  # the pointer is over the table: rows hold still


def ordered(
    rows: Sequence[Row], key: Callable[[Row], Any], name: Callable[[Row], str], descending: bool
) -> list[Row]:
    """Rows by key; equal keys (idle applications) by name, A to Z either way."""
    by_name = sorted(rows, key=name)
    by_name.sort(key=key, reverse=descending)  # stable: ties keep the name order
    return by_name


def runs(rows: Iterable[int]) -> Iterable[tuple[int, int]]:
    """Sorted row numbers as (first, last) runs of consecutive rows."""
    start = previous = None
    for row in sorted(rows):
        if start is None:
            start = previous = row
        elif row == previous + 1:  # type: ignore[operator]
            previous = row
        else:
            yield (start, previous)  # type: ignore[misc]
            start = previous = row
    if start is not None:
        yield (start, previous)  # type: ignore[misc]
