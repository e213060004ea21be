"""When a quota's period began: one rule for the helper, which resets quotas at
it (helper/engine/quotas.py), and the GUI, which tells a used-up quota once per
period (gui/alerts/told.py). Both read the machine's local time; the GUI, where
its own zone is not the helper's (TZ set in the session), the helper's offset as
GetUsage's day rows show it (gui/alerts/helper_zone.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

WEEK, MONTH = "week", "month"  # and "day": contract.QUOTA_PERIODS


def _at_minute(day: datetime, minute: int, zone: tzinfo | None = None) -> datetime:
    """day's local date at minute past midnight, as an aware local time (a
    minute the clocks skip comes out after the gap); in zone where given (a
    fixed offset: no gap)."""
    naive = datetime(day.year, day.month, day.day) + timedelta(minutes=minute)
    if zone is not None:
        return naive.replace(tzinfo=zone)
    for _ in range(3 * 60):  # a gap is an hour (at most a few): its first minute after
        aware = naive.astimezone()  # local zone, DST of that date
        if aware.replace(tzinfo=None) == naive:
            return aware
        naive += timedelta(minutes=1)
    return naive.astimezone()


def period_began(
    period: str, reset_minute: int, now: datetime, zone: tzinfo | None = None
) -> datetime:
    """When the period ("day", "week" from Monday, "month" from the 1st, each
    beginning reset_minute past local midnight) holding now (aware) began.
    zone: a fixed offset to count in instead of the machine's local time."""
    local = now.astimezone(zone)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    if period == WEEK:
        day -= timedelta(days=local.weekday())
    elif period == MONTH:
        day = day.replace(day=1)
    start = _at_minute(day, reset_minute, zone)
    if start <= local:
        return start
    if period == WEEK:
        return _at_minute(day - timedelta(days=7), reset_minute, zone)
    if period == MONTH:
        return _at_minute((day - timedelta(days=1)).replace(day=1), reset_minute, zone)
    return _at_minute(day - timedelta(days=1), reset_minute, zone)


def period_after(
    period: str, reset_minute: int, began: datetime, zone: tzinfo | None = None
) -> datetime:
    """When the period that began at began (period_began's answer) ends: the
    next one's start, by the same local wall-clock rule, so a clock change
    inside it makes it an hour shorter or longer (ListRules' quota_period_end)."""
    day = began.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    if period == WEEK:
        day += timedelta(days=7)
    elif period == MONTH:
        day = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
    else:
        day += timedelta(days=1)
    return _at_minute(day, reset_minute, zone)
