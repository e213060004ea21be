"""Quotas: bytes per day, week or month for one application and direction.

Pure logic. A period begins at reset_minute past local midnight (of the day,
of the Monday, of the 1st); the kernel holds the budget left in it
(helper/kernel/gates.py) and the engine works out, each tick, what was used
and when the next period begins. Local wall-clock time, as a user reads it
("my plan resets at midnight"); a reset minute that a daylight saving change
skips on some day begins that period at the first minute after the gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from chadthrottle.contract import MAX_QUOTA_BYTES, MAX_RATE_BPS, MIN_QUOTA_BYTES, MIN_RATE_BPS
from chadthrottle.helper.errors import InvalidArgument

MINUTES_PER_DAY = 24 * 60


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"  # from Monday
    MONTH = "month"  # from the 1st


@dataclass(frozen=True)
class Quota:
    """budget_bytes per period (L3 bytes on the wire); when they are spent, the
    direction is blocked (then_rate_bps 0) or limited to then_rate_bps."""

    budget_bytes: int
    period: Period
    reset_minute: int = 0  # minute of the local day the period begins
    then_rate_bps: int = 0

    @classmethod
    def checked(
        cls, budget_bytes: object, period: object, reset_minute: object, then_rate_bps: object
    ) -> Quota:
        """InvalidArgument, naming the value, for anything out of form."""
        return cls(check_budget(budget_bytes), check_period(period), check_reset_minute(reset_minute),
                   check_then_rate(then_rate_bps))  # fmt: skip


def check_budget(budget_bytes: object) -> int:
    if type(budget_bytes) is not int or not MIN_QUOTA_BYTES <= budget_bytes <= MAX_QUOTA_BYTES:
        raise InvalidArgument(
            f"a quota must be {MIN_QUOTA_BYTES}..{MAX_QUOTA_BYTES} bytes, not {budget_bytes!r}"
            " (to remove one, clear it)"
        )
    return budget_bytes


def check_period(period: object) -> Period:
    if type(period) is not str or period not in {p.value for p in Period}:
        raise InvalidArgument(f"unknown quota period {period!r}: day, week or month")
    return Period(period)


def check_reset_minute(reset_minute: object) -> int:
    if type(reset_minute) is not int or not 0 <= reset_minute < MINUTES_PER_DAY:
        raise InvalidArgument(
            f"the reset time must be a minute of the day (0..1439), not {reset_minute!r}"
        )
    return reset_minute


def check_then_rate(then_rate_bps: object) -> int:
    if type(then_rate_bps) is not int or not (
        then_rate_bps == 0 or MIN_RATE_BPS <= then_rate_bps <= MAX_RATE_BPS
    ):
        raise InvalidArgument(
            f"the rate after the quota must be 0 (block) or {MIN_RATE_BPS}..{MAX_RATE_BPS} "
            f"bytes/s, not {then_rate_bps!r}"
        )
    return then_rate_bps


def _at_minute(day: datetime, minute: int) -> datetime:
    """day's local date at minute past midnight, as an aware local time (a
    minute the clocks skip comes out after the gap)."""
    naive = datetime(day.year, day.month, day.day) + timedelta(minutes=minute)
    for _ in range(3 * 60):  # a gap is an hour (at most a few): its first minute after
        aware = naive.astimezone()  # local zone, DST of that date
        if aware.replace(tzinfo=None) == naive:
            return aware
        naive += timedelta(minutes=1)
    return naive.astimezone()


def period_start(quota: Quota, now: datetime) -> datetime:
    """When the period holding now (aware, local) began."""
    local = now.astimezone()
    day = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    if quota.period is Period.WEEK:
        day -= timedelta(days=local.weekday())
    elif quota.period is Period.MONTH:
        day = day.replace(day=1)
    start = _at_minute(day, quota.reset_minute)
    if start <= local:
        return start
    if quota.period is Period.DAY:
        return _at_minute(day - timedelta(days=1), quota.reset_minute)
    if quota.period is Period.WEEK:
        return _at_minute(day - timedelta(days=7), quota.reset_minute)
    previous = (day - timedelta(days=1)).replace(day=1)
    return _at_minute(previous, quota.reset_minute)
