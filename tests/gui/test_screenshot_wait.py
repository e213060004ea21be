"""`chadthrottle --screenshot --screenshot-history S` waits for S seconds of graph."""

from __future__ import annotations

from pathlib import Path

from chadthrottle.gui.app import graph_seconds, parse_arguments
from chadthrottle.gui.controller import AppController
from PySide6.QtCore import QSettings

from tests.gui.sample_data import sample_applications


def no_client() -> object:
    raise AssertionError("widget test: no helper")


def test_the_graph_holds_one_refresh_interval_per_poll(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    store.setValue("monitor/refresh_interval_s", 2.0)
    controller = AppController(
        no_client, store, use_tray=False, autostart_path=tmp_path / "a.desktop"
    )
    qtbot.addWidget(controller.window)
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
