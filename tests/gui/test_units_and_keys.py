"""Units the user reads everywhere in the window, and limit sliders that step
through round values, starting near the current rate from "none"."""

from __future__ import annotations

import math

import pytest
from chadthrottle.contract import Direction
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.icons import IconProvider
from chadthrottle.gui.tray.quick_limits import quick_limits
from chadthrottle.gui.tray.tray import TrayController
from chadthrottle.gui.widgets.limit_slider import LimitControl
from chadthrottle.gui.widgets.rate_scale import round_rates, snap_rate, step_rate, suggest_rate
from chadthrottle.units import UnitError, UnitSystem, format_rate, parse_rate
from hypothesis import given
from hypothesis import strategies as st
from PySide6.QtCore import QPoint, Qt

from tests.gui.sample_data import MB, sample_applications
from tests.gui.tray_actions import quick_limit_action

BITS = UnitSystem.BITS_DECIMAL
BYTES = UnitSystem.BYTES_DECIMAL


@pytest.mark.parametrize(
    ("text", "units", "expected"),
    [
        ("10M", BITS, 1_250_000),  # bits mode: a bare prefix is Mbit/s
        ("10 Mbit/s", BITS, 1_250_000),
        ("10Mbps", BITS, 1_250_000),
        ("10Mb", BITS, 1_250_000),  # a lowercase b is a bit here
        ("10 MB/s", BITS, 10_000_000),  # an explicit byte wins
        ("1MiB", BITS, 1_048_576),
        ("80000", BITS, 10_000),  # a bare number is bit/s
        ("10 Mbit/s", BYTES, 1_250_000),  # bits may be typed in bytes mode too
        ("2M", UnitSystem.BYTES_BINARY, 2 * 1024 * 1024),  # binary mode: a bare M is MiB
        ("2 MB/s", UnitSystem.BYTES_BINARY, 2_000_000),  # an explicit unit is decimal
        ("10M", UnitSystem.BITS_BINARY, 10 * 1024 * 1024 // 8),
        ("unlimited", BITS, None),
    ],
)
def test_typed_rates_mean_the_units_shown(
    text: str, units: UnitSystem, expected: int | None
) -> None:
    assert parse_rate(text, units) == expected


def test_bounds_are_told_in_the_units_shown() -> None:
    with pytest.raises(UnitError, match=r"below the minimum of 8\.00 kbit/s"):
        parse_rate("7k", BITS)
    with pytest.raises(UnitError, match=r"try 500K, 2M, 2 Mbit/s"):
        parse_rate("fast", BITS)


@given(st.text(alphabet="0123456789.kKmMgGiBbtsp/ ", max_size=12))
def test_bytes_mode_reads_what_the_cli_accepts_the_same(text: str) -> None:
    """The CLI's parse (no units) is unchanged; the GUI in bytes mode agrees with it."""
    try:
        cli = parse_rate(text)
    except UnitError:
        return
    assert parse_rate(text, BYTES) == cli


@pytest.mark.parametrize("units", list(UnitSystem))
def test_slider_values_are_round_in_the_units_shown(units: UnitSystem) -> None:
    for rate in round_rates(units):
        number = float(format_rate(rate, units).split(" ")[0])
        mantissa = number / 10 ** math.floor(math.log10(number))
        assert round(mantissa, 6) in {1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8}, (units, rate)
    assert format_rate(snap_rate(4_970_000, BYTES), BYTES) == "5.00 MB/s"
    assert format_rate(snap_rate(4_970_000, BITS), BITS) == "40.0 Mbit/s"


def test_steps_and_first_suggestion() -> None:
    assert step_rate(5 * MB, -1, BYTES, coarse=True) == 2 * MB
    assert step_rate(5 * MB, 1, BYTES, coarse=True) == 10 * MB
    assert step_rate(5 * MB, 1, BYTES) == 6 * MB
    assert step_rate(round_rates(BYTES)[-1], 1, BYTES) is None  # past the top: no limit
    assert suggest_rate(4.98 * MB, BYTES) == 4 * MB  # at or just below the current rate
    assert suggest_rate(0, BYTES) == 1 * MB  # idle: 1 MB/s
    assert suggest_rate(0, BITS) == 1_250_000  # 10 Mbit/s


@pytest.fixture
def control(qtbot) -> LimitControl:  # type: ignore[no-untyped-def]
    widget = LimitControl("Download limit for Steam")
    widget.resize(300, 30)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_first_key_from_none_limits_near_the_current_rate(qtbot, control: LimitControl) -> None:  # type: ignore[no-untyped-def]
    control.current_rate_source = lambda: 4.98 * MB
    control.slider.setFocus()
    qtbot.keyClick(control.slider, Qt.Key.Key_Left)
    assert control.field.text() == "4.00 MB/s"  # not 900 MB/s at the top of the scale
    with qtbot.waitSignal(control.limitChosen) as blocker:
        qtbot.keyClick(control.slider, Qt.Key.Key_Return)
    assert blocker.args == [4 * MB]


def test_page_home_and_end_step_in_round_values(qtbot, control: LimitControl) -> None:  # type: ignore[no-untyped-def]
    control.set_limit(5 * MB)
    control.slider.setFocus()
    shown = []
    for key in (Qt.Key.Key_PageDown, Qt.Key.Key_PageDown, Qt.Key.Key_PageUp, Qt.Key.Key_Right,
                Qt.Key.Key_Home, Qt.Key.Key_End):  # fmt: skip
        qtbot.keyClick(control.slider, key)
        shown.append(control.field.text())
    assert shown == ["2.00 MB/s", "1.00 MB/s", "2.00 MB/s", "2.50 MB/s", "10.0 KB/s", "none"]
    control.cancel()
    assert control.limit() == 5 * MB


def test_keys_step_in_bits_when_bits_are_shown(qtbot, control: LimitControl) -> None:  # type: ignore[no-untyped-def]
    control.set_units(BITS)
    control.set_current_rate(4.98 * MB)  # 39.8 Mbit/s
    control.slider.setFocus()
    qtbot.keyClick(control.slider, Qt.Key.Key_PageDown)
    assert control.field.text() == "30.0 Mbit/s"
    qtbot.keyClick(control.slider, Qt.Key.Key_PageDown)
    assert control.field.text() == "20.0 Mbit/s"
    assert (
        "Mbit/s" in control.field.toolTip() and "kbit/s" in control.slider.accessibleDescription()
    )


def test_typing_10M_in_bits_mode_means_10_Mbit(qtbot, control: LimitControl) -> None:  # type: ignore[no-untyped-def]
    control.set_units(BITS)
    control.field.setFocus()
    control.field.selectAll()
    qtbot.keyClicks(control.field, "10M")
    with qtbot.waitSignal(control.limitChosen) as blocker:
        qtbot.keyClick(control.field, Qt.Key.Key_Return)
    assert blocker.args == [1_250_000]
    assert control.field.text() == "10.0 Mbit/s"


def test_a_click_on_the_knob_at_none_suggests_a_limit(qtbot, control: LimitControl) -> None:  # type: ignore[no-untyped-def]
    control.current_rate_source = lambda: 310_000.0
    slider = control.slider
    knob = QPoint(slider.width() - 6, slider.height() // 2)
    with qtbot.waitSignal(control.limitChosen) as blocker:
        qtbot.mouseClick(slider, Qt.MouseButton.LeftButton, pos=knob)
    assert blocker.args == [300_000]


def test_a_drag_lands_on_a_round_value(qtbot, control: LimitControl) -> None:  # type: ignore[no-untyped-def]
    slider = control.slider
    y = slider.height() // 2
    chosen: list[object] = []
    control.limitChosen.connect(chosen.append)
    qtbot.mousePress(slider, Qt.MouseButton.LeftButton, pos=QPoint(slider.width() - 6, y))
    for x in range(slider.width() - 6, slider.width() // 2 - 7, -5):
        qtbot.mouseMove(slider, QPoint(x, y))
    qtbot.mouseRelease(slider, Qt.MouseButton.LeftButton, pos=QPoint(slider.width() // 2 - 7, y))
    assert len(chosen) == 1 and chosen[0] in round_rates(BYTES)


def test_tray_quick_limits_and_custom_values_in_bits(qtbot) -> None:  # type: ignore[no-untyped-def]
    assert [q.label for q in quick_limits(BITS)][1:4] == ["1 Mbit/s", "10 Mbit/s", "50 Mbit/s"]
    assert [q.label for q in quick_limits(UnitSystem.BYTES_BINARY)][1:4] == [
        "100 KiB/s",
        "1 MiB/s",
        "5 MiB/s",
    ]
    model = ApplicationsModel(IconProvider())
    model.apply_snapshot(sample_applications())
    model.set_units(BITS)
    tray = TrayController(model)
    tray.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    action = quick_limit_action(tray, "app:org.mozilla.firefox", Direction.UP, "10 Mbit/s")
    assert action is not None and action.text() == "10 Mbit/s"
    with qtbot.waitSignal(tray.limitRequested) as blocker:
        action.trigger()
    assert blocker.args == ["app:org.mozilla.firefox", "up", 1_250_000]
    tray.shutdown()
