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
from datetime import datetime
from enum import StrEnum

from chadthrottle.contract import MAX_QUOTA_BYTES, MAX_RATE_BPS, MIN_QUOTA_BYTES, MIN_RATE_BPS
from chadthrottle.helper.errors import InvalidArgument
from chadthrottle.quota_period import period_began

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


def period_start(quota: Quota, now: datetime) -> datetime:
    """When the period holding now (aware, local) began (common/quota_period.py:
    the GUI tells a used-up quota once per period by the same rule)."""
    return period_began(quota.period.value, quota.reset_minute, now)
