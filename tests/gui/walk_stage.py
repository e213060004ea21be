"""What the walk tests (test_walk*_faults.py) set up again and again: the
window on screen with its helper connected, and a used-up upload quota over a
limit of the user's own, as the helper lists it while limits are paused."""

from __future__ import annotations

import time

from chadthrottle.contract import ADMIN_OWNER, PAUSED_PROBLEM, RuleInfo
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.ipc.worker import Snapshot

from tests.gui.test_walk10_faults import _with

CONNECTED = HelperStatus(HelperState.CONNECTED, "", True, True)


def on_screen(window, qtbot, width: int = 1100, height: int = 700) -> None:  # type: ignore[no-untyped-def]
    """The window shown at width x height, its helper connected, once exposed."""
    window.set_status(CONNECTED)
    window.resize(width, height)
    window.show()
    qtbot.waitExposed(window)


def paused_spent_quota(controller, app_id: str) -> None:  # type: ignore[no-untyped-def]
    """app_id's upload quota (1 MB a day, then blocked) used up over its limit of
    1 MB/s, listed with the paused problem: the helper's listing while paused."""
    quota = {"quota_bytes": 10**6, "quota_period": "day", "quota_then_bps": 0}
    rules = (RuleInfo(app_id, "up", 10**6, 0, ADMIN_OWNER, True, **quota),)
    listing = tuple(
        _with(app_id, up_blocked=True, up_limit_bps=0, up_quota_bytes=10**6,
              up_quota_left_bytes=0, up_quota_period="day", up_limit_problem=PAUSED_PROBLEM)
    )  # fmt: skip
    controller.connection.applicationsUpdated.emit(Snapshot(listing, {}, time.monotonic(), rules))
