"""The per-CPU counter slots on the real kernel: a stream is counted in its
owner's slots (no hash entry), exactly; a retired owner's slots hand back
their counts and are freed once quiet; with every slot taken by other keys the
traffic hash counts instead, as exactly."""

from __future__ import annotations

from pathlib import Path

from chadthrottle.helper.kernel import bpf_maps
from chadthrottle.helper.kernel.counter_slots import RECYCLE_AFTER_READS
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.layout import SLOT_FREE, SLOT_HELD, TrafficCounters, TrafficKey

from tests.support.netns import NetnsPair, netns_device, start_stream


def _in_hash(datapath: Datapath, cookie: int, owner: int, ifindex: int) -> bool:
    """Whether the hash counts the owner's process (its start as the samples give it)."""
    values = (TrafficCounters * bpf_maps.possible_cpus())()
    starts = {s.owner_start for s in datapath.read_traffic() if s.owner_tgid == owner}
    assert len(starts) == 1, starts
    key = TrafficKey(cookie, owner, ifindex, starts.pop())
    return bpf_maps.lookup(datapath._maps["traffic"].fd, key, values)


def _sent(datapath: Datapath, owner: int) -> int:
    return sum(s.tx_bytes for s in datapath.read_traffic() if s.owner_tgid == owner)


def test_streams_are_counted_in_slots_and_in_the_hash_when_slots_are_taken(
    pair: NetnsPair, kernel_ready: Path
) -> None:
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    try:
        slots = datapath._counter_slots._slots
        cookie, ifindex = netns_device(pair.host_ns, pair.host_if)

        first = start_stream(pair, 5331, "up", seconds=1, congestion="cubic")
        received = first.wait()
        counted = _sent(datapath, first.app_pid)
        assert received > 1_000_000
        assert 1.0 <= counted / received < 1.06  # L3: payload + 52 header bytes per 1448
        assert not _in_hash(datapath, cookie, first.app_pid, ifindex)
        held = [
            i
            for i, slot in enumerate(slots)
            if slot.state == SLOT_HELD and slot.owner_tgid == first.app_pid
        ]
        assert held

        samples = [s for s in datapath.read_traffic() if s.owner_tgid == first.app_pid]
        assert sum(s.tx_bytes for s in datapath.retire_owners(samples)) >= counted
        for _ in range(RECYCLE_AFTER_READS):
            assert _sent(datapath, first.app_pid) == 0  # a reused pid starts from zero
        assert all(slots[i].state == SLOT_FREE for i in held)

        for index, slot in enumerate(slots):  # every slot held by a key no packet has
            slot.netns_cookie, slot.owner_tgid, slot.ifindex = 1, 0xFFFFFFFF, index
            slot.state = SLOT_HELD
        second = start_stream(pair, 5332, "up", seconds=1, congestion="cubic")
        received = second.wait()
        counted = _sent(datapath, second.app_pid)
        assert 1.0 <= counted / received < 1.06
        assert _in_hash(datapath, cookie, second.app_pid, ifindex)
        assert not any(slot.owner_tgid == second.app_pid for slot in slots)
    finally:
        datapath.close()
