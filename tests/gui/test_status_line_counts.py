"""walk26 (shot 15): the status line read "2 limits active" of a 60 KB/s
limit and a block, while the row menu's "Clear limits" does not lift a block:
blocks are counted apart, in the window's status line and the tray's tooltip."""

from __future__ import annotations

import dataclasses

from chadthrottle.contract import RuleInfo
from chadthrottle.gui.tray.tray import TrayController
from chadthrottle.gui.views.main_window import MainWindow

from tests.gui.sample_data import sample_applications
from tests.gui.test_tray import CONNECTED

FIREFOX = "app:org.mozilla.firefox"  # limited to 5 MB/s down in the sample


def _with_firefox_upload_blocked() -> list:  # type: ignore[type-arg]
    return [
        dataclasses.replace(a, up_limit_bps=0, up_blocked=True, up_limit_owner=1000)
        if a.id == FIREFOX
        else a
        for a in sample_applications()
    ]


def test_a_block_is_counted_as_a_block_not_a_limit(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    limits = window.status_line.limits
    assert limits.text() == "3 limits active"
    window._model.apply_snapshot(_with_firefox_upload_blocked())
    qtbot.waitUntil(lambda: limits.text() != "3 limits active")
    assert limits.text() == "3 limits, 1 block active"

    tray = TrayController(window._model)
    tray.set_status(CONNECTED)
    tray.refresh()
    assert tray.icon.toolTip().endswith(", 3 limits, 1 block"), tray.icon.toolTip()


GB = 1_000_000_000


def test_a_quota_is_counted_as_a_quota_not_a_limit(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    """The status line counted a quota as a limit ("4 limits active" of three
    limits and a quota), while "Clear rate limits" leaves a quota: said apart,
    a direction with a limit and a quota in both, a used-up quota's block as
    its quota's, not a block the user set."""
    limits = window.status_line.limits
    assert limits.text() == "3 limits active"
    quota = {"up_quota_bytes": 5 * GB, "up_quota_left_bytes": 4 * GB, "up_quota_period": "day"}
    window._model.apply_snapshot(
        [dataclasses.replace(a, **quota) if a.id == FIREFOX else a for a in sample_applications()]
    )
    qtbot.waitUntil(lambda: limits.text() != "3 limits active")
    assert limits.text() == "3 limits, 1 quota active"  # Firefox's download limit stays one
    spent = {**quota, "up_quota_left_bytes": 0, "up_blocked": True, "up_limit_owner": 1000}
    window._model.set_rules(  # the quota then blocks: no block rule (ListRules)
        [RuleInfo(FIREFOX, "up", 0, 0, 1000, True, quota_bytes=5 * GB, quota_period="day")]
    )
    window._model.apply_snapshot(
        [dataclasses.replace(a, **spent) if a.id == FIREFOX else a for a in sample_applications()]
    )
    assert window._model.limit_tally().active == "3 limits, 1 quota"  # its block is the quota's
    tray = TrayController(window._model)
    tray.set_status(CONNECTED)
    tray.refresh()
    assert tray.icon.toolTip().endswith(", 3 limits, 1 quota"), tray.icon.toolTip()
