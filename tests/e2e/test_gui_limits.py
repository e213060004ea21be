"""The GUI operated like a user, against the real helper on the private bus.

Each test builds the real AppController (offscreen) on the stack's bus, starts
a real application (a traffic process in a desktop-style app scope), and uses
the window's own widgets: typing into a limit field, dragging a slider with
the mouse, choosing a tray quick limit. The traffic is measured the way
test_limit_over_dbus does it: at the receiver, in payload bytes, scaled to L3.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from chadthrottle.contract import Direction
from chadthrottle.gui.controller import AppController
from chadthrottle.gui.ipc.connection import LimitRequest
from chadthrottle.gui.models.columns import Column, Role
from chadthrottle.gui.tray.tray import TrayController
from chadthrottle.gui.widgets.limit_slider import DRAG_TRAVEL_LEAST, RateSlider
from chadthrottle.gui.widgets.rate_scale import UNLIMITED_POSITION, position_for_rate
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QSlider, QStyle, QStyleOptionSlider

from tests.e2e.conftest import Stack
from tests.e2e.gui_support import PAYLOAD_SHARE, app_rate_bps, running_gui, streaming_app, within
from tests.e2e.test_limit_over_dbus import (
    READ_SETTLE_S,
    TAKES_HOLD_S,
    WINDOW_S,
    wait_until_at_limit,
)
from tests.gui.tray_actions import quick_limit_action
from tests.support.download_settled import wait_until_download_settled
from tests.support.helper_calls import call_helper

LIMIT_BPS = 1_000_000  # "1M" as typed, and the tray's "1 MB/s": decimal
UNLIMITED_FLOOR_BPS = 20 * LIMIT_BPS  # an unlimited stream on the veth runs far above this
HELPER_CALL_TIMEOUT_MS = 15_000
SEEN_ELSEWHERE_WITHIN_S = 1.5  # one 1 s poll interval plus the poll's own time
READ_WINDOWS = 4  # download reads: measuring windows allowed to settle in


@pytest.fixture
def gui(stack: Stack, qtbot, tmp_path) -> Iterator[AppController]:  # type: ignore[no-untyped-def]
    with running_gui(stack, qtbot, tmp_path / "chadthrottle.ini") as controller:
        yield controller


def _wait_for_row(qtbot, gui: AppController, app_id: str) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: gui.window.table.proxy_index(app_id).isValid(), timeout=10_000)


def _finished(blocker) -> LimitRequest:  # type: ignore[no-untyped-def]
    request, error_name, words = blocker.args
    assert error_name == "", f"the helper refused: {error_name}: {words}"
    assert isinstance(request, LimitRequest)
    return request


def _type_limit(
    qtbot, gui: AppController, app_id: str, direction: Direction, text: str
) -> LimitRequest:  # type: ignore[no-untyped-def]
    """Click into the row's limit field, type, press Enter; wait for the helper."""
    control = gui.window.limit_control(app_id, direction)
    assert control is not None and control.isEnabled()
    qtbot.mouseClick(control.field, Qt.MouseButton.LeftButton)
    control.field.selectAll()
    qtbot.keyClicks(control.field, text)
    with qtbot.waitSignal(gui.connection.limitFinished, timeout=HELPER_CALL_TIMEOUT_MS) as blocker:
        qtbot.keyClick(control.field, Qt.Key.Key_Return)
        # The row shows the new limit at once, before the helper has answered.
        shown = gui.window.table.proxy_index(app_id, _limit_column(direction))
        assert shown.data(Role.LIMIT_PENDING)
    return _finished(blocker)


def _limit_column(direction: Direction) -> Column:
    return Column.DOWN_LIMIT if direction is Direction.DOWN else Column.UP_LIMIT


def _knob_x(slider: QSlider, position: int) -> int:
    """Where the knob's centre is when the slider is at `position`."""
    option = QStyleOptionSlider()
    slider.initStyleOption(option)
    style = slider.style()
    groove = style.subControlRect(
        QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderGroove, slider
    )
    handle = style.subControlRect(
        QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderHandle, slider
    )
    span = groove.width() - handle.width()
    offset = QStyle.sliderPositionFromValue(slider.minimum(), slider.maximum(), position, span)
    return groove.x() + offset + handle.width() // 2


