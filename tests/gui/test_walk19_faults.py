"""What gui19 found left by the last walks (gui18, engine19), each with the real
widgets (offscreen)."""

from __future__ import annotations

import time

from chadthrottle.contract import ADMIN_OWNER, Direction, RuleInfo
from chadthrottle.gui.ipc.worker import Snapshot
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.models.limit_truth import block_lifts
from chadthrottle.gui.widgets.rate_width import BLOCKED_TEXT
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from tests.gui.test_walk10_faults import _with
from tests.gui.walk_stage import CONNECTED, on_screen, paused_spent_quota

FIREFOX = "app:org.mozilla.firefox"
STEAM = "app:com.valvesoftware.Steam"
SPENT = {"up_quota_bytes": 20 * 10**6, "up_quota_left_bytes": 0, "up_quota_period": "day"}


def _spent_upload(controller, block_rule: bool) -> None:  # type: ignore[no-untyped-def]
    """Firefox's upload quota (20 MB a day, then 100 KB/s) used up, listed as the
    helper lists it until the kernel's gate opens to that rate: blocked, no rate
    (engine19; helper: Gating.truth); with block_rule, a block of the user's own on top."""
    quota = {"quota_bytes": 20 * 10**6, "quota_period": "day", "quota_then_bps": 100_000}
    rules = (RuleInfo(FIREFOX, "up", 0, 0, ADMIN_OWNER, True, blocked=block_rule, **quota),)
    listing = tuple(_with(FIREFOX, up_blocked=True, up_limit_bps=0, **SPENT))
    controller.connection.applicationsUpdated.emit(Snapshot(listing, {}, time.monotonic(), rules))


def _cell(window, app_id: str, column: int) -> QImage:  # type: ignore[no-untyped-def]
    table = window.table
    return table.viewport().grab(table.visualRect(table.proxy_index(app_id, column))).toImage()


def test_a_used_up_quota_switching_to_its_rate_does_not_read_as_a_block(
    qtbot, make_controller
) -> None:  # type: ignore[no-untyped-def]
    """A quota that, used up, limits to 100 KB/s is listed blocked for a tick or
    two while the kernel's gate still holds it (helper commit 5700d15): the row
    read a plain "Blocked", its tooltip "Upload: blocked: no data passes", the
    menu offered "Unblock upload", as for a block the user never set. It reads
    as the rate on its way ("100 KB/s…", as a limit asked for) and says so."""
    controller = make_controller()
    model, window = controller.model, controller.window
    on_screen(window, qtbot)
    _spent_upload(controller, block_rule=True)  # a block of one's own: "Blocked" it is
    assert window.select_application(STEAM)  # Firefox's row painted, not open
    qtbot.waitUntil(lambda: model.limit_state(FIREFOX, Direction.UP).blocked)
    blocked_cell = _cell(window, FIREFOX, Column.UP_LIMIT)
    _spent_upload(controller, block_rule=False)
    state = model.limit_state(FIREFOX, Direction.UP)
    assert state.blocked and not block_lifts(state)  # no "Unblock" lifts it
    menu = window.row_menu(FIREFOX)  # the row menu offers none
    block = next(action for action in menu.actions() if action.objectName() == "block:up")
    assert block.text() == "Block upload" and not block.isChecked(), block.text()
    qtbot.waitUntil(lambda: _cell(window, FIREFOX, Column.UP_LIMIT) != blocked_cell)
    tooltip = str(
        window.table.proxy_index(FIREFOX, Column.UP_LIMIT).data(Qt.ItemDataRole.ToolTipRole)
    )
    assert tooltip.startswith(
        "Upload quota: all 20.0 MB used today: switching to 100 KB/s until the next day."
    ), tooltip
    assert "blocked" not in tooltip.lower() and "Unblock" not in tooltip, tooltip
    assert window.select_application(FIREFOX)
    control = window.limit_control(FIREFOX, Direction.UP)
    assert control is not None
    qtbot.waitUntil(control.isVisible)
    assert control.field.text() == "100 KB/s…" != BLOCKED_TEXT
    notes = window.detail.limit_notes
    qtbot.waitUntil(lambda: "switching to 100 KB/s" in notes.text())
    assert "blocked" not in notes.text().lower(), notes.text()


