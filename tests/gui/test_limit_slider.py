"""LimitControl: log scale, typed values, Escape, keyboard, one emission per gesture."""

from __future__ import annotations

import pytest
from chadthrottle.contract import LIMIT_REACH
from chadthrottle.gui.widgets.limit_slider import LimitControl
from chadthrottle.gui.widgets.rate_scale import (
    LOG_STEPS,
    UNLIMITED_POSITION,
    nice_rate,
    position_for_rate,
    rate_for_position,
)
from PySide6.QtCore import QPoint, Qt


@pytest.fixture
def control(qtbot) -> LimitControl:
    widget = LimitControl("Download limit for Firefox")
    widget.resize(260, 30)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_scale_ends_and_middle() -> None:
    assert rate_for_position(0) == 10_000
    assert rate_for_position(LOG_STEPS - 1) == 1_000_000_000
    assert rate_for_position(UNLIMITED_POSITION) is None
    assert position_for_rate(None) == UNLIMITED_POSITION
    assert position_for_rate(0) == UNLIMITED_POSITION
    middle = rate_for_position((LOG_STEPS - 1) // 2)
    assert middle is not None and 3_000_000 <= middle <= 3_300_000  # log: 10^6.5 mid-way


@pytest.mark.parametrize("rate", [10_000, 123_456, 5_000_000, 1_000_000_000])
def test_scale_round_trips(rate: int) -> None:
    back = rate_for_position(position_for_rate(rate))
    assert back is not None and abs(back - rate) / rate < 0.05  # two significant digits


def test_nice_rate_two_digits() -> None:
    assert nice_rate(4_970_000) == 5_000_000
    assert nice_rate(12_345) == 12_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [("500K", 500_000), ("2 MB/s", 2_000_000), ("1MiB", 1_048_576), ("unlimited", None)],
)
def test_typed_value_is_emitted_on_enter(qtbot, control: LimitControl, text, expected) -> None:
    if expected is None:
        control.set_limit(1_000_000)
    control.field.setFocus()
    control.field.selectAll()
    qtbot.keyClicks(control.field, text)
    with qtbot.waitSignal(control.limitChosen) as blocker:
        qtbot.keyClick(control.field, Qt.Key.Key_Return)
    assert blocker.args == [expected]
    assert control.limit() == expected


def test_invalid_text_is_refused_and_escape_restores(qtbot, control: LimitControl) -> None:
    control.set_limit(2_000_000)
    control.field.setFocus()
    control.field.selectAll()
    qtbot.keyClicks(control.field, "fast please")
    with qtbot.assertNotEmitted(control.limitChosen):
        qtbot.keyClick(control.field, Qt.Key.Key_Return)
    assert control.field.property("error") is True
    qtbot.keyClick(control.field, Qt.Key.Key_Escape)
    assert control.field.text() == "2.00 MB/s"
    assert not control.field.property("error")
    assert control.limit() == 2_000_000


