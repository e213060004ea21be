"""The window against the real helper: an expanded row lists the application's
real connections, and the tray's "Pause all limits" pauses and resumes the
helper's limits on real traffic."""

from __future__ import annotations

import os
from collections.abc import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from chadthrottle.contract import Direction
from chadthrottle.gui.controller import AppController
from chadthrottle.gui.tray.tray import TrayController
from PySide6.QtCore import Qt

from tests.e2e.conftest import Stack
from tests.e2e.gui_support import app_rate_bps, running_gui, streaming_app, within
from tests.e2e.test_limit_over_dbus import WINDOW_S, wait_until_at_limit
from tests.gui.tray_actions import pause_action
from tests.support.helper_calls import call_helper

LIMIT_BPS = 1_000_000
UNLIMITED_FLOOR_BPS = 20 * LIMIT_BPS
HELPER_CALL_TIMEOUT_MS = 15_000


@pytest.fixture
def gui(stack: Stack, qtbot, tmp_path) -> Iterator[AppController]:  # type: ignore[no-untyped-def]
    with running_gui(stack, qtbot, tmp_path / "chadthrottle.ini") as controller:
        yield controller


def _children(gui: AppController, app_id: str) -> list[str]:
    proxy = gui.window.table.model()
    row = gui.window.table.proxy_index(app_id)
    return [str(proxy.index(child, 0, row).data()) for child in range(proxy.rowCount(row))]


def test_expanding_a_row_shows_its_open_connection(qtbot, stack: Stack, gui: AppController) -> None:  # type: ignore[no-untyped-def]
    with streaming_app(stack, "TestGuiExpand", 5720, Direction.UP) as (app_id, stream):
        table = gui.window.table
        qtbot.waitUntil(lambda: table.proxy_index(app_id).isValid(), timeout=10_000)
        expected = f"\u2192 {stack.pair.peer_addr}:5720 ESTABLISHED"
        assert not any(
            expected in child for child in _children(gui, app_id)
        )  # collapsed: not fetched
        assert gui.window.select_application(app_id)
        table.setFocus()
        qtbot.keyClick(table, Qt.Key.Key_Right)  # the keyboard way to open a row
        assert table.is_expanded(app_id)
        qtbot.waitUntil(
            lambda: any(expected in child for child in _children(gui, app_id)), timeout=5000
        )
        assert f"(pid {stream.app_pid})" in " ".join(
            _children(gui, app_id)
        )  # its process is listed too

        qtbot.keyClick(table, Qt.Key.Key_Left)  # closing it drops them
        qtbot.waitUntil(
            lambda: not any(expected in child for child in _children(gui, app_id)), timeout=2000
        )


def test_the_tray_pauses_and_resumes_every_limit(qtbot, stack: Stack, gui: AppController) -> None:  # type: ignore[no-untyped-def]
    tray = TrayController(gui.model, gui.window, gui)
    gui.attach_tray(tray)  # offscreen has no tray area; the controller owns and removes it
    with streaming_app(stack, "TestGuiPause", 5730, Direction.UP) as (app_id, stream):
        try:
            call_helper(stack.bus_address, lambda c: c.set_limit(app_id, Direction.UP, LIMIT_BPS))
            # from once a short window reads the limit (an upload under tc), TAKES_HOLD_S at most
            wait_until_at_limit(lambda s: app_rate_bps(qtbot, stream.receiver, s), LIMIT_BPS)
            rate = app_rate_bps(qtbot, stream.receiver, WINDOW_S)
            assert within(rate, LIMIT_BPS), f"limited: {rate / 1e6:.3f} MB/s at L3"
            qtbot.waitUntil(lambda: gui.connection.limits_paused is False, timeout=5000)

            pause = pause_action(tray)
            assert pause is not None and pause.isEnabled() and not pause.isChecked()
            with qtbot.waitSignal(
                gui.connection.pauseFinished, timeout=HELPER_CALL_TIMEOUT_MS
            ) as done:
                pause.trigger()
            assert done.args == [True, "", ""], done.args
            assert call_helper(stack.bus_address, lambda c: c.get_limits_paused())
            qtbot.waitUntil(lambda: gui.window.paused_notice.isVisible(), timeout=2000)
            assert (
                gui.window.status_line.limits.text() == "No limits are enforced: limits are paused"
            )
            assert tray.icon.toolTip().endswith("no limit is enforced: limits are paused")
            qtbot.waitUntil(
                lambda: gui.model.limit_state(app_id, Direction.UP).problem != "", timeout=3000
            )
            qtbot.wait(500)
            assert app_rate_bps(qtbot, stream.receiver, 1.0) > UNLIMITED_FLOOR_BPS
            assert gui.model.application(app_id).up_limit_bps == LIMIT_BPS  # type: ignore[union-attr]

            resume = pause_action(tray)
            assert resume is not None and resume.isChecked()
            with qtbot.waitSignal(
                gui.connection.pauseFinished, timeout=HELPER_CALL_TIMEOUT_MS
            ) as done:
                resume.trigger()
            assert done.args == [False, "", ""], done.args
            qtbot.waitUntil(lambda: gui.window.paused_notice.isHidden(), timeout=2000)
            wait_until_at_limit(lambda s: app_rate_bps(qtbot, stream.receiver, s), LIMIT_BPS)
            rate = app_rate_bps(qtbot, stream.receiver, WINDOW_S)
            assert within(rate, LIMIT_BPS), f"after resuming: {rate / 1e6:.3f} MB/s at L3"
        finally:
            call_helper(stack.bus_address, lambda c: c.set_limits_paused(False))


