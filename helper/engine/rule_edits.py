"""The table edit of each change to a rule's directions (rate, block, quota, priority).

Pure logic. Each part of a direction's rule is changed alone: a limit set on a
blocked direction stays beneath the block, a block lifted leaves the limit
and the quota, a cleared limit leaves the block and the quota; a direction
with nothing left goes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.api import (
    ClearLimit,
    ClearQuota,
    SetBlocked,
    SetLimit,
    SetPriority,
    SetQuota,
)
from chadthrottle.helper.engine.limits import Limit, LimitTable, RuleKey
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
