"""The ``chadthrottle`` entry point.

Also usable headless for documentation and checks:
``chadthrottle --screenshot out.png`` waits until the first ListApplications
result is on screen (with ``--screenshot-history S``, until the selected
application's graph holds S seconds of data; or ``--screenshot-timeout``
passes), saves the window and quits; ``--quit-after SECONDS`` quits on its own.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from chadthrottle.arguments import seconds_type
from chadthrottle.gui.controller import AppController
from chadthrottle.gui.gc_settle import settle_after_first
from chadthrottle.gui.ipc.client_protocol import default_client_factory
from chadthrottle.gui.logs import configure_logging
from chadthrottle.gui.quit_signals import QuitOnSignals
from PySide6.QtCore import QEvent, QSettings, QTimer
from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)

SCREENSHOT_SETTLE_MS = 400
# The longest a QTimer waits: its interval is a signed 32-bit count of milliseconds.
MAX_TIMER_S = (2**31 - 1) // 1000


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="chadthrottle", description="See and cap per-application bandwidth."
    )
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="PATH",
        help="save a PNG of the window once data is shown, print its path, quit",
    )
    parser.add_argument(
        "--screenshot-timeout",
        type=seconds_type(0.0, MAX_TIMER_S),
        default=10.0,
        metavar="SECONDS",
        help="take the screenshot after this long even without data (default 10)",
    )
    parser.add_argument(
        "--screenshot-history",
        type=seconds_type(),
        default=0.0,
        metavar="SECONDS",
        help="wait until the graph holds this much data (default 0: the first data)",
    )
    parser.add_argument("--quit-after", type=seconds_type(0.0, MAX_TIMER_S), metavar="SECONDS",
                        help="quit after this long")  # fmt: skip
    parser.add_argument(
        "--bus-address",
        metavar="ADDRESS",
        help="D-Bus address of the system bus (default: the usual system bus)",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        metavar="FILE",
        help="keep settings in this INI file instead of the user's configuration",
    )
    parser.add_argument("--hidden", action="store_true", help="start in the tray")
    parser.add_argument("--no-tray", action="store_true", help="do not use the system tray")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def settings_store(path: Path | None) -> QSettings:
    if path is not None:
        return QSettings(str(path), QSettings.Format.IniFormat)
    return QSettings("ChadThrottle", "chadthrottle")


def graph_seconds(controller: AppController) -> float:
    """How much data the selected application's graph holds, in seconds."""
    history = controller.model.history(controller.window.detail.app_id)
    return 0.0 if history is None else len(history) * controller.settings.refresh_interval_s


def schedule_screenshot(app: QApplication, controller: AppController, path: Path, timeout_s: float,
                        history_s: float = 0.0) -> None:  # fmt: skip
    """Grab the window once a poll is on screen and the graph holds ``history_s``
    seconds of data, or at the timeout."""
    taken = False

    def grab() -> None:
        nonlocal taken
        if taken:
            return
        taken = True
        controller.show_window()
        app.processEvents()
        if not controller.window.grab().save(str(path)):
            log.error("could not write the screenshot to %s", path)
            app.exit(1)
            return
        print(path, flush=True)
        app.quit()

    def on_snapshot() -> None:
        if graph_seconds(controller) >= history_s:
            QTimer.singleShot(SCREENSHOT_SETTLE_MS, grab)

    controller.snapshotShown.connect(on_snapshot)
    QTimer.singleShot(int(timeout_s * 1000), grab)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_arguments(sys.argv[1:] if argv is None else argv)
    configure_logging(options.verbose)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("chadthrottle")
    app.setApplicationDisplayName("ChadThrottle")
    app.setDesktopFileName("io.github.chadthrottle")
    app.setQuitOnLastWindowClosed(False)

    controller = AppController(
        default_client_factory(options.bus_address),
        settings_store(options.settings),
        use_tray=not options.no_tray and options.screenshot is None,
    )
    # exit(), not quit(): quit() asks every window to close first, and a window
    # that keeps running in the tray would turn that down.
    controller.quitRequested.connect(lambda: app.exit(0))
    app.aboutToQuit.connect(controller.shutdown)
    if controller.tray is None:
        app.setQuitOnLastWindowClosed(True)
    quit_on_signals = QuitOnSignals(lambda _number: app.exit(0))  # logout sends SIGTERM

    if options.screenshot is not None:
        schedule_screenshot(app, controller, options.screenshot, options.screenshot_timeout,
                            options.screenshot_history)  # fmt: skip
    if options.quit_after is not None:
        QTimer.singleShot(int(options.quit_after * 1000), lambda: app.exit(0))
    settle_after_first(controller.snapshotShown)  # polls then cost the collector little
    controller.start(show_window=False if options.hidden else None)
    code = app.exec()
    quit_on_signals.uninstall()
    # Destroy widgets while the QApplication still exists; Python's own teardown
    # order would otherwise crash in the Qt destructors.
    controller.dispose()
    del controller
    gc.unfreeze()  # gc_settle froze the window: it must go now, not at interpreter exit
    gc.collect()
    app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    return code


if __name__ == "__main__":
    sys.exit(main())
