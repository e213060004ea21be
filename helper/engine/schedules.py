"""Schedules: a rule's limits in force only on some days, between two times.

Pure logic. A schedule is (days, from, to) in the helper's local time with the
limits it sets while active; while active they replace the plain limit of the
same rule for their direction. Times are wall-clock minutes: a schedule is
active when the local clock reads a minute in [from, to) on one of its days
(to <= from runs overnight into the next day). That makes daylight saving
explicit rather than surprising: a start or end that does not exist on some
day of the next year (the hour skipped when clocks go forward) is refused with
NonexistentLocalTime; in the hour repeated when clocks go back, the wall clock
passes the same minutes twice, and the schedule follows it both times.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.limits import Limit
from chadthrottle.helper.errors import InvalidArgument

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order
DAY_ALIASES = {"daily": tuple(range(7)), "weekdays": tuple(range(5)), "weekend": (5, 6)}
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
# One rule (application, owner) keeps at most this many schedules.
MAX_SCHEDULES_PER_RULE = 16
# How far ahead a start or end is checked against daylight saving changes.
DST_LOOKAHEAD_DAYS = 366
_TIME_RE = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])", re.ASCII)


class NonexistentLocalTime(InvalidArgument):
    """A schedule's start or end is a wall-clock time the local zone skips on
    one of its days (clocks going forward): it would never happen that day."""


@dataclass(frozen=True)
class Schedule:
    """Days (0 = Monday), start and end minute of the day, and the limits it sets."""

    days: frozenset[int]
    start: int  # minute of the day, 0..1439
    end: int  # minute of the day; end <= start runs past midnight
    limits: dict[Direction, Limit] = field(default_factory=dict, compare=False, hash=False)

    @property
    def name(self) -> str:
        """The canonical text, e.g. "mon-fri 09:00-17:00": unique within a rule,
        since a rule's schedules never overlap."""
        return f"{format_days(self.days)} {format_minute(self.start)}-{format_minute(self.end)}"

    def week_minutes(self) -> set[int]:
        """Every minute of the week (0 = Monday 00:00) this schedule covers."""
        length = (self.end - self.start) % MINUTES_PER_DAY
        covered: set[int] = set()
        for day in self.days:
            first = day * MINUTES_PER_DAY + self.start
            covered.update(minute % MINUTES_PER_WEEK for minute in range(first, first + length))
        return covered

    def is_active(self, local: datetime) -> bool:
        """Whether the wall clock at local (an aware datetime) is in this schedule."""
        minute = local.hour * 60 + local.minute
        if self.start < self.end:
            return local.weekday() in self.days and self.start <= minute < self.end
        if minute >= self.start:  # overnight: the evening part, on a listed day
            return local.weekday() in self.days
        return minute < self.end and (local.weekday() - 1) % 7 in self.days  # the morning after


def parse_days(text: object) -> frozenset[int]:
    """ "mon-fri", "sat,sun", "mon,wed-fri", "daily", "weekdays", "weekend"."""
    if type(text) is not str or not text.strip():
        raise InvalidArgument(
            "days must name at least one day (mon..sun, ranges like mon-fri, or daily)"
        )
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        if part in DAY_ALIASES:
            days.update(DAY_ALIASES[part])
            continue
        first, dash, last = part.partition("-")
        for name in (first, last) if dash else (first,):
            if name not in DAY_NAMES:
                raise InvalidArgument(
                    f"unknown day {name!r} (days are {' '.join(DAY_NAMES)}, ranges like mon-fri, or daily, weekdays, weekend)"
                )
        start, stop = DAY_NAMES.index(first), DAY_NAMES.index(last if dash else first)
        days.update((start + step) % 7 for step in range((stop - start) % 7 + 1))
    return frozenset(days)


