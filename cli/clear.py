"""chadthrottle-ctl clear: what it removed, and what of the application stays.

ClearLimit removes the rate limits of one rule (yours, or the administrator's
with --all-users) and nothing else: a block, a data quota, a schedule and
another owner's rule stay. "limits removed" was printed beside a block and a
quota that still held (walk26); now the line names the rate limits, and the
next ones what stays and the command that lifts each of one's own. `limit
APP --down unlimited` says the same of that direction.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection, Sequence

from chadthrottle.cli.output import owner_label
from chadthrottle.cli.terminal import for_terminal
from chadthrottle.contract import ADMIN_OWNER, RuleInfo, RuleScope, ScheduleInfo
from chadthrottle.units import format_limit, format_size

CLEARED = "rate limits removed"
WORDS = {"down": "download", "up": "upload"}
CTL = "chadthrottle-ctl"


def clear_report(
    app_id: str,
    rules: Sequence[RuleInfo],
    schedules: Sequence[ScheduleInfo],
    uid: int,
    scope: RuleScope = RuleScope.DEFAULT,
) -> str:
    """The lines `clear` prints once ClearLimit is done: rules and schedules as
    ListRules and ListSchedules answer after it; uid: the caller's."""
    stays = what_stays(app_id, rules, schedules, uid, scope)
    return "\n".join([f"{for_terminal(app_id)}: {CLEARED}", *stays])


def what_stays(
    app_id: str,
    rules: Sequence[RuleInfo],
    schedules: Sequence[ScheduleInfo],
    uid: int,
    scope: RuleScope = RuleScope.DEFAULT,
    directions: Collection[str] = tuple(WORDS),
) -> list[str]:
    """What of app_id's rules in those directions ("down", "up") a ClearLimit
    left: "APP: still set: ..." (set, not "in force": a paused block or a
    schedule not running now is not) and the commands that lift the caller's;
    nothing when nothing stays."""
    mine = (
        ADMIN_OWNER if scope is RuleScope.ALL or (uid == 0 and scope is not RuleScope.OWN) else uid
    )
    stays: list[str] = []
    unblock: list[str] = []
    unquota: list[str] = []
    for rule in (r for r in rules if r.app_id == app_id and r.direction in directions):
        whose = f" ({owner_label(rule.owner, uid)})"
        way = WORDS.get(rule.direction, rule.direction)
        if rule.blocked:
            stays.append(f"{way} blocked{whose}")
            unblock += [rule.direction] if rule.owner == mine else []
        if rule.quota_bytes:
            stays.append(
                f"{way} quota of {format_size(rule.quota_bytes)} a {rule.quota_period}{whose}"
            )
            unquota += [rule.direction] if rule.owner == mine else []
        if rule.rate_bps and rule.owner != mine:
            stays.append(f"{way} limit {format_limit(rule.rate_bps)}{whose}")
    said: list[str] = []  # the caller's schedules said here, by name
    for schedule in (s for s in schedules if s.app_id == app_id and _sets(s, directions)):
        stays.append(f"schedule {schedule.name} ({owner_label(schedule.owner, uid)})")
        said += [schedule.name] if schedule.owner == mine else []
    name = for_terminal(app_id)
    lines = []
    if stays:
        lines.append(f"{name}: still set: {for_terminal('; '.join(stays))}")
    scope_flag = {RuleScope.OWN: " --own", RuleScope.ALL: " --all-users"}.get(scope, "")
    typed = shlex.quote(name)  # a command to paste: an id with a space ("script:/a b.py") quoted
    own = [s.name for s in schedules if s.app_id == app_id and s.owner == mine]
    lifts = [
        *([f"{CTL} unblock {typed}{_one_way(unblock)}{scope_flag}"] if unblock else []),
        *([f"{CTL} quota {typed} --off{_one_way(unquota)}{scope_flag}"] if unquota else []),
        # "schedule remove APP" removes every schedule of the caller's: only where
        # each is one said here (`limit APP --up unlimited` says the upload's alone)
        *([f"{CTL} schedule remove {typed}{scope_flag}"] if said and len(said) == len(own) else
          [f"{CTL} schedule remove {typed} {shlex.quote(for_terminal(n))}{scope_flag}" for n in said]),
    ]  # fmt: skip
    if lifts:
        lines.append("to lift yours: " + "; ".join(lifts))
    return lines


def _sets(schedule: ScheduleInfo, directions: Collection[str]) -> bool:
    """Whether the schedule limits or blocks one of those directions."""
    return ("down" in directions and bool(schedule.down_bps or schedule.down_blocked)) or (
        "up" in directions and bool(schedule.up_bps or schedule.up_blocked)
    )


def _one_way(directions: list[str]) -> str:
    """ " --down" or " --up" for one direction; "" (both) for two."""
    return f" --{directions[0]}" if len(set(directions)) == 1 else ""
