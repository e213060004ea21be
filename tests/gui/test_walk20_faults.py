"""What gui20 found left after gui19 and engine20 (a then-rate quota listed
blocked while it switches), each with the real widgets (offscreen) on scripted
listings."""

from __future__ import annotations

import time

from chadthrottle.contract import ADMIN_OWNER, ApplicationInfo, RuleInfo
from chadthrottle.gui.ipc.worker import Snapshot

from tests.gui.test_walk10_faults import _with
from tests.gui.test_walk19_faults import CONNECTED, FIREFOX, SPENT, _spent_upload


def _emit(controller, listing: list[ApplicationInfo], rules: tuple[RuleInfo, ...]) -> None:  # type: ignore[no-untyped-def]
    controller.connection.applicationsUpdated.emit(
        Snapshot(tuple(listing), {}, time.monotonic(), rules)
    )


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
    assert switching in note and "held to" not in note, note
    rules = (RuleInfo(FIREFOX, "up", 0, 0, ADMIN_OWNER, True, quota_bytes=20 * 10**6,
                      quota_period="day", quota_then_bps=100_000),)  # fmt: skip
    _emit(controller, _with(FIREFOX, up_blocked=False, up_limit_bps=100_000, **SPENT), rules)
    qtbot.waitUntil(lambda: "held to 100 KB/s until the next day" in said()[0])
    assert "switching" not in " ".join(said()), said()
