"""Run the real GUI as whoever starts this script and report what it shows.

The D-Bus peer credentials of a connection are those of the process, so a
client that polkit judges as another user has to be another process:
test_gui_states starts this under ``setpriv --reuid=65534``. Prints one JSON
object on stdout:

    python -m tests.e2e.gui_probe --bus-address ADDR --settings FILE --pid PID
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from chadthrottle.gui.controller import AppController
from chadthrottle.gui.ipc.client_protocol import default_client_factory
from chadthrottle.gui.ipc.state import HelperState
from PySide6.QtCore import QCoreApplication, QEvent, QEventLoop, QSettings, QTimer
from PySide6.QtWidgets import QApplication

SETTLE_TIMEOUT_S = 20.0


def _run_until(condition: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)
    return bool(condition())


def probe(bus_address: str, settings_path: str, pid: int) -> dict[str, Any]:
    controller = AppController(
        default_client_factory(bus_address),
        QSettings(settings_path, QSettings.Format.IniFormat),
        use_tray=False,
    )
    window = controller.window
    gaps = {"last": time.monotonic(), "longest": 0.0}

    def tick() -> None:
        now = time.monotonic()
        gaps["longest"] = max(gaps["longest"], now - gaps["last"])
        gaps["last"] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(20)
    controller.start(show_window=True)
    report: dict[str, Any] = {}
    try:
        settled = _run_until(
            lambda: window.status.state is not HelperState.CONNECTING, SETTLE_TIMEOUT_S
        )
        report["settled"] = settled
        report["state"] = window.status.state.value
        report["can_monitor"] = window.status.can_monitor
        report["banner_visible"] = window.banner.isVisible()
        report["banner_title"] = window.banner.title.text()
        report["banner_text"] = window.banner.text.text()
        report["retry_visible"] = window.banner.retry_button.isVisible()
        report["retry_text"] = window.banner.retry_button.text()
        report["empty_text"] = window.table.empty_text
        report["helper_field"] = window.status_line.helper.text()
        report["rows"] = controller.model.rowCount()

        # The window's own path refuses at once while limits are blocked...
        controller.request_limit(f"pid:{pid}", "up", 1_000_000)
        report["refusal_message"] = window.status_line.message.text()
        # ...and the helper itself says no to this caller, by name.
        outcome: list[str] = []
        controller.connection.limitFinished.connect(
            lambda _request, name, _words: outcome.append(name)
        )
        controller.connection.set_limit(f"pid:{pid}", "up", 1_000_000)
        _run_until(lambda: bool(outcome), SETTLE_TIMEOUT_S)
        report["set_limit_error"] = outcome[0] if outcome else ""

        # Asking again polls again and lands in the same calm state: no dialogs.
        window.banner.retry_button.click()
        _run_until(lambda: False, 1.5)
        report["state_after_retry"] = window.status.state.value
        report["top_level_windows"] = sum(
            1 for w in QApplication.topLevelWidgets() if w.isVisible()
        )
        report["longest_gap_s"] = gaps["longest"]
    finally:
        timer.stop()
        controller.dispose()  # as the app quits: shut down, then deleted with its window
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    return report


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bus-address", required=True)
    parser.add_argument("--settings", required=True)
    parser.add_argument("--pid", type=int, required=True)
    arguments = parser.parse_args()
    app = QApplication(sys.argv[:1])
    report = probe(arguments.bus_address, arguments.settings, arguments.pid)
    print(json.dumps(report), flush=True)
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
