"""How much of each quota its current period has used.

Pure logic over the kernel's count: the gate of a slot and direction counts
the bytes passed since its budget was last set (helper/kernel/gates.py); this
book remembers, per rule and direction, what the period had used by then, so
the use in the period is that plus the kernel's count. A new period, a
changed quota or another slot set the budget again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.limits import RuleKey
from chadthrottle.helper.engine.quotas import Quota, period_start

QuotaKey = tuple[RuleKey, Direction]
# (slot, direction) -> (bytes counted since the budget was set, that budget), or None
KernelCount = Callable[[int, Direction], "tuple[int, int] | None"]


@dataclass(frozen=True)
class QuotaState:
    """One quota now: its period began at period_start (unix seconds);
    budget_at_set is what the kernel was last given to spend."""

    quota: Quota
    period_start: float
    slot: int
    used_at_set: int
    used: int

    @property
    def budget_at_set(self) -> int:
        return max(0, self.quota.budget_bytes - self.used_at_set)

    @property
    def left(self) -> int:
        return max(0, self.quota.budget_bytes - self.used)

    @property
    def spent(self) -> bool:
        return self.left == 0


class QuotaBook:
    def __init__(self) -> None:
        self._states: dict[QuotaKey, QuotaState] = {}

    def follow(self, key: RuleKey, direction: Direction, quota: Quota, slot: int, now: datetime,
               counted: KernelCount, stored: tuple[float, int] | None = None) -> QuotaState:  # fmt: skip
        """The quota's state now; a new period starts from zero, a changed
        quota or slot carries the period's use over. stored: (period start,
        bytes used) as a previous helper left it, taken when this one has
        none yet and the period is the same."""
        start = period_start(quota, now).timestamp()
        was = self._states.get((key, direction))
        if was is None and stored is not None and stored[0] == start:
            was = QuotaState(
                quota, start, 0, stored[1], stored[1]
            )  # slot 0: no count in this kernel
        kernel = counted(was.slot, direction) if was is not None else None
        used = (
            was.used_at_set + kernel[0]
            if was is not None and kernel is not None
            else (was.used if was else 0)
        )
        if (
            was is not None
            and (was.quota, was.period_start, was.slot) == (quota, start, slot)
            and kernel is not None
        ):
            state = QuotaState(quota, start, slot, was.used_at_set, used)
        else:  # the kernel's budget is set again from this
            used = used if was is not None and was.period_start == start else 0
            state = QuotaState(quota, start, slot, used, used)
        self._states[(key, direction)] = state
        return state

    def refused(self, key: RuleKey, direction: Direction, was: QuotaState | None,
                counted: KernelCount) -> None:  # fmt: skip
        """The kernel refused the budget follow() set again: its gate still
        counts from the set before (was), so the book goes on from that one,
        its use as the kernel counts now. Before 2026-12-06 the book took the
        refused set as made, and each refused write counted the kernel's bytes
        since the set before once more (a refused quota change used budget)."""
        if was is None:
            self._states.pop((key, direction), None)
            return
        try:
            kernel = counted(was.slot, direction)
        except Exception:  # unread: as the last apply left it
            kernel = None
        used = was.used_at_set + kernel[0] if kernel is not None else was.used
        self._states[(key, direction)] = QuotaState(
            was.quota, was.period_start, was.slot, was.used_at_set, used
        )

    def set_again(self, key: RuleKey, direction: Direction) -> QuotaState:
        """A quota followed this apply whose budget is written again as it is
        (a gate whose write the kernel refused before): the kernel counts
        afresh from that write, so its budget is what is left now."""
        was = self._states[(key, direction)]
        state = QuotaState(was.quota, was.period_start, was.slot, was.used, was.used)
        self._states[(key, direction)] = state
        return state

    def state(self, key: RuleKey, direction: Direction) -> QuotaState | None:
        return self._states.get((key, direction))

    def keep_only(self, keys: set[QuotaKey]) -> None:
        """Forget quotas that are gone (a quota set again later starts afresh)."""
        for gone in set(self._states) - keys:
            del self._states[gone]
