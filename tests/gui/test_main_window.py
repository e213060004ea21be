"""Main window: each helper state rendered deliberately; limits operable like a user."""

from __future__ import annotations

import pytest
from chadthrottle.contract import BackendInfo, Direction, ErrorName
from chadthrottle.gui.ipc.error_text import INSTALL_COMMAND
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.models.columns import Role
from chadthrottle.gui.views.main_window import MainWindow
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from tests.gui.sample_data import sample_applications
from tests.gui.worker_reports import inject_observations

FIREFOX = "app:org.mozilla.firefox"
CONNECTED = HelperStatus(HelperState.CONNECTED, "", True, True)


def test_connected_shows_data_totals_and_counts(window: MainWindow) -> None:
    assert window.banner.isHidden()
    assert "▼ 9.32 MB/s" in window.header.totals.text()  # 4.98+3.9+0.12+0.008+0.31 MB/s
    assert window.status_line.limits.text() == "3 limits active"
    assert window.status_line.helper.text() == "Helper: connected"
    window.set_backends(
        (BackendInfo("ebpf", True, "", ("down",)), BackendInfo("tc", True, "", ("up",)))
    )
    # the window's own arrows: "tc (down)" beside "Helper: connected" read as tc being down
    assert window.status_line.backend.text() == "Enforcing ▼ ▲"  # which: the tooltip
    window.set_backends((BackendInfo("tc", True, "", ()), BackendInfo("ebpf", True, "", ("down",))))
    assert window.status_line.backend.text() == "Enforcing ▼"
    assert window.detail.app_id == FIREFOX  # the busiest row is selected at first


def test_one_backend_for_both_directions_leaves_the_link_field_its_room(window: MainWindow) -> None:
    """Seen on screen at 2x on 1366x768 (683 px wide) with a limit not met:
    "Backend: ebpf (down, up)" left the link field "Link not shaped: ▼ 40.0…" (now "Link
    capacity: not in force", the rates in its tooltip)."""
    import dataclasses

    from chadthrottle.contract import LinkShapingInfo
    from chadthrottle.gui.models.priority_view import link_summary
    from chadthrottle.units import UnitSystem

    window.set_backends(
        (BackendInfo("ebpf", True, "", ("down", "up")), BackendInfo("tc", False, "no IFB", ()))
    )
    assert window.status_line.backend.text() == "Enforcing ▼ ▲"
    assert (
        window.status_line.backend.toolTip()
        == "ebpf enforces what is set for the download and upload\ntc: no IFB"
    )
    not_met = "not met: measured 9.10 MB/s, above the limit for 6 s"
    window._model.apply_snapshot([dataclasses.replace(a, up_limit_problem=not_met) if a.name == "Dropbox" else a
                                  for a in sample_applications()])  # fmt: skip
    window.status_line.set_link(
        link_summary(LinkShapingInfo(40_000_000, 5_000_000), UnitSystem.BYTES_DECIMAL)
    )
    window.resize(683, 384)
    for _ in range(5):
        QApplication.processEvents()
    link = window.status_line.link
    assert window.status_line.limits.text() == "2 limits active, 1 not met"
    assert link.shown_text() == link.text() == "Link capacity: not in force"
    # not squeezed: at its own size, whole on screen too (xcb's fonts are wider than offscreen)
    assert link.width() >= link.sizeHint().width(), (link.width(), link.sizeHint())


def test_typing_a_limit_requests_it(qtbot, window: MainWindow) -> None:
    control = window.limit_control(FIREFOX, Direction.UP)
    assert control is not None and control.isVisible() and control.isEnabled()
    control.field.setFocus()
    control.field.selectAll()
    qtbot.keyClicks(control.field, "2 MB/s")
    with qtbot.waitSignal(window.limitRequested) as blocker:
        qtbot.keyClick(control.field, Qt.Key.Key_Return)
    assert blocker.args == [FIREFOX, "up", 2_000_000]