def test_a_resort_keeps_the_selected_row_wholly_in_sight(qtbot) -> None:  # type: ignore[no-untyped-def]
    """At 2x on 1366x768, paused, the list (a few rows, scrolled by pixels)
    re-sorted under the selected row and left it half below the list's edge.
    A row in sight before a re-sort is wholly in sight after it."""
    import dataclasses

    from tests.gui.bare_window import bare_window
    from tests.gui.sample_data import KB, sample_applications

    model, window = bare_window()
    qtbot.addWidget(window)
    window.set_status(CONNECTED)
    model.apply_snapshot(sample_applications())
    window.resize(669, 344)  # the window at 2x on 1366x768 under Xvfb (openbox)
    window.show()
    qtbot.waitExposed(window)
    table = window.table
    table.sortByColumn(Column.DOWN, Qt.SortOrder.DescendingOrder)  # Dropbox 4th, syncthing 3rd
    syncthing, dropbox = "exe:/usr/bin/syncthing", "app:com.dropbox.Client"
    assert window.select_application(syncthing)
    height, seen = table.rowHeight(table.proxy_index(syncthing)), table.viewport().height()
    assert 1.5 * height <= seen <= 3.5 * height, (height, seen)  # the 2x window's few rows
    # scrolled so that syncthing (row 2) is whole and the row below it half in sight
    table.verticalScrollBar().setValue(int(3.5 * height) - seen)
    qtbot.waitUntil(
        lambda: table.viewport().rect().contains(table.visualRect(table.currentIndex()))
    )

    def whole() -> bool:
        return table.viewport().rect().contains(table.visualRect(table.proxy_index(syncthing)))

    assert whole()
    model.apply_snapshot(  # Dropbox overtakes it: syncthing goes to the half-shown row
        [
            dataclasses.replace(a, down_bps=400 * KB) if a.id == dropbox else a
            for a in sample_applications()
        ]
    )
    assert table.proxy_index(dropbox).row() < table.proxy_index(syncthing).row()
    assert whole(), (table.visualRect(table.proxy_index(syncthing)), table.viewport().rect())


def test_a_paused_quota_says_it_short_and_plain_in_the_detail_pane(qtbot, make_controller) -> None:  # type: ignore[no-untyped-def]
    """At 2x on 1366x768, limits paused, an upload quota used up (then blocked)
    over a limit of one's own: the pane read "Upload: block set. Quota: all 1.00
    MB used today: blocked until the next day. Not enforced: limits are paused:
    traffic flows." and the kept limit's sentence, four lines and a scroll bar
    beside three of them: a block the user never set, "blocked" beside "traffic
    flows". One short sentence says the quota, what it does once limits resume."""

    controller = make_controller()
    window = controller.window
    on_screen(window, qtbot, 669, 344)  # the window at 2x on 1366x768 under Xvfb (openbox)
    window.set_limits_paused(True)
    paused_spent_quota(controller, FIREFOX)
    assert window.select_application(FIREFOX)
    notes = window.detail.limit_notes
    qtbot.waitUntil(notes.isVisible)
    said = "Upload quota: all 1.00 MB used today; blocked until the next day once limits resume."
    assert said in notes.text(), notes.text()
    assert "block set" not in notes.text() and "traffic flows" not in notes.text()


def test_the_notes_box_is_given_no_negative_height(qtbot, make_controller) -> None:  # type: ignore[no-untyped-def]
    """Each start at 2x (gui18's and gui19's walks) logged "QWidget::setMinimumSize:
    (/NotesBox) Negative sizes (0,-1) are not possible": the notes' box was fitted
    to an empty label, which has no height for a width (-1)."""
    from PySide6.QtCore import qInstallMessageHandler

    from tests.gui.sample_data import sample_applications

    said: list[str] = []
    before = qInstallMessageHandler(lambda _kind, _context, message: said.append(message))
    try:
        controller = make_controller()
        window = controller.window
        window.resize(669, 344)  # the window at 2x on 1366x768 under Xvfb (openbox)
        window.show()
        qtbot.waitExposed(window)
        controller.model.apply_snapshot(sample_applications())
        assert window.select_application(FIREFOX)
        qtbot.waitUntil(lambda: window.detail.summary.text().startswith("Firefox"))
    finally:
        qInstallMessageHandler(before)
    assert not [message for message in said if "Negative sizes" in message], said
