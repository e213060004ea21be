"""Made short, the window keeps its list of applications: the graph folds to
its rates line when the list would show fewer than MIN_LIST_ROWS rows beside
it (as at a short first showing), and opens again when the window is made
tall again, unless the user folded it. Before, a window made as short as it
goes (its minimum size) showed one and a half rows of applications under a
full graph. Real widgets, offscreen."""

from __future__ import annotations

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
