"""A limit the real helper says is not enforced reaches the real window's row
and detail pane as not enforced, never as active (issue 13; the widget tests
in tests/gui/test_limit_truth.py feed records, this one gets them from a
helper). The case is a limit stored while limits are paused by another client
(`chadthrottle-ctl pause`): the helper lists it with down_limit_problem
"limits are paused" (tests/e2e/test_unenforced_limits.py shows the traffic
then runs unlimited). The same row, once resumed, is the control: enforced,
no warning."""

from __future__ import annotations

import os
from collections.abc import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from chadthrottle.contract import Direction
from chadthrottle.gui.controller import AppController
from chadthrottle.gui.models.columns import Column
from PySide6.QtCore import Qt

from tests.e2e.conftest import Stack
from tests.e2e.gui_support import running_gui
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import app_scope, start_stream

LIMIT_BPS = 3_000_000
PAUSED = "limits are paused"
SHOWN_WITHIN_MS = 10_000  # a few of the GUI's 1 s polls, on a loaded machine


@pytest.fixture
def gui(stack: Stack, qtbot, tmp_path) -> Iterator[AppController]:  # type: ignore[no-untyped-def]
    with running_gui(stack, qtbot, tmp_path / "chadthrottle.ini") as controller:
        yield controller


def _row_says(gui: AppController, app_id: str) -> tuple[bool, str, str]:
    """(the row's limit control shows its warning, its tooltip, the limit
    column's tooltip) for the download limit."""
    control = gui.window.limit_control(app_id, Direction.DOWN)
    index = gui.window.table.proxy_index(app_id, Column.DOWN_LIMIT)
    if control is None or not index.isValid():
        return False, "", ""
    cell = str(index.data(Qt.ItemDataRole.ToolTipRole) or "")
    return control.warning.isVisible(), control.toolTip(), cell


def test_a_limit_the_helper_says_is_not_enforced_is_shown_so_in_the_row_and_detail_pane(
    qtbot, stack: Stack, gui: AppController
) -> None:  # type: ignore[no-untyped-def]
    desktop_id = own_names.desktop_id("TestGuiUnenforced", fresh=True)  # this session's own
    app_id = f"app:{desktop_id}"
    with app_scope(stack.cgroup_root, desktop_id) as scope:
        # paced: the row needs a running application, not a fast one
        stream = start_stream(stack.pair, 5861, "down", app_cgroup=scope, rate_bps=200_000)
        try:
            call_helper(stack.bus_address, lambda c: c.set_limits_paused(True))
            call_helper(stack.bus_address, lambda c: c.set_limit(app_id, Direction.DOWN, LIMIT_BPS))
            (listed,) = [
                a
                for a in call_helper(stack.bus_address, lambda c: c.list_applications())
                if a.id == app_id
            ]
            assert listed.down_limit_problem == PAUSED  # the helper's own word

            # the row: the helper's record, its warning and words
            qtbot.waitUntil(lambda: _row_says(gui, app_id)[0], timeout=SHOWN_WITHIN_MS)
            record = gui.model.application(app_id)
            assert record is not None and record.down_limit_problem == PAUSED
            assert record.down_limit_bps == LIMIT_BPS  # kept, shown, but not in force
            _, control_tip, cell_tip = _row_says(gui, app_id)
            assert f"Not enforced: {PAUSED}." in control_tip, control_tip
            assert f"Not enforced: {PAUSED}." in cell_tip, cell_tip
            assert gui.model.active_limit_count() == 0
            # The paused flag is the same poll's next signal, after the listing the
            # row shows: read at once it was at times not there yet (walk28, load 4-5:
            # "0 limits active, 1 not enforced").
            qtbot.waitUntil(
                lambda: gui.window.status_line.limits.text() == f"No limits are enforced: {PAUSED}",
                timeout=SHOWN_WITHIN_MS,
            )
            # the detail pane
            assert gui.window.select_application(app_id)
            qtbot.waitUntil(lambda: gui.window.detail.limit_notes.isVisible(), timeout=2000)
            assert gui.window.detail.limit_notes.text() == (
                f"Download: limit 3.00 MB/s set. Not enforced: {PAUSED}."
            )

            # the control: resumed elsewhere, the same row says it is enforced
            call_helper(stack.bus_address, lambda c: c.set_limits_paused(False))
            qtbot.waitUntil(lambda: not _row_says(gui, app_id)[0], timeout=SHOWN_WITHIN_MS)
            _, control_tip, cell_tip = _row_says(gui, app_id)
            assert "Not enforced" not in control_tip + cell_tip, (control_tip, cell_tip)
            # nothing to add to the numbers: the pane's notes go
            qtbot.waitUntil(lambda: gui.window.detail.limit_notes.isHidden(), timeout=2000)
            assert gui.model.active_limit_count() == 1
            qtbot.waitUntil(
                lambda: gui.window.status_line.limits.text().startswith("1 limit active"),
                timeout=SHOWN_WITHIN_MS,
            )
        finally:
            call_helper(stack.bus_address, lambda c: c.set_limits_paused(False))
            call_helper(stack.bus_address, lambda c: c.clear_limit(app_id))
            stream.stop()
