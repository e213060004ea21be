"""walk26 (shot 15): the status line read "2 limits active" of a 60 KB/s
limit and a block, while the row menu's "Clear limits" does not lift a block:
blocks are counted apart, in the window's status line and the tray's tooltip."""

from __future__ import annotations

import dataclasses

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
