"""The settings dialog: each setting applies at once, is stored, and is back after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from chadthrottle.gui.controller import AppController
from chadthrottle.gui.settings import Settings, Theme, load_settings
from chadthrottle.gui.theme import apply_theme, is_dark
from chadthrottle.gui.tray.tray import TrayController
from chadthrottle.gui.views.settings_dialog import SettingsDialog
from chadthrottle.units import UnitSystem
from PySide6.QtCore import QCoreApplication, QEvent, QSettings
from PySide6.QtGui import QAction, QPalette
from PySide6.QtWidgets import QApplication, QWidget

from tests.gui.sample_data import sample_applications
from tests.gui.test_keyboard import INTERACTIVE


def no_client() -> object:
    raise AssertionError("widget test: no helper")


# Controllers started and not yet quit: quit at the test's end, also on failure.
_STARTED: list[AppController] = []


def start(qtbot, folder: Path, with_tray: bool = True) -> AppController:  # type: ignore[no-untyped-def]
    """A controller as at start-up, on settings kept in ``folder`` (the same
    folder again is a restart). Its window is not given to qtbot: quit()
    deletes it, and qtbot would close it again."""
    controller = AppController(
        no_client,
        QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat),
        use_tray=False,
        autostart_path=folder / "autostart" / "chadthrottle.desktop",
    )
    _STARTED.append(controller)
    if with_tray:  # offscreen has no tray: wire the real one in, as the e2e tray tests do
        controller.attach_tray(TrayController(controller.model, controller.window, controller))
    controller.model.apply_snapshot(sample_applications())
    return controller


def quit_app(controller: AppController) -> None:
    """As the application quits: shut down, then deleted with its window and
    all they own (dispose), not thrown away to the collector."""
    _STARTED.remove(controller)
    controller.dispose()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.fixture(autouse=True)
def _quit_at_the_end():  # type: ignore[no-untyped-def]
    yield
    while _STARTED:
        quit_app(_STARTED[-1])


@pytest.fixture(autouse=True)
def _desktop_theme_again():  # type: ignore[no-untyped-def]
    """The theme is the whole application's: put the desktop's back for other tests."""
    yield
    apply_theme(QApplication.instance(), Theme.SYSTEM)  # type: ignore[arg-type]


def test_the_menu_opens_the_dialog(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    controller = start(qtbot, tmp_path)
    menu = controller.window.header.menu_button.menu()
    entry = next(a for a in menu.findChildren(QAction) if a.objectName() == "open-settings")
    entry.trigger()
    assert (
        isinstance(controller.settings_dialog, SettingsDialog)
        and controller.settings_dialog.isVisible()
    )
    controller.settings_dialog.close()
    quit_app(controller)


def test_each_setting_applies_at_once_and_is_back_after_a_restart(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    controller = start(qtbot, tmp_path)
    dialog = controller.open_settings()
    light_window = controller.window.table.palette().color(QPalette.ColorRole.Base)

    dialog.choose(dialog.units, UnitSystem.BITS_BINARY)
    assert controller.model.units is UnitSystem.BITS_BINARY
    assert "ibit/s" in controller.window.header.totals.text()
    dialog.choose(dialog.refresh, 2.0)
    assert controller.connection._worker._interval_s == 2.0
    assert controller.window.detail.refresh_interval_s == 2.0
    controller.window.table.viewport().grab()  # paints the limit likenesses, cached
    assert controller.window.table.limit_delegate._likenesses
    dialog.choose(dialog.theme, Theme.DARK)
    assert not controller.window.table.limit_delegate._likenesses  # none left in light colours
    assert is_dark(QApplication.palette())
    table = controller.window.table
    qtbot.waitUntil(lambda: table.palette().color(QPalette.ColorRole.Base).lightness() < 128)
    assert table.palette().color(QPalette.ColorRole.Base) != light_window  # the table follows
    assert (
        table.palette().color(QPalette.ColorRole.Highlight).lightness() < 128
    )  # a tint for dark rows
    dialog.close_to_tray.setChecked(False)
    assert controller.window.keep_running_in_tray is False
    dialog.notifications.setChecked(False)
    dialog.start_hidden.setChecked(True)
    dialog.start_at_login.setChecked(True)
    assert (tmp_path / "autostart" / "chadthrottle.desktop").exists()
    hidden_in_menu = controller.window.header.start_hidden
    assert hidden_in_menu.isChecked()  # the ☰ menu's own entries follow the dialog
    dialog.close()
    quit_app(controller)
    apply_theme(QApplication.instance(), Theme.SYSTEM)  # type: ignore[arg-type]

    again = start(qtbot, tmp_path)
    settings = again.settings
    assert settings.units is UnitSystem.BITS_BINARY
    assert settings.refresh_interval_s == 2.0
    assert settings.theme is Theme.DARK and is_dark(QApplication.palette())
    assert (settings.close_to_tray, settings.notifications, settings.start_hidden) == (
        False,
        False,
        True,
    )
    assert again.window.keep_running_in_tray is False
    reopened = again.open_settings()
    assert reopened.value(reopened.units) is UnitSystem.BITS_BINARY
    assert reopened.value(reopened.theme) is Theme.DARK
    assert reopened.start_at_login.isChecked()
    assert not reopened.close_to_tray.isChecked() and not reopened.notifications.isChecked()
    reopened.close()
    quit_app(again)


def test_close_to_tray_off_quits_on_close_and_on_hides(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    controller = start(qtbot, tmp_path)
    controller.show_window()
    quits: list[bool] = []
    controller.quitRequested.connect(lambda: quits.append(True))
    controller.window.close()  # close-to-tray is the default: only hidden
    assert quits == [] and controller._told_closed_to_tray  # and told once (notifications on)
    controller.show_window()
    controller.open_settings().close_to_tray.setChecked(False)
    controller.window.close()
    assert quits == [True]
    quit_app(controller)


def test_notifications_off_keeps_the_tray_quiet(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    controller = start(qtbot, tmp_path)
    controller.open_settings().notifications.setChecked(False)
    controller.show_window()
    controller.window.close()
    assert not controller.window.isVisible() and not controller._told_closed_to_tray
    quit_app(controller)


def test_without_a_tray_the_tray_settings_say_why_they_are_off(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    controller = start(qtbot, tmp_path, with_tray=False)
    dialog = controller.open_settings()
    assert (
        not dialog.close_to_tray.isEnabled() and "no system tray" in dialog.close_to_tray.toolTip()
    )
    dialog.close()
    quit_app(controller)


def test_garbled_settings_fall_back_to_defaults(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    store.setValue("display/theme", "purple")
    store.setValue("window/close_to_tray", "maybe")
    store.sync()
    controller = start(qtbot, tmp_path)
    assert controller.settings.theme is Theme.SYSTEM
    assert controller.settings.close_to_tray is True  # not true/false: the default
    quit_app(controller)


def test_every_control_of_the_dialog_has_an_accessible_name(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    controller = start(qtbot, tmp_path)
    dialog = controller.open_settings()
    controls = [
        w
        for w in dialog.findChildren(QWidget)
        if isinstance(w, INTERACTIVE) and w.isVisibleTo(dialog)
    ]
    assert len(controls) >= 8
    assert [type(w).__name__ for w in controls if not w.accessibleName()] == []
    dialog.close()
    quit_app(controller)


def test_closing_to_the_tray_says_limits_stay_only_while_some_are_enforced(
    qtbot, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb, with the helper not installed (no limit enforced, the
    status line said so), closing the window said "Limits stay in force."."""
    from tests.gui.worker_reports import inject_observations

    controller = start(qtbot, tmp_path)
    said: list[str] = []
    monkeypatch.setattr(
        controller.tray.icon, "showMessage", lambda _t, text, *_a: said.append(text)
    )
    not_installed = "org.freedesktop.DBus.Error.ServiceUnknown"
    inject_observations(controller.connection, poll_error_name=not_installed)
    assert controller.window.nothing_enforced  # what the status line says too
    controller.show_window()
    controller.window.close()
    assert said and "Limits stay in force" not in said[0], said
    assert said[0].startswith("No limit is enforced now: the helper is not installed."), said
    quit_app(controller)


@pytest.mark.parametrize("garbled", ["nan", "inf", "-5", "0.01", "1e9"])
def test_a_refresh_interval_that_is_no_interval_is_the_default(
    tmp_path: Path, garbled: str
) -> None:
    """A hand-edited interval outside 0.2..60 s is garbled like any other value:
    the default, not a clamp (nan went through min/max as nan: the worker
    polled every 50 ms and the detail pane's clock took int(nan))."""
    store = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    store.setValue("monitor/refresh_interval_s", garbled)
    store.sync()
    assert load_settings(store).refresh_interval_s == Settings().refresh_interval_s
    store.setValue("monitor/refresh_interval_s", "2.5")  # one within the bounds is taken as it is
    assert load_settings(store).refresh_interval_s == 2.5
