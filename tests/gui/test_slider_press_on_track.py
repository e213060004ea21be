"""A press on a limit slider's track away from the knob jumps the knob there
and starts a drag: the limit is the one let go at, sent once at the release.

gui32 (Xvfb, 2x, real pointer via XTest): a press on Harbor Browser's track
then a 1.8 s drag sent two limits, 80 MB/s while the button was still down
(the keyboard's settle timer, started by the press's jump) and 30 MB/s at the
release; the row showed the first for a second mid-drag.
"""

from __future__ import annotations

import pytest
from chadthrottle.gui.widgets.limit_slider import KEYBOARD_SETTLE_MS, LimitControl
from PySide6.QtCore import QPoint, Qt


@pytest.fixture
def control(qtbot) -> LimitControl:
    widget = LimitControl("Download limit for Harbor Browser")
    widget.resize(260, 30)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_a_press_on_the_track_then_a_slow_drag_sends_the_limit_once_at_release(
    qtbot, control: LimitControl
) -> None:
    slider = control.slider
    emitted: list[object] = []
    control.limitChosen.connect(emitted.append)
    y = slider.height() // 2
    press_x = slider.width() // 2  # the knob is at the right end (no limit): the track
    qtbot.mousePress(slider, Qt.MouseButton.LeftButton, pos=QPoint(press_x, y))
    assert slider.isSliderDown()  # the jump started a drag
    qtbot.mouseMove(slider, QPoint(press_x - 10, y))
    qtbot.wait(KEYBOARD_SETTLE_MS + 300)  # a user's slow drag: longer than the keyboard's settle
    assert emitted == [], "a limit was sent while the button was still down"
    qtbot.mouseMove(slider, QPoint(press_x - 20, y))
    shown = control.field.text()
    qtbot.mouseRelease(slider, Qt.MouseButton.LeftButton, pos=QPoint(press_x - 20, y))
    assert len(emitted) == 1 and isinstance(emitted[0], int)
    assert control.field.text() == shown
    qtbot.wait(KEYBOARD_SETTLE_MS + 300)  # and nothing after the release either
    assert len(emitted) == 1
