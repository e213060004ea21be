"""Expanded rows as a new user reads them at 2x on a 1366x768 screen."""

from __future__ import annotations

from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.views.main_window import MainWindow
from PySide6.QtCore import Qt

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


def test_process_rows_show_their_own_rates_which_add_up_to_the_applications(
    qtbot, window: MainWindow
) -> None:  # type: ignore[no-untyped-def]
    """ListProcesses' answer, as the controller hands it over: each process row
    reads its rates in the Down and Up columns (no longer spanning them), its
    tooltip says how they are measured, and collapsing forgets them."""
    from chadthrottle.contract import ProcessTraffic
    from chadthrottle.gui.models.child_rows import LIMITED_NOTE, PROCESS_RATES_TOOLTIP
    from chadthrottle.units import format_rate

    from tests.gui.sample_data import MB

    table, proxy = window.table, window.table.model()
    firefox = table.proxy_index(FIREFOX)
    app = next(a for a in window._model._rows if a.info.id == FIREFOX).info
    shares = {2210: (3.0 * MB, 150_000.0), 2251: (1.98 * MB, 60_000.0), 2302: (0.0, 0.0)}
    assert sum(d for d, _ in shares.values()) == app.down_bps  # the sample's rates, split
    assert sum(u for _, u in shares.values()) == app.up_bps
    processes = [
        ProcessTraffic(pid, "firefox", d, u, 10 * pid, pid) for pid, (d, u) in shares.items()
    ]
    wanted: list[list[str]] = []
    window.processesWanted.connect(wanted.append)
    window.select_application(FIREFOX)  # selected: its connections, not its processes
    window.show_processes(FIREFOX, processes)  # not expanded: not taken
    assert proxy.index(0, Column.DOWN, firefox).data() is None
    table.expand(firefox)
    assert wanted == [[FIREFOX]]  # asked for the open row only
    window.show_processes(FIREFOX, processes)
    rows = {
        int(str(proxy.index(r, 0, firefox).data()).split("pid ")[1].rstrip(")")): r
        for r in range(3)
    }
    for pid, (down, up) in shares.items():
        assert proxy.index(rows[pid], Column.DOWN, firefox).data() == format_rate(down)
        assert proxy.index(rows[pid], Column.UP, firefox).data() == format_rate(up)
    qtbot.waitUntil(lambda: not any(table.isFirstColumnSpanned(r, firefox) for r in range(3)))
    tooltip = str(proxy.index(rows[2210], Column.DOWN, firefox).data(Qt.ItemDataRole.ToolTipRole))
    assert PROCESS_RATES_TOOLTIP in tooltip and "22,100 bytes received, 2,210 sent" in tooltip
    assert (LIMITED_NOTE in tooltip) == bool(app.down_limit_bps or app.up_limit_bps)
    table.collapse(firefox)
    assert wanted == [[FIREFOX], []]
    table.expand(firefox)  # rates forgotten until the next answer: the names take the row again
    assert proxy.index(0, Column.DOWN, firefox).data() is None
    assert all(table.isFirstColumnSpanned(r, firefox) for r in range(3))
