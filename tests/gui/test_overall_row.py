"""The overall row: the machine's totals under the column titles, whatever the sort."""

from __future__ import annotations

import dataclasses

import pytest
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.views.main_window import MainWindow
from chadthrottle.gui.views.overall_row import OVERALL_NAME
from chadthrottle.units import UnitSystem
from PySide6.QtCore import QPoint, Qt

from tests.gui.paint_log import painted_rects
from tests.gui.sample_data import sample_applications


def test_it_shows_the_totals_of_every_application(window: MainWindow) -> None:
    overall = window.table.overall
    down = sum(a.down_bps for a in sample_applications())
    up = sum(a.up_bps for a in sample_applications())
    assert overall.totals == pytest.approx((down, up))
    assert overall.overall_text(Column.NAME) == OVERALL_NAME
    assert overall.overall_text(Column.DOWN) == "9.32 MB/s"
    assert (
        f"▼ {overall.overall_text(Column.DOWN)}" in window.header.totals.text()
    )  # one total, two places
    window.set_units(UnitSystem.BITS_DECIMAL)
    assert overall.overall_text(Column.DOWN).endswith("Mbit/s")
    assert len(overall.history) == 1  # one sample per poll
    window._model.apply_snapshot(sample_applications())
    assert len(overall.history) == 2


def test_it_sits_above_every_row_under_the_titles(window: MainWindow) -> None:
    overall = window.table.overall
    assert (
        overall.height()
        >= overall.title_height()
        + window.table.visualRect(window.table.model().index(0, 0)).height()
        - 2
    )
    first_row = window.table.visualRect(window.table.model().index(0, 0))
    assert first_row.top() >= 0  # in the viewport, below the header and its overall row


def test_clicking_it_does_not_sort_but_the_titles_still_do(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    overall = window.table.overall
    column_x = overall.sectionViewportPosition(Column.UP) + 10
    before = (overall.sortIndicatorSection(), overall.sortIndicatorOrder())
    qtbot.mouseClick(
        overall.viewport(),
        Qt.MouseButton.LeftButton,
        pos=QPoint(column_x, overall.title_height() + 5),
    )
    assert (overall.sortIndicatorSection(), overall.sortIndicatorOrder()) == before
    qtbot.mouseClick(
        overall.viewport(),
        Qt.MouseButton.LeftButton,
        pos=QPoint(column_x, overall.title_height() // 2),
    )
    assert overall.sortIndicatorSection() == Column.UP


def test_it_is_greyed_while_the_numbers_are_not_live(window: MainWindow) -> None:
    window.set_status(HelperStatus(HelperState.NOT_RUNNING, "gone"))
    assert window.table.overall.live is False


def test_it_gives_way_on_a_list_too_short_for_rows_under_it(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    table, overall = window.table, window.table.overall
    assert overall.overall_shown
    table.resize(table.width(), overall.title_height() + 60)  # room for two rows at most
    qtbot.waitUntil(lambda: not overall.overall_shown)
    qtbot.waitUntil(lambda: overall.height() == overall.title_height())
    table.resize(table.width(), 500)
    qtbot.waitUntil(lambda: overall.overall_shown)
    assert overall.height() > overall.title_height()


def test_a_poll_that_reorders_the_rows_repaints_the_overall_row_but_no_title(
    qtbot, window: MainWindow
) -> None:  # type: ignore[no-untyped-def]
    """Each re-sort made QTreeView lay out its header again, which repainted every
    title each poll (docs/benchmarks.md, "GUI CPU per poll")."""
    overall = window.table.overall
    order = window._model.app_ids()
    busiest = next(a for a in sample_applications() if a.id == order[0])
    quiet = dataclasses.replace(busiest, down_bps=0.0, up_bps=0.0)  # it goes quiet: the rows move
    with painted_rects(overall.viewport()) as painted:
        window._model.apply_snapshot(
            [quiet if a.id == busiest.id else a for a in sample_applications()]
        )
        qtbot.waitUntil(lambda: bool(painted))
        qtbot.wait(50)
    assert window._model.app_ids() != order  # the poll did move rows
    assert all(rect.top() >= overall.title_height() for rect in painted), painted


def test_a_poll_repaints_the_rates_and_activity_not_the_whole_row(
    qtbot, window: MainWindow
) -> None:  # type: ignore[no-untyped-def]
    """A poll changes Down, Up and Activity only: the name and the limit columns
    are not painted again (four of seven sections a poll; issue 17's GUI CPU).
    A change of units repaints all of it."""
    overall = window.table.overall

    def span(column: Column) -> tuple[int, int]:
        left = overall.sectionViewportPosition(column)
        return left, left + overall.sectionSize(column)

    with painted_rects(overall.viewport()) as painted:
        window._model.apply_snapshot(sample_applications())
        qtbot.waitUntil(lambda: bool(painted))
        qtbot.wait(50)
        left = min(rect.left() for rect in painted)
        right = max(rect.right() + 1 for rect in painted)
        assert (left, right) == (span(Column.DOWN)[0], span(Column.ACTIVITY)[1]), painted
        assert left >= span(Column.NAME)[1] and right <= span(Column.DOWN_LIMIT)[0]
        painted.clear()
        overall.show_totals(*overall.totals, UnitSystem.BITS_DECIMAL, overall.live)
        qtbot.waitUntil(lambda: bool(painted))
        assert any(rect.left() <= 0 and rect.right() + 1 >= overall.viewport().width()
                   for rect in painted), painted  # fmt: skip


def test_a_title_wider_than_its_column_is_elided_not_cut(window: MainWindow) -> None:
    from PySide6.QtWidgets import QStyleOptionHeaderV2

    overall = window.table.overall
    option = QStyleOptionHeaderV2()
    overall.initStyleOptionForIndex(option, Column.ACTIVITY)
    assert option.textElideMode == Qt.TextElideMode.ElideRight


def test_a_total_that_fits_in_the_rows_cells_fits_in_it_too(window: MainWindow) -> None:
    """The list's cells leave the style's item text margin each side; the overall
    row the same (with 6 px it cut '74.5 Mbit/s' and '30.1 GB' at 2x)."""
    from PySide6.QtCore import QRect
    from PySide6.QtWidgets import QStyle

    overall = window.table.overall
    window.set_units(UnitSystem.BITS_DECIMAL)
    metrics = overall.fontMetrics()
    margin = window.table.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin) + 1
    for column in (Column.DOWN, Column.UP):
        text = overall.overall_text(column)
        width = metrics.horizontalAdvance(text) + 2 * margin  # what a row's cell needs for it
        _rect, shown = overall.overall_cell(QRect(0, 0, width, 30), column, metrics)
        assert shown == text, (column, text, shown)
        narrower = overall.overall_cell(QRect(0, 0, width - margin - 2, 30), column, metrics)[1]
        assert narrower != text and narrower.endswith("…")  # and cut where it does not fit
