"""Which period a moment falls in, per stored level, and how long each level
is kept. Pure logic.

Minutes and hours are whole multiples of 60 and 3,600 unix seconds; days and
months begin at local midnight (the helper's time zone, i.e. the machine's),
so "today" is the day people mean. A time zone with a half-hour offset sees
hour rows that straddle its local hours; days stay exact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import IntEnum

from chadthrottle.usage_contract import UsageResolution

DAY_S = 86_400


class Level(IntEnum):
    """A stored level of detail; the value is its nominal length in seconds
    and what the database's level column holds."""

    MINUTE = 60
    HOUR = 3_600
    DAY = DAY_S


# How long each level is kept (rows whose period began earlier are pruned).
RETENTION_S: dict[Level, int] = {
    Level.MINUTE: DAY_S + 3_600,  # the last day, and the hour that "24 h ago" begins in
    Level.HOUR: 90 * DAY_S,
    Level.DAY: 731 * DAY_S,  # two years, leap day included
}

# The stored level each resolution is read from.
SOURCE_LEVEL: dict[UsageResolution, Level] = {
    UsageResolution.MINUTE: Level.MINUTE,
    UsageResolution.HOUR: Level.HOUR,
    UsageResolution.DAY: Level.DAY,
    UsageResolution.MONTH: Level.DAY,
}


def local_midnight(moment: int) -> int:
    """The unix time of the local midnight that begins moment's day."""
    year, month, day = time.localtime(moment)[:3]
    return int(time.mktime((year, month, day, 0, 0, 0, 0, 0, -1)))


def bucket_start(level: Level, moment: int) -> int:
    """The first second of the period of level that moment falls in."""
    if level is Level.DAY:
        return local_midnight(moment)
    return moment - moment % level.value


def month_start(moment: int) -> int:
    year, month = time.localtime(moment)[:2]
    return int(time.mktime((year, month, 1, 0, 0, 0, 0, 0, -1)))


def next_period(resolution: UsageResolution, start: int) -> int:
    """The first second after the period of resolution that begins at start
    (a local day is 23 or 25 hours on the days clocks change)."""
    if resolution is UsageResolution.MINUTE:
        return start + 60
    if resolution is UsageResolution.HOUR:
        return start + 3_600
    year, month, day = time.localtime(start)[:3]
    if resolution is UsageResolution.DAY:
        return int(time.mktime((year, month, day + 1, 0, 0, 0, 0, 0, -1)))
    return int(time.mktime((year + month // 12, month % 12 + 1, 1, 0, 0, 0, 0, 0, -1)))


def period_start(resolution: UsageResolution, stored_start: int) -> int:
    """The period of resolution that a stored row (of SOURCE_LEVEL) belongs to."""
    return month_start(stored_start) if resolution is UsageResolution.MONTH else stored_start


@dataclass(frozen=True)
class Cutoffs:
    """Per level, the first period start still kept at some moment."""

    by_level: dict[Level, int]

    @classmethod
    def at(cls, now: int) -> Cutoffs:
        return cls({level: now - keep for level, keep in RETENTION_S.items()})
