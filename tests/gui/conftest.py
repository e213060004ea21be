"""GUI tests run on the offscreen platform unless a display was chosen."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest


@pytest.fixture(autouse=True)
def _qt_application(qapp):  # type: ignore[no-untyped-def]
    """Every GUI test gets the QApplication: models paint icons, views need it."""
    return qapp


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
