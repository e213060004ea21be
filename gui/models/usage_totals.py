"""From GetUsage rows to what the window shows: totals per application, and
the stacked bars of the usage chart (the busiest applications on their own,
the rest as "Other").

Pure functions over ``UsageRow`` values, so the tests feed them rows decoded
by the real codec and need no helper. Loopback is left out, as in every
other figure in the window (the rates are without it too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from chadthrottle.usage_contract import OTHER_APPLICATIONS_ID, UsageRow

# Applications with a colour of their own in the chart; the rest are "Other".
TOP_APPLICATIONS = 6
OTHER_KEY = ""  # the chart's series of every application not among the top ones
OTHER_LABEL = "Other"

UsageTotals = dict[str, tuple[int, int]]  # app id -> (down bytes, up bytes)


def totals_by_application(rows: Iterable[UsageRow]) -> UsageTotals:
    """Each application's bytes summed over every row (every period) given."""
    totals: dict[str, tuple[int, int]] = {}
    for row in rows:
        down, up = totals.get(row.app_id, (0, 0))
        totals[row.app_id] = (down + row.down_bytes, up + row.up_bytes)
    return totals


def grand_total(totals: UsageTotals) -> tuple[int, int]:
    return (sum(down for down, _ in totals.values()), sum(up for _, up in totals.values()))


@dataclass(frozen=True)
class StackedBars:
    """Bytes (down + up) per bar and series: ``values[slot][series]``."""

    slot_starts: tuple[int, ...]
    series: tuple[str, ...]  # app ids, busiest first; OTHER_KEY last if any
    values: tuple[tuple[int, ...], ...]

    def slot_total(self, slot: int) -> int:
        return sum(self.values[slot])

    @property
    def highest(self) -> int:
        return max((sum(bar) for bar in self.values), default=0)


def stacked_bars(
    rows: Iterable[UsageRow], slot_starts: Sequence[int], top: int = TOP_APPLICATIONS
) -> StackedBars:
    """One bar per slot; the ``top`` busiest applications of the whole span as
    series of their own, every other one (and the helper's own "(other)")
    summed into OTHER_KEY. A row that begins at no slot's start is left out."""
    slot_of = {start: index for index, start in enumerate(slot_starts)}
    per_app: dict[str, list[int]] = {}
    for row in rows:
        slot = slot_of.get(row.start)
        if slot is None:
            continue
        bars = per_app.setdefault(row.app_id, [0] * len(slot_starts))
        bars[slot] += row.down_bytes + row.up_bytes
    ranked = sorted((app for app in per_app if app != OTHER_APPLICATIONS_ID and sum(per_app[app]) > 0),
                    key=lambda app: (-sum(per_app[app]), app))  # fmt: skip
    chosen = ranked[:top]
    rest = [app for app in per_app if app not in chosen]
    series = list(chosen)
    columns = [per_app[app] for app in chosen]
    other = [sum(per_app[app][slot] for app in rest) for slot in range(len(slot_starts))]
    if any(other):
        series.append(OTHER_KEY)
        columns.append(other)
    values = tuple(tuple(column[slot] for column in columns) for slot in range(len(slot_starts)))
    return StackedBars(tuple(slot_starts), tuple(series), values)


NameOf = Callable[[str], str]
