"""The limit slider stays a usable control in a narrow window (683 px wide: a
1366x768 screen at 2x, whose logical layout this is): the limit columns get
room for it before the name grows past its wanted width, and a drag is never
coarser than at 1x. Before, at 2x each slider had 34 px (19 px of travel for
five decades and "none") and a drag of 4 px went from 5 MB/s to 400 KB/s.
Real widgets, offscreen."""

from __future__ import annotations

from chadthrottle.contract import Direction
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.views.app_table import LIMIT_SLIDER_LEAST, LIMIT_SLIDER_USABLE
from chadthrottle.gui.widgets.limit_slider import DRAG_TRAVEL_LEAST, LimitControl
from chadthrottle.gui.widgets.rate_scale import UNLIMITED_POSITION
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QStyle, QStyleOptionSlider

from tests.gui.bare_window import bare_window
from tests.gui.sample_data import sample_applications

STEAM = "app:com.valvesoftware.Steam"  # no upload limit in the samples


def _shown_control(qtbot, width: int, height: int) -> LimitControl:  # type: ignore[no-untyped-def]
    model, window = bare_window()
    qtbot.addWidget(window)
    window.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    model.apply_snapshot(sample_applications())
    window.resize(width, height)
    window.show()
    qtbot.waitExposed(window)
    control = window.limit_control(STEAM, Direction.UP)
    assert control is not None and control.limit() is None
    qtbot.waitUntil(lambda: control.slider.isVisible())
    return control


def _knob_centre(control: LimitControl) -> QPoint:
    slider = control.slider
    option = QStyleOptionSlider()
    slider.initStyleOption(option)
    return (
        slider.style()
        .subControlRect(
            QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderHandle, slider
        )
        .center()
    )


def _drag(qtbot, control: LimitControl, pixels: list[int]) -> list[str]:  # type: ignore[no-untyped-def]
    """Press on the knob, move left by each of pixels in turn (the field's
    preview read after each), then Escape and let go: nothing is applied."""
    slider, start = control.slider, _knob_centre(control)
    qtbot.mousePress(slider, Qt.MouseButton.LeftButton, pos=start)
    previews = []
    for dx in pixels:
        qtbot.mouseMove(slider, start - QPoint(dx, 0))
        previews.append(control.field.text())
    qtbot.keyClick(slider, Qt.Key.Key_Escape)
    qtbot.mouseRelease(slider, Qt.MouseButton.LeftButton, pos=start - QPoint(pixels[-1], 0))
    return previews


def test_at_2x_the_slider_has_room_and_a_short_drag_stays_near_none(qtbot) -> None:  # type: ignore[no-untyped-def]
    control = _shown_control(qtbot, 683, 384)
    assert control.slider.width() >= LIMIT_SLIDER_USABLE - (LIMIT_SLIDER_LEAST - 34), (
        control.slider.width()
    )
    with qtbot.assertNotEmitted(control.limitChosen, wait=0):
        previews = _drag(qtbot, control, [*range(1, 12), DRAG_TRAVEL_LEAST + 5])
    # 11 px from "none": still above 100 MB/s (before: 400 KB/s after 4 px, 10 KB/s after 10)
    rate_after_11 = previews[10]
    assert rate_after_11.endswith("MB/s") and float(rate_after_11.split()[0]) >= 100, previews
    assert len(set(previews[:11])) >= 4, previews  # each few px a round value further
    assert previews[-1] == "10.0 KB/s", previews  # the whole scale within reach
    assert control.limit() is None and control.slider.value() == UNLIMITED_POSITION


def test_at_1x_the_knob_stays_under_the_pointer(qtbot) -> None:  # type: ignore[no-untyped-def]
    control = _shown_control(qtbot, 1366, 768)
    assert control.slider.width() - 15 >= DRAG_TRAVEL_LEAST  # room enough: no gearing
    start = _knob_centre(control)
    qtbot.mousePress(control.slider, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(control.slider, start - QPoint(40, 0))
    assert abs(_knob_centre(control).x() - (start.x() - 40)) <= 2
    qtbot.keyClick(control.slider, Qt.Key.Key_Escape)
    qtbot.mouseRelease(control.slider, Qt.MouseButton.LeftButton, pos=start - QPoint(40, 0))
    assert control.limit() is None
