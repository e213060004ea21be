"""argparse types for a number of seconds, shared by chadthrottle-helper,
chadthrottle-ctl and the GUI: an option refuses what is not a finite number
within its bounds, with a one-line reason naming it, and the program starts
with nothing changed. Nothing is clamped: -1 is not taken for 0, nor nan for
0, nor inf for "never" (float() reads all three)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def seconds_type(least: float = 0.0, most: float | None = None) -> Callable[[str], float]:
    """An argparse type= for SECONDS between least and most (inclusive; no
    upper bound with most None)."""

    def seconds(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        if most is not None and not least <= value <= most:  # also refuses nan and inf
            raise argparse.ArgumentTypeError(
                f"{text!r} is not between {least:g} and {most:g} seconds"
            )
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"not a finite number of seconds: {text!r}")
        if value < least:
            raise argparse.ArgumentTypeError(f"{text!r} is below {least:g} seconds")
        return value

    return seconds
