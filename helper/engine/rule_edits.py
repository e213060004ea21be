"""The table edit of each change to a rule: its directions (rate, block,
quota, priority) and its schedules, each checked before anything changes.

Pure logic. Each part of a direction's rule is changed alone: a limit set on a
blocked direction stays beneath the block, a block lifted leaves the limit
and the quota, a cleared limit leaves the block and the quota; a direction
with nothing left goes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date, tzinfo

from chadthrottle.contract import ADMIN_OWNER, MAX_RULES_PER_USER, Direction
from chadthrottle.helper.adapter.validation import validate_app_id
from chadthrottle.helper.engine.api import (
    AddSchedule,
    ClearLimit,
    ClearQuota,
    LimitChange,
    RemoveSchedules,
    SetBlocked,
    SetLimit,
    SetPriority,
    SetQuota,
)
from chadthrottle.helper.engine.limits import Limit, LimitTable, RuleKey
from chadthrottle.helper.engine.schedules import Schedule, check_exists_locally, check_fits
from chadthrottle.helper.errors import InvalidArgument
from chadthrottle.priority import Priority

DirectionChange = SetLimit | ClearLimit | SetBlocked | SetQuota | ClearQuota | SetPriority
NOTHING = Limit(0, 0)


def removes_only(change: DirectionChange) -> bool:
    """A change that can only take something away: it makes no new rule."""
    return (
        isinstance(change, (ClearLimit, ClearQuota))
        or (isinstance(change, SetBlocked) and not change.blocked)
        or (isinstance(change, SetPriority) and change.priority is Priority.NORMAL)
    )


def direction_edit(change: DirectionChange, key: RuleKey) -> Callable[[LimitTable], None]:
    """The edit of the plain limits of key's directions that change makes."""
    if isinstance(change, SetLimit):
        limit = Limit.with_default_burst(
            change.rate_bps, change.burst_bytes
        )  # InvalidArgument now, not later
        new: Callable[[Limit | None], Limit | None] = lambda old: replace(  # noqa: E731
            old or NOTHING, rate_bps=limit.rate_bps, burst_bytes=limit.burst_bytes
        )
        directions: tuple[Direction, ...] = (change.direction,)
    elif isinstance(change, ClearLimit):
        new = lambda old: replace(old, rate_bps=0, burst_bytes=0) if old else None  # noqa: E731
        directions = change.directions
    elif isinstance(change, SetBlocked):
        new = lambda old: replace(old or NOTHING, blocked=change.blocked)  # noqa: E731
        directions = change.directions
    elif isinstance(change, SetPriority):  # a rule's priority, on both directions alike
        if change.priority is Priority.NORMAL:
            new = lambda old: replace(old, priority=Priority.NORMAL) if old else None  # noqa: E731
        else:
            new = lambda old: replace(old or NOTHING, priority=change.priority)  # noqa: E731
        directions = tuple(Direction)
    elif isinstance(change, SetQuota):
        new = lambda old: replace(old or NOTHING, quota=change.quota)  # noqa: E731
        directions = change.directions
    else:
        new = lambda old: replace(old, quota=None) if old else None  # noqa: E731
        directions = change.directions
    return lambda table: table.update(key, directions, new)


Edit = Callable[[LimitTable], None]


class ChangeBatch:
    """The edits of one batch of changes to a table, each checked against the
    table as the changes before it in the batch leave it: the per-user bound
    on rules counts the batch's new rules, and two overlapping schedules in
    one batch are refused too."""

    def __init__(self, table: LimitTable, zone: tzinfo, today: Callable[[], date],
                 held_cleared: Callable[[int], set[RuleKey]] = lambda _owner: set()) -> None:  # fmt: skip
        """zone, today: where and on which local day a schedule must exist;
        held_cleared: a user's rules cleared whose slots are held still
        (Apply.held_cleared): counted against the user's bound on rules."""
        self._table = table
        self._held_cleared = held_cleared
        self._zone = zone
        self._today = today
        self._new_rules: set[RuleKey] = set()  # the rules this batch creates so far
        self._planned: LimitTable | None = None  # the table as the batch's schedules leave it

    def edit_for(self, change: LimitChange, app_id: str) -> Edit:
        """The table edit one change makes; InvalidArgument before anything changes."""
        key: RuleKey = (app_id, change.owner)
        if not isinstance(change, (AddSchedule, RemoveSchedules)) and removes_only(change):
            return direction_edit(change, key)
        if isinstance(change, RemoveSchedules):
            return self._schedule_edit(change, key)
        try:  # a stored id must load again at the next start
            validate_app_id(app_id)
        except InvalidArgument as error:
            raise InvalidArgument(f"this application's id cannot be stored: {error}") from None
        if isinstance(change, AddSchedule):
            edit = self._schedule_edit(change, key)
        else:
            edit = direction_edit(change, key)
        table, new_rules = self._table, self._new_rules
        if change.owner != ADMIN_OWNER and not table.is_stored(key) and key not in new_rules:
            held = table.count_of_owner(change.owner) + sum(
                1 for _, owner in new_rules if owner == change.owner
            )
            if held >= MAX_RULES_PER_USER:
                raise InvalidArgument(
                    f"you have rules for {held} applications, the most one user may keep; "
                    "clear some first"
                )
            cleared = len(self._held_cleared(change.owner) - new_rules - {key})
            if held + cleared >= MAX_RULES_PER_USER:
                raise InvalidArgument(
                    f"you have rules for {held} applications and {cleared} cleared ones whose "
                    "sockets still carry them (passed on, in flight in a unix socket, or "
                    f"waiting to be accepted): {MAX_RULES_PER_USER} in all is the most one user "
                    "may hold; close those sockets or clear other rules first"
                )
            new_rules.add(key)
        return edit

    def _schedule_edit(self, change: AddSchedule | RemoveSchedules, key: RuleKey) -> Edit:
        if self._planned is None:
            self._planned = self._table.copy()
        planned = self._planned
        if isinstance(change, RemoveSchedules):
            names = [schedule.name for schedule in planned.schedules_of(key)]
            if not names or (change.name and change.name not in names):
                raise InvalidArgument(
                    f"{key[0]} has no schedule {change.name!r} of this rule"
                    if change.name
                    else f"{key[0]} has no schedules of this rule"
                )
            name = change.name

            def edit(table: LimitTable) -> None:
                table.remove_schedules(key, name)

        else:
            rates = ((Direction.DOWN, change.down_bps), (Direction.UP, change.up_bps))
            limits = {
                direction: Limit.with_default_burst(rate, 0) for direction, rate in rates if rate
            }
            limits.update({direction: Limit(0, 0, blocked=True) for direction in change.blocked})
            schedule = Schedule(change.days, change.start, change.end, limits)
            check_fits(schedule, planned.schedules_of(key))
            check_exists_locally(schedule, self._zone, self._today())

            def edit(table: LimitTable) -> None:
                table.add_schedule(key, schedule)

        edit(planned)
        return edit
