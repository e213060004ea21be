"""The announcements of processes' first sockets (bpf/datapath.c announce()),
with those the ring buffer had no room for.

The ring buffer (new_owners, 64 KiB: 2,048 announcements) fills when
processes open their first sockets faster than the helper reads it (a fork
storm while the helper is held up). The program then keeps the announcement
in unheard_owners and counts it in owner_drops; one that map had no room for
either is counted apart, as lost, and not marked announced (the process's
next socket tries again). A poll delivers both kinds alike and says how many
were lost, so the engine can look for their bytes' owners itself before it
vouches for its counts (core.Engine.note_owners_lost, counted_through_ns).
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

from chadthrottle.helper.kernel import bpf_maps
from chadthrottle.helper.kernel.bpf_maps import TypedMap
from chadthrottle.helper.kernel.layout import (
    OWNER_DROPS_LOST,
    OWNER_DROPS_RING,
    OwnerEvent,
    UnheardOwner,
)
from chadthrottle.helper.kernel.ringbuf import RingBuffer

log = logging.getLogger("chadthrottle.kernel.datapath")

OnNewOwner = Callable[[int, int, int], None]  # (tgid, cgroup id, start)


class NewOwners:
    """Polls the ring buffer; takes the announcements it had no room for."""

    def __init__(self, ring_fd: int, ring_bytes: int, unheard: TypedMap, unheard_capacity: int,
                 drops: TypedMap, on_new_owner: OnNewOwner) -> None:  # fmt: skip
        self._on_new_owner = on_new_owner
        self._ring = RingBuffer(ring_fd, ring_bytes, self._deliver)
        self._unheard = unheard
        self._capacity = unheard_capacity
        self._drops = drops
        self._seen = self._counts()  # (ring, lost) as last read
        self._episode = (0, 0, 0)  # this episode's (ring drops, lost, taken); (0, 0, 0): none

    def _deliver(self, record: bytes) -> None:
        event = OwnerEvent.from_buffer_copy(record[: ctypes.sizeof(OwnerEvent)])
        self._on_new_owner(event.tgid, event.cgroup_id, event.start)

    def _counts(self) -> tuple[int, int]:
        ring, lost = self._drops.get(OWNER_DROPS_RING), self._drops.get(OWNER_DROPS_LOST)
        return (ring.value if ring else 0, lost.value if lost else 0)

    def poll(self, timeout_ms: int) -> int:
        """Deliver what the ring buffer holds (waiting up to timeout_ms for
        it), then, if the program counted announcements it had no room for
        since the last poll, those it kept; returns how many it could keep
        nowhere since the last poll (0 normally). The count is read before
        the kept ones are taken: each is counted after it is kept."""
        self._ring.poll(timeout_ms)
        counts = self._counts()
        ring, lost = counts[0] - self._seen[0], counts[1] - self._seen[1]
        self._seen = counts
        if not ring and not lost:  # a loss is counted before its ring drop: told either way
            self._end_episode()
            return 0
        taken = self._take_unheard()
        dropped, lost_before, taken_before = self._episode
        self._episode = (dropped + ring, lost_before + lost, taken_before + taken)
        return lost

    def _take_unheard(self) -> int:
        """Deliver and remove every kept announcement; how many."""
        keys = (UnheardOwner * self._capacity)()
        cgroups = (ctypes.c_uint64 * self._capacity)()
        count = bpf_maps.lookup_batch(self._unheard.fd, keys, cgroups, ctypes.sizeof(UnheardOwner),
                                      ctypes.sizeof(ctypes.c_uint64))  # fmt: skip
        for index in range(count):
            self._unheard.pop(keys[index])  # before delivering: one kept again meanwhile is new
            self._on_new_owner(keys[index].tgid, cgroups[index], keys[index].start)
        return count

    def _end_episode(self) -> None:
        """Say once, when it is over, what an episode of a full ring buffer cost."""
        dropped, lost, taken = self._episode
        if not dropped:
            return
        self._episode = (0, 0, 0)
        log.warning("the new-owner ring buffer was full for %d processes' first sockets: %d were "
                    "taken from the kernel's overflow map, %d could be kept nowhere (their bytes' "
                    "owners were looked for at the next tick)", dropped, taken, lost)  # fmt: skip

    def wake(self) -> None:
        """End the poll waiting now (or the next one) without a record."""
        self._ring.wake()

    def close(self) -> None:
        self._end_episode()
        self._ring.close()