def test_drag_emits_once_on_release(qtbot, control: LimitControl) -> None:
    slider = control.slider
    emitted: list[object] = []
    control.limitChosen.connect(emitted.append)
    y = slider.height() // 2
    handle_x = slider.width() - 6  # unlimited: the knob sits at the right end
    qtbot.mousePress(slider, Qt.MouseButton.LeftButton, pos=QPoint(handle_x, y))
    for x in range(handle_x, slider.width() // 2, -5):
        qtbot.mouseMove(slider, QPoint(x, y))
    assert emitted == []
    qtbot.mouseRelease(slider, Qt.MouseButton.LeftButton, pos=QPoint(slider.width() // 2, y))
    assert len(emitted) == 1 and isinstance(emitted[0], int)
    assert 10_000 < emitted[0] < 1_000_000_000


def test_escape_during_drag_cancels(qtbot, control: LimitControl) -> None:
    slider = control.slider
    y = slider.height() // 2
    with qtbot.assertNotEmitted(control.limitChosen):
        qtbot.mousePress(slider, Qt.MouseButton.LeftButton, pos=QPoint(slider.width() - 6, y))
        qtbot.mouseMove(slider, QPoint(slider.width() // 3, y))
        qtbot.keyClick(slider, Qt.Key.Key_Escape)
        qtbot.mouseMove(slider, QPoint(slider.width() // 4, y))
        qtbot.mouseRelease(slider, Qt.MouseButton.LeftButton, pos=QPoint(slider.width() // 4, y))
    assert control.limit() is None
    assert slider.value() == UNLIMITED_POSITION


def test_keyboard_previews_then_enter_applies(qtbot, control: LimitControl) -> None:
    control.set_limit(1_000_000)
    control.slider.setFocus()
    with qtbot.assertNotEmitted(control.limitChosen, wait=0):
        qtbot.keyClick(control.slider, Qt.Key.Key_Left)
        qtbot.keyClick(control.slider, Qt.Key.Key_Left)
    assert control.is_editing()
    preview = control.field.text()
    assert preview != "1.00 MB/s"
    with qtbot.waitSignal(control.limitChosen) as blocker:
        qtbot.keyClick(control.slider, Qt.Key.Key_Return)
    assert blocker.args[0] < 1_000_000
    assert control.field.text() == preview


def test_keyboard_change_settles_by_itself_and_escape_cancels(qtbot, control: LimitControl) -> None:
    control.set_limit(1_000_000)
    control.slider.setFocus()
    qtbot.keyClick(control.slider, Qt.Key.Key_End)  # to the unlimited end
    with qtbot.waitSignal(control.limitChosen, timeout=3000) as blocker:
        pass
    assert blocker.args == [None]
    qtbot.keyClick(control.slider, Qt.Key.Key_Home)
    with qtbot.assertNotEmitted(control.limitChosen, wait=1000):
        qtbot.keyClick(control.slider, Qt.Key.Key_Escape)
    assert control.limit() is None


def test_outside_updates_wait_while_editing(qtbot, control: LimitControl) -> None:
    control.field.setFocus()
    qtbot.keyClicks(control.field, "3M")
    control.set_limit(7_000_000)  # a poll arrives mid-edit
    assert control.field.text().endswith("3M")
    qtbot.keyClick(control.field, Qt.Key.Key_Escape)
    control.set_limit(7_000_000)
    assert control.field.text() == "7.00 MB/s"


def test_accessible_names_and_blocking(control: LimitControl) -> None:
    assert control.slider.accessibleName() == "Download limit for Firefox"
    assert control.field.accessibleName() == "Download limit for Firefox value"
    control.set_blocked("Not authorized")
    assert not control.isEnabled() and control.toolTip() == "Not authorized"
    control.set_blocked("")
    assert control.isEnabled()


def test_a_slider_does_not_take_over_the_application_style(qtbot) -> None:
    """QProxyStyle(base) adopts its base; given the application's style, every
    slider deleted with a row editor would delete the style all widgets use."""
    from PySide6.QtWidgets import QApplication

    style = QApplication.style()
    parent_before = style.parent()
    widget = LimitControl("Upload limit for curl")
    qtbot.addWidget(widget)
    assert style.parent() == parent_before
    assert style.proxy() == style
    assert widget.slider.style() != style  # the click-to-jump proxy is in place


def test_the_value_field_says_a_limit_holds_the_sum_not_a_share_per_namespace(
    control: LimitControl,
) -> None:
    """What the helper holds over several network namespaces is the sum, first
    come, first served (bench/namespace_share.py): the window must not let a
    user read more into a limit than that."""
    hint = " ".join(control.field.toolTip().split())
    assert hint.startswith("Type 500K") and LIMIT_REACH in hint
    assert all(len(line) <= 90 for line in control.field.toolTip().splitlines())


@pytest.mark.parametrize("limit", [None, 2_000_000])
def test_a_click_into_the_field_then_typing_replaces_its_value(
    qtbot, control: LimitControl, limit
) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb (walk28) a click on a row's field reading "none", then "1M"
    and Enter, read "1Mnone": not a rate, refused. The field's value is its
    text, and the click put the cursor in it. A click selects it, as Tab does,
    so what is typed replaces it."""
    control.set_limit(limit)
    field = control.field
    qtbot.mouseClick(
        field, Qt.MouseButton.LeftButton, pos=QPoint(field.width() // 2, field.height() // 2)
    )
    qtbot.waitUntil(field.hasFocus)
    qtbot.keyClicks(field, "1M")
    with qtbot.waitSignal(control.limitChosen) as blocker:
        qtbot.keyClick(field, Qt.Key.Key_Return)
    assert blocker.args == [1_000_000], field.text()
    assert not field.property("error")
