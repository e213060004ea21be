"""What gui20 found left after gui19 and engine20 (a then-rate quota listed
blocked while it switches, a block held on after a refused unblock), each with
the real widgets (offscreen) on scripted listings."""

from __future__ import annotations

import time

from chadthrottle.contract import ADMIN_OWNER, PAUSED_PROBLEM, ApplicationInfo, Direction, RuleInfo
from chadthrottle.gui.ipc.worker import Snapshot
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.tray.tray import TrayController
from chadthrottle.gui.widgets.rate_width import BLOCKED_TEXT
from chadthrottle.helper.engine.rule_listing import _gate_problem
from PySide6.QtCore import Qt

from tests.gui.test_walk10_faults import _with
from tests.gui.test_walk19_faults import CONNECTED, FIREFOX, SPENT, STEAM, _cell, _spent_upload
from tests.gui.walk_stage import on_screen

# what the helper lists after a refused unblock (engine20: rule_listing._gate_problem)
REFUSED = "Operation not permitted"
HELD_ON = _gate_problem(REFUSED, 2.4)  # its gate keeps the old block for 3 s more at most
LAPSED = _gate_problem(REFUSED, 0.0)  # then lets all through


def _emit(controller, listing: list[ApplicationInfo], rules: tuple[RuleInfo, ...]) -> None:  # type: ignore[no-untyped-def]
    controller.connection.applicationsUpdated.emit(
        Snapshot(tuple(listing), {}, time.monotonic(), rules)
    )


def _emit_held_on_then_rate(controller) -> None:  # type: ignore[no-untyped-def]
    """Firefox's upload quota (20 MB a day, then 100 KB/s) used up, a change
    to it refused in the tick it switched: listed as the helper lists it while
    the kernel's gate keeps it blocked (HELD_ON)."""
    quota = {"quota_bytes": 20 * 10**6, "quota_period": "day", "quota_then_bps": 100_000}
    rules = (RuleInfo(FIREFOX, "up", 0, 0, ADMIN_OWNER, False, **quota),)
    _emit(controller, _with(FIREFOX, up_blocked=True, up_limit_bps=0, up_limit_problem=HELD_ON,
                            **SPENT), rules)  # fmt: skip


def _shown(window) -> str:  # type: ignore[no-untyped-def]
    """The detail pane's notes whole (the tooltip has them where the label is cut)."""
    notes = window.detail.limit_notes
    return notes.toolTip() or notes.text()


def test_the_rules_dialog_says_a_switching_quota_as_the_pane_does(qtbot, make_controller) -> None:  # type: ignore[no-untyped-def]
    """For the tick or two a used-up quota that then limits to 100 KB/s is
    listed blocked (the kernel's gate still holds it), the pane said "switching
    to 100 KB/s" and the rules dialog "held to 100 KB/s", a rate not yet held.
    Once the helper lists the rate, the dialog says it holds."""
    controller = make_controller()
    window = controller.window
    window.set_status(CONNECTED)
    _spent_upload(controller, block_rule=False)
    assert window.select_application(FIREFOX)
    switching = "switching to 100 KB/s until the next day"
    qtbot.waitUntil(lambda: switching in _shown(window))
    window.rulesRequested.emit(FIREFOX)
    dialog = controller.rules.dialog
    assert dialog is not None
    qtbot.addWidget(dialog)

    def said() -> tuple[str, str]:
        return tuple(  # type: ignore[return-value]
            label.text().replace("\u00a0", " ")
            for label in (dialog.quota_state, dialog.scheduled_note)
        )

    quota, note = said()
    assert quota == f"Upload: all 20.0 MB used today: {switching}.", quota
    assert switching in note and "limited to" not in note, note
    rules = (RuleInfo(FIREFOX, "up", 0, 0, ADMIN_OWNER, True, quota_bytes=20 * 10**6,
                      quota_period="day", quota_then_bps=100_000),)  # fmt: skip
    _emit(controller, _with(FIREFOX, up_blocked=False, up_limit_bps=100_000, **SPENT), rules)
    qtbot.waitUntil(lambda: "limited to 100 KB/s until the next day" in said()[0])
    assert "switching" not in " ".join(said()), said()


