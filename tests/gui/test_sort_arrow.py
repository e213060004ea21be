"""The list's sort order is said honestly: seen under Xvfb, the busiest-first
list read "Activity ▲" (QHeaderView hands a descending sort to the style as
SortUp, which Fusion draws pointing up), as if the quietest came first. The
arrow points down for busiest first, up for the other way, and the title's
tooltip says the order in words. Real widgets, offscreen."""

from __future__ import annotations

from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.views.main_window import MainWindow
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage


def _arrow_rows(window: MainWindow, column: Column) -> list[int]:
    """How many dark pixels each line of the sorted title's arrow has, top down:
    the arrow stands at the title's right end, clear of the centred title."""
    header = window.table.overall
    left = header.sectionViewportPosition(column)
    right = left + header.sectionSize(column) - 1
    image = header.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    background = QColor(image.pixel(right - 2, header.title_height() - 3)).lightness()
    rows = []
    for y in range(1, header.title_height() - 1):
        dark = sum(abs(QColor(image.pixel(x, y)).lightness() - background) > 60
                   for x in range(right - 18, right - 1))  # fmt: skip
        rows.append(dark)
    return [count for count in rows if count]


def test_the_busiest_first_arrow_points_down_and_the_tooltip_says_the_order(
    qtbot, window: MainWindow
) -> None:  # type: ignore[no-untyped-def]
    table = window.table
    assert table.model().sortOrder() == Qt.SortOrder.DescendingOrder  # busiest first
    assert table.model().sortColumn() == Column.ACTIVITY
    rows = _arrow_rows(window, Column.ACTIVITY)
    assert len(rows) >= 2, rows
    assert rows[0] > rows[-1], f"the arrow points up over a busiest-first list: {rows}"
    tip = table.model().headerData(
        Column.ACTIVITY, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole
    )
    assert tip == "Sorted by this column, busiest first (▼). Click for quietest first."
    down_tip = table.model().headerData(
        Column.DOWN, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole
    )
    assert down_tip == "Click to sort by this column, busiest first."

    table.sortByColumn(Column.ACTIVITY, Qt.SortOrder.AscendingOrder)  # the title clicked again
    qtbot.waitUntil(lambda: table.model().sortOrder() == Qt.SortOrder.AscendingOrder, timeout=1000)
    rows = _arrow_rows(window, Column.ACTIVITY)
    assert rows[0] < rows[-1], f"quietest first drawn pointing down: {rows}"
    tip = table.model().headerData(
        Column.ACTIVITY, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole
    )
    assert tip == "Sorted by this column, quietest first (▲). Click for busiest first."
    table.sortByColumn(Column.NAME, Qt.SortOrder.AscendingOrder)
    tip = table.model().headerData(
        Column.NAME, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole
    )
    assert tip == "Sorted by this column, A to Z (▲). Click for Z to A."
