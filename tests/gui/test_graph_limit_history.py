"""The detail graph's dashed limit line is the limit as it held at each
moment, not the limit now drawn over the past minute (walk28: after a
schedule lowered Web Browser from 1.00 MB/s to 200 KB/s, 40 s of 250-600
KB/s stood above a 200 KB/s line, as if the limit had failed)."""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
import types

import numpy as np
import pytest
from chadthrottle.contract import PAUSED_PROBLEM, Direction
from chadthrottle.gui.models import applications
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.models.graph_series import limit_steps
from chadthrottle.gui.models.history import COARSE_EVERY, RateHistory
from chadthrottle.gui.views.detail import traffic_graph
from PySide6.QtCore import QPointF, QRect, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QStyleOptionViewItem

from tests.gui.bare_window import shown_connected_window
from tests.gui.sample_data import app

KB = 1000
BROWSER = "app:org.example.Browser"


class Clock:
    """The model's and the graph's wall clock, one poll a second."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    fake = types.SimpleNamespace(time=clock.time, monotonic=time.monotonic,
                                 strftime=time.strftime, localtime=time.localtime)  # fmt: skip
    monkeypatch.setattr(applications, "time", fake)
    monkeypatch.setattr(traffic_graph, "time", fake)
    return clock


def _poll(model, clock: Clock, down_bps: float, limit_bps: int, **fields) -> None:  # type: ignore[no-untyped-def]
    clock.now += 1.0
    info = app(BROWSER, "Web Browser", down_bps, 3 * KB, down_limit_bps=limit_bps)
    model.apply_snapshot([dataclasses.replace(info, **fields)])


def _limit_drawn_at(graph, x: float) -> float:  # type: ignore[no-untyped-def]
    """The dashed line's height at x on the plot (NaN: none drawn there)."""
    line = graph.limit_line
    if not line.isVisible():
        return math.nan
    if hasattr(line, "value"):  # a level line across the whole plot
        return float(line.value())
    xs, ys = line.getData()
    inside = np.nonzero((xs[:-1] <= x) & (x <= xs[1:]))[0]
    return float(ys[inside[-1]]) if len(inside) else math.nan


def _shown(qtbot, clock: Clock):  # type: ignore[no-untyped-def]
    model, window = shown_connected_window()
    qtbot.addWidget(window)
    return model, window


def test_a_limit_lowered_mid_series_is_drawn_at_its_old_value_over_the_old_samples(
    qtbot, clock: Clock
) -> None:  # type: ignore[no-untyped-def]
    model, window = _shown(qtbot, clock)
    for _ in range(30):  # 30 s at 600 KB/s under a 1.00 MB/s limit
        _poll(model, clock, 600 * KB, 1_000 * KB)
    _poll(model, clock, 0, 200 * KB, down_measuring=True)  # the schedule moved it: measuring
    for _ in range(10):  # 10 s at 199 KB/s under 200 KB/s
        _poll(model, clock, 199 * KB, 200 * KB)
    assert window.select_application(BROWSER)
    window.detail.refresh()
    down = window.detail.graphs[Direction.DOWN]
    assert _limit_drawn_at(down, -25.0) == 1_000 * KB  # the old samples: under the old limit
    assert _limit_drawn_at(down, -3.0) == 200 * KB
    # nowhere is a sample drawn above the limit drawn at its time
    xs, data = window.detail.plotted
    for x, rate in zip(xs, data[:, 0], strict=True):
        drawn = _limit_drawn_at(down, float(x))
        assert math.isnan(rate) or math.isnan(drawn) or rate <= drawn, (x, rate, drawn)
    assert "┄ limit" in down.label.textItem.toPlainText()


