"""Tray icons for each state, painted with QPainter at any size.

The same gauge as the application icon (a dial with its needle on a limit
mark), coloured by state, with a small badge for problems. Painted rather
than loaded so every size is crisp and no icon theme is needed.
"""

from __future__ import annotations

from enum import Enum

from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap

TRAFFIC_THRESHOLD_BPS = 10_000


class TrayIconKind(Enum):
    IDLE = "idle"
    TRAFFIC = "traffic"
    LIMITS_ACTIVE = "limits-active"
    PROBLEM = "problem"


_COLOURS: dict[TrayIconKind, str] = {
    TrayIconKind.IDLE: "#8b96a3",
    TrayIconKind.TRAFFIC: "#3584e4",
    TrayIconKind.LIMITS_ACTIVE: "#e5a50a",
    TrayIconKind.PROBLEM: "#8b96a3",
}


def tray_icon_kind(status: HelperStatus, total_bps: float, limit_count: int) -> TrayIconKind:
    """Which icon: a problem outranks limits, limits outrank plain traffic."""
    if status.is_problem and status.state is not HelperState.KERNEL_FEATURE_MISSING:
        return TrayIconKind.PROBLEM
    if limit_count > 0:
        return TrayIconKind.LIMITS_ACTIVE
    if total_bps >= TRAFFIC_THRESHOLD_BPS:
        return TrayIconKind.TRAFFIC
    return TrayIconKind.IDLE


def _paint(kind: TrayIconKind, size: int) -> QPixmap:
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.scale(size / 16.0, size / 16.0)
    colour = QColor(_COLOURS[kind])
    dial = QRectF(1.5, 2.0, 13.0, 13.0)
    painter.setPen(QPen(colour, 2.2, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
    painter.drawArc(dial, -30 * 16, 240 * 16)
    needle = QPainterPath()
    needle.moveTo(8.0, 8.5)
    needle.lineTo(12.0, 5.0)
    painter.setPen(QPen(colour, 1.8, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
    painter.drawPath(needle)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(colour)
    painter.drawEllipse(QPointF(8.0, 8.5), 1.7, 1.7)
    if kind is TrayIconKind.PROBLEM:
        painter.setBrush(QColor("#e01b24"))
        painter.drawEllipse(QRectF(9.0, 9.0, 7.0, 7.0))
        painter.setPen(QPen(QColor("white"), 1.3, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        painter.drawLine(QPointF(12.5, 10.6), QPointF(12.5, 12.6))
        painter.drawPoint(QPointF(12.5, 14.3))
    painter.end()
    return pixmap


def state_icon(kind: TrayIconKind) -> QIcon:
    """A multi-size icon for one state."""
    icon = QIcon()
    for size in (16, 22, 24, 32, 48, 64):
        icon.addPixmap(_paint(kind, size))
    return icon
