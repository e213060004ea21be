"""A pyqtgraph axis that labels bytes/s in the user's units."""

from __future__ import annotations

import math
from typing import Any

import pyqtgraph as pg
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import QApplication

from chadthrottle.units import UnitSystem, format_rate, unit_bps


TICK_ROOM = 1.8  # a labelled tick per this many lines of text, at most


def _round_step(value: float, up: bool) -> float:
    """The 1, 2 or 5 x 10^n step next to ``value``: the smallest at least it
    (``up``), or the largest at most it."""
    magnitude: float = 10.0 ** math.floor(math.log10(value))
    steps = [m * magnitude for m in (1.0, 2.0, 5.0, 10.0)]
    if up:
        return next(step for step in steps if step >= value * (1 - 1e-9))
    return max(step for step in steps if step <= value * (1 + 1e-9))


class RateAxis(pg.AxisItem):  # type: ignore[misc]
    """Left axis whose ticks read "5.00 MB/s" instead of "5e6"."""

    def __init__(self, units: UnitSystem = UnitSystem.BYTES_DECIMAL, **kwargs: Any) -> None:
        super().__init__(orientation="left", **kwargs)
        self.units = units
        self.enableAutoSIPrefix(False)

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        return [format_rate(value, self.units) if value >= 0 else "" for value in values]

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:
        """Only as many labelled ticks as fit the plot's height with room between
        them: on a short plot (a small or 2x screen) pyqtgraph's own choice overlaps."""
        span = maxVal - minVal
        if span <= 0 or size <= 0:
            return []
        room = max(1, int(size // (QFontMetricsF(QApplication.font()).height() * TICK_ROOM)))
        # At most ``room`` labels; on a plot with room for one, a step that puts
        # it strictly inside (pyqtgraph drops a label on the edge).
        # Round in the units shown: 200 Mbit/s steps, not 25 MB/s ones written as bits.
        unit = next((unit_bps(self.units, p) for p in range(4, 0, -1) if unit_bps(self.units, p) <= span), 1.0)
        share = span / unit
        step = unit * (_round_step(share / room, up=True) if room >= 2 else _round_step(share * 0.95, up=False))
        first = math.ceil(minVal / step - 1e-9) * step
        count = int((maxVal - first) / step + 1e-9) + 1
        return [(step, [first + i * step for i in range(count)])]


_NICE_STEPS = (1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0)


def nice_ceiling(value: float) -> float:
    """The next "round" number above value (1, 1.5, 2, 3, 5, 7.5 x 10^n).

    The graph's top snaps to these, so it keeps still while rates wobble
    (calmer to look at, and the axis is redrawn only when the range jumps).
    """
    if value <= 0:
        return 1.0
    magnitude: float = 10.0 ** math.floor(math.log10(value))
    for step in _NICE_STEPS:
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


# A limit up to this many times the highest measured rate is on the scale
# (drawn as a line, the traffic still fills a fair part of the plot); one
# further above is shown as a marker at the top edge instead.
LIMIT_ON_SCALE_RATIO = 3.0
FLOOR_BPS = 1000.0  # an idle graph still has a scale


def graph_top(peak_bps: float, limit_bps: int = 0) -> float:
    """The top of a graph: what was measured, and a limit only if it is near it.

    A limit far above the traffic (one arrow key on a slider at "none" used to
    set about 900 MB/s) would flatten the traffic to a line at the bottom.
    """
    top = max(peak_bps, FLOOR_BPS)
    if 0 < limit_bps <= max(peak_bps, FLOOR_BPS) * LIMIT_ON_SCALE_RATIO:
        top = max(top, limit_bps)
    return nice_ceiling(top * 1.1)
