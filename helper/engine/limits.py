"""Desired limits per application and the slots that carry them in the kernel.

Pure logic. A slot is the small number the datapath stores on each socket of a
limited application and the minor of its HTB classes. Slots are handed out in
rotation so a freed slot is not reused while stale sockets might still carry it.
"""

from __future__ import annotations

import builtins
import dataclasses
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeAlias

from chadthrottle.contract import ADMIN_OWNER, MAX_BURST_BYTES, MIN_BURST_BYTES, Direction
from chadthrottle.helper.engine.quotas import Quota
from chadthrottle.helper.errors import InvalidArgument
from chadthrottle.helper.kernel.layout import HTB_MAJOR
from chadthrottle.priority import Priority

if TYPE_CHECKING:
    from chadthrottle.helper.engine.schedules import Schedule

MAX_SLOTS = 0xFFFB  # HTB minors 1..0xfffb: 0xfffc-0xffff are the link tree's (helper/kernel/htb.py)
# A slot is also the major of its class's leaf qdisc (<slot>:0): the slot equal to
# our HTB root's major would give a leaf the root's own handle, which the kernel
# refuses, and that class could never be made. Never handed out.
RESERVED_SLOTS = frozenset({HTB_MAJOR})
DEFAULT_BURST_SECONDS = 0.05


def default_burst_bytes(rate_bps: int) -> int:
    return max(MIN_BURST_BYTES, int(rate_bps * DEFAULT_BURST_SECONDS))


@dataclass(frozen=True)
class Limit:
    """What one direction of a rule holds: a rate (0: none), a block, a quota,
    a priority (SetPriority sets it on both directions alike). A block keeps
    the rate beneath it, which applies again once unblocked."""

    rate_bps: int
    burst_bytes: int
    blocked: bool = False
    quota: Quota | None = None
    priority: Priority = Priority.NORMAL

    @property
    def is_empty(self) -> bool:
        """Nothing left to hold: the direction can go."""
        return self.priority_only and self.priority is Priority.NORMAL

    @property
    def priority_only(self) -> bool:
        """No rate, block or quota: at most a priority, which orders only under a link."""
        return not self.rate_bps and not self.blocked and self.quota is None

    @classmethod
    def with_default_burst(cls, rate_bps: int, burst_bytes: int) -> Limit:
        if burst_bytes == 0:
            return cls(rate_bps, default_burst_bytes(rate_bps))
        if burst_bytes < MIN_BURST_BYTES or burst_bytes > MAX_BURST_BYTES:
            raise InvalidArgument(
                f"burst must be between {MIN_BURST_BYTES} and {MAX_BURST_BYTES} bytes (0 for the default)"
            )
        return cls(rate_bps, burst_bytes)


def _overlay(plain: Limit | None, scheduled: Limit) -> Limit:
    """A schedule's rate and block over a plain limit: the schedule's rate
    replaces the plain rate; the plain block and quota stay in force."""
    if plain is None:
        return scheduled
    rate, burst = (
        (scheduled.rate_bps, scheduled.burst_bytes)
        if scheduled.rate_bps
        else (plain.rate_bps, plain.burst_bytes)
    )
    return dataclasses.replace(
        plain, rate_bps=rate, burst_bytes=burst, blocked=plain.blocked or scheduled.blocked
    )


@dataclass(frozen=True)
class LinkSetting:
    """What SetLinkCapacity stored: the bottleneck's rate per direction (L3
    bytes/s, 0: that direction not shaped) and whether the helper estimates it
    (a non-zero rate is then where the estimate starts)."""

    down_bps: int = 0
    up_bps: int = 0
    estimate: bool = False

    def set_bps(self, direction: Direction) -> int:
        return self.down_bps if direction is Direction.DOWN else self.up_bps

    @property
    def is_off(self) -> bool:
        return not self.down_bps and not self.up_bps and not self.estimate


LINK_OFF = LinkSetting()


def priority_of(limits: dict[Direction, Limit]) -> Priority:
    """A rule's priority (the same on each direction it holds), NORMAL when none."""
    for limit in limits.values():
        if limit.priority is not Priority.NORMAL:
            return limit.priority
    return Priority.NORMAL


