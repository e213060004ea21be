"""The list's sort order is said honestly: seen under Xvfb, the busiest-first
list read "Activity ▲" (QHeaderView hands a descending sort to the style as
SortUp, which Fusion draws pointing up), as if the quietest came first. The
arrow points down for busiest first, up for the other way, and the title's
tooltip says the order in words. Real widgets, offscreen."""

from __future__ import annotations

from itertools import pairwise

from chadthrottle.contract import ConnectionInfo
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.models.connection_table import ConnColumn
from chadthrottle.gui.models.usage_periods import UsagePeriod
from chadthrottle.gui.models.usage_table import UsageColumn
from chadthrottle.gui.views.main_window import MainWindow
from chadthrottle.gui.views.usage_dialog import UsageDialog
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QHeaderView, QStyle

from tests.gui.fit_probe import sorted_title_option


def _arrow_rows(header: QHeaderView, column: int, height: int) -> list[int]:
    """How many dark pixels each line of the sorted title's arrow has, top down:
    the arrow stands at the title's right end, clear of the centred title."""
    left = header.sectionViewportPosition(column)
    right = left + header.sectionSize(column) - 1
    image = header.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    background = QColor(image.pixel(right - 2, height - 3)).lightness()
    rows = []
    for y in range(1, height - 1):
        dark = sum(abs(QColor(image.pixel(x, y)).lightness() - background) > 60
                   for x in range(right - 18, right - 1))  # fmt: skip
        rows.append(dark)
    return [count for count in rows if count]


def _points_down(header: QHeaderView, column: int, height: int) -> bool:
    rows = _arrow_rows(header, column, height)
    assert len(rows) >= 2, rows  # an arrow is drawn
    assert rows[0] != rows[-1], rows
    return rows[0] > rows[-1]


def test_the_busiest_first_arrow_points_down_and_the_tooltip_says_the_order(
    qtbot, window: MainWindow
) -> None:  # type: ignore[no-untyped-def]
    table = window.table
    assert table.model().sortOrder() == Qt.SortOrder.DescendingOrder  # busiest first
    assert table.model().sortColumn() == Column.ACTIVITY
    header = window.table.overall
    assert _points_down(header, Column.ACTIVITY, header.title_height())  # was up
    tip = table.model().headerData(
        Column.ACTIVITY, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole
    )
    assert tip == (
        "Sorted by this column, busiest first (▼). Click for quietest first."
        " The rows hold still while the pointer is over the list."
    )
    down_tip = table.model().headerData(
        Column.DOWN, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole
    )
    assert down_tip == "Click to sort by this column, busiest first."

    table.sortByColumn(Column.ACTIVITY, Qt.SortOrder.AscendingOrder)  # the title clicked again
    qtbot.waitUntil(lambda: table.model().sortOrder() == Qt.SortOrder.AscendingOrder, timeout=1000)
    assert not _points_down(header, Column.ACTIVITY, header.title_height())
    tip = table.model().headerData(
        Column.ACTIVITY, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole
    )
    assert tip == (
        "Sorted by this column, quietest first (▲). Click for busiest first."
        " The rows hold still while the pointer is over the list."
    )
    table.sortByColumn(Column.NAME, Qt.SortOrder.AscendingOrder)
    tip = table.model().headerData(
        Column.NAME, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole
    )
    assert tip == "Sorted by this column, A to Z (▲). Click for Z to A."


def test_the_usage_and_connections_tables_point_the_same_way(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    """The usage view's "Total ▲" stood over the largest total first (seen
    under Xvfb); the connections table sorted by Sent likewise."""
    usage = UsageDialog(UsagePeriod.WEEK)
    qtbot.addWidget(usage)
    usage.show()
    qtbot.waitExposed(usage)
    header = usage.table.horizontalHeader()
    assert header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder  # the largest first
    assert _points_down(header, UsageColumn.TOTAL, header.height())
    usage.table.sortByColumn(UsageColumn.TOTAL, Qt.SortOrder.AscendingOrder)
    assert not _points_down(header, UsageColumn.TOTAL, header.height())

    shown = window.detail.app_id
    window.detail.show_connections(shown, [
        ConnectionInfo("tcp", "10.0.0.5:40000", "192.0.2.7:443", "ESTABLISHED", 100, 5000, 90000),
        ConnectionInfo("tcp", "10.0.0.5:40001", "192.0.2.8:443", "ESTABLISHED", 100, 7000, 10),
    ])  # fmt: skip
    view = window.detail.connections
    qtbot.waitUntil(lambda: view.isVisible() and view.horizontalHeader().width() > 0, timeout=2000)
    view.sortByColumn(ConnColumn.SENT, Qt.SortOrder.DescendingOrder)
    header = view.horizontalHeader()
    view.scrollTo(view.model().index(0, ConnColumn.SENT))  # a narrow window scrolls sideways
    assert _points_down(header, ConnColumn.SENT, header.height())


def _dark_columns(header: QHeaderView, column: int, height: int) -> list[int]:
    """The x (in the section) of every pixel column of the title line that holds
    ink: the title's letters and the sort arrow."""
    left = header.sectionViewportPosition(column)
    width = header.sectionSize(column)
    image = header.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    background = QColor(image.pixel(left + 4, 2)).lightness()
    return [x for x in range(2, width - 2)
            if any(abs(QColor(image.pixel(left + x, y)).lightness() - background) > 60
                   for y in range(3, height - 3))]  # fmt: skip


def test_a_sorted_title_is_drawn_clear_of_its_arrow(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb at 1366x768 the list sorted by Down read "Dowr▾": the arrow
    drawn over the title's last letter. The style's room for the title ended
    before the arrow, but the base style drew the title in its own room. Now
    the ink nearest the section's right end (the arrow) stands apart: a blank
    pixel column between it and the title."""
    table = window.table
    header = table.overall
    for column in (Column.DOWN, Column.UP):
        table.sortByColumn(column, Qt.SortOrder.DescendingOrder)
        qtbot.waitUntil(lambda column=column: table.model().sortColumn() == column, timeout=1000)
        inked = _dark_columns(header, column, header.title_height())
        assert inked, column  # the title and arrow are drawn
        runs, start = [], inked[0]
        for before, x in pairwise(inked):
            if x != before + 1:
                runs.append((start, before))
                start = x
        runs.append((start, inked[-1]))
        arrow = header.style().subElementRect(
            QStyle.SubElement.SE_HeaderArrow, sorted_title_option(table, column), header
        )
        # the last run of ink is the arrow alone: it was the title's "n" and the arrow
        assert runs[-1][0] >= arrow.left(), (column.name, runs, arrow)
        assert runs[-2][1] < arrow.left(), (column.name, runs, arrow)
