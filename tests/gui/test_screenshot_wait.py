"""`chadthrottle --screenshot --screenshot-history S` waits for S seconds of graph."""

from __future__ import annotations

from pathlib import Path

from chadthrottle.gui.app import (
    SCREENSHOT_SETTLE_MS,
    graph_seconds,
    parse_arguments,
    schedule_screenshot,
)
from PySide6.QtCore import QSettings
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from tests.gui.sample_data import sample_applications


def test_the_graph_holds_one_refresh_interval_per_poll(make_controller, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    store.setValue("monitor/refresh_interval_s", 2.0)
    controller = make_controller(store)
    assert graph_seconds(controller) == 0.0  # nothing selected, nothing drawn
    for _ in range(10):
        controller.model.apply_snapshot(sample_applications())
    assert controller.window.detail.app_id  # the busiest row is selected with the first data
    assert graph_seconds(controller) == 20.0  # 10 polls, 2 s apart
    controller.shutdown()


def test_the_option_defaults_to_the_first_data() -> None:
    assert parse_arguments(["--screenshot", "x.png"]).screenshot_history == 0.0
    assert (
        parse_arguments(["--screenshot", "x.png", "--screenshot-history", "20"]).screenshot_history
        == 20.0
    )


class _NotQuitting:
    """The test session's application, except that ending it (what a screenshot
    run does once it is saved) is only noted: quitting pytest-qt's shared
    application broke the session's end (a SystemError from Python's AST
    validator in the next import that compiled source)."""

    def __init__(self) -> None:
        self.ended: list[int] = []

    def processEvents(self) -> None:
        app = QApplication.instance()
        assert app is not None
        app.processEvents()

    def quit(self) -> None:
        self.ended.append(0)

    def exit(self, status: int = 0) -> None:
        self.ended.append(status)


def test_the_screenshot_waits_for_the_history(qtbot, make_controller, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Polls fed by hand (2 s apart): with 6 s asked, 2 polls (4 s) save
    nothing, the third (6 s) saves the window as it is."""
    store = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    store.setValue("monitor/refresh_interval_s", 2.0)
    controller = make_controller(store)
    shot = tmp_path / "shot.png"
    app = _NotQuitting()
    schedule_screenshot(app, controller, shot, timeout_s=120.0, history_s=6.0)  # type: ignore[arg-type]

    def poll() -> None:  # what a ListApplications answer does (AppController._on_snapshot)
        controller.model.apply_snapshot(sample_applications())
        controller.snapshotShown.emit()

    poll()
    poll()
    assert graph_seconds(controller) == 4.0
    qtbot.wait(SCREENSHOT_SETTLE_MS + 300)  # a grab would have been saved by now
    assert not shot.exists()
    poll()
    qtbot.waitUntil(shot.exists, timeout=5000)
    image = QImage(str(shot))
    assert image.size() == controller.window.grab().size()
    assert app.ended == [0]  # the screenshot run ends once it is saved
    controller.shutdown()
