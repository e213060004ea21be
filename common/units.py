"""Rates: parsing what people type and formatting what they read.

All rates inside ChadThrottle are bytes per second on the wire at L3 (IP
header included). This module is the one place that turns them into text and
back, for the CLI and the GUI alike.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum

from chadthrottle.contract import MAX_RATE_BPS, MIN_RATE_BPS

TYPE_CHECKING = False  # not typing's: importing typing costs a CLI call ~2 ms
if TYPE_CHECKING:
    from collections.abc import Sequence


class UnitError(ValueError):
    """A rate could not be understood."""


UNLIMITED_WORDS = frozenset({"unlimited", "none", "off", "0"})
# The one word for "no limit" wherever a limit is shown: the window's limit
# columns and fields, the rules dialog's fields, the tray's and row menu's
# first quick limit (capitalized there, as a menu item). walk26 read three.
NO_LIMIT = "none"

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
# Patterns are compiled on first use (re caches them): a CLI call that parses no rate does
# not pay the three compiles at import (0.5 ms; issue 19).
_RATE_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*?)(?:/s|ps)?\s*$"

RATE_HELP = (
    "RATE is bytes per second at L3: a plain number (500000), a decimal suffix "
    "(500K, 2M, 1G, also KB/MB/GB) or a binary one (512KiB, 1MiB, 1GiB); bits only "
    "with the unit spelt out (50Mbit, 500 kbit/s); 'unlimited' (or none, off, 0: 0 means no "
    "limit everywhere) removes the limit."
)


def parse_rate(text: str, units: UnitSystem | None = None) -> int | None:
    """Parse a rate such as "500K", "2M", "1MiB" or "unlimited".

    Returns bytes per second, or None for unlimited. Raises UnitError with a
    one-line reason for anything else, including rates outside the bounds the
    helper accepts.

    Without ``units`` (the CLI) a bare number or suffix means bytes. With the
    units a person reads rates in (the GUI), a bare number or prefix means
    that unit: "10M" is 10 Mbit/s in bits mode and 10 MiB/s in binary mode;
    see ``_parse_in_units``.
    """
    if units is not None:
        return _parse_in_units(text, units)
    cleaned = text.strip().lower()
    if cleaned in UNLIMITED_WORDS:
        return None
    match = re.match(_RATE_PATTERN, cleaned)
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


class UnitSystem(StrEnum):
    """How rates are shown: bytes or bits, decimal (1000) or binary (1024)."""

    BYTES_DECIMAL = "bytes-decimal"
    BYTES_BINARY = "bytes-binary"
    BITS_DECIMAL = "bits-decimal"
    BITS_BINARY = "bits-binary"

    @property
    def bits(self) -> bool:
        return self in (UnitSystem.BITS_DECIMAL, UnitSystem.BITS_BINARY)

    @property
    def base(self) -> int:
        """1000 or 1024: the step between k, M and G."""
        return 1024 if self in (UnitSystem.BYTES_BINARY, UnitSystem.BITS_BINARY) else 1000


# Joins a number and its unit in text that wraps (a dialog's sentence, a
# chart's line), so a line never ends "97.7" with "KiB/s" on the next: seen at
# 1x in the rules dialog and at 2x in the usage view. The formatters' unbroken
# argument is the one place it is used.
NO_BREAK_SPACE = "\u00a0"


class _Scale:
    """One way of showing rates: its base, bits or bytes, and unit names. A plain
    class: a dataclass is made at import, 0.3 ms of every CLI call (issue 19)."""

    __slots__ = ("base", "factor", "labels")

    def __init__(self, base: int, factor: int, labels: tuple[str, ...]) -> None:
        self.base = base
        self.factor = factor  # 8 for bits
        self.labels = labels


_SCALES: dict[UnitSystem, _Scale] = {
    UnitSystem.BYTES_DECIMAL: _Scale(1000, 1, ("B/s", "KB/s", "MB/s", "GB/s", "TB/s")),
    UnitSystem.BYTES_BINARY: _Scale(1024, 1, ("B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s")),
    UnitSystem.BITS_DECIMAL: _Scale(1000, 8, ("bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s")),
    UnitSystem.BITS_BINARY: _Scale(1024, 8, ("bit/s", "Kibit/s", "Mibit/s", "Gibit/s", "Tibit/s")),
}


def format_rate(
    rate_bps: float, units: UnitSystem = UnitSystem.BYTES_DECIMAL, *, unbroken: bool = False
) -> str:
    """Format bytes/s for people: "8.1 MB/s", "210 KB/s", "0 B/s".

    Three significant digits at most, so columns do not jitter. unbroken: for
    running text that wraps, the number and unit joined by NO_BREAK_SPACE.
    """
    scale = _SCALES[units]
    return _scaled(max(0.0, float(rate_bps)) * scale.factor, scale.base, scale.labels, unbroken)


def _scaled(value: float, base: int, labels: Sequence[str], unbroken: bool = False) -> str:
    """value in the largest of labels (each base times the last) that keeps it
    at 1 or more, in three significant digits at most: format_rate's and
    format_size's one rule, so a rate and an amount read alike. unbroken: the
    number and its unit joined by NO_BREAK_SPACE."""
    index = 0
    while value >= base * 0.9995 and index < len(labels) - 1:
        value /= base
        index += 1
    # The digits after rounding: 99.96 written "100.0" (and 9.996 "10.00") had four,
    # wider than a column measured for three (cut in the Up column at 2x).
    if index == 0 or value >= 99.95:
        number = f"{value:.0f}"
    elif value >= 9.995:
        number = f"{value:.1f}"
    else:
        number = f"{value:.2f}"
    return f"{number}{NO_BREAK_SPACE if unbroken else ' '}{labels[index]}"


def format_limit(limit_bps: int, units: UnitSystem = UnitSystem.BYTES_DECIMAL) -> str:
    """A configured limit: "none" for 0 (no limit), else the formatted rate."""
    return NO_LIMIT if limit_bps <= 0 else format_rate(limit_bps, units)


def unit_bps(units: UnitSystem, power: int) -> float:
    """Bytes/s in one unit of the given prefix power: 0 is B/s or bit/s, 2 is MB/s or Mbit/s ..."""
    return units.base**power / (8 if units.bits else 1)


def unit_label(units: UnitSystem, power: int) -> str:
    """ "MB/s", "Mibit/s": the name of unit_bps(units, power)."""
    return _SCALES[units].labels[power]


def format_round(rate_bps: float, units: UnitSystem) -> str:
    """A round rate without trailing zeros, for menus: "5 MB/s", "1.5 Mbit/s"."""
    value = max(0.0, float(rate_bps))
    power = 0
    while power < 4 and value >= unit_bps(units, power + 1) * 0.9995:
        power += 1
    number = value / unit_bps(units, power)
    return f"{round(number, 2):g} {unit_label(units, power)}"


# A number, then an optional prefix (k, M, G, T, with i for binary) and unit
# (b, B, bit, bits, byte, bytes), then an optional "/s" or "ps". Case matters
# only for a lone b: B is bytes; b is bits in bits mode (as in "Mb/s") and
# bytes otherwise, as the CLI reads it.
_UNITS_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*(?:([kKmMgGtT])(i?))?(b|B|bits?|bytes?)?\s*(?:/s|ps)?\s*$"
_PREFIX_POWER = {"k": 1, "m": 2, "g": 3, "t": 4}


def _parse_in_units(text: str, units: UnitSystem) -> int | None:
    """Parse what a person typed while reading rates in ``units``.

    A bare number or prefix is that unit ("10M": 10 Mbit/s in bits mode, 10
    MiB/s in binary mode); an explicit unit wins ("2 MB/s", "500 kbit/s",
    "1MiB"); a prefix with a unit and no "i" is decimal. Bounds are the
    helper's, said in ``units``.
    """
    cleaned = text.strip()
    if cleaned.lower() in UNLIMITED_WORDS:
        return None
    match = re.match(_UNITS_PATTERN, cleaned)
    if not match:
        raise UnitError(f"not a rate: {text!r} (try {_examples(units)} or unlimited)")
    number, prefix, binary, unit = match.groups()
    power = _PREFIX_POWER[prefix.lower()] if prefix else 0
    if unit is None:
        bits, base = units.bits, (1024 if binary else units.base if prefix else 1)
    else:
        bits = unit.startswith("bit") or (unit == "b" and units.bits)
        base = 1024 if binary else 1000
    value = float(number) * base**power / (8 if bits else 1)
    if not math.isfinite(value):
        raise UnitError(f"not a rate: {text!r}")
    rate_bps = round(value)
    if rate_bps < MIN_RATE_BPS:
        raise UnitError(f"rate {text!r} is below the minimum of {format_rate(MIN_RATE_BPS, units)}")
    if rate_bps > MAX_RATE_BPS:
        raise UnitError(f"rate {text!r} is above the maximum of {format_rate(MAX_RATE_BPS, units)}")
    return rate_bps


def _examples(units: UnitSystem) -> str:
    """Typing examples in the reader's units: "500K, 2M, 2 Mbit/s"."""
    return f"500K, 2M, 2 {unit_label(units, 2)}"


