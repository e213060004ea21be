"""A helper stopped cleanly and one killed are not said alike (gui25): the
first took its limits off the kernel, the second left them in force until it
starts again. Said by the real window (status line, banner, rows) and the real
chadthrottle-ctl (its message, --json and exit status), from the run record the
real helper writes (chadthrottle.helper_run_state), and checked against the
kernel: the killed helper's limit still holds the application's upload."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from chadthrottle.contract import Direction
from chadthrottle.gui.controller import AppController
from chadthrottle.gui.ipc.state import HelperState
from chadthrottle.gui.models.limit_truth import KILLED_LIMIT, describe_limit
from chadthrottle.gui.tray.tray import TrayController
from chadthrottle.helper_run_state import LastStop, read_last_stop
from chadthrottle.units import UnitSystem
from PySide6.QtCore import QObject, Slot

from tests.e2e.conftest import Stack
from tests.e2e.gui_support import app_rate_bps, in_thread, running_gui, streaming_app
from tests.e2e.test_cli_watch import finish, next_line, watch_process
from tests.support.helper_calls import call_helper

LIMIT_BPS = 1_000_000
EXIT_HELPER_NOT_RUNNING = 5


def run_ctl(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": stack.bus_address}
    return subprocess.run([sys.executable, "-m", "chadthrottle.cli.ctl", *args],
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip


class _Reads(QObject):
    """The run record's reads the worker reports, taken in the GUI thread (a
    queued slot, after HelperConnection's own): the window has them by then."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[LastStop] = []

    @Slot(object)
    def take(self, found: LastStop) -> None:
        self.seen.append(found)


@pytest.fixture
def gui(stack: Stack, qtbot, tmp_path) -> Iterator[AppController]:  # type: ignore[no-untyped-def]
    with running_gui(stack, qtbot, tmp_path / "chadthrottle.ini", poll_s=0.5) as controller:
        yield controller


@pytest.fixture
def helper_back(stack: Stack) -> Iterator[None]:
    """The module's helper runs again after the test, also after a failure."""
    try:
        yield
    finally:
        if stack.helper.returncode is not None:
            stack.helper.start()


def test_the_cli_says_whether_the_limits_are_off_or_stay(stack: Stack, helper_back: None) -> None:
    with streaming_app(stack, "TestCtlKilled", 5720, Direction.UP) as (app_id, _stream):
        call_helper(stack.bus_address, lambda c: c.set_limit(app_id, Direction.UP, LIMIT_BPS))
        assert read_last_stop(stack.bus_address) is LastStop.RUNNING

        assert stack.helper.stop() == 0
        assert read_last_stop(stack.bus_address) is LastStop.STOPPED
        assert "htb" not in stack.idle_tc_state()  # off, as it says
        listed = run_ctl(stack, "list")
        assert listed.returncode == EXIT_HELPER_NOT_RUNNING, listed.stderr
        assert listed.stderr == (
            "chadthrottle-ctl: helper not running: it stopped — its limits are off\n"
        )
        as_json = run_ctl(stack, "list", "--json")
        assert as_json.returncode == EXIT_HELPER_NOT_RUNNING
        assert json.loads(as_json.stdout) == {
            "helper": "not running", "last_stop": "stopped", "limits_in_force": False,
        }  # fmt: skip

        stack.helper.start()
        call_helper(stack.bus_address, lambda c: c.set_limit(app_id, Direction.UP, LIMIT_BPS))
        watching = watch_process(stack.bus_address, "--interval", "0.2")
        try:
            next_line(watching, 30.0)
            assert stack.helper.kill() == -9
            status, _rest, err = finish(watching)
        finally:
            if watching.poll() is None:
                watching.kill()
                watching.communicate()
        assert status == EXIT_HELPER_NOT_RUNNING
        assert err.startswith("chadthrottle-ctl: helper went away: ") and err.endswith(
            "; it stopped unexpectedly — its last limits stay in force until it starts again\n"
        ), err
        assert read_last_stop(stack.bus_address) is LastStop.KILLED
        assert "htb" in stack.tc_state()  # in force, as it says
        listed = run_ctl(stack, "list")
        assert listed.returncode == EXIT_HELPER_NOT_RUNNING, listed.stderr
        assert listed.stderr == (
            "chadthrottle-ctl: helper not running: it stopped unexpectedly — its last limits "
            "stay in force until it starts again\n"
        )
        as_json = run_ctl(stack, "backends", "--json")
        assert json.loads(as_json.stdout) == {
            "helper": "not running", "last_stop": "killed", "limits_in_force": True,
        }  # fmt: skip


