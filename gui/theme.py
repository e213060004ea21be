"""Light and dark palettes of our own, or the desktop's, switched while running."""

from __future__ import annotations

from chadthrottle.gui.settings import Theme
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

# What the desktop gave us, kept the first time another theme is chosen.
_desktop: tuple[str, QPalette] | None = None

_DARK = {
    QPalette.ColorRole.Window: "#2b2b2b", QPalette.ColorRole.WindowText: "#e8e8e8",
    QPalette.ColorRole.Base: "#1e1e1e", QPalette.ColorRole.AlternateBase: "#262626",
    QPalette.ColorRole.Text: "#e8e8e8", QPalette.ColorRole.Button: "#353535",
    QPalette.ColorRole.ButtonText: "#e8e8e8", QPalette.ColorRole.Highlight: "#3584e4",
    QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#353535",
    QPalette.ColorRole.ToolTipText: "#e8e8e8", QPalette.ColorRole.PlaceholderText: "#9a9a9a",
    QPalette.ColorRole.Mid: "#555555", QPalette.ColorRole.Dark: "#1a1a1a",
    QPalette.ColorRole.Light: "#505050", QPalette.ColorRole.Link: "#62a0ea",
}  # fmt: skip
# Disabled Highlight grey too (Fusion's light palette does so): it is the accent of a
# limit that cannot be changed now (helper down, not authorized), and the painted
# rows showed such limits in the live blue beside the open control's grey.
_DARK_DISABLED = {QPalette.ColorRole.Text: "#7a7a7a", QPalette.ColorRole.WindowText: "#7a7a7a",
                  QPalette.ColorRole.ButtonText: "#7a7a7a", QPalette.ColorRole.Highlight: "#7a7a7a"}  # fmt: skip


def dark_palette() -> QPalette:
    palette = QPalette()
    for role, colour in _DARK.items():
        palette.setColor(role, QColor(colour))
    for role, colour in _DARK_DISABLED.items():
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(colour))
    return palette


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def apply_theme(app: QApplication, theme: Theme) -> None:
    """Light and dark use the Fusion style, which follows the palette everywhere;
    the desktop's theme puts back the style and palette found at start."""
    global _desktop
    if _desktop is None:
        if theme is Theme.SYSTEM:
            return  # nothing changed yet
        _desktop = (app.style().name(), QPalette(app.palette()))
    if theme is Theme.SYSTEM:
        app.setStyle(_desktop[0])
        app.setPalette(_desktop[1])
        return
    app.setStyle("Fusion")
    app.setPalette(dark_palette() if theme is Theme.DARK else app.style().standardPalette())
