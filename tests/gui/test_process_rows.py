"""Expanded rows as a new user reads them at 2x on a 1366x768 screen."""

from __future__ import annotations

from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.views.main_window import MainWindow

FIREFOX = "app:org.mozilla.firefox"


def test_a_process_row_takes_the_whole_row(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    """A process row says only its name: at 2x on 1366x768 the name column cut
    "python (pid 19956)" to "python (pid…" beside empty cells. It spans the row;
    a connection row keeps its Down and Up columns."""
    from chadthrottle.contract import ConnectionInfo

    table, proxy = window.table, window.table.model()
    firefox = table.proxy_index(FIREFOX)
    table.expand(firefox)
    rows = [proxy.index(row, 0, firefox) for row in range(proxy.rowCount(firefox))]
    assert len(rows) == 3 and all(table.isFirstColumnSpanned(r.row(), firefox) for r in rows)
    assert table.visualRect(rows[0]).width() > table.header().sectionSize(Column.NAME)
    connection = ConnectionInfo("tcp", "10.0.0.2:40000", "93.184.216.34:443", "ESTABLISHED", 2210)
    window._model.set_connections(FIREFOX, [connection])
    qtbot.waitUntil(lambda: proxy.rowCount(firefox) == 4)
    assert not table.isFirstColumnSpanned(3, firefox)  # its rates stay in their columns
    assert [table.isFirstColumnSpanned(row, firefox) for row in range(3)] == [True] * 3