def test_the_window_says_whether_the_limits_are_off_or_stay(  # type: ignore[no-untyped-def]
    qtbot, stack: Stack, gui: AppController, helper_back: None
) -> None:
    window, line = gui.window, gui.window.status_line
    tray = TrayController(gui.model, window, gui)  # offscreen has no tray: driven all the same
    gui.attach_tray(tray)
    with streaming_app(stack, "TestGuiKilled", 5730, Direction.UP) as (app_id, stream):
        qtbot.waitUntil(lambda: window.table.proxy_index(app_id).isValid(), timeout=10_000)
        call_helper(stack.bus_address, lambda c: c.set_limit(app_id, Direction.UP, LIMIT_BPS))
        qtbot.waitUntil(lambda: gui.model.limit_state(app_id, Direction.UP).enforced, timeout=5000)

        stack.helper.stop()
        qtbot.waitUntil(lambda: window.status.stopped_clean, timeout=15_000)
        assert line.helper.text() == "Helper: stopped"
        assert line.backend.text() == "Not enforcing"
        assert line.limits.text() == "No limits are enforced: the helper stopped"
        assert window.banner.title.text() == "The helper stopped — its limits are off"
        assert "removed its limits" in window.banner.text.text()
        assert tray.icon.toolTip().startswith(
            "ChadThrottle: The helper stopped — its limits are off"
        )

        stack.helper.start()
        qtbot.waitUntil(lambda: window.status.state is HelperState.CONNECTED, timeout=15_000)
        qtbot.waitUntil(lambda: gui.model.limit_state(app_id, Direction.UP).enforced, timeout=5000)
        stack.helper.kill()
        qtbot.waitUntil(lambda: window.status.left_in_force, timeout=15_000)
        assert line.helper.text() == "Helper: stopped unexpectedly"
        assert line.backend.text() == "Still enforcing"
        assert line.limits.text() == "Last limits stay in force: the helper stopped unexpectedly"
        assert "stay in the kernel" in line.limits.toolTip()
        assert window.banner.title.text() == (
            "The helper stopped unexpectedly — its limits stay in force"
        )
        assert tray.icon.toolTip().endswith(
            "the kernel keeps its rate limits as last set, unwatched"
        )
        tray.rebuild_menu()
        assert tray.menu.actions()[0].text() == (
            "The helper stopped unexpectedly — its last limits stay in force until it starts again"
        )
        state = gui.model.limit_state(app_id, Direction.UP)
        said = describe_limit(state, Direction.UP, UnitSystem.BYTES_DECIMAL)
        assert KILLED_LIMIT in said and "Not enforced" not in said, said
        assert state.problem_lines == ("left in force", "in force")  # under the row's limit
        # and so it is: the kernel still holds the upload to its limit
        rate = app_rate_bps(qtbot, stream.receiver, 2.0)
        assert rate < 1.5 * LIMIT_BPS, f"{rate:.0f} B/s: the killed helper's limit did not hold"
        # Its successor starting (its record: running, not on the bus yet) leaves the
        # killed one's words until it answers: the limits hold meanwhile. Held still
        # (SIGSTOP) once its record says so, until the window has read that record.
        read = _Reads()  # in the GUI thread, after the connection has taken each in
        gui.connection._signals.lastStop.connect(read.take)
        starter = in_thread(stack.helper.start)
        try:
            qtbot.waitUntil(
                lambda: read_last_stop(stack.bus_address) is LastStop.RUNNING, timeout=60_000
            )
            assert stack.helper.pid is not None
            os.kill(stack.helper.pid, signal.SIGSTOP)
            try:
                qtbot.waitUntil(lambda: LastStop.RUNNING in read.seen, timeout=30_000)
                assert window.status.left_in_force, window.status
                assert (
                    line.limits.text()
                    == "Last limits stay in force: the helper stopped unexpectedly"
                )
            finally:
                os.kill(stack.helper.pid, signal.SIGCONT)
            qtbot.waitUntil(lambda: window.status.state is HelperState.CONNECTED, timeout=60_000)
        finally:
            starter.join(60)


def test_a_helper_killed_while_limits_were_paused_says_none_is_in_force(
    stack: Stack, helper_back: None
) -> None:
    """Paused, the kernel holds none of its limits (docs/helper.md, "Pausing all
    limits"): a kill then leaves nothing in force, and the record says so."""
    with streaming_app(stack, "TestCtlKilledPaused", 5740, Direction.UP) as (app_id, _stream):
        call_helper(stack.bus_address, lambda c: c.set_limit(app_id, Direction.UP, LIMIT_BPS))
        call_helper(stack.bus_address, lambda c: c.set_limits_paused(True))
        try:
            assert "htb" not in stack.idle_tc_state()
            assert stack.helper.kill() == -9
            assert read_last_stop(stack.bus_address) is LastStop.KILLED_PAUSED
            listed = run_ctl(stack, "list")
            assert listed.returncode == EXIT_HELPER_NOT_RUNNING, listed.stderr
            assert listed.stderr == (
                "chadthrottle-ctl: helper not running: it stopped unexpectedly — its limits were "
                "paused: none is in force\n"
            )
            as_json = json.loads(run_ctl(stack, "list", "--json").stdout)
            assert (as_json["last_stop"], as_json["limits_in_force"]) == ("killed-paused", False)
        finally:  # paused is stored: the module's helper must enforce again
            if stack.helper.returncode is not None:
                stack.helper.start()
            call_helper(stack.bus_address, lambda c: c.set_limits_paused(False))
        assert read_last_stop(stack.bus_address) is LastStop.RUNNING
