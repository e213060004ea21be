"""One direction's plot in the detail pane's graph: its rate on a scale it
fills, its limit as a dashed line on that scale, stepping where it changed
and absent where none held (graph_series.limit_steps), or a marker at the top
edge when the limit now is far above, a legend, and the values where the
pointer is."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from chadthrottle.contract import Direction
from chadthrottle.gui.models.graph_series import limit_steps
from chadthrottle.gui.views.graph_scale import FLOOR_BPS, LIMIT_ON_SCALE_RATIO, graph_top
from chadthrottle.gui.widgets.sparkline import DOWN_COLOUR, UP_COLOUR
from chadthrottle.units import UnitSystem, format_rate
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGraphicsItem

if TYPE_CHECKING:
    import pyqtgraph as pg


class DirectionGraph:
    """One direction's plot: rate, limit line or edge marker, its own scale."""

    def __init__(self, layout: pg.GraphicsLayoutWidget, direction: Direction, row: int) -> None:
        import pyqtgraph as pg
        from chadthrottle.gui.views.rate_axis import RateAxis
        from chadthrottle.gui.views.time_axis import AgoAxis

        colour = DOWN_COLOUR if direction is Direction.DOWN else UP_COLOUR
        self.direction = direction
        self.axis = RateAxis()
        self.item = layout.addPlot(
            row=row, col=0, axisItems={"left": self.axis, "bottom": AgoAxis()}
        )
        item = self.item
        item.setMenuEnabled(False)
        item.setMouseEnabled(x=False, y=False)
        item.hideButtons()
        item.showGrid(x=False, y=True, alpha=0.15)
        item.getAxis("left").setWidth(72)  # both plots' axes line up
        # One level of ticks (RateAxis spaces them so their labels never overlap).
        item.getAxis("left").setStyle(maxTickLevel=0, maxTextLevel=0)
        self.time_unit = "seconds ago"
        if direction is Direction.UP:
            item.getAxis("bottom").setLabel(self.time_unit)
        # Each axis (the left one with its grid lines across the plot) is redrawn
        # whenever a curve under it changes, every poll: replaying its picture was
        # most of the graph's cost. Kept as a pixmap, it is redrawn only when its
        # range or size changes.
        for side in ("left", "bottom"):
            item.getAxis(side).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        fill = QColor(colour)
        fill.setAlpha(60)
        self.curve = item.plot(pen=pg.mkPen(colour, width=1.6), fillLevel=0, brush=fill,
                               name="down" if direction is Direction.DOWN else "up")  # fmt: skip
        # The limit as it held at each sample: a step line, broken where none held
        # (the limit now drawn over the past minute showed traffic "above" a limit
        # a schedule had just lowered, walk28).
        self.limit_line = item.plot(
            pen=pg.mkPen(colour.darker(120), style=Qt.PenStyle.DashLine), connect="finite"
        )
        self.limit_line.setVisible(False)
        # A limit now far above the traffic: a marker at the top edge, with its value.
        self.limit_marker = pg.TextItem("", color=colour.darker(120), anchor=(1, 0))
        self.limit_marker.setVisible(False)
        item.addItem(self.limit_marker, ignoreBounds=True)
        # The legend: which plot is which direction, and what the dashed line is.
        words = "▼ download" if direction is Direction.DOWN else "▲ upload"
        self.words = words
        self.label = pg.TextItem(
            words, color=colour, anchor=(0, 0)
        )  # on a backing: the curve may pass under it
        item.addItem(self.label, ignoreBounds=True)
        # Values on hover: a line at the pointer's time, the values there in words.
        self.hover_line = pg.InfiniteLine(
            angle=90, pen=pg.mkPen(QColor(128, 128, 128, 160), width=1)
        )
        self.hover_line.setVisible(False)
        item.addItem(self.hover_line, ignoreBounds=True)
        self.hover_label = pg.TextItem("", color=QColor(128, 128, 128), anchor=(0.5, 0))
        self.hover_label.setVisible(False)
        item.addItem(self.hover_label, ignoreBounds=True)
        self.top = 0.0
        self.start_s = 0.0
        # Linked on x, the two plots' ranges are matched by their size on screen: a
        # range set before the pane was laid out (unfolded at 2x, shown first) was
        # left at about 56 s of the 60 with the legend half off the left edge until
        # the scale next moved. Set again whenever the plot's size changes.
        item.getViewBox().sigResized.connect(self._set_range)

    def _set_range(self, *_: object) -> None:
        if self.top > 0:
            self.item.setRange(xRange=(self.start_s, 0), yRange=(0, self.top), padding=0)
            self.label.setPos(self.start_s, self.top)
            self.limit_marker.setPos(0, self.top)

    def set_backing(self, base: QColor) -> None:
        """The legend's, the far limit's and hover text's backing: the plot's
        background, a little see-through, so the text stays readable over the
        curve (under Xvfb the download ran through "limit 8.00 MB/s ↑")."""
        import pyqtgraph as pg

        backing = QColor(base)
        backing.setAlpha(200)
        for text in (self.label, self.limit_marker, self.hover_label):
            text.fill = pg.mkBrush(backing)
            text.update()

    def set_compact(self, compact: bool) -> None:
        """Compact, no time axis under the plot (the lanes keep the height)."""
        self.item.showAxis("bottom", not compact)

    def set_time_unit(self, words: str) -> None:
        if words != self.time_unit:
            self.time_unit = words
            self.item.getAxis("bottom").setLabel(words)

    def show_hover(self, x: float | None, text: str) -> None:
        """The line at x (None: hidden) and, on this plot, the values there."""
        self.hover_line.setVisible(x is not None)
        self.hover_label.setVisible(x is not None and bool(text))
        if x is None:
            return
        self.hover_line.setValue(x)
        if text:
            middle = self.start_s / 2
            anchor = (0, 0) if x < middle else (1, 0)  # kept inside the plot
            self.hover_label.setAnchor(anchor)
            self.hover_label.setText(text)
            self.hover_label.setPos(x, self.top * 0.9)
        self._uncover(x is not None and bool(text))

    def _uncover(self, reading: bool) -> None:
        """The legend and the far limit's marker left out where the readout lies
        over them (it says ▼ and ▲ itself): at the plot's left end, compact at
        2x, "▼ download" showed through it, the two garbled (under Xvfb)."""
        said = self.hover_label.sceneBoundingRect() if reading else None
        for text in (self.label, self.limit_marker):
            covered = said is not None and said.intersects(text.sceneBoundingRect())
            text.setOpacity(0.0 if covered else 1.0)

    def set_units(self, units: UnitSystem) -> None:
        self.axis.units = units
        self.axis.picture = None
        self.axis.update()

    def clear(self) -> None:
        self.curve.setData([], [])
        self.limit_line.setData([], [])
        self.limit_line.setVisible(False)
        self.limit_marker.setVisible(False)

    def show(
        self, x: np.ndarray, rates: np.ndarray, held: np.ndarray, start_s: float, units: UnitSystem
    ) -> None:
        """Plot the rates on a scale they fill; the limits that held them (held:
        bytes/s per sample, NaN none) as a line where on that scale; the limit
        of the last sample, far above, as a marker at the top edge."""
        self.curve.setData(x, rates)
        measured = rates[~np.isnan(rates)]  # a gap (no answer from the helper) is NaN
        peak = float(measured.max()) if len(measured) else 0.0
        limits = held[~np.isnan(held)]
        near = limits[limits <= max(peak, FLOOR_BPS) * LIMIT_ON_SCALE_RATIO]
        top = graph_top(peak, int(near.max()) if len(near) else 0)
        if (top, start_s) != (self.top, self.start_s):  # each poll mostly neither moves
            self.top, self.start_s = top, start_s
            self._set_range()
        xs, ys = limit_steps(x, held)
        ys[ys > top] = np.nan  # a limit far above: not drawn on this scale
        on_scale = bool(np.any(~np.isnan(ys)))
        legend = f"{self.words}   ┄ limit" if on_scale else self.words
        if self.label.textItem.toPlainText() != legend:
            self.label.setText(legend)
        self.limit_line.setVisible(on_scale)
        if on_scale:
            self.limit_line.setData(xs, ys)
        else:
            self.limit_line.setData([], [])
        limit = float(held[-1]) if len(held) and not np.isnan(held[-1]) else 0.0
        far = limit > top
        self.limit_marker.setVisible(far)
        if far:
            text = f"limit {format_rate(limit, units)} ↑"
            if self.limit_marker.textItem.toPlainText() != text:
                self.limit_marker.setText(text)
