"""Desired limits per application and the slots that carry them in the kernel.

Pure logic. A slot is the small number the datapath stores on each socket of a
limited application and the minor of its HTB classes. Slots are handed out in
rotation so a freed slot is not reused while stale sockets might still carry it.
"""

from __future__ import annotations

from dataclasses import dataclass

from chadthrottle.contract import MAX_BURST_BYTES, Direction
from chadthrottle.helper.errors import InvalidArgument

MAX_SLOTS = 0xFFFE  # HTB minors 1..0xfffe
GSO_PACKET_BYTES = 64 * 1024
MIN_BURST_BYTES = 2 * GSO_PACKET_BYTES  # smaller bursts under-deliver with GSO
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


class SlotAllocator:
    def __init__(self, max_slots: int = MAX_SLOTS) -> None:
        self._max = max_slots
        self._by_app: dict[str, int] = {}
        self._next = 1

    def slot_of(self, app_id: str) -> int | None:
        return self._by_app.get(app_id)

    def acquire(self, app_id: str) -> int:
        if app_id in self._by_app:
            return self._by_app[app_id]
        used = set(self._by_app.values())
        if len(used) >= self._max:
            raise InvalidArgument(f"at most {self._max} applications can be limited at once")
        while self._next in used:
            self._next = self._next % self._max + 1
        slot = self._next
        self._next = self._next % self._max + 1
        self._by_app[app_id] = slot
        return slot

    def apps(self) -> set[str]:
        return set(self._by_app)

    def release(self, app_id: str) -> None:
        self._by_app.pop(app_id, None)


class LimitTable:
    """app id -> {direction: Limit}; the one record of what the user asked for.

    ``paused`` is part of that record: paused limits are kept (and listed) but
    not enforced, and it is stored, rolled back and restored with them.
    """

    def __init__(self) -> None:
        self._limits: dict[str, dict[Direction, Limit]] = {}
        self.paused = False

    def get(self, app_id: str) -> dict[Direction, Limit]:
        return dict(self._limits.get(app_id, {}))

    def set(self, app_id: str, direction: Direction, limit: Limit) -> None:
        self._limits.setdefault(app_id, {})[direction] = limit

    def clear(self, app_id: str, directions: tuple[Direction, ...]) -> None:
        limits = self._limits.get(app_id, {})
        for direction in directions:
            limits.pop(direction, None)
        if not limits:
            self._limits.pop(app_id, None)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused

    def items(self) -> list[tuple[str, dict[Direction, Limit]]]:
        return [(app_id, dict(limits)) for app_id, limits in self._limits.items()]

    def __contains__(self, app_id: object) -> bool:
        return app_id in self._limits

    def copy(self) -> LimitTable:
        clone = LimitTable()
        clone._limits = {app_id: dict(limits) for app_id, limits in self._limits.items()}
        clone.paused = self.paused
        return clone

    def enforced(self) -> list[tuple[str, dict[Direction, Limit]]]:
        """The limits the kernel should hold now: none while paused."""
        return [] if self.paused else self.items()
