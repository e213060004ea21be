"""A loss the new-owner poll reads between the program's two counts is told
(review36a A2). bpf/datapath.c announce() counts an announcement it could
keep nowhere in owner_drops[OWNER_DROPS_LOST] and then every one the ring
buffer had no room for in [OWNER_DROPS_RING]; the helper reads both with two
lookups. A poll between the two increments saw the ring's count still and
the loss moved: it took the loss as seen and told none, and the next poll
(the ring's count moved, the loss not) none either: counted_through_ns
vouched past it. Here the real maps, written as the program leaves them
between its two increments."""

from __future__ import annotations

import ctypes

from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.layout import OWNER_DROPS_LOST, OWNER_DROPS_RING


def _add(datapath: Datapath, which: int) -> None:
    drops = datapath._maps["owner_drops"]
    now = drops.get(which)
    drops.set(which, ctypes.c_uint64((now.value if now else 0) + 1))


def test_a_loss_read_before_its_ring_count_is_told(datapath: Datapath) -> None:
    datapath.watch_new_owners(lambda tgid, cgroup, start: None)
    assert datapath.poll_new_owners(0) == 0
    _add(datapath, OWNER_DROPS_LOST)  # the program between its two increments
    told = datapath.poll_new_owners(0)
    _add(datapath, OWNER_DROPS_RING)
    told += datapath.poll_new_owners(0)
    assert told == 1, f"a lost announcement told {told} times"
