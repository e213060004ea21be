"""A poll that re-sorts the list lays it out at once (issue 17's GUI CPU): on
the view's delayed-layout timer the list was painted in a pass of its own,
after the rest of the poll's changes had been painted and flushed."""

from __future__ import annotations

import dataclasses

from chadthrottle.gui.views.main_window import MainWindow
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication

from tests.gui.sample_data import MB, sample_applications


def test_a_resort_is_painted_with_the_rest_of_the_poll(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    table = window.table
    qtbot.wait(50)  # what the first show scheduled has run
    passes: list[set[str]] = []

    class Passes(QObject):
        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.UpdateRequest and watched is window:
                passes.append(set())
            elif event.type() == QEvent.Type.Paint and passes:
                if watched is table.viewport():
                    passes[-1].add("list")
                elif watched is table.overall.viewport():
                    passes[-1].add("overall row")
            return False

    spy = Passes()
    app = QApplication.instance()
    assert app is not None
    app.installEventFilter(spy)
    try:
        last = window._model.app_ids()[-1]
        window._model.apply_snapshot([dataclasses.replace(a, down_bps=80 * MB) if a.id == last else a
                                      for a in sample_applications()])  # fmt: skip
        assert window._model.app_ids()[0] == last  # the poll did re-sort
        qtbot.waitUntil(lambda: any("list" in p for p in passes))
        qtbot.wait(50)
    finally:
        app.removeEventFilter(spy)
    painted = [p for p in passes if p]
    assert painted[0] == {"list", "overall row"}, painted


def test_scrolled_to_its_last_row_the_list_leaves_no_empty_band(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb at 1366x768 a right click on the last, partly shown row
    scrolled the list a whole row: the busiest application vanished above and
    an empty band of most of a row stood under the last one (the view scrolled
    by whole rows). It scrolls by pixels: the last row sits on the bottom edge."""
    from chadthrottle.gui.ipc.state import HelperState, HelperStatus

    from tests.gui.bare_window import bare_window
    from tests.gui.sample_data import app

    model, window = bare_window()
    qtbot.addWidget(window)
    window.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    model.apply_snapshot(
        [app(f"app:demo.App{i}", f"App {i:02d}", 1000.0 * (20 - i)) for i in range(20)]
    )
    window.resize(1100, 720)
    window.show()
    qtbot.waitExposed(window)
    table = window.table
    last = table.model().index(table.model().rowCount() - 1, 0)
    for height in (700, 711, 723, 735):  # whatever the viewport's height
        window.resize(1100, height)
        qtbot.wait(10)
        table.scrollTo(last)
        qtbot.wait(10)
        rect = table.visualRect(last)
        gap = table.viewport().height() - rect.bottom() - 1
        assert -1 <= gap <= 2, (height, gap, rect, table.viewport().height())  # flush, to a pixel
