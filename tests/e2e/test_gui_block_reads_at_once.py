"""A block shows in the row's rate at once (gui7; gui6's walk: "Blocked" beside
"2.24 MB/s" for 2-3 s). The helper lists rates as a mean over its last
RATE_WINDOW_TICKS ticks; an application whose rules change has its window
restarted at the change (helper/engine/rates.py RateMeter.restart), so the
first tick after a block reads what passed since: nothing.

Real helper, real traffic over the veth, the real window polling every
POLL_S; each answer the window shows is recorded with the application's
bytes in it. Counted in the helper's ticks, not seconds (a loaded machine
delays both the tick and the poll): the blocked upload's bytes stop growing
at the first tick after the block (that tick counts what passed before it,
and the gate counts nothing it refuses), and the first answer that holds
those final bytes must already read the row quiet. Without the restart that
answer reads the two-tick window, at least half the stream's rate.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from chadthrottle.contract import TICK_INTERVAL_S, Direction
from chadthrottle.gui.controller import AppController
from chadthrottle.gui.models.columns import Column, Role

from tests.e2e.conftest import Stack
from tests.e2e.gui_support import running_gui, streaming_app
from tests.support.helper_calls import call_helper

PORT = 5790
POLL_S = 0.25  # the settings' floor is 0.2 s: the window's own lag kept small
FLOOR_BPS = 5_000_000  # an unlimited stream on the veth moves far more
QUIET_SHARE = 0.05  # "reads blocked": under this share of the rate before


@pytest.fixture
def gui(stack: Stack, qtbot, tmp_path) -> Iterator[AppController]:  # type: ignore[no-untyped-def]
    with running_gui(stack, qtbot, tmp_path / "chadthrottle.ini", POLL_S) as controller:
        yield controller


def test_a_blocked_row_reads_its_rate_gone_at_the_first_tick_after_the_block(
    qtbot, stack: Stack, gui: AppController
) -> None:  # type: ignore[no-untyped-def]
    with streaming_app(stack, "TestGuiBlockAtOnce", PORT, Direction.UP) as (app_id, _stream):

        def up_bps() -> float:
            index = gui.window.table.proxy_index(app_id, Column.UP)  # anew: rows re-sort
            return float(index.data(Role.RATE_UP) or 0.0) if index.isValid() else 0.0

        def listed_tx() -> int:
            (app,) = [
                a
                for a in call_helper(stack.bus_address, lambda c: c.list_applications())
                if a.id == app_id
            ]
            return app.tx_bytes

        # each answer the window showed: the application's bytes in it, the row's rate
        shown: list[tuple[int, float]] = []

        def measuring() -> bool:  # API 7: no rate until the tick after the block ("…")
            app = gui.model.application(app_id)
            return app is not None and app.measuring(Direction.UP)

        def on_shown() -> None:
            app = gui.model.application(app_id)
            if app is not None and not measuring():
                shown.append((app.tx_bytes, up_bps()))

        gui.snapshotShown.connect(on_shown)
        qtbot.waitUntil(lambda: up_bps() > FLOOR_BPS, timeout=15_000)
        qtbot.wait(int(3 * TICK_INTERVAL_S * 1000))  # a window wholly of the stream
        before = up_bps()
        assert before > FLOOR_BPS
        call_helper(stack.bus_address, lambda c: c.set_blocked(app_id, Direction.UP, True))
        qtbot.waitUntil(lambda: up_bps() < QUIET_SHARE * before and not measuring(), timeout=15_000)
        # the blocked upload's last bytes: those the first tick after the block counted
        final = listed_tx()
        qtbot.waitUntil(lambda: any(tx >= final for tx, _ in shown), timeout=15_000)
        first_tx, first_bps = next((tx, bps) for tx, bps in shown if tx >= final)
        print(
            f"rate before {before / 1e6:.2f} MB/s; the first answer with the final"
            f" {first_tx} B read {first_bps / 1e6:.3f} MB/s ({len(shown)} answers shown)"
        )
        assert first_bps < QUIET_SHARE * before, (
            f"the row read {before / 1e6:.2f} MB/s before the block and"
            f" {first_bps / 1e6:.2f} MB/s at the first tick after it"
        )
