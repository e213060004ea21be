"""The row menu: right click or Menu key / Shift+F10, and each action does what it says."""

from __future__ import annotations

import dataclasses

import pytest
from chadthrottle.contract import Direction
from chadthrottle.gui.controller import BLOCKS_OLD_HELPER, TRAY_BLOCK_KEY, AppController
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.ipc.worker import UNKNOWN_METHOD
from chadthrottle.gui.views.main_window import MainWindow
from chadthrottle.units import UnitSystem
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QContextMenuEvent
from PySide6.QtWidgets import QApplication, QMenu

from tests.gui.sample_data import sample_applications
from tests.gui.worker_reports import inject_observations

FIREFOX = "app:org.mozilla.firefox"
DROPBOX = "app:com.dropbox.Client"


@pytest.fixture
def window(active_window: MainWindow) -> MainWindow:
    return active_window


def action(menu: QMenu, name: str) -> QAction:
    found = [a for a in menu.findChildren(QAction) if a.objectName() == name]
    assert found, f"no action {name!r} in {[a.objectName() for a in menu.findChildren(QAction)]}"
    return found[0]


def names(menu: QMenu) -> set[str]:
    return {a.objectName() for a in menu.findChildren(QAction) if a.objectName()}


def test_the_menu_offers_only_what_the_helper_can_do(window: MainWindow) -> None:
    menu = window.row_menu(FIREFOX)
    assert {"clear-limits", "copy-id", "show-connections", "limit:down:1 MB/s", "limit:up:5 MB/s",
            "limit:down:None"} <= names(menu)  # fmt: skip
    assert action(menu, "block:down").text() == "Block download"  # the helper has SetBlocked
    assert action(menu, "block:up").text() == "Block upload"
    assert action(menu, "priority:normal").isChecked()  # Firefox has no priority
    assert action(menu, "limit:down:5 MB/s").isChecked()  # Firefox is limited to 5 MB/s


def test_no_block_with_a_helper_that_cannot_block(window: MainWindow) -> None:
    window._model.blocks_unavailable = "Blocks need a newer helper"
    texts = " ".join(a.text() for a in window.row_menu(FIREFOX).findChildren(QAction)).lower()
    assert "block" not in texts


def test_block_and_unblock_ask_for_exactly_that(window: MainWindow) -> None:
    requests: list[list[object]] = []
    window.blockRequested.connect(lambda *args: requests.append(list(args)))
    block = action(window.row_menu(DROPBOX), "block:down")
    assert block.isEnabled() and not block.isChecked() and "Let no data through" in block.toolTip()
    block.trigger()
    assert requests == [[DROPBOX, "down", True]]
    window._model.apply_snapshot([dataclasses.replace(a, up_blocked=True, up_limit_bps=0)
                                  if a.id == DROPBOX else a for a in sample_applications()])  # fmt: skip
    unblock = action(window.row_menu(DROPBOX), "block:up")
    assert unblock.text() == "Unblock upload" and not unblock.isCheckable()  # no tick: gui22
    requests.clear()
    unblock.trigger()
    assert requests == [[DROPBOX, "up", False]]
    window.set_status(HelperStatus(HelperState.NOT_RUNNING))
    assert not action(window.row_menu(DROPBOX), "block:down").isEnabled()


def test_quick_limits_follow_the_units_shown(window: MainWindow) -> None:
    window.set_units(UnitSystem.BITS_DECIMAL)
    labels = names(window.row_menu(FIREFOX))
    assert "limit:down:10 Mbit/s" in labels and "limit:down:1 MB/s" not in labels


