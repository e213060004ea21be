"""The read side of the rule table: ListRules' and ListSchedules' rows, and
what each direction of a rule holds for ListApplications.

Pure: functions of the table, the gates' state (gating.py) and the local time
of one listing; the kernel's quota counts are read through the gates given,
when the listing is made: at a publish (engine._publish, after each tick and
change), not at a read call, so a quota the kernel stops between ticks is
listed spent from the next tick's publish (flake34b). The engine builds one
per publish or call, under its lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from chadthrottle.contract import ADMIN_OWNER, COUNT_UNKNOWN, Direction, RuleInfo, ScheduleInfo
from chadthrottle.helper.engine.gating import GatePort, GateTruth, Gating, held_on
from chadthrottle.helper.engine.limits import Limit, LimitTable, RuleKey
from chadthrottle.helper.engine.listing import DirectionHeld
from chadthrottle.helper.engine.quotas import Quota, period_start
from chadthrottle.helper.engine.schedules import Schedule, format_days, format_minute
from chadthrottle.quota_period import period_after


@dataclass(frozen=True)
class RuleListing:
    table: LimitTable
    gating: Gating
    gates: GatePort | None  # the kernel's gates, None where the datapath has none
    local_now: datetime  # for the period a quota not followed now is in

    def held(
        self, key: RuleKey, limits: Mapping[Direction, Limit]
    ) -> dict[Direction, DirectionHeld]:
        """What each direction of a rule holds now, for the listing (a rule
        not in force says so in its problem); quotas as the kernel counts now.
        A used-up quota whose gate the kernel still holds to its budget is
        blocked, then-rate or not: its gate opens to the then-rate only at the
        tick after the shaper was given it (gating.py).
        Where the kernel refused its gate's last write, what the gate holds:
        the setting before while its lease runs (GateTruth.lapses_in_s: a block, a
        spent quota listed blocked), nothing (open) once it lapsed or where it
        held nothing before; also in a direction the rule no longer limits (a
        schedule ended). An administrator's rule, whose row shows the
        application, also says what the old gate of a user's rule it took
        over may still hold (GateTruth.untagged: sockets its retag missed)."""
        rated = self.gating.rated(key, dict(limits))
        held = {}
        for direction in self.gating.lapsing_rules().get(key, set()) - set(limits):
            truth = self.gating.truth(key, direction)  # what the rule no longer asks
            held[direction] = DirectionHeld(blocked=truth.closed, problem=_problem(truth, False))
        for direction, limit in limits.items():
            quota = limit.quota
            left = self._quota_left(key, direction, quota) if quota else 0
            truth = self.gating.truth(key, direction)
            gate = truth.setting
            counting = gate is not None and gate.budget_bytes is not None
            if truth.lapses_in_s > 0:
                blocked = truth.closed
                spent = blocked and gate is not None and not gate.blocked  # its quota, not a block
                left = 0 if spent and quota else left
            elif truth.failed and gate is None:  # nothing in its gate: traffic fails open
                blocked = False
            else:
                blocked = limit.blocked or (
                    quota is not None and left == 0 and (not quota.then_rate_bps or counting)
                )
            held[direction] = DirectionHeld(
                rate_bps=0 if blocked else (rated[direction].rate_bps if direction in rated else 0),
                blocked=blocked,
                quota_bytes=quota.budget_bytes if quota else 0,
                quota_left_bytes=left,
                quota_period=quota.period.value if quota else "",
                schedule=self.table.active_schedule(key, direction),
                problem=_problem(truth, direction in rated),
            )
        if key[1] == ADMIN_OWNER:  # its row shows the application: a user's rule it outranked
            for other, directions in self.gating.lapsing_rules().items():
                for direction in directions if other[0] == key[0] and other != key else ():
                    truth = self.gating.truth(other, direction)
                    shown = held.get(direction, DirectionHeld())
                    if truth.untagged and not shown.problem:  # retagged, but not every socket
                        held[direction] = replace(shown, problem=_problem(truth, False))
        return held

    def rules(self) -> list[RuleInfo]:
        """ListRules: every plain rule's directions, by application and owner."""
        table = self.table
        return [
            RuleInfo(
                app_id,
                direction.value,
                limit.rate_bps,
                limit.burst_bytes,
                owner,
                not table.paused
                and not table.outranked((app_id, owner))
                and self.gating.truth((app_id, owner), direction).as_asked,
                *self._gate_fields((app_id, owner), direction, limit),
                limit.priority.value,
                *self._quota_period(limit.quota),
            )
            for (app_id, owner), limits in sorted(table.plain_items())
            for direction, limit in sorted(limits.items(), key=lambda item: item[0].value)
        ]

    def schedules(self) -> list[ScheduleInfo]:
        """ListSchedules: every rule's schedules, whether each is active now."""
        return [
            ScheduleInfo(
                app_id,
                owner,
                schedule.name,
                format_days(schedule.days),
                format_minute(schedule.start),
                format_minute(schedule.end),
                _rate_of(schedule, Direction.DOWN),
                _rate_of(schedule, Direction.UP),
                _blocks(schedule, Direction.DOWN),
                _blocks(schedule, Direction.UP),
                self.table.schedule_is_active((app_id, owner), schedule),
            )
            for (app_id, owner), schedules in sorted(self.table.schedule_items())
            for schedule in schedules
        ]

    def _gate_fields(
        self, key: RuleKey, direction: Direction, limit: Limit
    ) -> tuple[bool, int, str, int, int, int]:
        """ListRules' blocked and quota keys of one rule's direction."""
        quota = limit.quota
        if quota is None:
            return limit.blocked, 0, "", 0, 0, 0
        left = self._quota_left(key, direction, quota)
        return (
            limit.blocked,
            quota.budget_bytes,
            quota.period.value,
            quota.reset_minute,
            quota.then_rate_bps,
            left,
        )

    def _quota_period(self, quota: Quota | None) -> tuple[int, int, int, int]:
        """ListRules' quota period keys (API 8): the current period's start and
        end, unix seconds, and the local offset at each, by the rule the
        helper resets the quota at (quotas.period_start)."""
        if quota is None:
            return 0, 0, 0, 0
        began = period_start(quota, self.local_now)
        ends = period_after(quota.period.value, quota.reset_minute, began)
        return (int(began.timestamp()), int(ends.timestamp()), _offset_s(began), _offset_s(ends))

    def _quota_left(self, key: RuleKey, direction: Direction, quota: Quota) -> int:
        """As the kernel counts now; for a quota not followed now (its
        application is not running), from what was stored for this period."""
        state = self.gating.quota_state(key, direction, self.gates)
        if state is not None:
            return state.left
        stored = self.table.quota_use.get((key, direction))
        if stored is None or stored[0] != period_start(quota, self.local_now).timestamp():
            return quota.budget_bytes
        return max(0, quota.budget_bytes - stored[1])