def test_a_priority_and_the_link_capacity_from_the_window(
    qtbot, stack: Stack, gui: AppController
) -> None:  # type: ignore[no-untyped-def]
    """Issue 16 through the real helper: the row menu's priority reaches it and
    comes back as the listing says (not in force, with the helper's reason,
    while no capacity is set); the link dialog sets and turns off the capacity
    and the status line shows what GetLinkShaping answers."""
    from tests.gui.test_row_menu import action

    with streaming_app(stack, "TestGuiPriority", 5740, Direction.UP) as (app_id, _stream):
        try:
            link = gui.window.status_line.link
            qtbot.waitUntil(
                lambda: gui.window.table.proxy_index(app_id).isValid() and link.isVisible(),
                timeout=10_000,
            )
            action(gui.window.row_menu(app_id), "priority:critical").trigger()
            qtbot.waitUntil(
                lambda: not gui.model.priority_state(app_id).pending, timeout=HELPER_CALL_TIMEOUT_MS
            )
            listed = next(
                a
                for a in call_helper(stack.bus_address, lambda c: c.list_applications())
                if a.id == app_id
            )
            state = gui.model.priority_state(app_id)
            assert (listed.priority, state.priority) == ("critical", "critical")
            assert (
                listed.priority_problem
                and state.problem == listed.priority_problem
                and not state.in_force
            )

            dialog = gui.priorities.open_dialog()
            dialog.edits[Direction.DOWN].setText("50M")
            dialog.apply.click()
            qtbot.waitUntil(
                lambda: dialog.message.text() == "Done.", timeout=HELPER_CALL_TIMEOUT_MS
            )
            shaping = call_helper(stack.bus_address, lambda c: c.get_link_shaping())
            assert shaping.down_set_bps == 50_000_000 and shaping.up_set_bps == 0
            qtbot.waitUntil(
                lambda: gui.priorities.shaping == shaping, timeout=5000
            )  # the status line's source
            assert link.text().startswith("Link") and "50.0 MB/s" in link.text()

            dialog.off.click()
            qtbot.waitUntil(
                lambda: dialog.message.text() == "Done.", timeout=HELPER_CALL_TIMEOUT_MS
            )
            off = call_helper(stack.bus_address, lambda c: c.get_link_shaping())
            assert (off.down_set_bps, off.down_capacity_bps, off.estimate) == (0, 0, False), off
            qtbot.waitUntil(lambda: gui.priorities.shaping == off, timeout=5000)
            assert link.text() == "Link capacity: not set"
            action(gui.window.row_menu(app_id), "priority:normal").trigger()
            qtbot.waitUntil(lambda: gui.model.priority_state(app_id).priority == "normal"
                            and not gui.model.priority_state(app_id).pending, timeout=HELPER_CALL_TIMEOUT_MS)  # fmt: skip
        finally:
            call_helper(stack.bus_address, lambda c: c.set_link_capacity(0, 0, False))
            call_helper(stack.bus_address, lambda c: c.set_priority(app_id, "normal"))
