"""One application's row, its processes and connections, and what is derived from them.

Plain data and functions, kept apart from the Qt model so the model file stays
about the Qt interface and the merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chadthrottle.contract import ApplicationInfo, ConnectionInfo, Direction, ProcessTraffic
from chadthrottle.gui.models.columns import LIMIT_COLUMNS, Column
from chadthrottle.gui.models.connections import ConnectionRates, ConnectionSpeeds
from chadthrottle.gui.models.history import RateHistory
from chadthrottle.units import UnitSystem, format_size


@dataclass
class ProcessRow:
    pid: int
    name: str


@dataclass
class AppRow:
    serial: int  # stable for the row's lifetime: child indexes carry it
    info: ApplicationInfo
    processes: list[ProcessRow]
    history: RateHistory = field(default_factory=RateHistory)
    pending: dict[Direction, int] = field(default_factory=dict)  # 0 = clearing
    # A limit the helper confirmed: (when, time.monotonic(); its rate), until a poll sent after it.
    confirmed: dict[Direction, tuple[float, int]] = field(default_factory=dict)
    # Listed after the processes, only while the row is expanded (fetched lazily).
    connections: list[ConnectionInfo] = field(default_factory=list)
    # Their rates, from the byte counters of successive answers (connections.py).
    connection_rates: ConnectionRates = field(default_factory=ConnectionRates)
    connection_speeds: ConnectionSpeeds = field(default_factory=dict)
    # Each process's own rates (ListProcesses, API 6), by pid, while expanded.
    process_traffic: dict[int, ProcessTraffic] = field(default_factory=dict)
    # Bytes (down, up) over the period the totals column shows; None: not known.
    usage: tuple[int, int] | None = None
    # A priority the viewer asked for: (priority, when the helper confirmed it
    # (time.monotonic()) or None while on its way); kept until a poll sent after that.
    priority_asked: tuple[str, float | None] | None = None
    # identity_or_limits of `identity_of` (the info it was worked out for): each
    # poll compares the new info's with it instead of working the old one out again.
    identity: tuple[object, ...] = ()
    identity_of: ApplicationInfo | None = None
    # Each direction's limit as last shown and since when (unix seconds; 0: before
    # the row was first listed; a limit asked for here: when the helper confirmed
    # it, as it was in force by then): "avg" beside a limit counts only polls under it.
    limit_since: dict[Direction, tuple[int, float]] = field(default_factory=dict)

    def child_count(self) -> int:
        return len(self.processes) + len(self.connections)

    def limit_bps(self, direction: Direction) -> int:
        """The limit to show: a request not yet confirmed wins over the helper's."""
        return self.pending.get(direction, self.info.limit_bps(direction))

    def note_confirmed(self, direction: Direction, now: float) -> None:
        """The helper confirmed the limit shown in direction: in force by now
        (asked for earlier, it may have waited for old windows to drain)."""
        self.limit_since[direction] = (self.limit_bps(direction), now)

    def note_limits(self, now: float) -> None:
        """Remember when each limit shown took its value (now: a change seen)."""
        for direction in Direction:
            shown = self.limit_bps(direction)
            if direction not in self.limit_since:  # listed with it: from before the window
                self.limit_since[direction] = (shown, 0.0)
            elif self.limit_since[direction][0] != shown:
                self.limit_since[direction] = (shown, now)


def sort_key(app: AppRow, column: int) -> Any:
    """What a column sorts by; no limit sorts after every limit."""
    info = app.info
    if column == Column.NAME:
        return info.name.casefold()
    if column == Column.DOWN:
        return info.down_bps
    if column == Column.UP:
        return info.up_bps
    if column in LIMIT_COLUMNS:
        limit = app.limit_bps(LIMIT_COLUMNS[column])
        return float(limit) if limit else float("inf")
    if column == Column.USAGE:
        return float(sum(app.usage)) if app.usage is not None else -1.0
    return info.down_bps + info.up_bps


def filter_text(app: AppRow) -> str:
    """What the filter box matches: name, id and process names."""
    return "\n".join([app.info.name, app.info.id, *(process.name for process in app.processes)])


def matches(app: AppRow, needle: str) -> bool:
    """Whether the filter (case-folded, "" for none) lists this application."""
    return not needle or needle in filter_text(app).casefold()


def identity_or_limits(info: ApplicationInfo) -> tuple[object, ...]:
    """The fields whose change must reach the name column and the limit editors
    (a quota's use as the row shows it: not every byte)."""
    return (info.name, info.icon, info.down_limit_bps, info.up_limit_bps, info.down_limit_owner,
            info.up_limit_owner, info.down_limit_problem, info.up_limit_problem, info.priority,
            info.priority_owner, info.priority_problem, info.down_blocked, info.up_blocked, info.down_schedule,
            info.up_schedule, _quota_shown(info.down_quota_bytes, info.down_quota_left_bytes, info.down_quota_period),
            _quota_shown(info.up_quota_bytes, info.up_quota_left_bytes, info.up_quota_period),
            info.down_limit_reach, info.up_limit_reach)  # fmt: skip


def row_identity(app: AppRow) -> tuple[object, ...]:
    """identity_or_limits of the row's info, kept while that info stays the same object."""
    if app.identity_of is not app.info:
        app.identity, app.identity_of = identity_or_limits(app.info), app.info
    return app.identity


def _quota_shown(budget: int, left: int, period: str) -> tuple[object, ...]:
    """A quota as its line reads it, in whichever units the window shows: a change
    of the binary text alone must repaint the row too."""
    return (budget, period, *(format_size(left, units) for units in UnitSystem)) if budget else ()