# A rule is stored against (application id, owner): owner ADMIN_OWNER for an
# administrator rule (every user's processes), else the uid whose processes it
# applies to. Each rule has its own slot: two users' rules on one program are
# two separate limits.
RuleKey: TypeAlias = tuple[str, int]


class SlotAllocator:
    def __init__(self, max_slots: int = MAX_SLOTS) -> None:
        self._max = max_slots
        self._usable = max_slots - sum(1 <= slot <= max_slots for slot in RESERVED_SLOTS)
        self._by_rule: dict[RuleKey, int] = {}
        self._next = 1

    def slot_of(self, key: RuleKey) -> int | None:
        return self._by_rule.get(key)

    def acquire(self, key: RuleKey) -> int:
        if key in self._by_rule:
            return self._by_rule[key]
        used = set(self._by_rule.values())
        if len(used) >= self._usable:
            raise InvalidArgument(f"at most {self._max} rules can be enforced at once")
        while self._next in used or self._next in RESERVED_SLOTS:
            self._next = self._next % self._max + 1
        slot = self._next
        self._next = self._next % self._max + 1
        self._by_rule[key] = slot
        return slot

    def rules(self) -> set[RuleKey]:
        return set(self._by_rule)

    def release(self, key: RuleKey) -> None:
        self._by_rule.pop(key, None)


