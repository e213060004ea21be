"""Desired limits per application and the slots that carry them in the kernel.

Pure logic. A slot is the small number the datapath stores on each socket of a
limited application and the minor of its HTB classes. Slots are handed out in
rotation so a freed slot is not reused while stale sockets might still carry it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from chadthrottle.contract import ADMIN_OWNER, MAX_BURST_BYTES, MIN_BURST_BYTES, Direction
from chadthrottle.helper.errors import InvalidArgument

MAX_SLOTS = 0xFFFE  # HTB minors 1..0xfffe
DEFAULT_BURST_SECONDS = 0.05


def default_burst_bytes(rate_bps: int) -> int:
    return max(MIN_BURST_BYTES, int(rate_bps * DEFAULT_BURST_SECONDS))


@dataclass(frozen=True)
class Limit:
    rate_bps: int
    burst_bytes: int

    @classmethod
    def with_default_burst(cls, rate_bps: int, burst_bytes: int) -> Limit:
        if burst_bytes == 0:
            return cls(rate_bps, default_burst_bytes(rate_bps))
        if burst_bytes < MIN_BURST_BYTES or burst_bytes > MAX_BURST_BYTES:
            raise InvalidArgument(
                f"burst must be between {MIN_BURST_BYTES} and {MAX_BURST_BYTES} bytes (0 for the default)"
            )
        return cls(rate_bps, burst_bytes)


# A rule is stored against (application id, owner): owner ADMIN_OWNER for an
# administrator rule (every user's processes), else the uid whose processes it
# applies to. Each rule has its own slot: two users' rules on one program are
# two separate limits.
RuleKey: TypeAlias = tuple[str, int]


class SlotAllocator:
    def __init__(self, max_slots: int = MAX_SLOTS) -> None:
        self._max = max_slots
        self._by_rule: dict[RuleKey, int] = {}
        self._next = 1

    def slot_of(self, key: RuleKey) -> int | None:
        return self._by_rule.get(key)

    def acquire(self, key: RuleKey) -> int:
        if key in self._by_rule:
            return self._by_rule[key]
        used = set(self._by_rule.values())
        if len(used) >= self._max:
            raise InvalidArgument(f"at most {self._max} rules can be enforced at once")
        while self._next in used:
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
        self._limits: dict[RuleKey, dict[Direction, Limit]] = {}
        self._owners: dict[str, set[int]] = {}  # app id -> owners of its rules, for lookups by app
        self.paused = False

    def get(self, key: RuleKey) -> dict[Direction, Limit]:
        return dict(self._limits.get(key, {}))

    def set(self, key: RuleKey, direction: Direction, limit: Limit) -> None:
        self._limits.setdefault(key, {})[direction] = limit
        self._owners.setdefault(key[0], set()).add(key[1])

    def clear(self, key: RuleKey, directions: tuple[Direction, ...]) -> None:
        limits = self._limits.get(key, {})
        for direction in directions:
            limits.pop(direction, None)
        if not limits:
            self.drop(key)

    def drop(self, key: RuleKey) -> None:
        self._limits.pop(key, None)
        owners = self._owners.get(key[0], set())
        owners.discard(key[1])
        if not owners:
            self._owners.pop(key[0], None)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused

    def items(self) -> list[tuple[RuleKey, dict[Direction, Limit]]]:
        return [(key, dict(limits)) for key, limits in self._limits.items()]

    def __contains__(self, key: object) -> bool:
        return key in self._limits

    def __len__(self) -> int:
        return len(self._limits)

    def has_app(self, app_id: str) -> bool:
        """Whether any rule, of any owner, names app_id."""
        return app_id in self._owners

    def rules_of(self, app_id: str) -> dict[int, dict[Direction, Limit]]:
        """owner -> limits of every rule on app_id."""
        return {owner: dict(self._limits[(app_id, owner)]) for owner in self._owners.get(app_id, ())}

    def in_force_of(self, app_id: str) -> list[RuleKey]:
        """The rules on app_id the kernel should hold now (see enforced())."""
        if self.paused or app_id not in self._owners:
            return []
        if ADMIN_OWNER in self._owners[app_id]:
            return [(app_id, ADMIN_OWNER)]
        return [(app_id, owner) for owner in self._owners[app_id]]

    def count_of_owner(self, owner: int) -> int:
        return sum(1 for _app, rule_owner in self._limits if rule_owner == owner)

    def copy(self) -> LimitTable:
        clone = LimitTable()
        clone._limits = {key: dict(limits) for key, limits in self._limits.items()}
        clone._owners = {app_id: set(owners) for app_id, owners in self._owners.items()}
        clone.paused = self.paused
        return clone

    def outranked(self, key: RuleKey) -> bool:
        """A user rule while an administrator rule names the same application."""
        return key[1] != ADMIN_OWNER and (key[0], ADMIN_OWNER) in self._limits

    def enforced(self) -> list[tuple[RuleKey, dict[Direction, Limit]]]:
        """The rules the kernel should hold now: none while paused, and no user
        rule an administrator rule outranks."""
        if self.paused:
            return []
        return [(key, dict(limits)) for key, limits in self._limits.items() if not self.outranked(key)]
