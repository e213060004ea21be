"""The limit slider's scale: logarithmic from 10 KB/s to 1 GB/s, then "none".

Pure functions, shared by the real slider and the delegate that paints its
likeness, so both put a given limit at the same place. The values a slider
lands on are round in the units the user reads (``round_rates``): 5 MB/s, or
40 Mbit/s in bits mode, never 4.97 MB/s or 39.8 Mbit/s.
"""

from __future__ import annotations

import bisect
import math
from functools import cache

from chadthrottle.contract import MAX_RATE_BPS, MIN_RATE_BPS
from chadthrottle.units import UnitSystem, unit_bps

SLIDER_MIN_BPS = 10_000
SLIDER_MAX_BPS = 1_000_000_000
LOG_STEPS = 1000  # positions 0 .. LOG_STEPS - 1 are rates
UNLIMITED_POSITION = LOG_STEPS  # the right end means "no limit"

_LOG_SPAN = math.log10(SLIDER_MAX_BPS / SLIDER_MIN_BPS)


def nice_rate(rate_bps: float) -> int:
    """Two significant digits, so a drag lands on 5.0 MB/s rather than 4.97 MB/s."""
    if rate_bps <= 0:
        return 0
    magnitude = 10 ** (math.floor(math.log10(rate_bps)) - 1)
    return int(max(MIN_RATE_BPS, min(MAX_RATE_BPS, round(rate_bps / magnitude) * magnitude)))


def rate_for_position(position: int) -> int | None:
    """Slider position -> rounded bytes/s, or None at the unlimited end."""
    if position >= UNLIMITED_POSITION:
        return None
    fraction = max(0, position) / (LOG_STEPS - 1)
    return nice_rate(SLIDER_MIN_BPS * 10 ** (fraction * _LOG_SPAN))


def position_for_rate(rate_bps: int | None) -> int:
    """Bytes/s (None or 0 = no limit) -> slider position, clamped to the scale."""
    if not rate_bps or rate_bps <= 0:
        return UNLIMITED_POSITION
    clamped = min(max(rate_bps, SLIDER_MIN_BPS), SLIDER_MAX_BPS)
    fraction = math.log10(clamped / SLIDER_MIN_BPS) / _LOG_SPAN
    return round(fraction * (LOG_STEPS - 1))


# Mantissas of the round values: the arrow keys and a drag land on FINE ones,
# Page Up and Page Down step through COARSE ones.
FINE_STEPS = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
COARSE_STEPS = (1.0, 2.0, 5.0)
# From "none", the first step down asks for this when the application is idle.
IDLE_SUGGESTION_BPS = 1_000_000


@cache
def round_rates(units: UnitSystem, coarse: bool = False) -> tuple[int, ...]:
    """Every round rate on the slider's scale, in bytes/s, smallest first.

    Round in ``units``: mantissa x 1, 10, 100 of k, M or G (KiB and MiB in
    binary mode, kbit/s and Mbit/s in bits mode).
    """
    mantissas = COARSE_STEPS if coarse else FINE_STEPS
    rates = {
        round(mantissa * 10**decade * unit_bps(units, power))
        for power in range(1, 4)
        for decade in range(3)
        for mantissa in mantissas
    }
    return tuple(sorted(r for r in rates if SLIDER_MIN_BPS <= r <= SLIDER_MAX_BPS))


def snap_rate(rate_bps: float, units: UnitSystem, coarse: bool = False) -> int:
    """The round rate nearest to ``rate_bps`` on a log scale (where a drag lands)."""
    rates = round_rates(units, coarse)
    if rate_bps <= rates[0]:
        return rates[0]
    at = bisect.bisect_left(rates, rate_bps)
    if at >= len(rates):
        return rates[-1]
    below, above = rates[at - 1], rates[at]
    return below if math.log(rate_bps / below) <= math.log(above / rate_bps) else above


def step_rate(
    rate_bps: int | None, steps: int, units: UnitSystem, coarse: bool = False
) -> int | None:
    """``steps`` round values up (positive) or down from ``rate_bps``.

    None is the unlimited end: stepping up from the largest rate reaches it,
    and stepping down from it starts at the largest rate (see ``suggest_rate``
    for the first step from "none" that the keyboard takes).
    """
    rates = round_rates(units, coarse)
    if rate_bps is None:
        if steps >= 0:
            return None
        at = len(rates) + steps
    elif steps > 0:
        at = bisect.bisect_right(rates, rate_bps) + steps - 1
    else:
        at = bisect.bisect_left(rates, rate_bps) + steps
    if at >= len(rates):
        return None
    return rates[max(0, at)]


def suggest_rate(current_bps: float, units: UnitSystem) -> int:
    """A first limit for an application that has none: the round rate at or just
    below what it uses now, so it bites a little; 1 MB/s (rounded in
    ``units``) when it is idle."""
    rates = round_rates(units)
    if current_bps < rates[0] * 2:
        return snap_rate(IDLE_SUGGESTION_BPS, units, coarse=True)
    return rates[max(0, bisect.bisect_right(rates, current_bps) - 1)]
