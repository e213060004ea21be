"""Made short, the window keeps its list of applications: the graph folds to
its rates line when the list would show fewer than MIN_LIST_ROWS rows beside
it (as at a short first showing), and opens again when the window is made
tall again, unless the user folded it. Before, a window made as short as it
goes (its minimum size) showed one and a half rows of applications under a
full graph. Real widgets, offscreen."""

from __future__ import annotations

import itertools

from chadthrottle.gui.views.delegates import row_height
from chadthrottle.gui.views.main_window import MIN_LIST_ROWS

FIREFOX = "app:org.mozilla.firefox"


def list_rows(window) -> float:  # type: ignore[no-untyped-def]
    return window.table.viewport().height() / row_height(window.table.fontMetrics())


def test_a_short_window_folds_the_graph_and_a_tall_one_opens_it(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window.resize(1100, 720)
    assert window.select_application(FIREFOX)
    qtbot.waitUntil(lambda: not window.detail.folded and window.detail.plot.isVisible())
    window.resize(900, window.minimumSizeHint().height())
    qtbot.waitUntil(lambda: window.height() < 400)
    qtbot.waitUntil(lambda: list_rows(window) >= MIN_LIST_ROWS - 0.5, timeout=2000)
    assert window.detail.folded
    window.resize(1100, 720)
    qtbot.waitUntil(lambda: not window.detail.folded, timeout=2000)
    assert list_rows(window) >= MIN_LIST_ROWS


def test_a_graph_the_user_folded_or_opened_stays_so(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window.resize(1100, 720)
    assert window.select_application(FIREFOX)
    qtbot.waitUntil(lambda: not window.detail.folded)
    window.detail.fold_button.click()  # the user folds it
    assert window.detail.folded
    window.resize(900, 320)
    window.resize(1100, 720)
    qtbot.wait(50)
    assert window.detail.folded  # not opened for them
    window.resize(900, 320)
    window.detail.fold_button.click()  # the user opens it in the short window
    assert not window.detail.folded
    window.resize(900, 310)  # a little shorter still: their choice holds
    qtbot.wait(50)
    assert not window.detail.folded


def test_a_narrow_window_keeps_the_names_and_scrolls_sideways(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    """Narrower than the columns' least (the real window went down to 511 px at
    2x on 1366x768: its minimum comes from the header and status line, not the
    table), the name column kept 58 px, its icon and "Applic…", while every other
    column kept its least: the names give way to a sideways scroll now."""
    from chadthrottle.gui.models.columns import Column

    table = window.table
    window.setMinimumSize(1, 1)  # as narrow as the real window's own minimum lets it
    window.resize(476, 400)
    qtbot.waitUntil(lambda: window.width() < 500)
    qtbot.waitUntil(lambda: table.horizontalScrollBar().isVisible(), timeout=2000)
    header = table.header()
    assert header.sectionSize(Column.NAME) >= table.name_wanted_width()  # a usual name whole
    # and no gap where a hidden column was (Today, at this width): each column
    # starts where the one before it ends
    shown = [c for c in range(header.count()) if not header.isSectionHidden(header.logicalIndex(c))]
    for before, after in itertools.pairwise(shown):
        left, right = header.logicalIndex(before), header.logicalIndex(after)
        assert header.sectionPosition(right) == header.sectionPosition(left) + header.sectionSize(
            left
        ), (Column(left).name, Column(right).name)
    window.resize(1100, 720)  # wide again: the name stretches as before
    qtbot.waitUntil(lambda: not table.horizontalScrollBar().isVisible(), timeout=2000)
    total = sum(
        header.sectionSize(c) for c in range(header.count()) if not header.isSectionHidden(c)
    )
    assert abs(total - table.viewport().width()) <= 1


def test_a_short_window_never_cuts_the_folded_panes_lines(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    """As short as the window goes (205 px at 2x on 1366x768 on Xvfb), the folded
    pane's notes were given less than their lines and cut through the middle of
    one; the pane now keeps their whole height and the window goes no shorter."""
    import dataclasses

    from tests.gui.sample_data import sample_applications

    note = "over the helper's own namespace and namespace ctapp-1: the policer holds the sum. " * 2
    window._model.apply_snapshot(
        [
            dataclasses.replace(app, down_limit_reach=note) if app.id == FIREFOX else app
            for app in sample_applications()
        ]
    )
    window.resize(700, 720)
    assert window.select_application(FIREFOX)
    notes = window.detail.limit_notes
    qtbot.waitUntil(notes.isVisible)
    window.detail.fold_button.click()
    window.setMinimumSize(1, 1)  # as short as the real window's own minimum lets it
    window.resize(700, 150)
    qtbot.waitUntil(lambda: window.height() < 400)
    qtbot.wait(50)
    assert notes.height() >= notes.heightForWidth(notes.width()), (
        notes.height(),
        notes.heightForWidth(notes.width()),
    )


def test_at_its_smallest_every_column_is_whole_without_a_sideways_scroll(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb the window went down to 465x382 (its minimum came from the header
    and status line, not the table): the limit columns were behind a sideways
    scroll bar and the "Down limit" title was cut. Its least width now holds every
    column at its least (Today and Activity give way), in every unit system."""
    from chadthrottle.gui.models.columns import Column
    from chadthrottle.gui.views.overall_row import OVERALL_INDENT, OVERALL_NAME
    from chadthrottle.units import UnitSystem
    from PySide6.QtGui import QFont, QFontMetricsF

    table, header = window.table, window.table.header()
    for units in UnitSystem:
        window.set_units(units)
        qtbot.waitUntil(  # as narrow and short as it goes, once its least follows the units
            lambda: (
                window.resize(1, 1)
                or (window.size() == window.minimumSize() and window.width() >= table.least_width())
            ),
            timeout=2000,
        )
        qtbot.wait(20)
        assert not table.horizontalScrollBar().isVisible(), (units, window.size())
        assert table.horizontalScrollBar().maximum() == 0, (units, window.size())
        shown = [c for c in Column if not header.isSectionHidden(c)]
        assert set(shown) >= set(Column) - {Column.USAGE, Column.ACTIVITY}, shown
        for column in shown:
            right = header.sectionViewportPosition(column) + header.sectionSize(column)
            assert right <= table.viewport().width(), (units, column.name, right)
            assert header.sectionSize(column) >= table.title_width(column) or column is Column.NAME
        # the overall row's name whole: at the least width under Xvfb, "All applicati…"
        bold = QFont(table.font())
        bold.setBold(True)
        needed = OVERALL_INDENT + QFontMetricsF(bold).horizontalAdvance(OVERALL_NAME)
        assert header.sectionSize(Column.NAME) >= needed, (
            units,
            header.sectionSize(Column.NAME),
            needed,
        )
        window.resize(1100, 720)
        qtbot.waitUntil(lambda: not header.isSectionHidden(Column.ACTIVITY), timeout=2000)
        assert not header.isSectionHidden(Column.USAGE)


def test_at_its_smallest_the_list_shows_three_whole_rows(qtbot) -> None:  # type: ignore[no-untyped-def]
    """A window first shown short (as at 2x on 1366x768: the graph starts
    folded) and then made as short as it goes showed one row of applications,
    the others behind the scroll bar."""
    from chadthrottle.gui.ipc.state import HelperState, HelperStatus
    from chadthrottle.gui.views.app_table import LEAST_ROWS

    from tests.gui.bare_window import bare_window
    from tests.gui.sample_data import sample_applications

    model, window = bare_window()
    qtbot.addWidget(window)
    window.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    model.apply_snapshot(sample_applications())
    window.resize(600, 360)
    window.show()
    qtbot.waitExposed(window)
    assert window.detail.folded  # short: the list came first
    # as short as it goes (asked again: the overall row giving way lowers the least once)
    qtbot.waitUntil(
        lambda: window.resize(600, 1) or window.height() == window.minimumHeight(), timeout=2000
    )
    table = window.table
    whole = [
        row
        for row in range(table.model().rowCount())
        if table.visualRect(table.model().index(row, 0)).top() >= 0
        and table.visualRect(table.model().index(row, 0)).bottom() < table.viewport().height()
    ]
    assert len(whole) >= LEAST_ROWS == 3, (len(whole), window.height())


def test_a_banner_under_an_open_graph_does_not_push_the_window_off_the_screen(qtbot) -> None:  # type: ignore[no-untyped-def]
    """At 2x on 1366x768 under Xvfb (683x384 px), the graph opened and the
    helper stopped: the banner's three lines raised the window's least height
    past its size, the window grew 25 px and its status bar went under the
    screen's bottom edge. The graph folds for room and the window stays on
    the screen (it opens again once there is room, as when made short)."""
    from chadthrottle.gui.ipc.state import HelperState, HelperStatus

    from tests.gui.bare_window import bare_window
    from tests.gui.sample_data import sample_applications

    model, window = bare_window()
    qtbot.addWidget(window)
    window.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    model.apply_snapshot(sample_applications())
    window.resize(669, 346)  # as the window first is at 2x on 1366x768
    window.show()
    qtbot.waitExposed(window)
    available = window.screen().availableGeometry()
    window.move(window.x(), available.bottom() - window.frameGeometry().height() - 8)
    assert window.select_application(FIREFOX)
    window.detail.set_folded(False)
    qtbot.waitUntil(lambda: window.detail.plot.isVisible())
    gone = HelperStatus(HelperState.NOT_RUNNING, "The helper is restarting.")
    window.banner.away_long_s = 0.0  # its longest words at once
    window.set_status(gone)
    qtbot.wait(20)
    window.set_status(gone)
    qtbot.wait(200)
    qtbot.waitUntil(lambda: window.frameGeometry().bottom() <= available.bottom(), timeout=2000)
    assert window.detail.folded and list_rows(window) >= 2.5
