"""The selected application's live graph: down and up, its limits, its rates.

A pyqtgraph plot (cheap to update once a second), a line of text that puts the
configured limit next to the measured rate, and a choice of time span.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QComboBox, QGraphicsItem, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from chadthrottle.contract import ConnectionInfo, Direction
from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.connections import connection_label, interesting_first
from chadthrottle.gui.models.history import COARSE_EVERY
from chadthrottle.gui.models.limit_truth import LimitState, describe_limit
from chadthrottle.gui.widgets.sparkline import DOWN_COLOUR, UP_COLOUR
from chadthrottle.gui.views.rate_axis import RateAxis, nice_ceiling
from chadthrottle.units import UnitSystem, format_rate

MEASURED_OVER_SAMPLES = 5
SPANS: tuple[tuple[str, int, bool], ...] = (
    ("Last 60 s", 60, False),
    ("Last 5 min", 300, False),
    ("Last hour", 360, True),  # ten-poll means
)


def describe_rates(name: str, down: float, up: float, limits: tuple[int, int],
                   measured: tuple[float, float], units: UnitSystem) -> str:
    """"Firefox: down 8.1 MB/s (limit 5 MB/s, measured 4.98 MB/s), up 210 KB/s"."""
    parts = []
    for word, rate, limit, mean in (("down", down, limits[0], measured[0]), ("up", up, limits[1], measured[1])):
        text = f"{word} {format_rate(rate, units)}"
        if limit:
            text += f" (limit {format_rate(limit, units)}, measured {format_rate(mean, units)})"
        parts.append(text)
    return f"{name}: " + ", ".join(parts)


MAX_CONNECTIONS_SHOWN = 6


def describe_limit_notes(states: dict[Direction, LimitState], units: UnitSystem) -> str:
    """Only what the numbers above do not say: whose limit it is when not the
    viewer's, and why a limit is not enforced."""
    notes = [describe_limit(state, direction, units) for direction, state in states.items()
             if state.rate_bps > 0 and (state.owner_note or state.problem)]  # fmt: skip
    return "\n".join(notes)


def describe_connections(connections: list[ConnectionInfo]) -> str:
    """"Connections: tcp 10.0.0.5:51234 -> 151.101.1.69:443 ESTABLISHED, ..." """
    if not connections:
        return "No open connections."
    shown = interesting_first(connections)
    lines = [connection_label(c) for c in shown[:MAX_CONNECTIONS_SHOWN]]
    more = len(shown) - MAX_CONNECTIONS_SHOWN
    if more > 0:
        lines.append(f"and {more} more")
    return "Connections: " + "; ".join(lines)


