"""The limit slider's scale: logarithmic from 10 KB/s to 1 GB/s, then "none".

Pure functions, shared by the real slider and the delegate that paints its
likeness, so both put a given limit at the same place.
"""

from __future__ import annotations

import math

from chadthrottle.contract import MAX_RATE_BPS, MIN_RATE_BPS

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
