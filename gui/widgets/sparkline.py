"""Sparklines: a few dozen seconds of down/up rate in a table cell.

Painted with plain QPainter calls (one polygon, one polyline, two dashed
lines) so two hundred rows repaint cheaply every second. The function is used
by the table's delegate; the widget wraps it for places outside item views.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QWidget
from pyqtgraph.functions import create_qpolygonf, ndarray_from_qpolygonf

from chadthrottle.gui.models.history import FloatArray

SPARKLINE_SAMPLES = 60
DOWN_COLOUR = QColor("#3584e4")
UP_COLOUR = QColor("#e66100")


def _polygon(values: FloatArray, rect: QRectF, scale: float, closed: bool = False) -> QPolygonF:
    """The samples as a line across the right of rect (closed: down to its bottom).

    Filled through a numpy view of the polygon's memory (pyqtgraph's helpers, as
    its own curves do): building a QPointF per sample was most of a row's cost.
    """
    count = len(values)
    step = rect.width() / max(1, SPARKLINE_SAMPLES - 1)
    x0 = rect.right() - step * (count - 1)
    polygon = create_qpolygonf(count + 2 if closed else count)
    points = ndarray_from_qpolygonf(polygon)
    line = points[1:-1] if closed else points
    line[:, 0] = x0 + step * np.arange(count)
    line[:, 1] = rect.bottom() - np.minimum(1.0, values / scale) * rect.height()
    if closed:
        points[0] = (line[0, 0], rect.bottom())
        points[-1] = (line[-1, 0], rect.bottom())
    return polygon


LINE_WIDTH = 1.3
_HAIRLINE = 1.0


def _draw_line(painter: QPainter, polygon: QPolygonF, colour: QColor) -> None:
    """A LINE_WIDTH-thick antialiased line, drawn as two 1 px lines LINE_WIDTH - 1 apart.

    Qt's raster engine strokes an antialiased pen of a fractional width through
    its general stroker, about 250 us for a 60-point line here, which made the
    sparklines a third of the table's paint time; a 1 px pen takes its cosmetic
    fast path (about 10 us). Two of them, offset vertically, look the same.
    """
    painter.setPen(QPen(colour, _HAIRLINE))
    painter.drawPolyline(polygon)
    polygon.translate(0, LINE_WIDTH - _HAIRLINE)
    painter.drawPolyline(polygon)


def paint_sparkline(
    painter: QPainter,
    rect: QRectF,
    samples: FloatArray,
    down_limit_bps: int = 0,
    up_limit_bps: int = 0,
    dimmed: bool = False,
) -> None:
    """Down as a soft filled area, up as a line, limits as dashed lines.

    ``samples`` has shape (n, 2): columns down and up, oldest first. The scale
    covers the data and any limit, so a capped app's line sits on its limit.
    """
    rect = rect.adjusted(1, 3, -1, -3)
    limits = [limit for limit in (down_limit_bps, up_limit_bps) if limit > 0]
    peak = float(samples.max()) if len(samples) else 0.0
    scale = max([peak, *limits, 1.0]) * 1.1
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    opacity = 0.45 if dimmed else 1.0
    painter.setOpacity(opacity)
    baseline = QColor(DOWN_COLOUR)
    baseline.setAlpha(50)
    painter.setPen(QPen(baseline, 1))
    painter.drawLine(QPointF(rect.left(), rect.bottom()), QPointF(rect.right(), rect.bottom()))
    if len(samples) >= 2:
        area = _polygon(samples[:, 0], rect, scale, closed=True)
        fill = QColor(DOWN_COLOUR)
        fill.setAlpha(70)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(fill)
        # The soft fill's edge lies under the antialiased line: filling it without
        # antialiasing looks the same and costs a third less per row.
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.drawPolygon(area)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        _draw_line(painter, _polygon(samples[:, 0], rect, scale), DOWN_COLOUR)
        if float(np.max(samples[:, 1])) > 0:
            _draw_line(painter, _polygon(samples[:, 1], rect, scale), UP_COLOUR)
    for limit, colour in ((down_limit_bps, DOWN_COLOUR), (up_limit_bps, UP_COLOUR)):
        if limit > 0:
            pen = QPen(colour.darker(120), 1, Qt.PenStyle.DashLine)
            painter.setPen(pen)
            y = rect.bottom() - (limit / scale) * rect.height()
            painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
    painter.restore()


class Sparkline(QWidget):
    """A standalone sparkline; feed it with ``set_samples``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._samples: FloatArray = np.zeros((0, 2))
        self._limits = (0, 0)
        self.setMinimumSize(80, 20)

    def set_samples(self, samples: FloatArray, down_limit_bps: int = 0, up_limit_bps: int = 0) -> None:
        self._samples = samples
        self._limits = (down_limit_bps, up_limit_bps)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        paint_sparkline(painter, QRectF(self.rect()), self._samples, *self._limits, dimmed=not self.isEnabled())
        painter.end()
