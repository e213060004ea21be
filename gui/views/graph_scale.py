"""Where a rate graph's top is: round, from what was measured, a limit only if near it.

Pure functions (no pyqtgraph), shared by the detail graph and the sparklines.
"""

from __future__ import annotations

import math

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
