"""The window against the real helper: the detail pane's connections table
(issue 17) shows the selected application's real connection with its columns,
its own rate and bytes growing with the traffic; the expanded row shows the
same connection's rate, and its process row the process's own rate."""

from __future__ import annotations

import os
from collections.abc import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from chadthrottle.contract import Direction
from chadthrottle.gui.controller import AppController
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.models.connection_table import HEADERS, MEASURING, NO_VALUE, ConnColumn
from PySide6.QtCore import Qt

from tests.e2e.conftest import Stack
from tests.e2e.gui_support import running_gui, streaming_app

PORT = 5740
FLOOR_BPS = 1_000_000  # an unlimited stream over the veth moves far more


@pytest.fixture
def gui(stack: Stack, qtbot, tmp_path) -> Iterator[AppController]:  # type: ignore[no-untyped-def]
    with running_gui(stack, qtbot, tmp_path / "chadthrottle.ini") as controller:
        yield controller


def _row_to_peer(gui: AppController, remote: str) -> int | None:
    model = gui.window.detail.connections_model
    rows = [r for r in range(model.rowCount()) if model.row(r).info.remote == remote]
    return rows[0] if rows else None


def _rate_of(text: str) -> float:
    number, unit = text.split()
    return float(number) * {"B/s": 1, "KB/s": 1e3, "MB/s": 1e6, "GB/s": 1e9}[unit]


def test_the_detail_pane_shows_the_connection_with_its_own_rate_and_bytes(
    qtbot, stack: Stack, gui: AppController
) -> None:  # type: ignore[no-untyped-def]
    with streaming_app(stack, "TestGuiConnTable", PORT, Direction.UP) as (app_id, stream):
        table = gui.window.table
        qtbot.waitUntil(lambda: table.proxy_index(app_id).isValid(), timeout=10_000)
        assert gui.window.select_application(app_id)
        remote = f"{stack.pair.peer_addr}:{PORT}"
        view = gui.window.detail.connections
        model = view.model()
        qtbot.waitUntil(lambda: _row_to_peer(gui, remote) is not None, timeout=5000)
        assert view.isVisible() and view.isSortingEnabled()
        assert [
            model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())
        ] == list(HEADERS.values())
        row = _row_to_peer(gui, remote)

        def cell(column: ConnColumn) -> str | None:
            """The connection's cell; None while its row is not in the table.
            Its row went (CI run v, and a wait for its rate that timed out) when
            the window's own pick of the busiest took the selection to the sink's
            application, whose download is as busy: the window had picked this
            row itself on no traffic, and select_application did not keep it."""
            assert gui.window.detail.app_id == app_id, "the window chose another application"
            at = _row_to_peer(gui, remote)
            return None if at is None else model.index(at, column).data()

        assert (cell(ConnColumn.PROTOCOL), cell(ConnColumn.STATE), cell(ConnColumn.PID)) == (
            "tcp",
            "ESTABLISHED",
            str(stream.app_pid),
        )
        # the address once, in Remote: the host cell is a name, "no name" or, while
        # asked, empty (it repeated the peer's address until gui28)
        assert cell(ConnColumn.HOST) != stack.pair.peer_addr

        # A second answer gives the connection's own rate: the upload it makes.
        def up_rate() -> float:
            up = cell(ConnColumn.UP)
            return 0.0 if up in (None, NO_VALUE, MEASURING) else _rate_of(str(up))

        qtbot.waitUntil(lambda: up_rate() > FLOOR_BPS, timeout=10_000)
        sent = gui.window.detail.connections_model.row(_row_to_peer(gui, remote)).info.tx_bytes
        qtbot.waitUntil(lambda: gui.window.detail.connections_model.row(_row_to_peer(gui, remote)).info.tx_bytes > sent + FLOOR_BPS,
                        timeout=5000)  # fmt: skip
        assert row is not None and cell(ConnColumn.SENT) != NO_VALUE

        # Sorting by Sent, busiest first, keeps the connection on top.
        view.sortByColumn(ConnColumn.SENT, Qt.SortOrder.DescendingOrder)
        assert _row_to_peer(gui, remote) == 0

        # The expanded row lists the same connection with its rate.
        table.expand(table.proxy_index(app_id))
        proxy = table.model()

        def expanded_rate() -> str | None:
            parent = table.proxy_index(app_id)
            for child in range(proxy.rowCount(parent)):
                if remote in str(proxy.index(child, Column.NAME, parent).data()):
                    return proxy.index(child, Column.UP, parent).data()
            return None

        qtbot.waitUntil(  # "…" (measuring) on the first answer, a rate from the second
            lambda: (
                expanded_rate() not in (None, MEASURING)
                and _rate_of(str(expanded_rate())) > FLOOR_BPS
            ),
            timeout=8000,
        )

        # Its process row shows the process's own rate (ListProcesses): the upload.
        def process_rate() -> str | None:
            parent = table.proxy_index(app_id)
            for child in range(proxy.rowCount(parent)):
                if f"(pid {stream.app_pid})" in str(proxy.index(child, Column.NAME, parent).data()):
                    return proxy.index(child, Column.UP, parent).data()
            return None

        qtbot.waitUntil(
            lambda: process_rate() is not None and _rate_of(str(process_rate())) > FLOOR_BPS,
            timeout=8000,
        )