class LimitTable:
    """(app id, owner) -> {direction: Limit}; the one record of what users asked for.

    ``paused`` is part of that record: paused limits are kept (and listed) but
    not enforced, and it is stored, rolled back and restored with them. An
    administrator rule on an application outranks every user rule on it: while
    it exists, the user rules are kept but not in force.
    """

    def __init__(self) -> None:
        # What the kernel should hold: the plain limits, overlaid by the limits
        # of the schedules active now (activate()). Everything the engine plans
        # from reads this; set/clear change the plain limits beneath it.
        self._limits: dict[RuleKey, dict[Direction, Limit]] = {}
        self._owners: dict[
            str, set[int]
        ] = {}  # app id -> owners of its rules in force, for lookups by app
        self._plain: dict[RuleKey, dict[Direction, Limit]] = {}
        self._schedules: dict[RuleKey, tuple[Schedule, ...]] = {}
        self._active: dict[
            RuleKey, dict[Direction, Limit]
        ] = {}  # limits of the schedules active now
        self._activated_at: datetime | None = None
        self.paused = False
        self.link = LINK_OFF  # stored with the rules: SetLinkCapacity
        # What each quota's current period has used (rule, direction) ->
        # (period start, unix seconds; bytes): the engine keeps it up to date
        # and it is stored with the rules, so a restart does not refill a budget.
        self.quota_use: dict[tuple[RuleKey, Direction], tuple[float, int]] = {}

    def get(self, key: RuleKey) -> dict[Direction, Limit]:
        return dict(self._limits.get(key, {}))

    def set(self, key: RuleKey, direction: Direction, limit: Limit) -> None:
        self._plain.setdefault(key, {})[direction] = limit
        self._rebuild(key)

    def clear(self, key: RuleKey, directions: tuple[Direction, ...]) -> None:
        limits = self._plain.get(key, {})
        for direction in directions:
            limits.pop(direction, None)
        if not limits:
            self._plain.pop(key, None)
        self._rebuild(key)

    def update(self, key: RuleKey, directions: tuple[Direction, ...],
               change: Callable[[Limit | None], Limit | None]) -> None:  # fmt: skip
        """Replace the plain limit of each direction with change(old) (None:
        there is none); one that comes out None or empty goes."""
        for direction in directions:
            new = change(self._plain.get(key, {}).get(direction))
            if new is None or new.quota is None:  # a quota removed: one set again counts from zero
                self.quota_use.pop((key, direction), None)
            if new is None or new.is_empty:
                self.clear(key, (direction,))
            else:
                self.set(key, direction, new)

    def drop(self, key: RuleKey) -> None:
        """Forget the rule: its plain limits, its schedules, its quotas' use."""
        self._plain.pop(key, None)
        for direction in Direction:
            self.quota_use.pop((key, direction), None)
        self._schedules.pop(key, None)
        self._active.pop(key, None)
        self._rebuild(key)

    def _rebuild(self, key: RuleKey) -> None:
        """The limits in force for key: its plain ones, overlaid by its active schedule's."""
        plain = self._plain.get(key, {})
        merged = {
            **plain,
            **{d: _overlay(plain.get(d), limit) for d, limit in self._active.get(key, {}).items()},
        }
        owners = self._owners.setdefault(key[0], set())
        if merged:
            self._limits[key] = merged
            owners.add(key[1])
        else:
            self._limits.pop(key, None)
            owners.discard(key[1])
        if not owners:
            self._owners.pop(key[0], None)

    # --- schedules (helper/engine/schedules.py) -----------------------------------

    def schedules_of(self, key: RuleKey) -> tuple[Schedule, ...]:
        return self._schedules.get(key, ())

    def add_schedule(self, key: RuleKey, schedule: Schedule) -> None:
        """Add one (the caller checked it fits); in force at once if active at
        the last activation."""
        self._schedules[key] = (*self._schedules.get(key, ()), schedule)
        self._activate_key(key)

    def remove_schedules(self, key: RuleKey, name: str = "") -> int:
        """Remove the schedule called name (every one for ""); how many went."""
        kept = tuple(s for s in self._schedules.get(key, ()) if name and s.name != name)
        removed = len(self._schedules.get(key, ())) - len(kept)
        if kept:
            self._schedules[key] = kept
        else:
            self._schedules.pop(key, None)
        self._activate_key(key)
        return removed

    def schedule_items(self) -> list[tuple[RuleKey, tuple[Schedule, ...]]]:
        return list(self._schedules.items())

    def schedule_is_active(self, key: RuleKey, schedule: Schedule) -> bool:
        return self._activated_at is not None and schedule.is_active(self._activated_at)

    def active_schedule(self, key: RuleKey, direction: Direction) -> str:
        """The name of the schedule that sets this direction of the rule now, "" none."""
        if (
            key not in self._active
            or direction not in self._active[key]
            or self._activated_at is None
        ):
            return ""
        found = [
            s.name
            for s in self._schedules.get(key, ())
            if direction in s.limits and s.is_active(self._activated_at)
        ]
        return found[0] if found else ""

    def activate(self, local_now: datetime) -> bool:
        """Put in force the schedules active at local_now (the wall clock) and
        take out the others; whether the limits in force changed. Schedules
        switch on minutes: within the minute of the last call, nothing to do."""
        last = self._activated_at
        if last is not None and (last.date(), last.hour, last.minute) == (
            local_now.date(),
            local_now.hour,
            local_now.minute,
        ):
            return False
        self._activated_at = local_now
        changed = False
        for key in set(self._schedules) | set(self._active):
            before = self._limits.get(key)
            self._activate_key(key)
            changed |= self._limits.get(key) != before
        return changed

    def _activate_key(self, key: RuleKey) -> None:
        active: dict[Direction, Limit] = {}
        if self._activated_at is not None:
            for schedule in self._schedules.get(key, ()):
                if schedule.is_active(self._activated_at):
                    active.update(schedule.limits)
        if active:
            self._active[key] = active
        else:
            self._active.pop(key, None)
        self._rebuild(key)

    def plain_items(self) -> list[tuple[RuleKey, dict[Direction, Limit]]]:
        """The plain limits (what SetLimit set), without the schedules'."""
        return [(key, dict(limits)) for key, limits in self._plain.items()]

    def is_stored(self, key: RuleKey) -> bool:
        return key in self._plain or key in self._schedules

    def stored_keys(self) -> builtins.set[RuleKey]:  # set is the method above, in here
        """Every rule with something stored: plain limits or schedules."""
        return set(self._plain) | set(self._schedules)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused

    def items(self) -> list[tuple[RuleKey, dict[Direction, Limit]]]:
        return [(key, dict(limits)) for key, limits in self._limits.items()]

    def __contains__(self, key: object) -> bool:
        return key in self._limits

    def __len__(self) -> int:
        """Stored rules (with plain limits, schedules or both), in force or not."""
        return len(self.stored_keys())

    def has_app(self, app_id: str) -> bool:
        """Whether any rule, of any owner, names app_id (schedules included)."""
        return app_id in self._owners or any(key[0] == app_id for key in self._schedules)

    def rule_owners(self, app_id: str) -> frozenset[int]:
        """Owners of every stored rule on app_id (plain limits or schedules, in force or not)."""
        return frozenset(owner for app, owner in self.stored_keys() if app == app_id)

    def in_force_of(self, app_id: str) -> list[RuleKey]:
        """The rules on app_id the kernel should hold now (see enforced())."""
        if self.paused or app_id not in self._owners:
            return []
        if ADMIN_OWNER in self._owners[app_id]:
            return [(app_id, ADMIN_OWNER)]
        return [(app_id, owner) for owner in self._owners[app_id]]

    def count_of_owner(self, owner: int) -> int:
        return sum(1 for _app, rule_owner in self.stored_keys() if rule_owner == owner)

    def copy(self) -> LimitTable:
        clone = LimitTable()
        clone._limits = {key: dict(limits) for key, limits in self._limits.items()}
        clone._owners = {app_id: set(owners) for app_id, owners in self._owners.items()}
        clone._plain = {key: dict(limits) for key, limits in self._plain.items()}
        clone._schedules = dict(self._schedules)
        clone._active = {key: dict(limits) for key, limits in self._active.items()}
        clone._activated_at = self._activated_at
        clone.paused = self.paused
        clone.link = self.link
        clone.quota_use = dict(self.quota_use)
        return clone

    def outranked(self, key: RuleKey) -> bool:
        """A user rule while an administrator rule names the same application."""
        return key[1] != ADMIN_OWNER and (key[0], ADMIN_OWNER) in self._limits

    def enforced(self) -> list[tuple[RuleKey, dict[Direction, Limit]]]:
        """The rules the kernel should hold now: none while paused, and no user
        rule an administrator rule outranks."""
        if self.paused:
            return []
        return [
            (key, dict(limits)) for key, limits in self._limits.items() if not self.outranked(key)
        ]


