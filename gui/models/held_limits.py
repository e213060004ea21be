"""The limit that holds a direction as a poll measures it, for the graph's
limit line: drawn at each moment as it was, none where none held.

The graph drew the current limit over the whole past minute: after a schedule
lowered a limit from 1.00 MB/s to 200 KB/s, 40 s of 250-600 KB/s stood above
a 200 KB/s line, as if the limit had failed (walk28). Each poll's rates are
kept with what held them (history.py), from the helper's listing, never from
a request not confirmed yet (the rates of that poll were measured before it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from chadthrottle.contract import ApplicationInfo, Direction, RuleInfo
from chadthrottle.gui.models.history import NO_LIMITS
from chadthrottle.gui.models.limit_truth import LimitState, limit_state


def held_bps(state: LimitState) -> float:
    """What the kernel holds the direction to: 0 a block, a rate, NaN none
    (no limit, or one set and not enforced: paused, the helper's problem).
    A limit enforced and not met holds still; so does a killed helper's rate
    limit (LEFT_IN_FORCE) and a block the kernel keeps until a lease lapses."""
    if not state.held:
        return math.nan
    if not state.holding:
        return math.nan
    return 0.0 if state.blocked else float(state.rate_bps)


def held_limits(
    info: ApplicationInfo, viewer_uid: int, rules: Iterable[RuleInfo], enforcement_problem: str
) -> tuple[float, float]:
    """(down, up) held_bps of one listed application; most hold nothing, and
    are answered without building their states (once per application and poll)."""
    if not (
        info.down_limit_bps
        or info.up_limit_bps
        or info.down_blocked
        or info.up_blocked
        or info.down_quota_bytes
        or info.up_quota_bytes
    ):
        return NO_LIMITS
    rules = tuple(rules)
    down, up = (
        held_bps(limit_state(info, direction, viewer_uid, None, rules, enforcement_problem))
        for direction in Direction
    )
    return down, up
