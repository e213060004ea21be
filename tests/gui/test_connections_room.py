"""An application with connections, selected in a window with room: the
detail pane's connections table opens with room for CONNECTION_ROWS_WANTED
rows, taken from the graph down to its least and then from the list, which
keeps its rows. Before, at 1x in a 1100x720 window, it showed two rows until
the user dragged the line above it. Real widgets, offscreen."""

from __future__ import annotations

from chadthrottle.contract import ConnectionInfo
from chadthrottle.gui.views.delegates import row_height
from chadthrottle.gui.views.detail.sizes import CONNECTION_ROWS_WANTED, GRAPH_MIN_HEIGHT
from chadthrottle.gui.views.main_window import LIST_ROWS_KEPT_FOR_CONNECTIONS

FIREFOX = "app:org.mozilla.firefox"
CONNECTIONS = [
    ConnectionInfo("tcp", f"10.0.0.5:{51000 + i}", f"192.0.2.{i}:443", "ESTABLISHED", 4390)
    for i in range(12)
]


def table_rows(window) -> float:  # type: ignore[no-untyped-def]
    table = window.detail.connections
    return table.viewport().height() / table.verticalHeader().defaultSectionSize()


def list_rows(window) -> float:  # type: ignore[no-untyped-def]
    return window.table.viewport().height() / row_height(window.table.fontMetrics())


def test_the_connections_table_opens_with_room_for_its_rows(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window.resize(1100, 720)
    assert window.select_application(FIREFOX)
    qtbot.waitUntil(lambda: not window.detail.folded and window.detail.plot.isVisible())
    window.show_connections(FIREFOX, CONNECTIONS)
    detail = window.detail
    qtbot.waitUntil(lambda: detail.connections.isVisible())
    qtbot.waitUntil(lambda: table_rows(window) >= CONNECTION_ROWS_WANTED - 0.1, timeout=1000)
    assert detail.plot.height() >= GRAPH_MIN_HEIGHT
    assert list_rows(window) >= LIST_ROWS_KEPT_FOR_CONNECTIONS + 2  # 1100x720 has room: ~10
    # folded by its caption and opened again: the same room
    detail.connections_caption.click()
    qtbot.waitUntil(lambda: not detail.connections.isVisible())
    detail.connections_caption.click()
    qtbot.waitUntil(lambda: table_rows(window) >= CONNECTION_ROWS_WANTED - 0.1, timeout=1000)


def test_the_list_keeps_its_rows_when_the_window_has_less_room(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window.resize(1000, 600)  # above the short window's 560: the table opens
    assert window.select_application(FIREFOX)
    qtbot.waitUntil(lambda: not window.detail.folded and window.detail.plot.isVisible())
    window.show_connections(FIREFOX, CONNECTIONS)
    qtbot.waitUntil(lambda: window.detail.connections.isVisible())
    qtbot.waitUntil(lambda: table_rows(window) >= 4, timeout=1000)
    assert list_rows(window) >= LIST_ROWS_KEPT_FOR_CONNECTIONS - 0.5
    assert window.detail.plot.height() >= GRAPH_MIN_HEIGHT


def empty_table_px(window) -> int:  # type: ignore[no-untyped-def]
    """The connections table's height with no row in it (rows shown, then frame)."""
    table = window.detail.connections
    rows = table.model().rowCount() * table.verticalHeader().defaultSectionSize()
    return table.viewport().height() - rows


def test_the_table_is_no_taller_than_its_rows_and_the_graph_has_the_rest(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb at 1366x768 an application with one connection had its graph
    squeezed to 95 px (each plot about 25 px, the axis labels touching) beside
    four empty rows of the table; with the helper away (no rows at all) the
    same. The table takes what its rows need (up to CONNECTION_ROWS_WANTED, or
    two fifths), the graph the rest, also when the window is resized."""
    window.resize(1100, 720)
    assert window.select_application(FIREFOX)
    qtbot.waitUntil(lambda: not window.detail.folded and window.detail.plot.isVisible())
    detail = window.detail
    window.show_connections(FIREFOX, CONNECTIONS)
    qtbot.waitUntil(lambda: table_rows(window) >= CONNECTION_ROWS_WANTED - 0.1, timeout=1000)
    graph_with_many = detail.plot.height()
    row = detail.connections.verticalHeader().defaultSectionSize()
    window.show_connections(FIREFOX, CONNECTIONS[:1])  # the same application, one left
    qtbot.waitUntil(lambda: empty_table_px(window) < row, timeout=1000)
    assert detail.plot.height() >= graph_with_many + 3 * row
    # made taller and shorter again: the table keeps its one row, the graph follows
    for height in (900, 640, 720):
        window.resize(1100, height)
        qtbot.waitUntil(lambda: empty_table_px(window) < row, timeout=1000)
        assert detail.plot.height() >= GRAPH_MIN_HEIGHT
    # the helper away: no rows known, the table keeps one row's room, no more
    detail.set_live(False)
    qtbot.waitUntil(lambda: empty_table_px(window) <= row, timeout=1000)
    detail.set_live(True)
    # the user's own line between them is kept (QSplitter keeps it in proportion)
    sizes = detail.split.sizes()
    detail.split.moveSplitter(sizes[0] - 2 * row, 1)
    moved = detail.split.sizes()
    window.show_connections(FIREFOX, CONNECTIONS[:2])
    qtbot.wait(50)
    assert detail.split.sizes() == moved


def test_a_table_folded_for_a_short_window_opens_when_it_is_made_tall(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    """A window first shown short (2x on a 1366x768 laptop) folds the table to
    its count; made tall (maximized on a larger screen) it stayed folded, the
    split placed once. Now it opens as the graph does; one the user folded
    stays folded."""
    window.resize(1100, 500)  # under SHORT_WINDOW_HEIGHT
    assert window.select_application(FIREFOX)
    window.detail.set_folded(False)
    qtbot.waitUntil(lambda: window.detail.plot.isVisible())
    window.show_connections(FIREFOX, CONNECTIONS)
    detail = window.detail
    qtbot.waitUntil(lambda: detail.connections_caption.isVisible())
    assert detail.connections.isHidden()
    window.resize(1100, 760)
    qtbot.waitUntil(lambda: detail.connections.isVisible(), timeout=1000)
    qtbot.waitUntil(lambda: table_rows(window) >= CONNECTION_ROWS_WANTED - 0.1, timeout=1000)
    detail.connections_caption.click()  # the user's fold
    window.resize(1100, 700)
    window.resize(1100, 800)
    qtbot.wait(50)
    assert detail.connections.isHidden()
