"""A pyqtgraph axis that labels bytes/s in the user's units."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg

from chadthrottle.units import UnitSystem, format_rate


class RateAxis(pg.AxisItem):  # type: ignore[misc]
    """Left axis whose ticks read "5.00 MB/s" instead of "5e6"."""

    def __init__(self, units: UnitSystem = UnitSystem.BYTES_DECIMAL, **kwargs: Any) -> None:
        super().__init__(orientation="left", **kwargs)
        self.units = units
        self.enableAutoSIPrefix(False)

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        return [format_rate(value, self.units) if value >= 0 else "" for value in values]
