"""walk26: the row menu's "Clear limits" left a block and a quota in force
(and a schedule's rate), and nothing said so. It is named for what it does,
"Clear rate limits", says what stays, and is not offered where it would
change nothing (a schedule's rate with no plain limit beneath)."""

from __future__ import annotations

import dataclasses

from chadthrottle.contract import ADMIN_OWNER, RuleInfo
from chadthrottle.gui.views.main_window import MainWindow
from PySide6.QtGui import QAction

from tests.gui.sample_data import sample_applications

DROPBOX = "app:com.dropbox.Client"  # an upload limit of the viewer's own in the sample
GB = 1_000_000_000


def _clear(window: MainWindow, app_id: str) -> QAction:
    found = window.row_menu(app_id).findChild(QAction, "clear-limits")
    assert found is not None
    return found


def _with_dropbox(**changes: object) -> None:
    return [
        dataclasses.replace(a, **changes) if a.id == DROPBOX else a for a in sample_applications()
    ]  # type: ignore[return-value, arg-type]


def test_clear_is_named_for_the_rate_limits_and_says_what_stays(window: MainWindow) -> None:
    requests: list[list[object]] = []
    window.limitRequested.connect(lambda *args: requests.append(list(args)))
    window._model.apply_snapshot(_with_dropbox(
        down_blocked=True, down_limit_owner=1000, up_quota_bytes=5 * GB,
        up_quota_left_bytes=4 * GB, up_quota_period="day",
    ))  # fmt: skip
    clear = _clear(window, DROPBOX)
    assert clear.text() == "Clear rate limits" and clear.isEnabled()
    tip = clear.toolTip()
    assert tip.startswith("Removes the download and upload rate limits you set.\n")
    assert max(len(line) for line in tip.splitlines()) <= 72  # plain tooltips do not wrap
    assert "\nStays now: download blocked, upload quota." in tip, tip
    clear.trigger()
    assert requests == [[DROPBOX, "up", None]]  # the rate alone: nothing else is asked


def test_a_schedules_rate_alone_is_not_offered_to_clear(window: MainWindow) -> None:
    """ClearLimit leaves a schedule: with no plain limit beneath, "Clear" was
    enabled and changed nothing."""
    uid = window._model.viewer_uid
    mine = ADMIN_OWNER if uid == 0 else uid  # root's rules are the administrator's
    window._model.set_rules([RuleInfo(DROPBOX, "up", 0, 0, mine, True)])
    window._model.apply_snapshot(_with_dropbox(up_schedule="mon-fri 09:00-17:00"))
    clear = _clear(window, DROPBOX)
    assert not clear.isEnabled()
    # greyed, and says why first (it said only what it removes until review28)
    assert clear.toolTip().startswith(
        "Nothing to remove: no rate limit of yours is set on it, schedules aside.\n"
    )
    assert max(len(line) for line in clear.toolTip().splitlines()) <= 72
    assert "upload schedule mon-fri 09:00-17:00" in " ".join(clear.toolTip().split())
    window._model.set_rules([RuleInfo(DROPBOX, "up", 50_000, 0, mine, True)])  # one beneath it
    assert _clear(window, DROPBOX).isEnabled()


def test_a_quick_limit_under_a_schedule_says_it_applies_outside_it(window: MainWindow) -> None:
    """Choosing a quick limit (or None) while a schedule sets the rate changes
    the plain limit, which applies outside the schedule: the row menu and the
    tray said nothing of it (the checked item was the schedule's rate)."""
    from chadthrottle.contract import Direction
    from chadthrottle.gui.tray.tray import TrayController, action_name

    from tests.gui.test_tray import CONNECTED

    window._model.apply_snapshot(_with_dropbox(up_schedule="mon-fri 09:00-17:00"))
    outside = "Set by the schedule mon-fri 09:00-17:00 while it runs; a limit set here applies outside it."
    menu = window.row_menu(DROPBOX)
    quick = menu.findChild(QAction, "limit:up:None")
    assert quick is not None and outside in quick.toolTip(), quick.toolTip() if quick else None
    tray = TrayController(window._model)
    try:
        tray.set_status(CONNECTED)
        tray.rebuild_menu()
        name = action_name(DROPBOX, Direction.UP, "None")
        found = [a for a in tray.menu.findChildren(QAction) if a.objectName() == name]
        assert found and outside in found[0].toolTip(), [a.toolTip() for a in found]
    finally:
        tray.shutdown()


def test_pause_says_it_lifts_blocks_and_quotas_too() -> None:
    """Pausing all limits lifts blocks and quotas too (docs/helper.md, "Paused,
    outranked"); the tray's tooltip said "every limit", the word "Clear limits"
    used for rates alone."""
    from chadthrottle.gui.tray.tray import PAUSE_TOOLTIP

    # and priorities: no link capacity is in force while paused (unsaid until review28)
    assert "every limit, block, quota and priority" in " ".join(PAUSE_TOOLTIP.split())
    assert max(len(line) for line in PAUSE_TOOLTIP.splitlines()) <= 72  # plain tooltips do not wrap
