"""How a limit slider looks, painted the same by the widget and the delegate.

A thin neutral track, an accent fill up to the knob when a limit is set, and
a round knob. Unlimited rows stay quiet (no fill, hollow knob) so a table of
two hundred applications does not turn into a wall of blue bars.
"""

from __future__ import annotations

from chadthrottle.gui.widgets.rate_scale import UNLIMITED_POSITION
from PySide6.QtCore import QPointF, QRect, QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPainter, QPalette, QPen
from PySide6.QtWidgets import QStyle, QStyleOptionSlider, QWidget

KNOB_DIAMETER = 12.0
TRACK_HEIGHT = 4.0


def slider_option(rect: QRect, position: int, widget: QWidget | None) -> QStyleOptionSlider:
    """A QStyleOptionSlider for our scale, so the style computes the knob's place."""
    option = QStyleOptionSlider()
    if widget is not None:
        option.initFrom(widget)
    option.rect = rect
    option.orientation = Qt.Orientation.Horizontal
    option.minimum = 0
    option.maximum = UNLIMITED_POSITION
    option.sliderPosition = option.sliderValue = position
    option.subControls = QStyle.SubControl.SC_SliderGroove | QStyle.SubControl.SC_SliderHandle
    return option


def paint_rate_slider(
    painter: QPainter,
    option: QStyleOptionSlider,
    style: QStyle,
    widget: QWidget | None,
    limited: bool,
    enabled: bool,
    focused: bool = False,
) -> None:
    """Paint track, fill and knob where the style's own geometry puts them."""
    groove = style.subControlRect(
        QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderGroove, widget
    )
    handle = style.subControlRect(
        QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderHandle, widget
    )
    palette = option.palette
    group = QPalette.ColorGroup.Active if enabled else QPalette.ColorGroup.Disabled
    # The application's accent, not the view's: selected rows use a soft highlight.
    accent = QGuiApplication.palette().color(group, QPalette.ColorRole.Highlight)
    neutral = palette.color(group, QPalette.ColorRole.Mid)
    centre_y = groove.center().y() + 0.5
    knob_x = handle.center().x() + 0.5
    left = groove.left() + KNOB_DIAMETER / 2
    right = groove.right() - KNOB_DIAMETER / 2
    knob_x = min(max(knob_x, left), right)

    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    track_colour = QColor(neutral)
    track_colour.setAlpha(110)
    painter.setBrush(track_colour)
    track = QRectF(left, centre_y - TRACK_HEIGHT / 2, right - left, TRACK_HEIGHT)
    painter.drawRoundedRect(track, TRACK_HEIGHT / 2, TRACK_HEIGHT / 2)
    if limited:
        fill = QColor(accent)
        fill.setAlpha(200 if enabled else 90)
        painter.setBrush(fill)
        painter.drawRoundedRect(QRectF(left, track.top(), knob_x - left, TRACK_HEIGHT), 2, 2)
    knob = QRectF(
        knob_x - KNOB_DIAMETER / 2, centre_y - KNOB_DIAMETER / 2, KNOB_DIAMETER, KNOB_DIAMETER
    )
    painter.setBrush(palette.color(group, QPalette.ColorRole.Base))
    border = accent if (limited or focused) else neutral
    painter.setPen(QPen(border, 2.0 if focused else 1.5))
    painter.drawEllipse(knob)
    if limited:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(accent)
        painter.drawEllipse(QPointF(knob_x, centre_y), 2.5, 2.5)
    painter.restore()
