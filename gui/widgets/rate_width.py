"""How wide a rate or a limit can be in the units shown, so columns and fields
are sized for "88.8 MB/s" in bytes and "1023 Mibit/s" in binary bits, not for
the widest unit of all (at 2x that width was taken from the name column)."""

from __future__ import annotations

import math

from chadthrottle.units import NO_LIMIT, UnitSystem, unit_label
from PySide6.QtGui import QFont, QFontMetricsF

BLOCKED_TEXT = "Blocked"  # what a blocked direction shows instead of a rate
# what one blocked by its used-up quota alone shows while nothing enforces it (paused)
QUOTA_USED_TEXT = "Quota used"
PENDING_MARK = "…"  # after a limit asked for and not confirmed yet
FIELD_PADDING = 12  # a QLineEdit's frame (2) and text margins (2) each side, and 4 spare
# Widths are the fractional advance rounded up plus this: a column 65 px wide cut
# "4.98 MB/s" (59.34 px, QFontMetrics says 59) to "4.98 M…" at 2x.
SLACK = 2
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


def _width(font: QFont, texts: list[str]) -> int:
    metrics = QFontMetricsF(font)
    return math.ceil(max(metrics.horizontalAdvance(text) for text in texts)) + SLACK


def widest_rate(font: QFont, units: UnitSystem) -> int:
    """The widest rate format_rate can show in ``units``, in pixels."""
    return _width(font, rate_texts(units))


def widest_amount(font: QFont, units: UnitSystem) -> int:
    """The widest amount units.format_size shows in a column ("888 TB" a month at most)."""
    return _width(font, [text.removesuffix("/s") for text in rate_texts(units, 4)])


def widest_limit(font: QFont, units: UnitSystem) -> int:
    """The widest a limit cell reads: a rate still being confirmed, "none" or
    "Blocked" or "Quota used"; in bold, as a limit in force is shown (it cut "5.00
    MB/s" at 2x)."""
    bold = QFont(font)
    bold.setBold(True)
    texts = [*(text + PENDING_MARK for text in rate_texts(units)), NO_LIMIT, BLOCKED_TEXT]
    return _width(bold, [*texts, QUOTA_USED_TEXT])


def limit_field_width(font: QFont, units: UnitSystem) -> int:
    """The limit field's width (LimitControl and the painted rows alike)."""
    return widest_limit(font, units) + FIELD_PADDING