def test_a_paused_used_up_quota_reads_as_the_quota_not_as_a_block(qtbot, make_controller) -> None:  # type: ignore[no-untyped-def]
    """Paused, an upload quota used up (then blocked) and no block of one's own:
    its cell read "Blocked" over an amber "not enforced", as a block of the
    user's own does, which they never set. It reads as the quota it is."""
    controller = make_controller()
    model, window = controller.model, controller.window
    on_screen(window, qtbot)
    window.set_limits_paused(True)
    quota = {"quota_bytes": 10**6, "quota_period": "day", "quota_then_bps": 0}
    listing = _with(FIREFOX, up_blocked=True, up_limit_bps=0, up_quota_bytes=10**6,
                    up_quota_left_bytes=0, up_quota_period="day", up_limit_problem=PAUSED_PROBLEM)  # fmt: skip
    own_block = (RuleInfo(FIREFOX, "up", 0, 0, ADMIN_OWNER, False, blocked=True, **quota),)
    _emit(controller, listing, own_block)  # a block of one's own: "Blocked" it is
    assert window.select_application(STEAM)  # Firefox's row painted, not open
    qtbot.waitUntil(lambda: model.limit_state(FIREFOX, Direction.UP).blocked)
    blocked_cell = _cell(window, FIREFOX, Column.UP_LIMIT)
    _emit(controller, listing, (RuleInfo(FIREFOX, "up", 0, 0, ADMIN_OWNER, False, **quota),))
    state = model.limit_state(FIREFOX, Direction.UP)
    assert state.by_quota and state.quota_paused
    qtbot.waitUntil(lambda: _cell(window, FIREFOX, Column.UP_LIMIT) != blocked_cell)
    assert window.select_application(FIREFOX)
    control = window.limit_control(FIREFOX, Direction.UP)
    assert control is not None
    qtbot.waitUntil(control.isVisible)
    assert control.field.text() == "Quota used" != BLOCKED_TEXT


def _tray_entry(model) -> str:  # type: ignore[no-untyped-def]
    tray = TrayController(model)
    tray.set_status(CONNECTED)
    tray.rebuild_menu()
    (entry,) = [a.text() for a in tray.menu.actions() if a.text().startswith("Firefox")]
    tray.shutdown()
    return entry


def test_a_block_held_on_after_a_refused_unblock_reads_blocked_and_says_why(
    qtbot, make_controller
) -> None:  # type: ignore[no-untyped-def]
    """The kernel refused an unblock: its gate keeps the block for up to 3 s,
    then lets all through, while the rule stays blocked (the helper writes it
    again each tick). Held on, the pane said "Upload: block set. Not enforced:
    ...: traffic flows." and the tray "not enforced" while no data passed; once
    lapsed, the row read no limit at all and the menu offered "Block upload",
    the problem unsaid. Held on it reads blocked with the helper's words; lapsed,
    a block set that does not hold, with them; the menu offers the unblock."""
    controller = make_controller()
    model, window = controller.model, controller.window
    on_screen(window, qtbot)
    rules = (RuleInfo(FIREFOX, "up", 0, 0, ADMIN_OWNER, False, blocked=True),)
    _emit(
        controller, _with(FIREFOX, up_blocked=True, up_limit_bps=0, up_limit_problem=HELD_ON), rules
    )
    assert window.select_application(FIREFOX)
    words = "The kernel did not take a change to its block or quota (Operation not permitted)"
    qtbot.waitUntil(lambda: words in _shown(window))
    notes = _shown(window)
    assert notes.startswith("Upload: blocked: no data passes"), notes
    assert "then lets all traffic through." in notes, notes
    assert "traffic flows" not in notes and "Not enforced" not in notes, notes
    tooltip = str(
        window.table.proxy_index(FIREFOX, Column.UP_LIMIT).data(Qt.ItemDataRole.ToolTipRole)
    )
    assert notes.startswith(tooltip.split("\n")[0]), tooltip  # the pane adds how to retry (gui22)
    control = window.limit_control(FIREFOX, Direction.UP)
    assert control is not None
    qtbot.waitUntil(lambda: control.quota.isVisible())
    assert control.field.text() == BLOCKED_TEXT
    assert control.quota.text() != "not enforced", control.quota.text()
    entry = _tray_entry(model)
    assert entry.startswith("Firefox (blocked, change refused)"), entry
    limits = window.status_line.limits  # counted as what it is, not "1 not enforced"
    qtbot.waitUntil(lambda: limits.text().endswith(" limits active, 1 change refused"))
    assert limits.toolTip() == f"Change refused:\nFirefox upload: {HELD_ON}", limits.toolTip()
    menu = window.row_menu(FIREFOX)
    block = next(action for action in menu.actions() if action.objectName() == "block:up")
    assert (block.text(), block.isCheckable()) == ("Retry unblock upload", False)  # gui22

    _emit(
        controller, _with(FIREFOX, up_blocked=False, up_limit_bps=0, up_limit_problem=LAPSED), rules
    )
    lapsed = "Upload: block set. Not enforced: the kernel did not take its block or quota"
    qtbot.waitUntil(lambda: lapsed in _shown(window))
    assert _shown(window).endswith("it does not hold: traffic flows."), _shown(window)
    assert model.limit_state(FIREFOX, Direction.UP).problem == LAPSED
    menu = window.row_menu(FIREFOX)
    block = next(action for action in menu.actions() if action.objectName() == "block:up")
    assert (block.text(), block.isCheckable()) == ("Unblock upload", False)  # no tick: gui22
    assert _tray_entry(model).startswith("Firefox (not enforced)")