def _drag(qtbot, slider: QSlider, to_position: int) -> None:  # type: ignore[no-untyped-def]
    """Press on the knob, move the mouse in steps, release: a real drag. On a
    slider with less travel than DRAG_TRAVEL_LEAST the knob moves slower than
    the pointer (the drag is geared), so the pointer goes that much further."""
    y = slider.height() // 2
    start, end = _knob_x(slider, slider.value()), _knob_x(slider, to_position)
    if isinstance(slider, RateSlider) and slider.travel() < DRAG_TRAVEL_LEAST:
        span = slider.maximum() - slider.minimum()
        pointer = (to_position - slider.value()) * DRAG_TRAVEL_LEAST / span
        end = start + (math.ceil(pointer) if pointer > 0 else math.floor(pointer))  # not short
        if to_position in (slider.minimum(), slider.maximum()):
            end += 8 if pointer > 0 else -8  # past the end, as a hand does
    qtbot.mousePress(slider, Qt.MouseButton.LeftButton, pos=QPoint(start, y))
    step = 4 if end > start else -4
    for x in range(start, end, step):
        qtbot.mouseMove(slider, QPoint(x, y))
    qtbot.mouseMove(slider, QPoint(end, y))
    qtbot.mouseRelease(slider, Qt.MouseButton.LeftButton, pos=QPoint(end, y))


def test_typing_a_limit_slows_the_upload_and_unlimited_restores_it(
    qtbot, stack: Stack, gui: AppController
) -> None:  # type: ignore[no-untyped-def]
    with streaming_app(stack, "TestGuiTyped", 5600, Direction.UP) as (app_id, stream):
        _wait_for_row(qtbot, gui, app_id)
        assert app_rate_bps(qtbot, stream.receiver, 0.5) > UNLIMITED_FLOOR_BPS

        request = _type_limit(qtbot, gui, app_id, Direction.UP, "1M")
        assert (request.app_id, request.direction, request.rate_bps) == (app_id, "up", LIMIT_BPS)
        assert gui.window.table.proxy_index(app_id, Column.UP_LIMIT).data() == "1.00 MB/s"
        wait_until_at_limit(lambda s: app_rate_bps(qtbot, stream.receiver, s), LIMIT_BPS)
        rate = app_rate_bps(qtbot, stream.receiver, WINDOW_S)
        assert within(rate, LIMIT_BPS), f"the application moved {rate / 1e6:.3f} MB/s at L3"
        qtbot.waitUntil(lambda: gui.model.application(app_id).up_limit_bps == LIMIT_BPS)  # type: ignore[union-attr]
        assert gui.window.status_line.limits.text() == "1 limit active"
        # the detail pane lists the selected application's connection
        gui.window.select_application(app_id)
        shown = gui.window.detail.connections_model
        qtbot.waitUntil(lambda: any((shown.row(r).info.remote, shown.row(r).info.state)
                                    == (f"{stack.pair.peer_addr}:5600", "ESTABLISHED") for r in range(shown.rowCount())),
                        timeout=5000)  # fmt: skip

        request = _type_limit(qtbot, gui, app_id, Direction.UP, "unlimited")
        assert request.rate_bps is None
        assert gui.window.table.proxy_index(app_id, Column.UP_LIMIT).data() == "none"
        qtbot.wait(500)
        assert app_rate_bps(qtbot, stream.receiver, 1.0) > UNLIMITED_FLOOR_BPS


def test_tray_quick_limit_slows_the_upload(qtbot, stack: Stack, gui: AppController) -> None:  # type: ignore[no-untyped-def]
    tray = TrayController(gui.model, gui.window, gui)
    gui.attach_tray(tray)  # offscreen has no tray area; the controller owns and removes it
    with streaming_app(stack, "TestGuiTray", 5620, Direction.UP) as (app_id, stream):
        _wait_for_row(qtbot, gui, app_id)
        # The menu lists the busiest applications: this one once its rate is measured.
        qtbot.waitUntil(
            lambda: quick_limit_action(tray, app_id, Direction.UP, "1 MB/s") is not None,
            timeout=5000,
        )
        action = quick_limit_action(tray, app_id, Direction.UP, "1 MB/s")
        assert action is not None and action.isEnabled()
        with qtbot.waitSignal(
            gui.connection.limitFinished, timeout=HELPER_CALL_TIMEOUT_MS
        ) as blocker:
            action.trigger()
        assert _finished(blocker).rate_bps == LIMIT_BPS
        wait_until_at_limit(lambda s: app_rate_bps(qtbot, stream.receiver, s), LIMIT_BPS)
        rate = app_rate_bps(qtbot, stream.receiver, WINDOW_S)
        assert within(rate, LIMIT_BPS), f"the application moved {rate / 1e6:.3f} MB/s at L3"
        checked = quick_limit_action(tray, app_id, Direction.UP, "1 MB/s")
        assert checked is not None and checked.isChecked()
        qtbot.waitUntil(lambda: "1 limit" in tray.icon.toolTip())

        unlimited = quick_limit_action(tray, app_id, Direction.UP, "None")
        assert unlimited is not None
        with qtbot.waitSignal(
            gui.connection.limitFinished, timeout=HELPER_CALL_TIMEOUT_MS
        ) as blocker:
            unlimited.trigger()
        assert _finished(blocker).rate_bps is None
        qtbot.wait(500)
        assert app_rate_bps(qtbot, stream.receiver, 1.0) > UNLIMITED_FLOOR_BPS


