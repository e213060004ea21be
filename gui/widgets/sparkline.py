"""Sparklines: a few dozen seconds of down/up rate in a table cell.

Painted with plain QPainter calls (two polygons, two polylines, two dashed
lines or edge markers) so two hundred rows repaint cheaply every second. The function is used
by the table's delegate; the widget wraps it for places outside item views.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from chadthrottle.gui.models.graph_series import limit_between
from chadthrottle.gui.models.history import FloatArray
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QWidget

SPARKLINE_SAMPLES = 60
DOWN_COLOUR = QColor("#3584e4")
UP_COLOUR = QColor("#e66100")


_polygon_helpers: tuple[Callable[[int], QPolygonF], Callable[[QPolygonF], FloatArray]] | None = None
# One polygon (and the numpy view of its memory) per size, filled afresh for each
# line: a new QPolygonF (and x positions) per line and row were about a tenth of
# a sparkline's cost (95-100 -> 87-89 us a row, pixel for pixel the same).
_polygons: dict[int, tuple[QPolygonF, FloatArray]] = {}
_STEPS = np.arange(SPARKLINE_SAMPLES + 2, dtype=np.float64)


def _numpy_polygon(size: int) -> tuple[QPolygonF, FloatArray]:
    """A QPolygonF of ``size`` points and a numpy view of its memory, kept for
    the next line of that size (every point is written before each use).

    pyqtgraph's helpers, imported on first use: importing pyqtgraph is about
    0.2 s that the window need not wait for before it first appears (an empty
    table paints no sparkline).
    """
    global _polygon_helpers
    kept = _polygons.get(size)
    if kept is not None:
        return kept
    if _polygon_helpers is None:
        from pyqtgraph.functions import create_qpolygonf, ndarray_from_qpolygonf

        _polygon_helpers = (create_qpolygonf, ndarray_from_qpolygonf)
    create, view = _polygon_helpers
    polygon = create(size)
    kept = _polygons[size] = (polygon, view(polygon))
    return kept


def _polygon(
    values: FloatArray, rect: QRectF, scale: float, closed: bool = False, downward: bool = False
) -> QPolygonF:
    """The samples as a line across the right of rect, rising from its bottom
    (downward: falling from its top); closed: back along that base line.

    Filled through a numpy view of the polygon's memory (pyqtgraph's helpers, as
    its own curves do): building a QPointF per sample was most of a row's cost.
    """
    count = len(values)
    step = rect.width() / max(1, SPARKLINE_SAMPLES - 1)
    x0 = rect.right() - step * (count - 1)
    polygon, points = _numpy_polygon(count + 2 if closed else count)
    line = points[1:-1] if closed else points
    line[:, 0] = x0 + step * (_STEPS[:count] if count <= len(_STEPS) else np.arange(count))
    base = rect.top() if downward else rect.bottom()
    height = rect.height() if downward else -rect.height()
    line[:, 1] = base + np.minimum(1.0, values / scale) * height
    if closed:
        points[0] = (line[0, 0], base)
        points[-1] = (line[-1, 0], base)
    return polygon


LINE_WIDTH = 1.3
_HAIRLINE = 1.0


# Made once, not per row and poll: the pens, the soft fills and the middle line.
_LINE_PENS = (QPen(DOWN_COLOUR, _HAIRLINE), QPen(UP_COLOUR, _HAIRLINE))
_FILLS = (QColor(DOWN_COLOUR), QColor(UP_COLOUR))
for _fill in _FILLS:
    _fill.setAlpha(70)
_BASELINE = QColor(DOWN_COLOUR)
_BASELINE.setAlpha(50)


def _draw_line(painter: QPainter, polygon: QPolygonF, pen: QPen) -> None:
    """A LINE_WIDTH-thick antialiased line, drawn as two 1 px lines LINE_WIDTH - 1 apart.

    Qt's raster engine strokes an antialiased pen of a fractional width through
    its general stroker, about 250 us for a 60-point line here, which made the
    sparklines a third of the table's paint time; a 1 px pen takes its cosmetic
    fast path (about 10 us). Two of them, offset vertically, look the same.
    """
    painter.setPen(pen)
    painter.drawPolyline(polygon)
    polygon.translate(0, LINE_WIDTH - _HAIRLINE)
    painter.drawPolyline(polygon)


DOWN_SHARE = 0.6  # of the cell's height, above the middle line; upload below it


def _carried(samples: FloatArray) -> FloatArray:
    """samples with each NaN (a direction being measured, a poll or two) as
    the sample before it, 0 at the start: the row's minute has no gaps (its
    samples are polls, not times), and a polygon through NaN draws nothing sane."""
    filled = samples.copy()
    for column in range(filled.shape[1]):
        values = filled[:, column]
        missing = np.isnan(values)
        index = np.where(missing, 0, np.arange(len(values)))
        np.maximum.accumulate(index, out=index)
        values[:] = np.where(np.isnan(values[index]), 0.0, values[index])
    return filled


def paint_sparkline(
    painter: QPainter,
    rect: QRectF,
    samples: FloatArray,
    down_limit_bps: int = 0,
    up_limit_bps: int = 0,
    dimmed: bool = False,
    scale: tuple[float, float] | None = None,
    held: FloatArray | None = None,
) -> None:
    """Download as an area rising from a middle line, upload hanging below it.

    ``samples`` has shape (n, 2): columns down and up, oldest first. Each
    direction has its own scale, so upload stays readable beside a large
    download; the table passes one ``scale`` (down, up) for every row, so rows
    compare. A limit on the scale is a dashed line; a limit above it is a
    small marker at the outer edge, never a reason to flatten the traffic.
    ``held`` (n, 2), the limit each sample was measured under (NaN: none,
    RateHistory.limits), draws the limit as it was at each moment instead of
    the limits given across the whole line: today's limit drawn over the
    minute showed the traffic before it "above" a limit just lowered.
    """
    rect = rect.adjusted(1, 2, -1, -2)
    if np.isnan(samples).any():  # a direction being measured: drawn as the poll before
        samples = _carried(samples)
    if scale is None:  # on its own: its own peaks
        peaks = samples.max(axis=0) if len(samples) else np.zeros(2)
        scale = (max(float(peaks[0]), 1.0) * 1.1, max(float(peaks[1]), 1.0) * 1.1)
    middle = rect.top() + round(rect.height() * DOWN_SHARE)
    halves = (QRectF(rect.left(), rect.top(), rect.width(), middle - rect.top()),
              QRectF(rect.left(), middle, rect.width(), rect.bottom() - middle))  # fmt: skip
    painter.save()
    painter.setOpacity(0.45 if dimmed else 1.0)
    # A filled 1 px rectangle: a translucent 1 px line without antialiasing goes
    # through Qt's slow path (about 50 us against 1 us, once per row and poll).
    painter.fillRect(QRectF(rect.left(), middle, rect.width(), 1), _BASELINE)
    highest = samples.max(axis=0) if len(samples) >= 2 else (0.0, 0.0)
    for column, colour, limit in ((0, DOWN_COLOUR, down_limit_bps), (1, UP_COLOUR, up_limit_bps)):
        half, downward, top = halves[column], column == 1, scale[column]
        if highest[column] > 0:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(_FILLS[column])
            # The soft fill's edge lies under the antialiased line: filling it without
            # antialiasing looks the same and costs a third less per row.
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
            painter.drawPolygon(
                _polygon(samples[:, column], half, top, closed=True, downward=downward)
            )
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            _draw_line(
                painter,
                _polygon(samples[:, column], half, top, downward=downward),
                _LINE_PENS[column],
            )
        if held is not None:
            _draw_held(painter, half, held[:, column], top, colour, downward)
        elif limit > 0:
            _draw_limit(painter, half, limit, top, colour, downward)
    painter.restore()


def _draw_limit(
    painter: QPainter, half: QRectF, limit: float, top: float, colour: QColor, downward: bool
) -> None:
    """A dashed line where the limit is on the scale; a marker at the outer edge if above it."""
    edge = half.bottom() if downward else half.top()
    if limit <= top:
        y = edge + (1 - limit / top) * (-half.height() if downward else half.height())
        painter.setPen(QPen(colour.darker(120), 1, Qt.PenStyle.DashLine))
        painter.drawLine(QPointF(half.left(), y), QPointF(half.right(), y))
        return
    size = min(5.0, half.height())
    tip = edge  # pointing out of the cell: the limit is beyond this edge
    base = edge + (-size if downward else size)
    marker = QPolygonF([QPointF(half.right() - size * 2, base), QPointF(half.right(), base),
                        QPointF(half.right() - size, tip)])  # fmt: skip
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(colour.darker(120))
    painter.drawPolygon(marker)
    painter.setBrush(Qt.BrushStyle.NoBrush)


def _draw_held(
    painter: QPainter, half: QRectF, held: FloatArray, top: float, colour: QColor, downward: bool
) -> None:
    """The limits the samples were measured under, across the samples as
    _polygon places them: a dashed line where one held on the scale, stepping
    where it changed (graph_series.limit_between: between two samples the
    looser of theirs), none where none held; the last sample's, above the scale, a
    marker at the outer edge."""
    count = len(held)
    if count == 0 or np.isnan(held).all():  # most rows: nothing held this minute
        return
    last = float(held[-1])
    if last > top:
        _draw_limit(painter, half, last, top, colour, downward)
    if count < 2:
        return
    step = half.width() / max(1, SPARKLINE_SAMPLES - 1)
    x0 = half.right() - step * (count - 1)
    between = limit_between(held)
    between[between > top] = np.nan  # above the scale: not drawn (the marker says the last)
    key = np.where(np.isnan(between), -1.0, between)  # limits are >= 0: -1, none drawn
    edges = np.flatnonzero(np.diff(key)) + 1  # runs of one level: a few per minute at most
    edge = half.bottom() if downward else half.top()
    span = -half.height() if downward else half.height()
    painter.setPen(QPen(colour.darker(120), 1, Qt.PenStyle.DashLine))
    line: list[QPointF] = []
    for first, end in zip([0, *edges.tolist()], [*edges.tolist(), len(key)], strict=True):
        level = float(key[first])
        if level < 0:
            if len(line) >= 2:
                painter.drawPolyline(QPolygonF(line))
            line = []
            continue
        y = edge + (1 - level / top) * span
        line += [QPointF(x0 + step * first, y), QPointF(x0 + step * end, y)]  # a step from the last
    if len(line) >= 2:
        painter.drawPolyline(QPolygonF(line))


class Sparkline(QWidget):
    """A standalone sparkline; feed it with ``set_samples``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._samples: FloatArray = np.zeros((0, 2))
        self._limits = (0, 0)
        self.setMinimumSize(80, 20)

    def set_samples(
        self, samples: FloatArray, down_limit_bps: int = 0, up_limit_bps: int = 0
    ) -> None:
        self._samples = samples
        self._limits = (down_limit_bps, up_limit_bps)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        paint_sparkline(
            painter, QRectF(self.rect()), self._samples, *self._limits, dimmed=not self.isEnabled()
        )
        painter.end()
