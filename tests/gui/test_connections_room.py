"""An application with connections, selected in a window with room: the
detail pane's connections table opens with room for CONNECTION_ROWS_WANTED
rows, taken from the graph down to its least and then from the list, which
keeps its rows. Before, at 1x in a 1100x720 window, it showed two rows until
the user dragged the line above it. Real widgets, offscreen."""

from __future__ import annotations

from chadthrottle.contract import ConnectionInfo
from chadthrottle.gui.views.delegates import row_height
from chadthrottle.gui.views.detail_pane import CONNECTION_ROWS_WANTED, GRAPH_MIN_HEIGHT
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
