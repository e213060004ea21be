"""The detail graph's limit line, against the real helper: each sample is
drawn under the limit the helper listed as holding it, so a limit lowered
leaves the old value over the old samples (walk28 saw today's 200 KB/s drawn
across a minute of 250-600 KB/s, as if the limit had failed). The window is
the real AppController (offscreen) on the stack's bus; the limits are typed
into the row's field, as a user does."""

from __future__ import annotations

import os
from collections.abc import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from chadthrottle.contract import Direction
from chadthrottle.gui.controller import AppController

from tests.e2e.conftest import Stack
from tests.e2e.gui_support import running_gui, streaming_app
from tests.e2e.test_gui_limits import _type_limit, _wait_for_row
from tests.gui.test_graph_limit_history import _limit_drawn_at

FIRST_BPS = 4_000_000
THEN_BPS = 1_000_000
SAMPLES_UNDER_EACH = 4  # polls listed under a limit before the next step


@pytest.fixture
def gui(stack: Stack, qtbot, tmp_path) -> Iterator[AppController]:  # type: ignore[no-untyped-def]
    with running_gui(stack, qtbot, tmp_path / "chadthrottle.ini") as controller:
        yield controller


def _samples_under(gui: AppController, app_id: str, limit_bps: int) -> int:
    history = gui.model.history(app_id)
    assert history is not None
    return int(np.count_nonzero(history.limits(300)[:, 1] == limit_bps))


def test_a_limit_lowered_leaves_the_old_one_over_the_old_samples(
    qtbot, stack: Stack, gui: AppController
) -> None:  # type: ignore[no-untyped-def]
    with streaming_app(stack, "TestGuiGraphSteps", 5630, Direction.UP) as (app_id, _stream):
        _wait_for_row(qtbot, gui, app_id)
        _type_limit(qtbot, gui, app_id, Direction.UP, "4M")
        qtbot.waitUntil(
            lambda: _samples_under(gui, app_id, FIRST_BPS) >= SAMPLES_UNDER_EACH, timeout=30_000
        )
        _type_limit(qtbot, gui, app_id, Direction.UP, "1M")
        qtbot.waitUntil(
            lambda: _samples_under(gui, app_id, THEN_BPS) >= SAMPLES_UNDER_EACH, timeout=30_000
        )
        assert gui.window.select_application(app_id)
        gui.window.detail.set_folded(False)
        gui.window.detail.refresh()
        up = gui.window.detail.graphs[Direction.UP]
        xs, _rates = gui.window.detail.plotted
        history = gui.model.history(app_id)
        assert history is not None
        times, _ = history.timed(300)
        held = history.limits(300)[:, 1]
        ago = times - (times[-1] - xs[-1])  # each sample's x on the graph (its last is the newest)
        old = int(np.flatnonzero(held == FIRST_BPS)[1])  # inside its run, not at its edge
        assert _limit_drawn_at(up, float(ago[old])) == FIRST_BPS  # not today's 1.00 MB/s
        assert _limit_drawn_at(up, float(ago[-1])) == THEN_BPS