def format_days(days: Iterable[int]) -> str:
    """The shortest text for days: runs of three or more as ranges."""
    ordered = sorted(set(days))
    if len(ordered) == 7:
        return "daily"
    parts, run = [], [ordered[0]] if ordered else []
    for day in [*ordered[1:], None]:
        if day is not None and day == run[-1] + 1:
            run.append(day)
            continue
        names = [DAY_NAMES[d] for d in run]
        parts.append(f"{names[0]}-{names[-1]}" if len(run) >= 3 else ",".join(names))
        run = [day] if day is not None else []
    return ",".join(parts)


def parse_minute(text: object, what: str) -> int:
    """ "HH:MM", 00:00..23:59, as a minute of the day."""
    match = _TIME_RE.fullmatch(text) if type(text) is str else None
    if match is None:
        raise InvalidArgument(f"{what} must be a time HH:MM between 00:00 and 23:59, not {text!r}")
    return int(match.group(1)) * 60 + int(match.group(2))


def format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def make_schedule(
    days: object, start: object, end: object, limits: dict[Direction, Limit]
) -> Schedule:
    """A checked schedule; InvalidArgument names what is wrong."""
    schedule = Schedule(
        parse_days(days), parse_minute(start, "from"), parse_minute(end, "to"), limits
    )
    if schedule.start == schedule.end:
        raise InvalidArgument(
            "from and to are the same time: for all day, set a plain limit instead"
        )
    if not limits:
        raise InvalidArgument("a schedule must limit at least one direction")
    return schedule


def parse_schedule_name(text: object) -> str:
    """A schedule's name as ListSchedules gives it ("mon-fri 09:00-17:00"),
    made canonical; "" (every schedule) stays ""."""
    if text == "" and type(text) is str:
        return ""
    days, _, times = text.rpartition(" ") if type(text) is str else ("", "", "")
    start, dash, end = times.partition("-")
    if not days or not dash:
        raise InvalidArgument(
            f"a schedule is named as ListSchedules names it, e.g. 'mon-fri 09:00-17:00', not {text!r}"
        )
    return Schedule(parse_days(days), parse_minute(start, "from"), parse_minute(end, "to")).name


def check_fits(new: Schedule, existing: Iterable[Schedule]) -> None:
    """InvalidArgument if new overlaps a schedule its rule has, or is one too many."""
    existing = list(existing)
    if len(existing) >= MAX_SCHEDULES_PER_RULE:
        raise InvalidArgument(
            f"an application keeps at most {MAX_SCHEDULES_PER_RULE} schedules; remove one first"
        )
    minutes = new.week_minutes()
    for other in existing:
        if minutes & other.week_minutes():
            raise InvalidArgument(
                f"{new.name} overlaps the schedule {other.name} of this application; remove it first"
            )


def check_exists_locally(schedule: Schedule, zone: tzinfo, today: date) -> None:
    """NonexistentLocalTime if the start or end falls in a gap of the local
    zone (clocks going forward) on one of the schedule's days within a year."""
    for offset in range(DST_LOOKAHEAD_DAYS + 1):
        day = today + timedelta(days=offset)
        for minute, what, weekday in ((schedule.start, "from", day.weekday()),
                                      (schedule.end, "to", (day.weekday() - (schedule.end <= schedule.start)) % 7)):  # fmt: skip
            if weekday not in schedule.days:
                continue
            wall = datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=zone)
            if wall.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall.replace(
                tzinfo=None
            ):
                raise NonexistentLocalTime(
                    f"{what} {format_minute(minute)} does not exist on {day.isoformat()} in {zone_name(zone)} "
                    "(the clocks skip it); pick a time outside the skipped hour"
                )


def zone_name(zone: tzinfo) -> str:
    return getattr(zone, "key", None) or str(zone)


def local_zone() -> tzinfo:
    """The machine's time zone with its daylight saving rules: $TZ, else what
    /etc/localtime names, else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        candidates.append(os.readlink("/etc/localtime").partition("zoneinfo/")[2])
    for key in filter(None, candidates):
        try:
            return ZoneInfo(key)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    try:
        with open("/etc/localtime", "rb") as stream:
            return ZoneInfo.from_file(stream, key="localtime")
    except (OSError, ValueError):
        return UTC
