"""A banner already shown when the theme changes takes the new theme's
colours: on Xvfb at 2x, Settings → Theme → Dark with the helper not installed
left the banner's title black on the dark banner (contrast about 1.2:1) and its
buttons light. The real window, offscreen."""

from __future__ import annotations

import pytest
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.theme import Theme, apply_theme, contrast
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication


@pytest.mark.parametrize("state", [HelperState.NOT_INSTALLED, HelperState.NOT_AUTHORIZED])
def test_a_shown_banner_follows_a_theme_chosen_after(window, qtbot, state: HelperState) -> None:  # type: ignore[no-untyped-def]
    application = QApplication.instance()
    assert isinstance(application, QApplication)
    window.set_status(HelperStatus(state, "Setting limits was not authorized.", True, False))
    window.set_limits_paused(True)  # the paused notice too
    qtbot.waitUntil(window.banner.isVisible)
    apply_theme(application, Theme.DARK)
    try:
        window.follow_palette()  # what the controller does when a theme is chosen
        dark = QApplication.palette()
        window_colour = dark.color(QPalette.ColorRole.Window)
        assert window_colour.lightness() < 100
        for label in (window.banner.title, window.banner.text, window.paused_notice.title):
            colour = label.palette().color(label.foregroundRole())
            assert contrast(colour, window_colour) >= 4.5, (label.text()[:30], colour.name())
        button = window.banner.retry_button.palette()
        assert button.color(QPalette.ColorRole.Button) == dark.color(QPalette.ColorRole.Button)
    finally:
        apply_theme(application, Theme.SYSTEM)
        window.follow_palette()
