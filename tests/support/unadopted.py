"""What killed shapers left, removed as the next helper's start removes it."""

from __future__ import annotations

import time

from chadthrottle.helper.kernel.tc_shaper import remove_unadopted
from pyroute2 import IPRoute


def remove_unadopted_until(ipr: IPRoute, expected: int, timeout_s: float = 5.0) -> int:
    """remove_unadopted until it has removed `expected` objects in all, or
    timeout_s passed; how many it removed. Another session's shaper or helper
    that scans the dead journals holds each one's lock for a moment, and a
    held lock reads as a live owner (ownership.take_over_dead): that journal
    is skipped then, and taken at the next try. CI, in two lanes, read 0 of 2
    once. The product has one helper a machine, so no such scan beside it."""
    removed, deadline = 0, time.monotonic() + timeout_s
    while True:
        removed += remove_unadopted(ipr)
        if removed >= expected or time.monotonic() >= deadline:
            return removed
        time.sleep(0.05)
