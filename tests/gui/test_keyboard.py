"""The main controls work from the keyboard alone, and every control says what it is."""

from __future__ import annotations

import pytest
from chadthrottle.gui.views.main_window import MainWindow
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSlider,
    QApplication,
    QComboBox,
    QLineEdit,
    QWidget,
)

DROPBOX = "app:com.dropbox.Client"
INTERACTIVE = (QAbstractButton, QLineEdit, QAbstractSlider, QComboBox, QAbstractItemView)


@pytest.fixture
def window(active_window: MainWindow) -> MainWindow:
    return active_window


def focused() -> QWidget:
    widget = QApplication.focusWidget()
    assert widget is not None, "keyboard focus was lost"
    return widget


def press(
    qtbot, key: Qt.Key, modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier
) -> QWidget:  # type: ignore[no-untyped-def]
    qtbot.keyClick(focused(), key, modifier)
    return focused()


def test_filter_choose_an_application_and_limit_it_with_keys_only(
    qtbot, window: MainWindow
) -> None:  # type: ignore[no-untyped-def]
    requests: list[list[object]] = []
    window.limitRequested.connect(lambda *args: requests.append(list(args)))

    assert press(qtbot, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier) is window.header.filter
    qtbot.keyClicks(focused(), "drop")
    assert press(qtbot, Qt.Key.Key_Tab).accessibleName() == "Data usage"
    assert press(qtbot, Qt.Key.Key_Tab).accessibleName() == "Settings"
    assert press(qtbot, Qt.Key.Key_Tab) is window.table
    press(qtbot, Qt.Key.Key_Down)  # the first (only) row: Dropbox
    assert window.detail.app_id == DROPBOX

    down_slider = press(qtbot, Qt.Key.Key_Tab)
    assert down_slider.accessibleName() == "Download limit for Dropbox"
    down_field = press(qtbot, Qt.Key.Key_Tab)
    assert down_field.accessibleName() == "Download limit for Dropbox value"
    qtbot.keyClick(down_field, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(down_field, "2M")
    press(qtbot, Qt.Key.Key_Return)
    assert requests == [[DROPBOX, "down", 2_000_000]]

    up_slider = press(qtbot, Qt.Key.Key_Tab)
    assert up_slider.accessibleName() == "Upload limit for Dropbox"
    press(qtbot, Qt.Key.Key_Left)  # a preview only...
    press(qtbot, Qt.Key.Key_Escape)  # ...taken back
    qtbot.wait(900)  # longer than the keyboard settle time: nothing may be sent
    assert len(requests) == 1
    press(qtbot, Qt.Key.Key_End)  # the unlimited end
    press(qtbot, Qt.Key.Key_Return)
    assert requests[-1] == [DROPBOX, "up", None]

    assert press(qtbot, Qt.Key.Key_Tab).accessibleName() == "Upload limit for Dropbox value"
    assert press(qtbot, Qt.Key.Key_Tab) is window.detail.fold_button  # the graph's switch
    assert press(qtbot, Qt.Key.Key_Tab) is window.detail.span
    assert press(qtbot, Qt.Key.Key_Tab) is window.header.filter  # round again, no hidden stops


def test_every_interactive_control_has_an_accessible_name(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    window.limit_control(DROPBOX, "down")  # open a row's editors as the pointer would
    qtbot.keyClicks(window.header.filter, "o")  # shows the filter's clear button
    controls = [
        w for w in window.findChildren(QWidget)
        if isinstance(w, INTERACTIVE) and w.isVisibleTo(window)
    ] + [window.table.verticalScrollBar(), window.banner.retry_button, window.banner.copy_button]  # fmt: skip
    assert len(controls) >= 8
    unnamed = [f"{type(w).__name__} {w.objectName()!r} in {type(w.parent()).__name__}"
               for w in controls if not w.accessibleName()]  # fmt: skip
    assert unnamed == []


def test_down_in_the_filter_goes_on_to_the_matching_row(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    """Type a name, press Down: the list, on the application left (Down did
    nothing in the filter box: Tab went past Usage and ☰ first)."""
    assert press(qtbot, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier) is window.header.filter
    qtbot.keyClicks(focused(), "drop")
    assert press(qtbot, Qt.Key.Key_Down) is window.table
    assert window.detail.app_id == DROPBOX
    press(qtbot, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(focused(), Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(focused(), "nothing matches this")
    assert press(qtbot, Qt.Key.Key_Down) is window.header.filter  # no row: it stays
