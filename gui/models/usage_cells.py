"""What the totals column of the applications list says: bytes over the
chosen period, or why they are not known. Kept apart from the model so that
the model file stays about the Qt interface and the merge."""

from __future__ import annotations

from dataclasses import dataclass

from chadthrottle.gui.models.usage_totals import UsageTotals
from chadthrottle.units import UnitSystem, format_size

NOT_KNOWN = "—"


@dataclass(frozen=True)
class UsageColumnState:
    """The last GetUsage totals the column shows, and over what."""

    totals: UsageTotals | None = None  # None: not known (yet, or no history)
    title: str = "Today"  # the column's title: the period
    note: str = ""  # why the totals are not known, for the tooltip

    def of(self, app_id: str) -> tuple[int, int] | None:
        if self.totals is None:
            return None
        return self.totals.get(app_id, (0, 0))


def usage_text(usage: tuple[int, int] | None, units: UnitSystem) -> str:
    """ "1.24 GB": down and up together, in the units shown ("9.92 Gbit" in bits)."""
    return NOT_KNOWN if usage is None else format_size(usage[0] + usage[1], units)


def usage_tooltip(usage: tuple[int, int] | None, state: UsageColumnState, units: UnitSystem) -> str:
    """ "Today: 1.20 GB down, 40.0 MB up (on the wire, loopback not counted)"."""
    if usage is None:
        return state.note or "Usage history not loaded yet."
    return (f"{state.title}: {format_size(usage[0], units)} down, {format_size(usage[1], units)} up "
            "(on the wire, loopback not counted)")  # fmt: skip
