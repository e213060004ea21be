"""Rates: parsing what people type and formatting what they read.

All rates inside ChadThrottle are bytes per second on the wire at L3 (IP
header included). This module is the one place that turns them into text and
back, for the CLI and the GUI alike.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum

from chadthrottle.contract import MAX_RATE_BPS, MIN_RATE_BPS


class UnitError(ValueError):
    """A rate could not be understood."""


UNLIMITED_WORDS = frozenset({"unlimited", "none", "off", "0"})

_MULTIPLIERS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*?)(?:/s|ps)?\s*$")

RATE_HELP = (
    "RATE is bytes per second at L3: a plain number (500000), a decimal suffix "
    "(500K, 2M, 1G, also KB/MB/GB) or a binary one (512KiB, 1MiB, 1GiB); "
    "'unlimited' (or none, off, 0: 0 means no limit everywhere) removes the limit."
)


def parse_rate(text: str) -> int | None:
    """Parse a rate such as "500K", "2M", "1MiB" or "unlimited".

    Returns bytes per second, or None for unlimited. Raises UnitError with a
    one-line reason for anything else, including rates outside the bounds the
    helper accepts.
    """
    cleaned = text.strip().lower()
    if cleaned in UNLIMITED_WORDS:
        return None
    match = _RATE_RE.match(cleaned)
    if not match or match.group(2) not in _MULTIPLIERS:
        raise UnitError(f"not a rate: {text!r} (try 500K, 2M, 1MiB or unlimited)")
    value = float(match.group(1)) * _MULTIPLIERS[match.group(2)]
    if not math.isfinite(value):
        raise UnitError(f"not a rate: {text!r}")
    rate_bps = round(value)
    if rate_bps < MIN_RATE_BPS:
        raise UnitError(f"rate {text!r} is below the minimum of {MIN_RATE_BPS} bytes/s")
    if rate_bps > MAX_RATE_BPS:
        raise UnitError(f"rate {text!r} is above the maximum of {MAX_RATE_BPS} bytes/s")
    return rate_bps


class UnitSystem(str, Enum):
    """How rates are shown: bytes or bits, decimal (1000) or binary (1024)."""

    BYTES_DECIMAL = "bytes-decimal"
    BYTES_BINARY = "bytes-binary"
    BITS_DECIMAL = "bits-decimal"
    BITS_BINARY = "bits-binary"


@dataclass(frozen=True)
class _Scale:
    base: int
    factor: int  # 8 for bits
    labels: tuple[str, ...]


_SCALES: dict[UnitSystem, _Scale] = {
    UnitSystem.BYTES_DECIMAL: _Scale(1000, 1, ("B/s", "KB/s", "MB/s", "GB/s", "TB/s")),
    UnitSystem.BYTES_BINARY: _Scale(1024, 1, ("B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s")),
    UnitSystem.BITS_DECIMAL: _Scale(1000, 8, ("bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s")),
    UnitSystem.BITS_BINARY: _Scale(1024, 8, ("bit/s", "Kibit/s", "Mibit/s", "Gibit/s", "Tibit/s")),
}


def format_rate(rate_bps: float, units: UnitSystem = UnitSystem.BYTES_DECIMAL) -> str:
    """Format bytes/s for people: "8.1 MB/s", "210 KB/s", "0 B/s".

    Three significant digits at most, so columns do not jitter.
    """
    scale = _SCALES[units]
    value = max(0.0, float(rate_bps)) * scale.factor
    index = 0
    while value >= scale.base * 0.9995 and index < len(scale.labels) - 1:
        value /= scale.base
        index += 1
    if index == 0 or value >= 100:
        number = f"{value:.0f}"
    elif value >= 10:
        number = f"{value:.1f}"
    else:
        number = f"{value:.2f}"
    return f"{number} {scale.labels[index]}"


def format_limit(limit_bps: int, units: UnitSystem = UnitSystem.BYTES_DECIMAL) -> str:
    """A configured limit: "none" for 0 (no limit), else the formatted rate."""
    return "none" if limit_bps <= 0 else format_rate(limit_bps, units)