def rules_changed(
    before: list[tuple[RuleKey, dict[Direction, Limit]]],
    after: list[tuple[RuleKey, dict[Direction, Limit]]],
) -> set[tuple[str, Direction]]:
    """The (application, direction)s whose rules in force differ between two
    reads of LimitTable.enforced(): a limit, block, quota or priority set,
    changed or cleared, paused or resumed, a schedule switched. Per direction:
    an unblocked download leaves the application's upload as it was (its
    rate window is not restarted)."""
    old: dict[tuple[str, Direction], dict[RuleKey, Limit]] = defaultdict(dict)
    new: dict[tuple[str, Direction], dict[RuleKey, Limit]] = defaultdict(dict)
    for items, by_app in ((before, old), (after, new)):
        for key, limits in items:
            for direction, limit in limits.items():
                by_app[(key[0], direction)][key] = limit
    return {which for which in old.keys() | new.keys() if old.get(which) != new.get(which)}


def gates_changed(
    before: list[tuple[RuleKey, dict[Direction, Limit]]],
    after: list[tuple[RuleKey, dict[Direction, Limit]]],
) -> set[tuple[RuleKey, Direction]]:
    """The rules' directions in force whose gate is to hold otherwise between
    two reads of LimitTable.enforced(): a block set or lifted, or a quota
    where no block is (a block's gate holds the block, whatever quota is
    beneath it: gating.py), a rule gone or outranked. A rate or a priority
    set beside a gate the kernel refuses needs nothing of it. By rule, not
    application: each rule has its own slot, so its own gates (until
    2026-12-06 by application: another user's refused gate refused yours)."""

    def gated(items: list[tuple[RuleKey, dict[Direction, Limit]]]
              ) -> dict[tuple[RuleKey, Direction], Limit]:  # fmt: skip
        return {(key, direction): Limit(0, 0, limit.blocked, None if limit.blocked else limit.quota)
                for key, limits in items for direction, limit in limits.items()
                if limit.blocked or limit.quota is not None}  # fmt: skip

    old, new = gated(before), gated(after)
    return {which for which in old.keys() | new.keys() if old.get(which) != new.get(which)}
