"""The helper's states as the real GUI shows them, on the real bus: the helper
going away and coming back (no limit is then said to be enforced), and a user
polkit refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from chadthrottle.contract import Direction, ErrorName
from chadthrottle.gui.controller import AppController
from chadthrottle.gui.ipc.state import HelperState
from chadthrottle.gui.models.columns import Column
from PySide6.QtCore import Qt

from tests.e2e.conftest import Stack
from tests.e2e.gui_support import (
    HELPER_CONTROL_THREAD,
    EventLoopWatch,
    in_thread,
    running_gui,
    streaming_app,
)
from tests.e2e.test_limit_over_dbus import PAYLOAD_SHARE
from tests.support.helper_calls import call_helper
from tests.support.requirements import require_program

REPO = Path(__file__).resolve().parents[2]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
# A blocking D-Bus call to a helper that is going away stalls for seconds; on a
# loaded 2-core machine a healthy loop may still miss a few 20 ms ticks.
MAX_GUI_STALL_S = 1.0
LIMIT_BPS = 1_000_000


@pytest.fixture
def gui(stack: Stack, qtbot, tmp_path) -> Iterator[AppController]:  # type: ignore[no-untyped-def]
    with running_gui(stack, qtbot, tmp_path / "chadthrottle.ini") as controller:
        yield controller


def _greyed(gui: AppController, app_id: str) -> bool:
    cell = gui.window.table.proxy_index(app_id, Column.DOWN)
    return cell.data(Qt.ItemDataRole.ForegroundRole) is not None


def test_helper_stopped_shows_reconnecting_without_freezing_then_recovers(  # type: ignore[no-untyped-def]
    qtbot, stack: Stack, gui: AppController
) -> None:
    window = gui.window
    with streaming_app(stack, "TestGuiRestart", 5700, Direction.UP) as (app_id, _stream):
        qtbot.waitUntil(lambda: window.table.proxy_index(app_id).isValid(), timeout=10_000)
        call_helper(stack.bus_address, lambda c: c.set_limit(app_id, Direction.UP, LIMIT_BPS))
        qtbot.waitUntil(lambda: gui.model.limit_state(app_id, Direction.UP).enforced, timeout=5000)
        assert window.status_line.limits.text() == "1 limit active"
        watch = EventLoopWatch()
        try:
            # Stopped and started from another thread: the GUI thread runs all along.
            stopper = in_thread(stack.helper.stop)
            qtbot.waitUntil(lambda: window.status.state is HelperState.NOT_RUNNING, timeout=15_000)
            qtbot.waitUntil(lambda: not stopper.is_alive(), timeout=20_000)
            # its run record read at the next failed poll: stopped cleanly (gui25)
            qtbot.waitUntil(lambda: window.status.stopped_clean, timeout=15_000)
            assert window.banner.isVisible() and "reconnects" in window.banner.text.text()
            assert window.banner.title.text() == "The helper stopped — its limits are off"
            assert window.status_line.helper.text() == "Helper: stopped"
            assert _greyed(gui, app_id), "the last numbers stay, greyed"
            # The limit is still shown, as not enforced; nothing counts as active.
            assert window.status_line.limits.text() == "No limits are enforced: the helper stopped"
            state = gui.model.limit_state(app_id, Direction.UP)
            assert (state.rate_bps, state.problem) == (LIMIT_BPS, "the helper stopped")
            assert gui.model.active_limit_count() == 0
            control = window.limit_control(app_id, Direction.UP)
            assert control is not None and not control.isEnabled() and control.toolTip()
            ticks_before = watch.ticks
            qtbot.wait(2000)  # the helper stays away a while; the window keeps working
            assert watch.ticks - ticks_before >= 25, "the GUI thread stopped processing events"
            assert window.status.state is HelperState.NOT_RUNNING

            starter = in_thread(stack.helper.start)
            qtbot.waitUntil(lambda: not starter.is_alive(), timeout=60_000)
            assert stack.helper.returncode is None, stack.helper.log_text()
            qtbot.waitUntil(lambda: window.status.state is HelperState.CONNECTED, timeout=15_000)
            assert watch.longest_gap_s < MAX_GUI_STALL_S, (
                f"the GUI thread stalled {watch.longest_gap_s:.2f} s"
            )
        finally:
            watch.stop()
            for thread in (t for t in threading.enumerate() if t.name == HELPER_CONTROL_THREAD):
                thread.join(60)
            if (
                stack.helper.returncode is not None
            ):  # a failed step must not leave the module without one
                stack.helper.start()
        assert window.banner.isHidden()
        assert window.status_line.helper.text() == "Helper: connected"
        qtbot.waitUntil(
            lambda: window.table.proxy_index(app_id).isValid() and not _greyed(gui, app_id)
        )
        control = window.limit_control(app_id, Direction.UP)
        assert control is not None and control.isEnabled()
        qtbot.waitUntil(
            lambda: window.status_line.limits.text() == "1 limit active", timeout=5000
        )  # restored


def test_a_user_polkit_refuses_sees_a_calm_not_authorized_state(stack: Stack) -> None:
    require_program("setpriv")
    with tempfile.TemporaryDirectory(prefix="chadthrottle-nobody-") as scratch, \
            streaming_app(stack, "TestGuiNobody", 5710, Direction.UP) as (app_id, stream):  # fmt: skip
        home = Path(scratch)  # pytest's tmp_path sits under a root-only directory
        os.chown(home, 65534, 65534)
        before = stack.idle_tc_state()
        env = {
            **os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(home), "XDG_CONFIG_HOME": str(home),
            "XDG_CACHE_HOME": str(home), "QT_QPA_PLATFORM": "offscreen",
        }  # fmt: skip
        argv = [*NOBODY, sys.executable, "-m", "tests.e2e.gui_probe", "--bus-address", stack.bus_address,
                "--settings", str(home / "chadthrottle.ini"), "--pid", str(stream.app_pid)]  # fmt: skip
        result = subprocess.run(
            argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=120
        )
        assert result.returncode == 0, result.stderr[-4000:]
        shown = json.loads(result.stdout.strip().splitlines()[-1])

        assert shown["settled"] and shown["state"] == HelperState.NOT_AUTHORIZED.value
        assert shown["banner_visible"] and shown["banner_title"] == "Not authorized"
        assert "polkit" in shown["banner_text"]
        assert shown["retry_visible"] and shown["retry_text"] == "Ask again"
        assert shown["helper_field"] == "Helper: not authorized"
        assert shown["rows"] == 0 and "not authorized" in shown["empty_text"]
        assert shown["refusal_message"], "a limit attempt says why it cannot be done"
        assert shown["set_limit_error"] == ErrorName.NOT_AUTHORIZED.value
        assert shown["state_after_retry"] == HelperState.NOT_AUTHORIZED.value
        assert shown["top_level_windows"] == 1, "no dialogs pile up"
        assert shown["longest_gap_s"] < MAX_GUI_STALL_S
        assert "Traceback" not in result.stderr

        assert stack.tc_state() == before  # nothing changed in the kernel
        apps = call_helper(stack.bus_address, lambda c: c.list_applications())
        assert all(app.up_limit_bps == 0 for app in apps if app.id == app_id)
        assert stream.receiver.rate_bps(1.0) / PAYLOAD_SHARE > 20e6  # still at full speed
