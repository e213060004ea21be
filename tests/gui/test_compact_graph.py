"""Opened in a window too short for the whole graph beside five rows of the
list (2x on 1366x768: 683x384 px, the window 669x344), the graph goes
compact: its two lanes without the time axis, the limit notes a line, the
connections left to the list (a row opens into them); the list keeps five
rows. Under Xvfb at 2x the list showed 2.5 rows beside the opened graph.
Made tall, the graph is whole again, its connections' line back. Real
widgets, offscreen (the sizes are the 2x window's, in its logical pixels;
tests/gui/test_window_fit_and_state.py runs the same at QT_SCALE_FACTOR=2)."""

from __future__ import annotations

from chadthrottle.contract import ConnectionInfo
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.views.delegates import row_height
from chadthrottle.gui.views.detail.sizes import GRAPH_COMPACT_HEIGHT, GRAPH_MIN_HEIGHT

from tests.gui.bare_window import bare_window
from tests.gui.sample_data import sample_applications

FIREFOX = "app:org.mozilla.firefox"
DROPBOX = "app:com.dropbox.Client"  # a limit and its notes
CONNECTION = ConnectionInfo("tcp", "10.0.0.5:40000", "192.0.2.7:443", "ESTABLISHED", 7, 1000, 1000)


def rows_shown(window) -> float:  # type: ignore[no-untyped-def]
    """The list's rows on screen, the "All applications" row one of them."""
    table = window.table
    rows = table.viewport().height() / row_height(table.fontMetrics())
    return rows + (1 if table.overall.overall_shown else 0)


def opened_at_2x(qtbot, app_id: str):  # type: ignore[no-untyped-def]
    model, window = bare_window()
    qtbot.addWidget(window)
    window.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    model.apply_snapshot(sample_applications())
    window.resize(669, 344)  # the window at 2x on 1366x768 under Xvfb (openbox)
    window.show()
    qtbot.waitExposed(window)
    assert window.detail.folded  # short: it starts folded, as before
    assert window.select_application(app_id)
    window.show_connections(app_id, [CONNECTION])
    window.detail.fold_button.click()  # the user opens it
    qtbot.waitUntil(lambda: window.detail.plot.isVisible())
    return window


def test_the_graph_opened_at_2x_is_compact_beside_five_rows(qtbot) -> None:  # type: ignore[no-untyped-def]
    window = opened_at_2x(qtbot, FIREFOX)
    detail = window.detail
    qtbot.waitUntil(lambda: rows_shown(window) >= 5, timeout=2000)
    assert detail.compact and not detail.folded
    assert detail.plot.height() >= GRAPH_COMPACT_HEIGHT
    lanes = [graph.item.getViewBox().height() for graph in detail.graphs.values()]
    assert min(lanes) >= 24, lanes  # as tall as the whole graph's lanes at its least
    assert not any(graph.item.getAxis("bottom").isVisible() for graph in detail.graphs.values())
    assert not detail.connections_caption.isVisible()  # left to the list's row
    assert detail.connections_caption.text() == "1 open connection"  # still known
    # made tall: whole again, with its time axis and its connections' line
    window.resize(1100, 720)
    qtbot.waitUntil(lambda: not detail.compact, timeout=2000)
    assert detail.plot.height() >= GRAPH_MIN_HEIGHT and detail.connections_caption.isVisible()
    assert any(graph.item.getAxis("bottom").isVisible() for graph in detail.graphs.values())
    assert rows_shown(window) >= 5


def test_compact_notes_take_one_line_and_the_list_keeps_its_rows(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Dropbox's limit notes (a quota and a limit) took two lines of the pane."""
    window = opened_at_2x(qtbot, DROPBOX)
    notes = window.detail.limit_notes
    qtbot.waitUntil(lambda: rows_shown(window) >= 5, timeout=2000)
    if notes.isVisible():
        assert notes.height() <= notes.fontMetrics().lineSpacing() + 2
        assert "\n" not in notes.text()
    window.resize(1100, 720)
    qtbot.waitUntil(lambda: not window.detail.compact, timeout=2000)
    assert rows_shown(window) >= 5


def test_the_row_shown_stays_in_sight_when_the_graph_opens(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb at 2x the graph opened over Nimbus Sync, the list's fourth
    row: the list kept its top rows, the row whose graph it was out of sight."""
    window = opened_at_2x(qtbot, "exe:/usr/bin/curl")  # the quietest: the list's last row
    table = window.table

    def in_sight() -> bool:  # whole, but for a pixel the list's scroll by rows may leave
        rect = table.visualRect(table.currentIndex())
        return rect.isValid() and rect.top() >= 0 and rect.bottom() <= table.viewport().height()

    qtbot.waitUntil(lambda: rows_shown(window) >= 5 and in_sight(), timeout=2000)
    assert window.detail.app_id == "exe:/usr/bin/curl"


def test_show_connections_opens_the_row_where_the_graph_is_compact(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The row menu's Show connections opened the pane, compact, where the
    connections are not: the row opens into them in the list instead."""
    window = opened_at_2x(qtbot, FIREFOX)
    qtbot.waitUntil(lambda: window.detail.compact, timeout=2000)
    steam = "app:com.valvesoftware.Steam"
    with qtbot.waitSignal(window.connectionsWanted) as wanted:
        window.show_connections_of(steam)
    assert steam in wanted.args[0] and window.detail.app_id == steam
    assert window.table.isExpanded(window.table.proxy_index(steam))
