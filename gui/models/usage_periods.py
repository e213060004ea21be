"""The periods the usage view and the totals column offer, in local time.

Days begin at local midnight, as the helper's day and month rows do
(docs/helper.md, "Usage history"), so "today" is the day people mean. Pure
functions of a unix time: tests pass the clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum

from chadthrottle.usage_contract import UsageResolution

HOUR_S = 3_600
# The ☰ menu's entry for the list's totals column's period
# (gui/views/usage_column_menu.py), named in that column's title tooltip too.
COLUMN_PERIOD_MENU = "Data used in the list"


class UsagePeriod(Enum):
    """A span the totals cover, up to now."""

    TODAY = "today"
    WEEK = "7d"
    DAYS_30 = "30d"
    THIS_MONTH = "month"


@dataclass(frozen=True)
class PeriodInfo:
    label: str  # the choice as offered ("Last 7 days")
    column_title: str  # the totals column's title ("7 days")
    days_back: int  # -1: from the first of the month


PERIODS: dict[UsagePeriod, PeriodInfo] = {
    UsagePeriod.TODAY: PeriodInfo("Today", "Today", 0),
    UsagePeriod.WEEK: PeriodInfo("Last 7 days", "7 days", 6),
    UsagePeriod.DAYS_30: PeriodInfo("Last 30 days", "30 days", 29),
    UsagePeriod.THIS_MONTH: PeriodInfo("This month", "This month", -1),
}


def local_midnight(moment: float, days_back: int = 0) -> int:
    """The local midnight ``days_back`` days before the day of ``moment``."""
    year, month, day = time.localtime(moment)[:3]
    return int(time.mktime((year, month, day - days_back, 0, 0, 0, 0, 0, -1)))


def period_since(period: UsagePeriod, now: float) -> int:
    """The first second of the period that ends now."""
    days_back = PERIODS[period].days_back
    if days_back < 0:
        year, month = time.localtime(now)[:2]
        return int(time.mktime((year, month, 1, 0, 0, 0, 0, 0, -1)))
    return local_midnight(now, days_back)


def totals_resolution(period: UsagePeriod) -> UsageResolution:
    """The coarsest resolution that still starts at the period's start: the
    fewest rows over the bus (a month row sums the days from since on)."""
    return UsageResolution.DAY if period is UsagePeriod.TODAY else UsageResolution.MONTH


def chart_resolution(period: UsagePeriod) -> UsageResolution:
    """Today's bars are its hours; every longer period's are its days."""
    return UsageResolution.HOUR if period is UsagePeriod.TODAY else UsageResolution.DAY


def slot_starts(period: UsagePeriod, now: float) -> list[int]:
    """The start of every bar from the period's start to now: hours of today,
    or local midnights (a day is 23 or 25 hours across a clock change)."""
    since = period_since(period, now)
    if chart_resolution(period) is UsageResolution.HOUR:
        return list(range(since, int(now) + 1, HOUR_S))[:25] or [since]
    starts: list[int] = []
    year, month, day = time.localtime(since)[:3]
    while True:
        start = int(time.mktime((year, month, day + len(starts), 0, 0, 0, 0, 0, -1)))
        if start > now and starts:
            return starts
        starts.append(start)


def slot_label(period: UsagePeriod, start: int) -> str:
    """A bar's label: "14:00" for an hour, "Mon 3" for a day of the week,
    "Nov 4" for a day of 30 (they span two months: a weekday and a day number
    would be ambiguous)."""
    moment = time.localtime(start)
    if chart_resolution(period) is UsageResolution.HOUR:
        return time.strftime("%H:%M", moment)
    if period is UsagePeriod.WEEK:
        return f"{time.strftime('%a', moment)} {moment.tm_mday}"
    return f"{time.strftime('%b', moment)} {moment.tm_mday}"
