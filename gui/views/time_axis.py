"""The detail graph's time axis: "how long ago", in seconds or in minutes."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg


class AgoAxis(pg.AxisItem):  # type: ignore[misc]
    """Bottom axis over x = time before now (negative), labelled without the
    minus sign: the axis title says "seconds ago" or "minutes ago"."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(orientation="bottom", **kwargs)
        self.enableAutoSIPrefix(False)

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        return [f"{abs(value):g}" if abs(value) > 1e-9 else "now" for value in values]
