"""The per-CPU counter slots in front of the traffic hash (struct
counter_slot in bpf/maps.h), mmapped.

The programs count a (socket owner: pid and start, namespace, interface) key in a slot of
the CPU they run on, found from a hash of the key, instead of looking the key
up in the per-CPU traffic hash for every packet (that lookup was about half
of the programs' time). A key whose two candidate slots hold other keys is
counted in the hash as before, so a key's bytes are the hash's plus those of
its slots on every CPU.

Only the programs claim a slot and only the helper frees one. When an owner
is retired (its process exited), its slots' counts are handed back and kept
as a base that later reads subtract (a process's key is never counted
again, but a socket it passed on may still move bytes under it). A retired slot whose count
has not moved for RECYCLE_AFTER_READS reads is freed for other keys. A
packet of such a socket (a process that exited has no sockets, unless it
passed one on) counted in the nanoseconds between the helper's check and its
write would go to the next claimer; the kernel frees nothing itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
from dataclasses import dataclass

from chadthrottle.helper.kernel.layout import SLOT_FREE, SLOT_HELD, CounterSlot

RECYCLE_AFTER_READS = 3
_WORDS_PER_SLOT = ctypes.sizeof(CounterSlot) // 8
_COUNTER_FIELDS = ("rx_bytes", "rx_packets", "tx_bytes", "tx_packets")

TrafficKeyTuple = tuple[int, int, int, int]  # (netns_cookie, owner_tgid, ifindex, owner_start)
Counts = tuple[int, int, int, int]  # rx_bytes, rx_packets, tx_bytes, tx_packets


def slot_cpus(possible: str | None = None) -> int:
    """How many CPUs' slots the array holds: the highest possible CPU id + 1
    (bpf_get_smp_processor_id() is below it; ids may have gaps)."""
    if possible is None:
        with open("/sys/devices/system/cpu/possible") as ranges:
            possible = ranges.read()
    return max(int(part.partition("-")[2] or part) for part in possible.strip().split(",")) + 1


@dataclass
class _Retired:
    key: TrafficKeyTuple
    base: Counts  # what the slot held when its owner was retired
    quiet_reads: int = 0


class CounterSlots:
    """The mmapped counter_slots array of one loaded datapath."""

    def __init__(self, map_fd: int, entries: int) -> None:
        self._size = ctypes.sizeof(CounterSlot) * entries
        self._mapping = mmap.mmap(map_fd, self._size + -self._size % mmap.PAGESIZE, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)  # fmt: skip
        self._slots: ctypes.Array[CounterSlot] | None = (CounterSlot * entries).from_buffer(
            self._mapping
        )
        self._words: ctypes.Array[ctypes.c_uint64] | None = (ctypes.c_uint64 * (entries * _WORDS_PER_SLOT)).from_buffer(
            self._mapping)  # fmt: skip
        self._retired: dict[int, _Retired] = {}  # slot index -> its retired owner

    def totals(self) -> dict[TrafficKeyTuple, Counts]:
        """Each key's counts in slots, summed over CPUs (less the bases of
        retired owners); frees retired slots that stayed quiet."""
        totals: dict[TrafficKeyTuple, Counts] = {}
        for index, key, counts in self._held():
            retired = self._retired.get(index)
            if retired is not None:
                if (
                    retired.key != key
                ):  # freed and claimed again meanwhile: no longer ours to subtract
                    del self._retired[index]
                else:
                    if counts == retired.base:
                        retired.quiet_reads += 1
                        if retired.quiet_reads >= RECYCLE_AFTER_READS:
                            self._free(index)
                        continue
                    retired.quiet_reads = 0
                    counts = _minus(counts, retired.base)
            totals[key] = _plus(totals.get(key, (0, 0, 0, 0)), counts)
        return totals

    def retire(self, keys: set[TrafficKeyTuple]) -> dict[TrafficKeyTuple, Counts]:
        """Hand back the counts of keys (since their last retirement) and
        count them from zero from now on."""
        final: dict[TrafficKeyTuple, Counts] = {}
        for index, key, counts in self._held():
            if key not in keys:
                continue
            retired = self._retired.get(index)
            since = (
                _minus(counts, retired.base)
                if retired is not None and retired.key == key
                else counts
            )
            final[key] = _plus(final.get(key, (0, 0, 0, 0)), since)
            self._retired[index] = _Retired(key, counts)
        return final

    def close(self) -> None:
        if self._slots is None:
            return
        self._slots = self._words = None
        self._retired.clear()
        with contextlib.suppress(
            BufferError
        ):  # a caller still holds a view (a test): unmapped when that goes
            self._mapping.close()

    def _held(self) -> list[tuple[int, TrafficKeyTuple, Counts]]:
        """(index, key, counts) of every held slot. One copy finds them (a
        strided slice of the state words); each is then read field by field,
        state first, so a key is never read before its claim finished."""
        if self._slots is None or self._words is None:
            raise ValueError("the counter slots are closed")
        states = self._words[::_WORDS_PER_SLOT]
        held = []
        for index in (i for i, state in enumerate(states) if state == SLOT_HELD):
            slot = self._slots[index]
            if slot.state != SLOT_HELD:
                continue
            key = (slot.netns_cookie, slot.owner_tgid, slot.ifindex, slot.owner_start)
            held.append((index, key, tuple(getattr(slot, name) for name in _COUNTER_FIELDS)))
        return held  # type: ignore[return-value]

    def _free(self, index: int) -> None:
        assert self._slots is not None
        self._slots[
            index
        ].state = SLOT_FREE  # one aligned 8-byte store; the next claim zeroes the rest
        del self._retired[index]


def _plus(a: Counts, b: Counts) -> Counts:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3])


def _minus(a: Counts, b: Counts) -> Counts:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3])
