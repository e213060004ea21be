"""Shared parts of the GUI end-to-end tests: the real controller on the stack's
bus, a real application with traffic, and measurements that keep Qt's event
loop running (a test that sleeps the GUI thread could not see a freeze)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from chadthrottle.client import HelperClientError
from chadthrottle.contract import Direction
from chadthrottle.gui.controller import AppController
from chadthrottle.gui.ipc.client_protocol import default_client_factory
from chadthrottle.gui.ipc.state import HelperState
from PySide6.QtCore import QCoreApplication, QEvent, QSettings, QTimer

from tests.e2e.conftest import Stack
from tests.e2e.test_limit_over_dbus import PAYLOAD_SHARE
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import Receiver, Stream, app_scope, start_stream

IPC_THREAD_NAME = "chadthrottle-helper-ipc"
HELPER_CONTROL_THREAD = "test-helper-control"


@contextlib.contextmanager
def running_gui(stack: Stack, qtbot: Any, settings_path: Path,
                poll_s: float | None = None) -> Iterator[AppController]:  # fmt: skip
    """The real controller and window on the stack's bus, shown and connected
    (polling every poll_s, if given: set in the settings before it starts).
    On exit, also on failure, both are disposed of as the app quits (so the
    window is not given to qtbot, which would close it again once deleted)
    and the worker thread must be gone."""
    settings = QSettings(str(settings_path), QSettings.Format.IniFormat)
    if poll_s is not None:
        settings.setValue("monitor/refresh_interval_s", poll_s)
        settings.sync()
    controller = AppController(default_client_factory(stack.bus_address), settings, use_tray=False)
    controller.start(show_window=True)
    try:
        qtbot.waitExposed(controller.window)
        qtbot.waitUntil(
            lambda: controller.connection.status.state is HelperState.CONNECTED, timeout=15_000
        )
        yield controller
    finally:
        controller.dispose()  # as the app quits: shut down, then deleted with its window
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert not any(t.name == IPC_THREAD_NAME for t in threading.enumerate())


@contextlib.contextmanager
def streaming_app(
    stack: Stack, name: str, port: int, direction: Direction
) -> Iterator[tuple[str, Stream]]:
    """A running application, this session's own desktop id for name, with one bulk stream;
    its limits are cleared and its processes stopped on exit, also on failure."""
    app_id = own_names.app_id(name)
    with app_scope(stack.cgroup_root, own_names.desktop_id(name)) as scope:
        stream = start_stream(stack.pair, port, direction.value, app_cgroup=scope)
        try:
            yield app_id, stream
        finally:
            with contextlib.suppress(HelperClientError):
                call_helper(stack.bus_address, lambda c: c.clear_limit(app_id))
            stream.stop()


def app_rate_bps(qtbot: Any, receiver: Receiver, seconds: float) -> float:
    """The receiver's payload rate over `seconds` scaled to L3, measured as
    Receiver.rate_bps does (between two sink reports) but with the Qt loop
    running meanwhile."""

    start_time, start_bytes = receiver._latest()
    qtbot.wait(int(seconds * 1000))
    end_time, end_bytes = receiver._latest()
    if end_time <= start_time:
        return 0.0
    return (end_bytes - start_bytes) / (end_time - start_time) / PAYLOAD_SHARE


def within(rate_bps: float, target_bps: float, tolerance: float = 0.10) -> bool:
    return (1 - tolerance) * target_bps <= rate_bps <= (1 + tolerance) * target_bps


class EventLoopWatch:
    """Counts the GUI thread's timer ticks and remembers the longest gap, so a
    test can tell a responsive window from a frozen one."""

    def __init__(self, interval_ms: int = 20) -> None:
        self.longest_gap_s = 0.0
        self.ticks = 0
        self._last = time.monotonic()
        self._timer = QTimer()
        self._timer.timeout.connect(self._tick)
        self._timer.start(interval_ms)

    def _tick(self) -> None:
        now = time.monotonic()
        self.longest_gap_s = max(self.longest_gap_s, now - self._last)
        self._last = now
        self.ticks += 1

    def stop(self) -> None:
        self._timer.stop()


def in_thread(action: Callable[[], object]) -> threading.Thread:
    """Run a blocking step (stopping the helper) off the GUI thread."""
    thread = threading.Thread(target=action, name=HELPER_CONTROL_THREAD)
    thread.start()
    return thread
