"""Light and dark palettes of our own, or the desktop's, switched while running."""

from __future__ import annotations

from chadthrottle.gui.settings import Theme
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QApplication, QProxyStyle, QStyle, QStyleOption, QWidget

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


def contrast(a: QColor, b: QColor) -> float:
    """WCAG contrast ratio of two colours (1 to 21)."""

    def luminance(colour: QColor) -> float:
        linear = [x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4
                  for x in (colour.redF(), colour.greenF(), colour.blueF())]  # fmt: skip
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# A check box's outline against the window around it and its own inside (WCAG
# 1.4.11 asks 3:1 of a control's boundary); a disabled one is exempt, and
# kept visible but dimmer.
OUTLINE_CONTRAST = 3.0
DISABLED_OUTLINE_CONTRAST = 2.0


def mix(base: QColor, accent: QColor, share: float) -> QColor:
    return QColor(round(base.red() * (1 - share) + accent.red() * share),
                  round(base.green() * (1 - share) + accent.green() * share),
                  round(base.blue() * (1 - share) + accent.blue() * share))  # fmt: skip


def indicator_outline(palette: QPalette, enabled: bool) -> QColor:
    """Fusion's outline (the window colour darker(140), lighter(110)) moved
    toward the text colour until it stands out from the window and the base."""
    window, base = palette.window().color(), palette.base().color()
    wanted = OUTLINE_CONTRAST if enabled else DISABLED_OUTLINE_CONTRAST
    fusion = window.darker(140).lighter(110)
    text = palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.WindowText)
    share, outline = 0.0, fusion
    while share < 1.0 and min(contrast(outline, window), contrast(outline, base)) < wanted:
        share += 0.02
        outline = mix(fusion, text, min(share, 1.0))
    return outline


class OutlinedFusion(QProxyStyle):
    """Fusion, with an unticked check box outlined so it can be seen (1.2:1
    on the dark palette, 1.7:1 on the light one as Fusion draws it)."""

    def __init__(self) -> None:
        super().__init__("Fusion")

    def drawPrimitive(
        self,
        element: QStyle.PrimitiveElement,
        option: QStyleOption,
        painter: QPainter,
        widget: QWidget | None = None,
    ) -> None:
        super().drawPrimitive(element, option, painter, widget)
        focus = QStyle.StateFlag.State_HasFocus | QStyle.StateFlag.State_KeyboardFocusChange
        if element != QStyle.PrimitiveElement.PE_IndicatorCheckBox or option.state & focus == focus:
            return  # Fusion's focus outline stays
        painter.save()  # over Fusion's outline, on its geometry
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.translate(0.5, 0.5)
        enabled = bool(option.state & QStyle.StateFlag.State_Enabled)
        painter.setPen(indicator_outline(option.palette, enabled))
        painter.setBrush(QColor(0, 0, 0, 0))
        painter.drawRect(option.rect.adjusted(0, 0, -1, -1))
        painter.restore()


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
    app.setStyle(OutlinedFusion())
    app.setPalette(dark_palette() if theme is Theme.DARK else app.style().standardPalette())
