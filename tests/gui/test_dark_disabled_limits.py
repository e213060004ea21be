"""In the dark theme, limits that cannot be changed now (not authorized, helper
down) are grey in every row, as the open control shows them: the painted rows
kept the live blue of the palette's Highlight, which had no disabled colour."""

from __future__ import annotations

from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.settings import Theme
from chadthrottle.gui.theme import apply_theme
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication

from tests.gui.bare_window import bare_window
from tests.gui.sample_data import sample_applications

STEAM = "app:com.valvesoftware.Steam"  # limited to 4 MB/s down, not the current row


def _blue_pixels(window, app_id: str) -> int:  # type: ignore[no-untyped-def]
    table = window.table
    cell = table.visualRect(table.proxy_index(app_id, Column.DOWN_LIMIT))
    image = table.viewport().grab(cell).toImage()
    count = 0
    for y in range(0, image.height(), 2):
        for x in range(0, image.width(), 2):
            colour = QColor(image.pixel(x, y))
            count += colour.blue() - colour.red() > 80  # the accent #3584e4, not a grey
    return count


def test_limits_that_cannot_change_are_grey_in_the_dark_theme(qtbot) -> None:  # type: ignore[no-untyped-def]
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    apply_theme(app, Theme.DARK)
    try:
        model, window = bare_window()
        qtbot.addWidget(window)
        window.follow_palette()
        window.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
        model.apply_snapshot(sample_applications())
        window.resize(1100, 600)
        window.show()
        qtbot.waitExposed(window)
        assert _blue_pixels(window, STEAM) > 0  # can change: the accent shows it is in force
        window.set_status(HelperStatus(HelperState.NOT_AUTHORIZED, "polkit refused.", True, False))
        qtbot.waitUntil(lambda: _blue_pixels(window, STEAM) == 0, timeout=2000)
    finally:
        apply_theme(app, Theme.SYSTEM)  # as found
