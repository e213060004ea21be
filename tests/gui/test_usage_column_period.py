"""The list's totals column's period, chosen without a mouse, and kept across
the update that gave it a period of its own (docs/gui.md, "The list").

Until review28 it was chosen only by a right click on the column's title (a
title takes no focus: no key reached it), and a settings file from before
gui28, whose usage/period the column had shown, turned the column back to
"Today" unasked. The real controller and widgets on a scripted client."""

from __future__ import annotations

import time

import pytest
from chadthrottle.gui.controller import AppController
from chadthrottle.gui.ipc.state import HelperState
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.models.usage_periods import UsagePeriod
from PySide6.QtCore import QCoreApplication, QEvent, QSettings, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMenu

from tests.gui.test_usage_view import UsageClient, days_of_rows


@pytest.fixture
def started(qtbot, tmp_path, request):  # type: ignore[no-untyped-def]
    """The controller on a settings file holding request.param (key -> value)."""
    path = str(tmp_path / "chadthrottle.ini")
    before = QSettings(path, QSettings.Format.IniFormat)
    for key, value in getattr(request, "param", {}).items():
        before.setValue(key, value)
    before.sync()
    client = UsageClient(days_of_rows(time.time()))
    app = AppController(lambda: client, QSettings(path, QSettings.Format.IniFormat), use_tray=False)
    app.connection.set_refresh_interval(0.2)
    qtbot.addWidget(app.window)
    app.start(show_window=True)
    qtbot.waitUntil(lambda: app.connection.status.state is HelperState.CONNECTED, timeout=5000)
    yield app, path
    app.dispose()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def _title(app: AppController) -> str:
    return str(app.model.headerData(Column.USAGE, Qt.Orientation.Horizontal))


def test_the_columns_period_is_chosen_with_the_keyboard_from_the_menu(qtbot, started) -> None:  # type: ignore[no-untyped-def]
    app, path = started
    window = app.window
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    button = window.header.menu_button
    button.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(button.hasFocus, timeout=5000)
    assert _title(app) == "Today"
    keys: list[str] = []

    def press(widget: QMenu, key: Qt.Key) -> None:
        keys.append(f"{widget.objectName() or widget.title()}:{key.name}")
        QTest.keyClick(widget, key)

    def drive() -> None:
        """Inside the ☰ menu's own loop: Down to the submenu, Right, Down to
        "Last 7 days", Return; as a keyboard user would."""
        popup = QApplication.activePopupWidget()
        if not isinstance(popup, QMenu):
            return
        if len(keys) > 40:  # not found: every menu closed, so the test fails, not hangs
            popup.close()
            return
        wanted = getattr(app.usage, "column_submenu", None)
        active = popup.activeAction()
        if popup.objectName() == "usage-column-submenu":
            if active is not None and active.text() == "Last 7 days":
                press(popup, Qt.Key.Key_Return)
            else:
                press(popup, Qt.Key.Key_Down)
        elif active is not None and wanted is not None and active.menu() is wanted:
            press(popup, Qt.Key.Key_Right)
        else:
            press(popup, Qt.Key.Key_Down)

    pace = QTimer()
    pace.timeout.connect(drive)
    pace.start(30)
    try:
        QTest.keyClick(button, Qt.Key.Key_Space)  # opens the menu (its loop runs in here)
        qtbot.waitUntil(lambda: _title(app) == "7 days", timeout=10_000)
    finally:
        pace.stop()
    assert QApplication.activePopupWidget() is None, keys
    assert app.usage.period is UsagePeriod.WEEK and app.usage.view_period is UsagePeriod.TODAY
    store = QSettings(path, QSettings.Format.IniFormat)
    assert store.value("usage/column_period") == "7d"
    # checked afresh where it was chosen from the title's menu since
    app.usage.choose_column_period(UsagePeriod.THIS_MONTH)
    app.usage.column_submenu.aboutToShow.emit()
    checked = [a.text() for a in app.usage.column_submenu.actions() if a.isChecked()]
    assert checked == ["This month"]


@pytest.mark.parametrize("started", [{"usage/period": "7d"}], indirect=True)
def test_a_settings_file_from_before_keeps_the_period_its_column_showed(started) -> None:  # type: ignore[no-untyped-def]
    """Before gui28 usage/period was the usage view's and the column's: the
    column showed "7 days". After the update it still does, remembered as
    its own from then on; the view keeps the week too."""
    app, path = started
    assert _title(app) == "7 days"  # "Today" until review28
    assert app.usage.period is UsagePeriod.WEEK and app.usage.view_period is UsagePeriod.WEEK
    app.usage.choose_period(UsagePeriod.DAYS_30)  # the view's: the column keeps its own
    assert _title(app) == "7 days"
    store = QSettings(path, QSettings.Format.IniFormat)
    assert (store.value("usage/period"), store.value("usage/column_period")) == ("30d", "7d")


@pytest.mark.parametrize(
    "started", [{"usage/period": "7d", "usage/column_period": "today"}], indirect=True
)
def test_a_column_period_of_its_own_is_kept(started) -> None:  # type: ignore[no-untyped-def]
    app, _path = started
    assert _title(app) == "Today" and app.usage.view_period is UsagePeriod.WEEK


def test_a_new_settings_file_starts_at_today(started) -> None:  # type: ignore[no-untyped-def]
    app, path = started
    assert _title(app) == "Today"
    assert not QSettings(path, QSettings.Format.IniFormat).contains("usage/column_period")