_SIZE_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$"
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(text: str) -> int:
    """An amount of data (a quota): 5MB, 500M, 2GiB, 1000000 (decimal units,
    or binary with i); UnitError with a one-line reason otherwise."""
    match = re.match(_SIZE_PATTERN, text.lower())
    if not match or (match.group(3) and not match.group(2)):
        raise UnitError(f"not an amount of data: {text!r} (try 5MB, 2GB or 500MiB)")
    number, prefix, binary, _ = match.groups()
    value = float(number) * (1024 if binary else 1000) ** _SIZE_POWERS[prefix]
    if not math.isfinite(value):  # hundreds of digits read as inf: round() would raise
        raise UnitError(f"not an amount of data: {text!r} (too large)")
    return round(value)


def format_size(
    size_bytes: int, units: UnitSystem = UnitSystem.BYTES_DECIMAL, *, unbroken: bool = False
) -> str:
    """An amount of data for people in the chosen units: "5.00 MB", "1.50 GB"; "4.66 GiB"
    in binary bytes, "40.0 Gbit" in bits (up to a quota's largest, 1.13 PB). The
    names are the rates' (format_rate's scales) without "/s", and the digits are
    format_rate's: one window, one spelling. Under Xvfb with binary units a quota
    read "712 KB left today" beside rates in "KiB/s"; and a quota line said
    "1.2 GB" where the usage view said "1.20 GB" of the same amount (review7).
    unbroken: as format_rate's."""
    scale = _SCALES[units]
    labels = [_size_label(scale, power) for power in range(len(scale.labels) + 1)]
    return _scaled(max(0, size_bytes) * scale.factor, scale.base, labels, unbroken)


def _size_label(scale: _Scale, power: int) -> str:
    """The rate's unit name without "/s", one past TB for the largest quotas (PB)."""
    if power < len(scale.labels):
        return scale.labels[power].removesuffix("/s")
    top = scale.labels[-1].removesuffix("/s")  # "TB", "TiB", "Tbit", "Tibit"
    return "P" + top[1:]
