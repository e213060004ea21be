"""A pyqtgraph axis that labels bytes/s in the user's units."""

from __future__ import annotations

import math
from typing import Any

import pyqtgraph as pg
from chadthrottle.units import UnitSystem, format_rate, unit_bps
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import QApplication

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

    def tickValues(
        self, minVal: float, maxVal: float, size: float
    ) -> list[tuple[float, list[float]]]:
        """Only as many labelled ticks as fit the plot's height with room between
        them: on a short plot (a small or 2x screen) pyqtgraph's own choice overlaps."""
        span = maxVal - minVal
        if span <= 0 or size <= 0:
            return []
        room = max(1, int(size // (QFontMetricsF(QApplication.font()).height() * TICK_ROOM)))
        # At most ``room`` labels; on a plot with room for one, a step that puts
        # it strictly inside (pyqtgraph drops a label on the edge).
        # Round in the units shown: 200 Mbit/s steps, not 25 MB/s ones written as bits.
        unit = next(
            (unit_bps(self.units, p) for p in range(4, 0, -1) if unit_bps(self.units, p) <= span),
            1.0,
        )
        share = span / unit
        inside = unit * _round_step(share * 0.95, up=False)  # the largest step with a label inside
        if room < 2:  # one label, inside: two steps of it overlapped on a 20 px plot
            return [(inside, [minVal, minVal + inside])]
        step = unit * _round_step(share / room, up=True)
        if minVal + step >= maxVal * (1 - 1e-9):  # none but the bottom edge's: no scale at all
            step = inside  # (a 70 px plot topped at 4.5 MB/s read so); at most 2 labels, room has 2
        first = math.ceil(minVal / step - 1e-9) * step
        count = int((maxVal - first) / step + 1e-9) + 1
        return [(step, [first + i * step for i in range(count)])]