def test_a_quick_limit_and_clear_ask_for_exactly_that(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    requests: list[list[object]] = []
    window.limitRequested.connect(lambda *args: requests.append(list(args)))
    action(window.row_menu(DROPBOX), "limit:down:1 MB/s").trigger()
    assert requests == [[DROPBOX, "down", 1_000_000]]
    requests.clear()
    action(window.row_menu(DROPBOX), "clear-limits").trigger()  # Dropbox has only an upload limit
    assert requests == [[DROPBOX, "up", None]]


def test_limit_entries_are_disabled_when_they_could_not_work(window: MainWindow) -> None:
    assert not action(window.row_menu("exe:/usr/bin/curl"), "clear-limits").isEnabled()
    window.set_status(HelperStatus(HelperState.NOT_RUNNING))
    menu = window.row_menu(FIREFOX)
    assert not action(menu, "limit:down:1 MB/s").isEnabled()
    assert not action(menu, "clear-limits").isEnabled()
    assert action(menu, "copy-id").isEnabled()


def test_copy_id_and_show_connections(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    action(window.row_menu(DROPBOX), "copy-id").trigger()
    assert QApplication.clipboard().text() == DROPBOX
    window.splitter.setSizes([10_000, 0])  # the detail pane squeezed away
    with qtbot.waitSignal(window.connectionsWanted) as wanted:
        action(window.row_menu(DROPBOX), "show-connections").trigger()
    assert DROPBOX in wanted.args[0]
    assert window.detail.app_id == DROPBOX
    assert window.splitter.sizes()[1] >= window.detail.minimumSizeHint().height()


@pytest.mark.parametrize("key, modifier", [
    (Qt.Key.Key_Menu, Qt.KeyboardModifier.NoModifier),
    (Qt.Key.Key_F10, Qt.KeyboardModifier.ShiftModifier),
])  # fmt: skip
def test_the_keyboard_opens_the_menu_of_the_current_row(
    qtbot, window: MainWindow, key, modifier
) -> None:  # type: ignore[no-untyped-def]
    window.select_application(DROPBOX)
    window.table.setFocus()
    qtbot.keyClick(window.table, key, modifier)
    qtbot.waitUntil(lambda: isinstance(QApplication.activePopupWidget(), QMenu))
    menu = QApplication.activePopupWidget()
    assert menu.objectName() == f"row-menu:{DROPBOX}"
    menu.close()


def test_right_click_selects_the_row_and_opens_its_menu(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    index = window.table.proxy_index(DROPBOX)
    rect = window.table.visualRect(index)
    opened: list[str] = []
    window.table.rowMenuRequested.connect(lambda app_id, _where, _top: opened.append(app_id))
    where = rect.center()
    event = QContextMenuEvent(
        QContextMenuEvent.Reason.Mouse, where, window.table.viewport().mapToGlobal(where)
    )
    QApplication.sendEvent(window.table.viewport(), event)
    assert opened == [DROPBOX]
    assert window.detail.app_id == DROPBOX
    popup = QApplication.activePopupWidget()
    if popup is not None:
        popup.close()


def _polled_controller(make_controller) -> AppController:  # type: ignore[no-untyped-def]
    """The real controller on the sample applications, as after a good poll, with
    no helper: a call comes back "not connected"."""
    controller: AppController = make_controller()
    controller.model.apply_snapshot(sample_applications())
    inject_observations(controller.connection, has_polled_ok=True)
    return controller


def test_the_menu_reaches_the_controller_and_its_model(make_controller) -> None:  # type: ignore[no-untyped-def]
    controller = _polled_controller(make_controller)
    finished = []
    controller.connection.limitFinished.connect(lambda request, *_: finished.append(request))
    action(controller.window.row_menu(FIREFOX), "limit:up:100 KB/s").trigger()
    assert [(r.app_id, r.direction, r.rate_bps) for r in finished] == [(FIREFOX, "up", 100_000)]
    assert controller.model.effective_limit(FIREFOX, Direction.UP) == 0  # no worker: it fell back
    controller.shutdown()


def test_a_block_takes_the_trays_path_and_an_old_helper_hides_it(qtbot, make_controller) -> None:  # type: ignore[no-untyped-def]
    """The row menu's Block is the tray's SetBlocked call (its key, its refusal
    message); a helper that answers UnknownMethod has no blocks: none offered."""
    controller = _polled_controller(make_controller)
    window = controller.window
    with qtbot.waitSignal(controller.connection.callFinished) as finished:
        action(window.row_menu(FIREFOX), "block:up").trigger()
    assert finished.args[0] == TRAY_BLOCK_KEY and finished.args[2]  # no worker: not connected
    assert window.status_line.message.text().startswith("Could not change the block:")
    controller.connection.callFinished.emit(TRAY_BLOCK_KEY, None, UNKNOWN_METHOD, "")
    assert "block:up" not in names(window.row_menu(FIREFOX))
    assert window.status_line.message.text() == f"Could not change the block: {BLOCKS_OLD_HELPER}"
    controller.shutdown()


def test_an_unblock_done_says_when_open_connections_go_on(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb (real helper) Parcel Updates' download read 0 B/s for 25 s
    after "Unblock download", as if it did nothing: an open TCP connection goes
    on at its sender's next retry, later after a longer block (3 s after a 10 s
    block, 25 s after 30 s, 48 s after 60 s: walk26). The status line says so
    once the helper has done it; a block says nothing of it."""
    from tests.gui.scripted_app import scripted_app
    from tests.gui.test_connection import ScriptedClient

    class BlockingClient(ScriptedClient):
        async def set_blocked(self, app_id: str, direction: Direction, blocked: bool) -> str:
            self.calls.append(("blocked", app_id, direction, blocked))
            return app_id

    client = BlockingClient()
    firefox = "app:org.mozilla.firefox"
    with scripted_app(client, tmp_path) as app:
        app.start(show_window=True)
        qtbot.waitUntil(lambda: app.model.application(firefox) is not None, timeout=5000)
        message = app.window.status_line.message
        app.request_block(firefox, "down", True)
        qtbot.waitUntil(
            lambda: ("blocked", firefox, Direction.DOWN, True) in client.calls, timeout=5000
        )
        app.request_block(firefox, "down", False)
        qtbot.waitUntil(lambda: "download unblocked" in message.toolTip(), timeout=5000)
        assert message.toolTip() == (
            "Firefox: download unblocked. An open connection goes on when its sender next tries: "
            "seconds after a short block, up to a minute or two after a long one."
        )
        assert ("blocked", firefox, Direction.DOWN, True) in client.calls


def test_the_menu_says_whose_it_is_in_plain_text(qtbot, window: MainWindow) -> None:
    """Its actions act on the application it was opened on, whatever row that
    is by then (tests/gui/test_rows_hold_under_pointer.py); at 2x it opened
    over that row's name. The name heads it, bold and plain (a name is never
    markup), a long one cut with "…"; the keys pass the heading by."""
    from PySide6.QtCore import QPoint

    long_name = "<b>Fire</b>fox " + "x" * 60
    model = window._model
    model.apply_snapshot([dataclasses.replace(sample_applications()[0], name=long_name),
                          *sample_applications()[1:]])  # fmt: skip
    menu = window.row_menu(FIREFOX)
    heading = menu.actions()[0]
    label = heading.defaultWidget()
    assert heading.objectName() == "menu-heading" and not heading.isEnabled()
    assert label.textFormat() == Qt.TextFormat.PlainText and label.font().bold()
    assert label.text().startswith("<b>Fire</b>fox xxx") and label.text().endswith("…")
    assert label.toolTip() == f"Everything here acts on {long_name} ({FIREFOX})."
    menu.popup(window.mapToGlobal(QPoint(40, 40)))
    qtbot.waitUntil(lambda: QApplication.activePopupWidget() is menu, timeout=5000)
    qtbot.keyClick(menu, Qt.Key.Key_Down)
    assert menu.activeAction() is not None and menu.activeAction().objectName() == "edit-rules"
    menu.close()
