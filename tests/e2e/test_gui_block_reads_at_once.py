"""A block shows in the row's rate at once (gui7; gui6's walk: "Blocked" beside
"2.24 MB/s" for 2-3 s). The helper lists rates as a mean over its last
RATE_WINDOW_TICKS ticks; an application whose rules change has its window
restarted at the change (helper/engine/rates.py RateMeter.restart), so the
first tick after a block reads what passed since: nothing.

Real helper, real traffic over the veth, the real window polling every
POLL_S; the row's own rate (what its Up cell shows) is watched from the
moment the helper answered the block.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from chadthrottle.contract import RATE_WINDOW_TICKS, TICK_INTERVAL_S, Direction
from chadthrottle.gui.controller import AppController
from chadthrottle.gui.models.columns import Column, Role
from PySide6.QtCore import QSettings

from tests.e2e.conftest import Stack
from tests.e2e.gui_support import running_gui, streaming_app
from tests.support.helper_calls import call_helper

PORT = 5790
POLL_S = 0.25  # the settings' floor is 0.2 s: the window's own lag kept small
FLOOR_BPS = 5_000_000  # an unlimited stream on the veth moves far more
QUIET_SHARE = 0.05  # "reads blocked": under this share of the rate before
# The first tick after the block (at most a tick later), then a poll and its
# answer. With the window holding the seconds before the block, the first
# tick reading under QUIET_SHARE came at least (RATE_WINDOW_TICKS - 0.1) ticks
# later: 1.9 s here.
QUIET_WITHIN_S = TICK_INTERVAL_S + 3 * POLL_S
assert QUIET_WITHIN_S < (RATE_WINDOW_TICKS - 0.1) * TICK_INTERVAL_S


@pytest.fixture
def gui(stack: Stack, qtbot, tmp_path) -> Iterator[AppController]:  # type: ignore[no-untyped-def]
    path = tmp_path / "chadthrottle.ini"
    settings = QSettings(str(path), QSettings.Format.IniFormat)
    settings.setValue("monitor/refresh_interval_s", POLL_S)
    settings.sync()
    with running_gui(stack, qtbot, path) as controller:
        yield controller


def test_a_blocked_row_reads_its_rate_gone_within_a_tick(
    qtbot, stack: Stack, gui: AppController
) -> None:  # type: ignore[no-untyped-def]
    with streaming_app(stack, "TestGuiBlockAtOnce", PORT, Direction.UP) as (app_id, _stream):

        def up_bps() -> float:
            index = gui.window.table.proxy_index(app_id, Column.UP)  # anew: rows re-sort
            return float(index.data(Role.RATE_UP) or 0.0) if index.isValid() else 0.0

        qtbot.waitUntil(lambda: up_bps() > FLOOR_BPS, timeout=15_000)
        qtbot.wait(int(3 * TICK_INTERVAL_S * 1000))  # a window wholly of the stream
        before = up_bps()
        assert before > FLOOR_BPS
        call_helper(stack.bus_address, lambda c: c.set_blocked(app_id, Direction.UP, True))
        blocked_at = time.monotonic()
        qtbot.waitUntil(lambda: up_bps() < QUIET_SHARE * before, timeout=10_000)
        quiet_after_s = time.monotonic() - blocked_at
        print(
            f"rate before {before / 1e6:.2f} MB/s; under 5% {quiet_after_s:.2f} s after the block"
        )
        assert quiet_after_s <= QUIET_WITHIN_S, (
            f"the row read {before / 1e6:.2f} MB/s before the block and still over"
            f" {QUIET_SHARE:.0%} of it {quiet_after_s:.2f} s after"
        )
