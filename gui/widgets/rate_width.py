"""How wide a rate or a limit can be in the units shown, so columns and fields
are sized for "88.8 MB/s" in bytes and "1023 Mibit/s" in binary bits, not for
the widest unit of all (at 2x that width was taken from the name column)."""

from __future__ import annotations

from chadthrottle.units import UnitSystem, unit_label
from PySide6.QtGui import QFontMetrics

BLOCKED_TEXT = "Blocked"  # what a blocked direction shows instead of a rate
PENDING_MARK = "…"  # after a limit asked for and not confirmed yet
FIELD_PADDING = 14  # a QLineEdit's frame and text margins around its text
_HIGHEST_POWER = 3  # G: limits stop at 100 GB/s (contract.MAX_RATE_BPS), rates in practice too


def rate_texts(units: UnitSystem, highest_power: int = _HIGHEST_POWER) -> list[str]:
    """Stand-ins for the widest texts format_rate gives in ``units``: three
    significant digits, or up to 999 (1023 in binary) whole units."""
    whole = "8" * len(str(units.base - 1))
    return [
        f"{number} {unit_label(units, power)}"
        for power in range(highest_power + 1)
        for number in (whole, "88.8", "8.88")
    ]


def widest_rate(metrics: QFontMetrics, units: UnitSystem) -> int:
    """The widest rate format_rate can show in ``units``, in pixels."""
    return max(metrics.horizontalAdvance(text) for text in rate_texts(units))


def widest_amount(metrics: QFontMetrics, units: UnitSystem) -> int:
    """The widest byte count connection_table.format_bytes shows ("888 TB" a month at most)."""
    return max(metrics.horizontalAdvance(text.removesuffix("/s")) for text in rate_texts(units, 4))


def widest_limit(metrics: QFontMetrics, units: UnitSystem) -> int:
    """The widest a limit cell reads: a rate still being confirmed, "none" or "Blocked"."""
    return max(
        widest_rate(metrics, units) + metrics.horizontalAdvance(PENDING_MARK),
        metrics.horizontalAdvance("none"),
        metrics.horizontalAdvance(BLOCKED_TEXT),
    )


def limit_field_width(metrics: QFontMetrics, units: UnitSystem) -> int:
    """The limit field's width (LimitControl and the painted rows alike)."""
    return widest_limit(metrics, units) + FIELD_PADDING