def _offset_s(moment: datetime) -> int:
    """moment's (aware) offset east of UTC, whole seconds."""
    offset = moment.utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _problem(truth: GateTruth, rated: bool) -> str:
    """A rule's direction's problem with its gate (_gate_problem): why the
    kernel refused its last write, and how long what it held before lasts;
    rated: a rate holds the direction beneath it. None once it lapsed
    where the open gate is what the rule asks (GateTruth.as_asked)."""
    if truth.untagged:
        return _untagged_problem(truth.failed, truth.lapses_in_s)
    if truth.unread and not truth.lapses_in_s:
        return _unread_problem(truth.unread, truth.as_asked)
    if not truth.lapses_in_s and truth.as_asked:
        return ""
    return _gate_problem(truth.failed, truth.lapses_in_s, rated)


def _gate_problem(why: str, lapses_in_s: float, rated: bool = False) -> str:
    """A rule's gate the kernel did not take (Gating.failed): its block or
    quota is not held, whatever the listing's other keys say; lapses_in_s:
    the old setting still in the gate holds that long more (0: none); rated:
    a rate holds the direction beneath it, once lapsed (gating.held_on)."""
    if not why:
        return ""
    if lapses_in_s > 0:
        return f"the kernel did not take a change to its block or quota ({why}): {held_on(lapses_in_s, rated)}"
    return f"the kernel did not take its block or quota ({why}): it does not hold"


def _untagged_problem(why: str, lapses_in_s: float) -> str:
    """A rule taken out of force (lifted, ended, outranked) whose gate the
    kernel would not open (GateTruth.untagged): its processes' sockets were
    untagged and pass, but the untag walks the descriptors of the processes
    it tagged, and a socket they no longer hold (handed to another process),
    a connection not yet accepted (made from a listener that carried the
    slot) or one a process forked since the last tick holds keeps the slot,
    and the old setting holds it until the lease lapses. Until 2026-12-06 listed
    open with no problem meanwhile (a connection accepted after the unblock
    stayed blocked: tests/helper/kernel/test_refused_gate_of_untagged_sockets.py)."""
    return (
        f"the kernel did not take a change to its block or quota ({why}): the sockets the "
        f"helper re-tagged pass, but on one it could not reach (handed to another program, "
        f"not yet accepted, of a process not yet seen) {held_on(lapses_in_s, False)}"
    )


def _unread_problem(why: str, held: bool) -> str:
    """A quota whose count the kernel would not give (GateTruth.unread): its
    gate is renewed as it is, so the kernel holds the quota as last set
    (held: that is the rule's, in this period); only what is left of it is not
    known. Until 2026-12-06 listed "it does not hold", as a refused write."""
    holds = (
        COUNT_UNKNOWN if held else "the kernel holds what was last set, not this quota or period"
    )
    return f"its quota's count could not be read ({why}): {holds}"


def _rate_of(schedule: Schedule, direction: Direction) -> int:
    limit = schedule.limits.get(direction)
    return limit.rate_bps if limit is not None else 0


def _blocks(schedule: Schedule, direction: Direction) -> bool:
    limit = schedule.limits.get(direction)
    return limit is not None and limit.blocked
