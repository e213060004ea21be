"""With the helper away, the selected row's open limit control shows its
"not enforced" warning as the painted rows do (the warning's colour, faded),
not greyed to a shape barely seen beside a bold limit (Xvfb, the real helper
killed: 1.00 MB/s in bold with a pale grey triangle on the selected row, amber
triangles on the others). Real widgets, offscreen."""

from __future__ import annotations

from chadthrottle.contract import Direction
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.models.columns import Column
from PySide6.QtGui import QImage

FIREFOX = "app:org.mozilla.firefox"  # its download limited in the sample data
STEAM = "app:com.valvesoftware.Steam"  # so is its
GONE = HelperStatus(HelperState.NOT_RUNNING, "The helper is restarting.")


def most_saturated(image: QImage) -> float:
    """The highest HSV saturation among the image's pixels (0-1)."""
    return max(
        image.pixelColor(x, y).hsvSaturationF()
        for y in range(image.height())
        for x in range(image.width())
    )


def test_the_open_controls_warning_keeps_its_colour_with_the_helper_away(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window.set_status(GONE)
    assert window._model.limit_state(FIREFOX, Direction.DOWN).problem
    assert window.select_application(FIREFOX)
    control = window.limit_control(FIREFOX, Direction.DOWN)
    assert control is not None
    qtbot.waitUntil(lambda: control.warning.isVisible())
    assert not control.isEnabled()  # nothing to change while the helper is away
    shown = most_saturated(control.warning.grab().toImage())
    # the painted rows' warning, for the same state (Steam's download limit, not selected)
    rect = window.table.visualRect(window.table.proxy_index(STEAM, Column.DOWN_LIMIT))
    painted = most_saturated(window.table.viewport().grab(rect).toImage())
    assert painted > 0.3, painted  # the painted warning: amber, faded
    assert shown >= painted * 0.7, (shown, painted)
