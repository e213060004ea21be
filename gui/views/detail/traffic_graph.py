"""The detail pane's graph: two pyqtgraph plots sharing the time axis (cheap to
update once a second), download above, upload below, each scaled to what was
measured in it (direction_graph.py), with the values where the pointer is; or,
while no application is shown, a note in their place."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from chadthrottle.contract import Direction
from chadthrottle.gui.models.graph_series import graph_series
from chadthrottle.gui.models.history import COARSE_EVERY, RateHistory
from chadthrottle.gui.views.detail.direction_graph import DirectionGraph
from chadthrottle.gui.views.detail.sizes import GRAPH_COMPACT_HEIGHT, GRAPH_MIN_HEIGHT
from chadthrottle.gui.views.detail.words import EMPTY_GRAPH_NOTHING_LISTED
from chadthrottle.units import UnitSystem, format_rate
from chadthrottle.usage_contract import UsageRow
from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

if TYPE_CHECKING:
    import pyqtgraph as pg

# (label, seconds shown, ten-poll means). The time axis is real time: with a
# refresh of 0.5 s, five minutes hold more polls than the history keeps, and
# the helper's minutes fill in before the first one (graph_series).
SPANS: tuple[tuple[str, int, bool], ...] = (
    ("Last 60 s", 60, False),
    ("Last 5 min", 300, False),
    ("Last hour", 3600, True),  # ten-poll means, labelled in minutes
)


class TrafficGraph(QWidget):
    """The graph's place: the plots (built when an application is first shown:
    importing pyqtgraph is about 0.2 s that the window need not wait for before
    it appears), or the note standing in for them."""

    def __init__(self, units: UnitSystem, parent: QWidget) -> None:
        super().__init__(parent)
        self.units = units
        self.compact = False
        self.plotted: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros((0, 2)))  # x, rates
        self.coarse = False  # the plotted x in minutes (the hour's span), not seconds
        self._hover_x: float | None = None  # the pointer's time on the graph, None when off it
        self.plot = QWidget(self)
        self.plot.setAccessibleName("Traffic graph")
        self.plot.setMinimumHeight(GRAPH_MIN_HEIGHT)
        self.plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        QVBoxLayout(self.plot).setContentsMargins(0, 0, 0, 0)
        self.graphs: dict[Direction, DirectionGraph] = {}
        self._view: pg.GraphicsLayoutWidget | None = None  # built on first need
        self.empty_note = QLabel(EMPTY_GRAPH_NOTHING_LISTED, self)
        self.empty_note.setObjectName("graph-empty")
        self.empty_note.setWordWrap(True)
        self.empty_note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_note.setStyleSheet("QLabel { color: palette(placeholder-text); }")
        self.empty_note.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        layout.addWidget(self.empty_note)
        self.plot.setVisible(False)

    def show_note(self, text: str) -> None:
        """No application shown: the note in the graph's place, the plots emptied."""
        self.plot.setVisible(False)
        self.empty_note.setText(text)
        self.empty_note.setVisible(True)
        for graph in self.graphs.values():
            graph.clear()

    def draw(
        self,
        history: RateHistory,
        minutes: Sequence[UsageRow],
        span: int,
        refresh_interval_s: float,
    ) -> None:
        """The span's samples (SPANS[span]), the helper's minutes before the
        window's own, each direction's limit as it held at each sample."""
        if not self.graphs:
            self._build()
        self.plot.setVisible(True)
        self.empty_note.setVisible(False)
        _label, span_s, coarse = SPANS[span]
        step_s = refresh_interval_s * (COARSE_EVERY if coarse else 1)
        samples = int(span_s / step_s) + 1
        times, rates = history.timed(samples, coarse)
        held = history.limits(samples, coarse)
        x, data = graph_series(
            times, np.hstack([rates, held]), minutes, time.time(), span_s, step_s
        )
        per = 60.0 if coarse else 1.0  # the hour view counts in minutes
        self.plotted = (x / per, data[:, :2])
        self.coarse = coarse
        for column, direction in enumerate(Direction):
            self.graphs[direction].show(x / per, data[:, column], data[:, 2 + column],
                                        -span_s / per, self.units)  # fmt: skip
        self.graphs[Direction.UP].set_time_unit("minutes ago" if coarse else "seconds ago")
        for graph in self.graphs.values():  # a new range, or the other plot's (linked in x):
            # pyqtgraph would set the plot's new transform in its paint, which moves
            # its items and so paints the graph once more; set it before the paint.
            graph.item.getViewBox().updateMatrix()
        self._show_hover()

    def set_compact(self, compact: bool) -> None:
        """Compact: a strip of its two lanes, no time axis (DetailPane.set_compact)."""
        self.compact = compact
        self.plot.setMinimumHeight(GRAPH_COMPACT_HEIGHT if compact else GRAPH_MIN_HEIGHT)
        for graph in self.graphs.values():
            graph.set_compact(compact)
        if self._view is not None:
            self._fit_view(self._view)

    def set_units(self, units: UnitSystem) -> None:
        self.units = units
        for graph in self.graphs.values():
            graph.set_units(units)

    def set_backing(self, base: QPalette) -> None:
        """The text on the plots backed by the palette's base (a theme was chosen)."""
        for graph in self.graphs.values():
            graph.set_backing(base.color(QPalette.ColorRole.Base))

    def _build(self) -> None:
        """Download above, upload below, one time axis."""
        import pyqtgraph as pg

        view = pg.GraphicsLayoutWidget()
        view.setAccessibleName("Traffic graph")
        view.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # nothing to do in it with keys or mouse
        view.viewport().setFocusPolicy(Qt.FocusPolicy.NoFocus)  # nor in its viewport
        view.setBackground(self.palette().color(QPalette.ColorRole.Base))
        view.ci.setSpacing(0)
        self.graphs = {
            Direction.DOWN: DirectionGraph(view, Direction.DOWN, row=0),
            Direction.UP: DirectionGraph(view, Direction.UP, row=1),
        }
        self.graphs[Direction.UP].item.setXLink(self.graphs[Direction.DOWN].item)
        self.graphs[Direction.DOWN].item.getAxis("bottom").setStyle(showValues=False)
        view.scene().sigMouseMoved.connect(self._on_mouse_moved)
        view.installEventFilter(self)  # the pointer leaving it hides the hover line
        self._fit_view(view)
        for graph in self.graphs.values():
            graph.set_compact(self.compact)
            graph.set_units(self.units)
            graph.set_backing(self.palette().color(QPalette.ColorRole.Base))
        layout = self.plot.layout()
        assert layout is not None
        layout.addWidget(view)
        self._view = view

    def _fit_view(self, view: pg.GraphicsLayoutWidget) -> None:
        """Whole, the download's lane the taller; compact, both alike, and
        the view's margins above and below (9 px each) given to the lanes."""
        grid = view.ci.layout
        grid.setRowStretchFactor(0, 1 if self.compact else 3)
        grid.setRowStretchFactor(1, 1 if self.compact else 2)
        margin = 1 if self.compact else 9
        grid.setContentsMargins(9, margin, 9, margin)

    def release(self) -> None:
        """Let go of the graphs and delete their view (the window closes for good;
        shown again, they are built again). Held from the pane, pyqtgraph's plot
        items and their top-level menus, widget groups and pixmaps were left in
        reference cycles when the window went: destroyed only by the collector, at
        whatever moment and in whichever thread it ran."""
        view = self._view
        if view is None:
            return
        self._view = None
        view.scene().sigMouseMoved.disconnect(self._on_mouse_moved)
        view.removeEventFilter(self)
        self.graphs = {}
        view.deleteLater()

    # --- values on hover ----------------------------------------------------------------

    def _on_mouse_moved(self, position: QPointF) -> None:
        graph = self.graphs[Direction.DOWN]
        view_box = graph.item.getViewBox()
        # the plots themselves, not their scales: on the left scale at 2x it showed the
        # readout at a time left of the plot, cut off by its edge (under Xvfb)
        inside = any(
            g.item.getViewBox().sceneBoundingRect().contains(position) for g in self.graphs.values()
        )
        self._hover_x = float(view_box.mapSceneToView(position).x()) if inside else None
        self._show_hover()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Leave and self._hover_x is not None:
            self._hover_x = None
            self._show_hover()
        return super().eventFilter(watched, event)

    def hover_text(self, x: float) -> str:
        """What the graph says at x (its time axis' units): the nearest sample."""
        xs, data = self.plotted
        if not len(xs):
            return ""
        index = int(np.nanargmin(np.abs(xs - x)))
        if np.isnan(data[index]).all():
            return "not measured"
        seconds = -xs[index] * (60.0 if self.coarse else 1.0)
        when = time.strftime("%H:%M:%S", time.localtime(time.time() - seconds))
        # a direction being measured in that poll (its rules just changed): "…", as its row said
        down, up = (
            "…" if np.isnan(rate) else format_rate(rate, self.units) for rate in data[index]
        )
        return f"{when}  ▼ {down}  ▲ {up}"

    def _show_hover(self) -> None:
        x = self._hover_x
        text = self.hover_text(x) if x is not None else ""
        for graph in self.graphs.values():
            graph.show_hover(x if text else None, text if graph.direction is Direction.DOWN else "")