def test_dragging_a_limit_requests_it_once(qtbot, window: MainWindow) -> None:
    control = window.limit_control("exe:/usr/bin/curl", "down")
    assert control is not None
    slider = control.slider
    y = slider.height() // 2
    requests: list[list[object]] = []
    window.limitRequested.connect(lambda *args: requests.append(list(args)))
    qtbot.mousePress(slider, Qt.MouseButton.LeftButton, pos=QPoint(slider.width() - 6, y))
    for x in range(slider.width() - 6, slider.width() // 3, -4):
        qtbot.mouseMove(slider, QPoint(x, y))
    qtbot.mouseRelease(slider, Qt.MouseButton.LeftButton, pos=QPoint(slider.width() // 3, y))
    assert len(requests) == 1 and requests[0][:2] == ["exe:/usr/bin/curl", "down"]


def test_not_running_greys_and_reconnects(window: MainWindow) -> None:
    window.set_status(HelperStatus(HelperState.NOT_RUNNING, "The helper is restarting."))
    assert window.banner.isVisible() and "reconnecting" in window.banner.title.text()
    assert window.status_line.helper.text() == "Helper: reconnecting…"
    index = window.table.proxy_index(FIREFOX, 1)
    assert index.data(Qt.ItemDataRole.ForegroundRole) is not None  # greyed
    control = window.limit_control(FIREFOX, Direction.DOWN)
    assert control is not None and not control.isEnabled()


def test_not_authorized_keeps_monitoring_and_offers_to_ask_again(qtbot, window: MainWindow) -> None:
    window.set_status(
        HelperStatus(HelperState.NOT_AUTHORIZED, "Setting limits was refused.", True, False)
    )
    assert window.banner.retry_button.isVisible()
    assert window.banner.retry_button.text() == "Ask again"
    control = window.limit_control(FIREFOX, Direction.DOWN)
    assert control is not None and not control.isEnabled() and "authorized" in control.toolTip()
    assert window.table.proxy_index(FIREFOX, 1).data(Qt.ItemDataRole.ForegroundRole) is None
    with qtbot.waitSignal(window.retryRequested):
        window.banner.retry_button.click()


def test_not_installed_shows_the_install_command(window: MainWindow) -> None:
    window.set_status(HelperStatus(HelperState.NOT_INSTALLED, "not installed"))
    assert window.banner.command.isVisible()
    assert window.banner.command.text() == INSTALL_COMMAND
    assert "not installed" in window.banner.title.text()


def test_kernel_feature_missing_says_which(window: MainWindow) -> None:
    detail = (
        "No backend can enforce limits on this kernel (ebpf: needs BTF). Monitoring still works."
    )
    window.set_status(HelperStatus(HelperState.KERNEL_FEATURE_MISSING, detail, True, False))
    assert window.banner.isVisible() and window.banner.text.text() == detail
    control = window.limit_control(FIREFOX, Direction.DOWN)
    assert control is not None and not control.isEnabled() and control.toolTip().startswith(detail)


def test_filter_hides_rows(qtbot, window: MainWindow) -> None:
    qtbot.keyClicks(window.header.filter, "drop")
    assert window.table.model().rowCount() == 1
    assert window.limit_control(FIREFOX, Direction.DOWN) is None


def test_clearing_the_filter_selects_the_row_chosen_before_it(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    """Typing a filter that hides the selected row moves the selection to a
    row that is left; clearing it comes back to the row the user chose, not
    to whichever row the filter left selected."""
    assert window.select_application(FIREFOX)
    qtbot.keyClicks(window.header.filter, "drop")
    assert window.detail.app_id != FIREFOX
    window.header.filter.clear()
    assert window.detail.app_id == FIREFOX
    current = window.table.currentIndex()
    assert current.isValid() and current.data(Role.APP_ID) == FIREFOX


def test_controller_shows_limit_at_once_and_falls_back_on_denial(make_controller) -> None:  # type: ignore[no-untyped-def]
    controller = make_controller()
    controller.model.apply_snapshot(sample_applications())
    inject_observations(controller.connection, has_polled_ok=True)
    assert controller.connection.status.can_limit
    finished = []
    controller.connection.limitFinished.connect(lambda *args: finished.append(args))
    controller.request_limit(FIREFOX, "up", 3_000_000)  # the worker is not running: fails at once
    assert finished and finished[0][1]
    assert controller.model.effective_limit(FIREFOX, Direction.UP) == 0
    assert "Could not change the limit of Firefox" in controller.window.status_line.message.text()
    controller.connection._on_limit_failed(0, ErrorName.NOT_AUTHORIZED.value, "")
    assert controller.window.status.state is HelperState.NOT_AUTHORIZED
    controller.connection.retry()
    assert controller.window.status.state is HelperState.CONNECTED
    controller.shutdown()


def test_the_detail_pane_lists_connections_in_a_table_most_interesting_first(
    qtbot, window: MainWindow
) -> None:
    from chadthrottle.contract import ConnectionInfo
    from chadthrottle.gui.models.connection_table import HEADERS

    listening = ConnectionInfo("tcp", "0.0.0.0:8080", "0.0.0.0:0", "LISTEN", 1)
    open_ = ConnectionInfo(
        "tcp", "10.0.0.5:51234", "192.0.2.7:443", "ESTABLISHED", 1, rx_bytes=5000, tx_bytes=70
    )
    window.detail.show_connections("app:not-selected", [open_])
    assert window.detail.connections_model.rowCount() == 0  # an answer for another row is ignored
    window.detail.show_connections(FIREFOX, [listening, open_])
    model = window.detail.connections.model()
    assert [
        model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())
    ] == list(HEADERS.values())
    assert [model.index(r, 4).data() for r in range(2)] == ["ESTABLISHED", "LISTEN"]
    assert window.detail.connections_caption.text() == "2 open connections"
    window.detail.show_connections(FIREFOX, [])
    assert window.detail.connections_caption.text() == "No open connections."


@pytest.mark.parametrize(("height", "table_shown"), [(720, True), (500, False)])
def test_on_a_short_window_the_connections_table_starts_folded(
    qtbot, window: MainWindow, height: int, table_shown: bool
) -> None:
    """At 384 px (2x on a 1366x768 screen) the table open left the list of
    applications one and a half rows; folded, its count stays as a switch
    (shorter still, the graph is compact and leaves the connections to the
    list: test_compact_graph)."""
    from chadthrottle.contract import ConnectionInfo

    window.resize(1100, height)
    qtbot.waitUntil(lambda: abs(window.height() - height) < 40, timeout=2000)
    window.select_application(FIREFOX)
    if window.detail.folded:  # made short, the window folded the graph: the user opens it
        window.detail.fold_button.click()
    window.detail.show_connections(
        FIREFOX, [ConnectionInfo("tcp", "10.0.0.5:1", "192.0.2.7:443", "ESTABLISHED", 1)]
    )
    caption = window.detail.connections_caption
    assert caption.text() == "1 open connection" and caption.isVisible()
    assert (
        caption.isChecked() is table_shown and window.detail.connections.isVisible() is table_shown
    )
    caption.click()  # the user opens or folds it
    assert window.detail.connections.isVisible() is not table_shown


def test_expanding_a_row_asks_for_its_connections_and_shows_them_as_children(
    qtbot, window: MainWindow
) -> None:
    from chadthrottle.contract import ConnectionInfo

    steam = "app:com.valvesoftware.Steam"
    connection = ConnectionInfo("tcp", "10.0.0.5:51234", "192.0.2.7:443", "ESTABLISHED", 4390)
    window.show_connections(steam, [connection])  # not expanded: not added under the row
    row = window.table.proxy_index(steam)
    assert window.table.model().rowCount(row) == 2  # its two processes
    with qtbot.waitSignal(window.connectionsWanted) as wanted:
        window.table.expand(row)
    assert wanted.args == [
        [FIREFOX, steam]
    ]  # the selected application and the expanded one, no others
    window.show_connections(steam, [connection])
    row = window.table.proxy_index(steam)
    assert window.table.model().rowCount(row) == 3
    assert (
        window.table.model().index(2, 0, row).data()
        == "\u2192 192.0.2.7:443 ESTABLISHED (tcp from 10.0.0.5:51234)"
    )
    with qtbot.waitSignal(window.connectionsWanted) as wanted:
        window.table.collapse(row)
    assert wanted.args == [[FIREFOX]]
    assert (
        window.table.model().rowCount(window.table.proxy_index(steam)) == 2
    )  # dropped: fetched afresh next time


def test_paused_limits_are_said_plainly_with_a_way_back(qtbot, window: MainWindow) -> None:
    assert window.paused_notice.isHidden()
    window.set_limits_paused(True)
    assert window.paused_notice.isVisible() and "paused" in window.paused_notice.title.text()
    assert window.status_line.limits.text() == "No limits are enforced: limits are paused"
    assert "3 limits are kept" in window.status_line.limits.toolTip()
    with qtbot.waitSignal(window.pauseRequested) as asked:
        qtbot.mouseClick(window.paused_notice.resume_button, Qt.MouseButton.LeftButton)
    assert asked.args == [False]
    window.set_limits_paused(False)
    assert window.paused_notice.isHidden() and window.status_line.limits.text() == "3 limits active"


def _shown_on_an_idle_list(qtbot):  # type: ignore[no-untyped-def]
    """A connected window shown on a first listing where nothing moves (a helper
    started with the window): its model, the window and that idle listing."""
    import dataclasses

    from tests.gui.bare_window import bare_window
    from tests.gui.sample_data import sample_applications

    model, window = bare_window()
    qtbot.addWidget(window)
    window.set_status(CONNECTED)
    idle = [dataclasses.replace(a, down_bps=0.0, up_bps=0.0) for a in sample_applications()]
    model.apply_snapshot(idle)
    window.show()
    qtbot.waitExposed(window)
    return model, window, idle


def test_the_first_selection_follows_the_busiest_once_rates_are_known(qtbot) -> None:  # type: ignore[no-untyped-def]
    """A helper started with the window (on demand, by the bus) first lists
    every application at 0 B/s: under Xvfb the window chose the first by name
    (Backup Server) and kept it while Media Server and a 17 MB/s download
    topped the list. A choice the window made on no traffic is made again
    once there is some; one the user made is theirs."""
    from tests.gui.bare_window import bare_window
    from tests.gui.sample_data import sample_applications

    model, window, idle = _shown_on_an_idle_list(qtbot)
    assert window.detail.app_id and window.detail.app_id != FIREFOX  # the first by name
    for _ in range(2):  # rates need two answers in some helpers: the first may be idle too
        model.apply_snapshot(sample_applications())
    assert window.detail.app_id == FIREFOX  # the busiest now
    model.apply_snapshot(idle)
    model.apply_snapshot(sample_applications())
    assert window.detail.app_id == FIREFOX
    # the user's own choice stays, made on an idle list too
    model2, other = bare_window()
    qtbot.addWidget(other)
    other.set_status(CONNECTED)
    model2.apply_snapshot(idle)
    other.show()
    chosen = other.detail.app_id  # the window's pick; the user clicks it: now theirs
    qtbot.mouseClick(other.table.viewport(), Qt.MouseButton.LeftButton,
                     pos=other.table.visualRect(other.table.proxy_index(chosen)).center())  # fmt: skip
    model2.apply_snapshot(sample_applications())
    assert other.detail.app_id == chosen
    assert other.select_application("app:org.gnome.Fractal")  # asked for: kept too
    model2.apply_snapshot(idle)
    model2.apply_snapshot(sample_applications())
    assert other.detail.app_id == "app:org.gnome.Fractal"


def test_the_row_the_window_picked_is_kept_once_asked_for(qtbot) -> None:  # type: ignore[no-untyped-def]
    """An application asked for (select_application: a test, the row menu's
    "Connections", the filter's way back) stays chosen when it is the row the
    window had picked itself on an idle list: the busiest took its place at
    the next answer with traffic. So tests/e2e/test_gui_connections.py, on a
    machine where its upload was the only application listed, once lost its
    connection's row to another application's while waiting for its rate."""
    from tests.gui.sample_data import sample_applications

    model, window, _idle = _shown_on_an_idle_list(qtbot)
    picked = window.detail.app_id
    assert picked and picked != FIREFOX  # the window's own pick, the first by name
    assert window.select_application(picked)  # asked for: now chosen
    model.apply_snapshot(sample_applications())  # Firefox the busiest
    assert window.detail.app_id == picked