class DetailPane(QWidget):
    """Graph and numbers for one application, refreshed after each poll."""

    def __init__(self, model: ApplicationsModel, refresh_interval_s: float = 1.0,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._model = model
        self._app_id = ""
        self.refresh_interval_s = refresh_interval_s
        self.summary = QLabel("Select an application to see its traffic.", self)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.span = QComboBox(self)
        self.span.setAccessibleName("Graph time span")
        for label, _samples, _coarse in SPANS:
            self.span.addItem(label)
        self.span.currentIndexChanged.connect(lambda _i: self.refresh())

        self._axis = RateAxis()
        self.plot = pg.PlotWidget(axisItems={"left": self._axis})
        self.plot.setAccessibleName("Traffic graph")
        self.plot.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # nothing to do in it with keys or mouse
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setBackground(self.palette().color(QPalette.ColorRole.Base))
        self.plot.showGrid(x=False, y=True, alpha=0.15)
        self.plot.getAxis("bottom").setLabel("seconds ago")
        # Each axis (the left one with its grid lines across the plot) is redrawn
        # whenever a curve under it changes, every poll: replaying its picture was
        # most of the graph's cost. Kept as a pixmap, it is redrawn only when its
        # range or size changes.
        for side in ("left", "bottom"):
            self.plot.getAxis(side).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.plot.setMinimumHeight(150)
        self._down = self.plot.plot(pen=pg.mkPen(DOWN_COLOUR, width=1.6),
                                    fillLevel=0, brush=QColor(53, 132, 228, 60), name="down")
        self._up = self.plot.plot(pen=pg.mkPen(UP_COLOUR, width=1.6), name="up")
        self._limit_lines = {
            Direction.DOWN: pg.InfiniteLine(angle=0, pen=pg.mkPen(DOWN_COLOUR.darker(120), style=Qt.PenStyle.DashLine)),
            Direction.UP: pg.InfiniteLine(angle=0, pen=pg.mkPen(UP_COLOUR.darker(120), style=Qt.PenStyle.DashLine)),
        }
        for line in self._limit_lines.values():
            line.setVisible(False)
            self.plot.addItem(line)

        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.span)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addLayout(top)
        # Whose limits these are and what keeps one from being enforced.
        self.limit_notes = QLabel("", self)
        self.limit_notes.setObjectName("limit-notes")
        self.limit_notes.setAccessibleName("About the limits")
        self.limit_notes.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.limit_notes.setWordWrap(True)
        self.limit_notes.hide()
        layout.addWidget(self.limit_notes)
        layout.addWidget(self.plot, 1)
        self.connections = QLabel("", self)
        self.connections.setAccessibleName("Open connections")
        self.connections.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.connections.setWordWrap(True)
        layout.addWidget(self.connections)
        layout.addStretch(0)
        self.plot.setVisible(False)

    @property
    def app_id(self) -> str:
        return self._app_id

    def show_application(self, app_id: str) -> None:
        if app_id != self._app_id:
            self.connections.setText("")
        self._app_id = app_id
        self.refresh()

    def show_connections(self, app_id: str, connections: list[ConnectionInfo]) -> None:
        """The selected application's open sockets, most interesting first."""
        if app_id != self._app_id:
            return  # an answer for a row no longer selected
        text = describe_connections(connections)
        if text != self.connections.text():  # the same answer every poll, mostly
            self.connections.setText(text)

    def _show_notes(self, text: str) -> None:
        if text != self.limit_notes.text():
            self.limit_notes.setText(text)
        self.limit_notes.setVisible(bool(text))

    def set_units(self, units: UnitSystem) -> None:
        self._axis.units = units
        self._axis.picture = None
        self._axis.update()
        self.refresh()

    def refresh(self) -> None:
        info = self._model.application(self._app_id) if self._app_id else None
        history = self._model.history(self._app_id) if self._app_id else None
        if info is None or history is None:
            self.summary.setText("Select an application to see its traffic.")
            self._show_notes("")
            self.plot.setVisible(False)
            self._down.setData([], [])
            self._up.setData([], [])
            for line in self._limit_lines.values():
                line.setVisible(False)
            return
        self.plot.setVisible(True)
        units = self._model.units
        limits = (self._model.effective_limit(info.id, Direction.DOWN),
                  self._model.effective_limit(info.id, Direction.UP))
        self.summary.setText(describe_rates(info.name, info.down_bps, info.up_bps, limits,
                                            history.mean(MEASURED_OVER_SAMPLES), units))
        states = {direction: self._model.limit_state(info.id, direction) for direction in Direction}
        self._show_notes(describe_limit_notes(states, units))
        _label, samples, coarse = SPANS[self.span.currentIndex()]
        data = history.coarse(samples) if coarse else history.recent(samples)
        step_s = self.refresh_interval_s * (COARSE_EVERY if coarse else 1)
        x = (np.arange(len(data)) - (len(data) - 1)) * step_s
        self._down.setData(x, data[:, 0])
        self._up.setData(x, data[:, 1])
        peak = max([float(data.max()) if len(data) else 0.0, *limits, 1000.0])
        self.plot.setXRange(-samples * step_s, 0, padding=0)
        self.plot.setYRange(0, nice_ceiling(peak * 1.1), padding=0)
        for direction, limit in zip(Direction, limits, strict=True):
            line = self._limit_lines[direction]
            line.setVisible(limit > 0)
            if limit > 0:
                line.setValue(limit)
