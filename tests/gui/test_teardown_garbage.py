"""A controller disposed of as the app quits (and as the fixtures do) leaves no
live Qt object to the cyclic collector: what only the collector frees is
destroyed at whatever moment, in whichever thread, a collection starts
(docs/development.md, "The collector in GUI tests")."""

from __future__ import annotations

import gc
from collections import Counter
from pathlib import Path

import pytest
import shiboken6
from chadthrottle.gui.controller import AppController
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.tray.tray import TrayController
from PySide6.QtCore import QCoreApplication, QEvent, QObject, QSettings
from PySide6.QtGui import QPixmap

from tests.gui.sample_data import sample_applications

FIREFOX = "app:org.mozilla.firefox"


def _no_client() -> object:
    raise AssertionError("widget test: no helper")


def _live_qt_garbage() -> Counter[str]:
    """Collect, keeping what the collector frees: the Qt objects among it
    whose C++ side was still alive (so the collector destroyed it), by type."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return Counter(
            type(o).__qualname__
            for o in gc.garbage
            if isinstance(o, QObject | QPixmap) and shiboken6.isValid(o)
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


@pytest.mark.parametrize("with_tray", [False, True], ids=["no tray", "tray"])
def test_a_disposed_controller_leaves_no_live_qt_object_to_the_collector(
    qtbot, tmp_path: Path, with_tray: bool
) -> None:  # type: ignore[no-untyped-def]
    gc.collect()  # earlier tests' garbage is not this test's
    controller = AppController(
        _no_client,  # type: ignore[arg-type]
        QSettings(str(tmp_path / "gcfix.ini"), QSettings.Format.IniFormat),
        use_tray=False,
        autostart_path=tmp_path / "autostart.desktop",
    )
    if with_tray:  # offscreen has none: the real one wired in, as test_settings_dialog does
        controller.attach_tray(TrayController(controller.model, controller.window, controller))
    controller.window.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    controller.model.apply_snapshot(sample_applications())
    if controller.tray is not None:
        controller.tray.rebuild_menu()  # its menu as when opened, one submenu an application
    controller.window.resize(1100, 720)
    controller.window.show()
    qtbot.waitExposed(controller.window)
    assert controller.window.select_application(FIREFOX)
    qtbot.waitUntil(lambda pane=controller.window.detail: bool(pane.graphs))  # plots built
    controller.window.grab()  # painted: the limit column keeps its likenesses
    controller.dispose()  # what gui.app.main does when the event loop returns
    del controller  # nothing of it held here: only what cycles hold is left
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    found = _live_qt_garbage()
    assert found == Counter(), f"live Qt objects left to the collector: {dict(found)}"
