"""Block and quota in the kernel: the slot_gates array (bpf/maps.h), mmapped.

The programs add to an entry's quota_used_bytes atomically on every packet
they pass; the helper writes the other fields one at a time through the
mapping. A whole-entry write (bpf(2) update) would put back a count read a
moment before and lose what was counted meanwhile.

A gate holds only while its lease runs (bpf_ktime_get_ns() < lease_until_ns);
the helper renews the leases of its gates every tick. A helper that is killed
or hangs stops renewing, and its blocks and spent quotas lapse within
LEASE_S: traffic fails open (docs/helper.md, "Block and quotas").
"""

from __future__ import annotations

import ctypes
import mmap
import time
from dataclasses import dataclass

from chadthrottle.contract import BLOCK_LEASE_S, Direction
from chadthrottle.helper.kernel.layout import (
    GATE_BLOCK,
    GATE_QUOTA,
    POLICE_DOWN,
    POLICE_UP,
    SlotGate,
    policer_key,
)

# How long a gate holds without being renewed: three ticks (one a second),
# so a tick late under load does not open it, and short enough that a dead
# helper's blocks end within seconds.
LEASE_S = BLOCK_LEASE_S
_POLICE_DIRECTION = {Direction.UP: POLICE_UP, Direction.DOWN: POLICE_DOWN}


def monotonic_ns() -> int:
    """The clock bpf_ktime_get_ns() reads."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


@dataclass(frozen=True)
class GateSetting:
    """What one slot and direction is held to: blocked, and/or a quota with
    budget_bytes left (None: no quota)."""

    blocked: bool = False
    budget_bytes: int | None = None

    @property
    def closed_when_spent(self) -> bool:
        return self.budget_bytes is not None


OPEN = GateSetting()


class SlotGates:
    """The mmapped slot_gates array of one loaded datapath."""

    def __init__(self, map_fd: int, entries: int) -> None:
        size = ctypes.sizeof(SlotGate) * entries
        size += -size % mmap.PAGESIZE
        self._mapping = mmap.mmap(map_fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._entries: ctypes.Array[SlotGate] | None = (SlotGate * entries).from_buffer(
            self._mapping
        )
        self._set: dict[int, GateSetting] = {}  # key -> setting, of the gates not OPEN

    def set(self, slot: int, direction: Direction, setting: GateSetting) -> None:
        """Hold a slot's direction to setting at once (OPEN: let everything
        pass). A new quota budget counts from the bytes counted so far.
        A gate whose write raises is no longer renewed: what it held lapses
        within LEASE_S (the others' leases are renewed as before)."""
        key = policer_key(slot, _POLICE_DIRECTION[direction])
        self._set.pop(key, None)  # first: put back once written
        if setting == OPEN:
            self._entry(key).flags = 0
            return
        entry = self._entry(key)
        flags = (GATE_BLOCK if setting.blocked else 0) | (
            GATE_QUOTA if setting.budget_bytes is not None else 0
        )
        entry.flags = 0  # the fields below change while nothing reads them
        entry.lease_until_ns = monotonic_ns() + int(LEASE_S * 1e9)
        if setting.budget_bytes is not None:
            entry.quota_allowance_bytes = entry.quota_used_bytes + max(0, setting.budget_bytes)
        entry.flags = flags
        self._set[key] = setting

    def used_since_set(self, slot: int, direction: Direction) -> tuple[int, int] | None:
        """(bytes counted since the budget was set, the budget then), or None
        without a quota: the budget left is their difference."""
        key = policer_key(slot, _POLICE_DIRECTION[direction])
        setting = self._set.get(key)
        if setting is None or setting.budget_bytes is None:
            return None
        entry = self._entry(key)
        start = entry.quota_allowance_bytes - max(0, setting.budget_bytes)
        return entry.quota_used_bytes - start, setting.budget_bytes

    def renew(self) -> None:
        """Extend the lease of every gate set: called each tick."""
        until = monotonic_ns() + int(LEASE_S * 1e9)
        for key in self._set:
            self._entry(key).lease_until_ns = until

    def close(self) -> None:
        """Open every gate and unmap (the map itself goes with its fd)."""
        if self._entries is None:
            return
        for key in list(self._set):
            self._entry(key).flags = 0
        self._set.clear()
        self._entries = None
        self._mapping.close()

    def _entry(self, key: int) -> SlotGate:
        if self._entries is None:
            raise ValueError("the gates are closed")
        return self._entries[key]
