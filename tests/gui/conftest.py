"""GUI tests run on the offscreen platform unless a display was chosen."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest


@pytest.fixture(autouse=True)
def _qt_application(qapp):  # type: ignore[no-untyped-def]
    """Every GUI test gets the QApplication: models paint icons, views need it."""
    return qapp


@pytest.fixture(autouse=True, scope="module")
def _collected_between_modules(qapp):  # type: ignore[no-untyped-def]
    """Before and after each module the windows' deferred deletes run and
    the collector runs, with no event loop running and no worker thread in a
    call; during a test it does not run on its own (_no_collection_inside).
    Twice a full suite crashed (SIGSEGV, CI runs s and u of 2026-12-05) in a
    collection that began inside a GUI test's event loop while its worker
    thread ran, among the cyclic garbage of the windows and tests before it.
    The cause is not found (docs/development.md)."""
    from PySide6.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()
    yield
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()


@pytest.fixture(autouse=True)
def _no_collection_inside(_collected_between_modules):  # type: ignore[no-untyped-def]
    """No automatic collection inside a GUI test (see _collected_between_modules);
    a test's own gc.collect() still runs."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@pytest.fixture
def window(qtbot):  # type: ignore[no-untyped-def]
    """The main window on the sample applications, connected, shown and
    exposed (a module that needs keyboard focus asks for active_window)."""
    from chadthrottle.gui.ipc.state import HelperState, HelperStatus

    from tests.gui.bare_window import bare_window
    from tests.gui.sample_data import sample_applications

    model, win = bare_window()
    qtbot.addWidget(win)
    win.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    model.apply_snapshot(sample_applications())
    win.show()
    qtbot.waitExposed(win)
    return win


@pytest.fixture
def active_window(qtbot, window):  # type: ignore[no-untyped-def]
    """The window, active: keyboard focus goes to it."""
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    return window


def _no_client() -> object:
    raise AssertionError("widget test: no helper")


@pytest.fixture
def make_controller(qtbot, tmp_path: Path) -> Iterator[Callable[..., Any]]:  # type: ignore[no-untyped-def]
    """make_controller(store=None, autostart_path=None): the real AppController
    with no helper (not started: a call comes back "not connected"; asking
    for a client fails the test), no tray, on the test's own settings and
    autostart entry unless given. Every one made is disposed of at the end as
    the app quits (shut down again is harmless, then deleted with its window),
    so none is left running, holding its window or to the collector."""
    from chadthrottle.gui.controller import AppController
    from PySide6.QtCore import QCoreApplication, QEvent, QSettings

    made: list[AppController] = []

    def make(store: QSettings | None = None, autostart_path: Path | None = None) -> AppController:
        settings = store or QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
        controller = AppController(
            _no_client,  # type: ignore[arg-type]
            settings,
            use_tray=False,
            autostart_path=autostart_path or tmp_path / "autostart.desktop",
        )
        qtbot.addWidget(controller.window)
        made.append(controller)
        return controller

    yield make
    for controller in made:
        controller.dispose()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