def test_no_limit_is_drawn_where_none_held_paused_or_before_it_was_set(qtbot, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    model, window = _shown(qtbot, clock)
    for _ in range(15):  # no limit yet
        _poll(model, clock, 600 * KB, 0)
    for _ in range(15):  # a limit set, and held
        _poll(model, clock, 190 * KB, 200 * KB)
    model.set_enforcement_problem(PAUSED_PROBLEM)
    for _ in range(15):  # limits paused: the helper still lists it; nothing holds it
        _poll(model, clock, 600 * KB, 200 * KB)
    assert window.select_application(BROWSER)
    window.detail.refresh()
    down = window.detail.graphs[Direction.DOWN]
    assert math.isnan(_limit_drawn_at(down, -37.0))  # before it was set
    assert _limit_drawn_at(down, -22.0) == 200 * KB
    assert math.isnan(_limit_drawn_at(down, -5.0))  # paused: 600 KB/s is above no limit


def test_a_block_is_drawn_at_zero_while_it_held(qtbot, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    model, window = _shown(qtbot, clock)
    for _ in range(20):
        _poll(model, clock, 600 * KB, 0)
    for _ in range(20):
        _poll(model, clock, 0, 0, down_blocked=True)
    assert window.select_application(BROWSER)
    window.detail.refresh()
    down = window.detail.graphs[Direction.DOWN]
    assert math.isnan(_limit_drawn_at(down, -30.0))
    assert _limit_drawn_at(down, -5.0) == 0


def test_the_line_between_two_samples_is_the_looser_of_their_limits() -> None:
    """The rate's line runs from one sample to the next: under the looser of
    their two limits it is never drawn above one that held it."""
    x = np.array([-4.0, -3.0, -2.0, -1.0, 0.0])
    held = np.array([1e6, 1e6, 2e5, np.nan, 2e5])
    xs, ys = limit_steps(x, held)
    assert list(xs) == [-4.0, -3.0, -3.0, -2.0, -2.0, -1.0, -1.0, 0.0]
    assert list(ys[:4]) == [1e6, 1e6, 1e6, 1e6]  # lowered: steps down at the first sample under it
    assert np.isnan(ys[4:]).all()  # a sample with none: no line to it or from it


def test_the_hour_views_mean_is_under_the_loosest_limit_of_its_polls() -> None:
    history = RateHistory()
    for poll in range(COARSE_EVERY):
        history.append(
            1.0, 1.0, float(poll), (2e5 if poll else 1e6, math.nan if poll == 3 else 5e4)
        )
    assert history.limits(1, coarse=True)[0, 0] == 1e6
    assert math.isnan(history.limits(1, coarse=True)[0, 1])  # one poll held none
    assert history.limits(1)[0, 0] == 2e5


class _RecordingPainter(QPainter):
    """A real painter on an image that also notes the dashed lines drawn."""

    def __init__(self, image: QImage) -> None:
        super().__init__(image)
        self.dashed: list[list[tuple[float, float]]] = []

    def _note(self, points: list[tuple[float, float]]) -> None:
        if self.pen().style() == Qt.PenStyle.DashLine:
            self.dashed.append(points)

    def drawLine(self, *args) -> None:  # type: ignore[no-untyped-def,override]
        a, b = args if len(args) == 2 else (QPointF(args[0], args[1]), QPointF(args[2], args[3]))
        self._note([(a.x(), a.y()), (b.x(), b.y())])
        super().drawLine(*args)

    def drawPolyline(self, polygon) -> None:  # type: ignore[no-untyped-def,override]
        self._note([(p.x(), p.y()) for p in polygon])
        super().drawPolyline(polygon)


def _dashed_y_at(painter: _RecordingPainter, x: float) -> float:
    for points in painter.dashed:
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            if y0 == y1 and min(x0, x1) <= x <= max(x0, x1):
                return y0
    return math.nan


def test_the_rows_sparkline_draws_each_samples_limit_too(qtbot, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    """The Activity column drew today's limit across the minute as well (a
    dashed 150 KB/s under 300 KB/s of the seconds before it, under Xvfb)."""
    model, window = _shown(qtbot, clock)
    for _ in range(10):  # none held
        _poll(model, clock, 300 * KB, 0)
    for _ in range(20):
        _poll(model, clock, 300 * KB, 1_000 * KB)
    for _ in range(30):
        _poll(model, clock, 149 * KB, 150 * KB)
    index = window.table.proxy_index(BROWSER, Column.ACTIVITY)
    option = QStyleOptionViewItem()
    window.table.initViewItemOption(option)
    option.rect = QRect(0, 0, 240, 40)
    image = QImage(240, 40, QImage.Format.Format_ARGB32)
    painter = _RecordingPainter(image)
    window.table.sparkline_delegate.scale = (1_200 * KB, 10 * KB)
    window.table.sparkline_delegate.paint(painter, option, index)
    painter.end()
    old, new = _dashed_y_at(painter, 100.0), _dashed_y_at(painter, 220.0)
    assert new > old  # lower on the cell: 150 KB/s now, 1.00 MB/s over the older samples
    assert math.isnan(_dashed_y_at(painter, 20.0))  # before it was set: none