def test_a_limit_set_elsewhere_shows_in_the_row_within_a_second(
    qtbot, stack: Stack, gui: AppController
) -> None:  # type: ignore[no-untyped-def]
    with streaming_app(stack, "TestGuiElsewhere", 5630, Direction.UP) as (app_id, _stream):
        _wait_for_row(qtbot, gui, app_id)
        control = gui.window.limit_control(app_id, Direction.UP)
        assert control is not None

        def cell(column: Column = Column.UP_LIMIT):  # type: ignore[no-untyped-def]
            return gui.window.table.proxy_index(app_id, column)  # looked up anew: rows re-sort

        for rate_bps, text in ((2_000_000, "2.00 MB/s"), (None, "none")):
            if rate_bps is None:
                call_helper(stack.bus_address, lambda c: c.clear_limit(app_id, Direction.UP))
            else:
                call_helper(
                    stack.bus_address, lambda c, r=rate_bps: c.set_limit(app_id, Direction.UP, r)
                )
            changed_at = time.monotonic()
            qtbot.waitUntil(
                lambda t=text: cell().data() == t and control.field.text() == t, timeout=5000
            )
            seen_after_s = time.monotonic() - changed_at
            assert seen_after_s <= SEEN_ELSEWHERE_WITHIN_S, (
                f"{text} showed after {seen_after_s:.2f} s"
            )
            assert cell().data(Role.LIMIT) == (rate_bps or 0)
            assert cell(Column.ACTIVITY).data(Role.LIMITS) == (
                0,
                rate_bps or 0,
            )  # drawn on the sparkline


# Last: an upload limit set within a few seconds of a download limit being lifted
# overshoots by 20-50% in the helper (tc) today, which the upload tests above
# would then measure; reported with a reproduction, not hidden by a tolerance.
def test_dragging_the_download_slider_slows_the_download(
    qtbot, stack: Stack, gui: AppController
) -> None:  # type: ignore[no-untyped-def]
    with streaming_app(stack, "TestGuiDragged", 5610, Direction.DOWN) as (app_id, stream):
        _wait_for_row(qtbot, gui, app_id)
        assert app_rate_bps(qtbot, stream.receiver, 0.5) > UNLIMITED_FLOOR_BPS
        control = gui.window.limit_control(app_id, Direction.DOWN)
        assert control is not None and control.slider.value() == UNLIMITED_POSITION

        with qtbot.waitSignal(
            gui.connection.limitFinished, timeout=HELPER_CALL_TIMEOUT_MS
        ) as blocker:
            _drag(qtbot, control.slider, position_for_rate(LIMIT_BPS))
        requested = _finished(blocker).rate_bps
        # One pixel of a ~120 px log slider is a few percent; the drag lands near 1 MB/s.
        assert requested is not None and 0.8 * LIMIT_BPS <= requested <= 1.25 * LIMIT_BPS
        # The row's measured rate (the helper's, at the socket, L3) settles to the limit...
        qtbot.waitUntil(
            lambda: within(gui.model.application(app_id).down_bps, requested), timeout=5000
        )  # type: ignore[union-attr]
        # ...and so does what the application reads, once the holes from before the
        # limit are refilled through the shaper and the sender's recovery is over
        # (a fixed TAKES_HOLD_S + READ_SETTLE_S, 3 s, was waited; at most that now),
        # a few windows at most.
        wait_until_download_settled(stream.receiver, stack.pair.host_ns, 5610,
                                    requested * PAYLOAD_SHARE, sender_netns=stack.pair.peer_ns,
                                    timeout_s=TAKES_HOLD_S + READ_SETTLE_S[Direction.DOWN])  # fmt: skip
        rates = [app_rate_bps(qtbot, stream.receiver, WINDOW_S)]
        while not within(rates[-1], requested) and len(rates) < READ_WINDOWS:
            rates.append(app_rate_bps(qtbot, stream.receiver, WINDOW_S))
        assert within(rates[-1], requested), (
            f"the application read {[round(r / 1e6, 3) for r in rates]} MB/s at L3"
        )

        with qtbot.waitSignal(
            gui.connection.limitFinished, timeout=HELPER_CALL_TIMEOUT_MS
        ) as blocker:
            _drag(qtbot, control.slider, UNLIMITED_POSITION)
        assert _finished(blocker).rate_bps is None
        qtbot.wait(500)
        assert app_rate_bps(qtbot, stream.receiver, 1.0) > UNLIMITED_FLOOR_BPS
