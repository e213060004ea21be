"""Block and quota in the cgroup programs (helper/kernel/gates.py) on real
streams between two namespaces: a block stops a running TCP stream at once
and lifting it resumes the same connection; a quota passes its budget and not
more than one packet per socket beyond it; a lease that runs out opens the
gate (the helper is gone: traffic fails open)."""

from __future__ import annotations

import time

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.gates import OPEN, GateSetting
from chadthrottle.helper.kernel.layout import policer_key, POLICE_DOWN

from tests.support.netns import NetnsPair, start_stream
from tests.support.waiting import eventually

SLOT = 7
GSO_BYTES = 64 * 1024


def _stalled(stream_bytes: "callable", quiet_s: float = 0.6) -> bool:
    before = stream_bytes()
    time.sleep(quiet_s)
    return stream_bytes() == before


def test_block_stops_both_ways_and_lifting_it_resumes_the_connection(datapath: Datapath, pair: NetnsPair) -> None:
    for direction, port in ((Direction.UP, 5710), (Direction.DOWN, 5711)):
        stream = start_stream(pair, port, direction.value, seconds=30)
        try:
            assert eventually(lambda: stream.receiver.total_bytes() > 1_000_000, timeout_s=5)
            datapath.set_process_slot(stream.app_pid, SLOT)
            datapath.gates.set(SLOT, direction, GateSetting(blocked=True))
            # what was in flight drains, then nothing more arrives
            assert eventually(lambda: _stalled(stream.receiver.total_bytes), timeout_s=3), direction
            assert _stalled(stream.receiver.total_bytes, 1.0), f"{direction.value}: traffic passed a block"
            held_at = stream.receiver.total_bytes()
            datapath.gates.set(SLOT, direction, OPEN)
            # the same connection goes on (TCP's backed-off timer may take a while)
            assert eventually(lambda: stream.receiver.total_bytes() > held_at + 1_000_000, timeout_s=8), direction
            assert stream.app.poll() is None, "the application lost its connection"
        finally:
            datapath.gates.set(SLOT, direction, OPEN)
            datapath.set_process_slot(stream.app_pid, 0)
            stream.stop()


def test_a_quota_stops_within_a_packet_of_its_budget_and_a_lapsed_lease_opens_it(
    datapath: Datapath, pair: NetnsPair
) -> None:
    budget = 3_000_000
    stream = start_stream(pair, 5712, "down", seconds=30)
    try:
        assert eventually(lambda: stream.receiver.total_bytes() > 100_000, timeout_s=5)
        datapath.set_process_slot(stream.app_pid, SLOT)
        start = stream.receiver.total_bytes()
        datapath.gates.set(SLOT, Direction.DOWN, GateSetting(budget_bytes=budget))
        assert eventually(lambda: _stalled(stream.receiver.total_bytes), timeout_s=10)
        used, granted = datapath.gates.used_since_set(SLOT, Direction.DOWN)
        assert granted == budget
        assert budget <= used <= budget + GSO_BYTES + 1500, f"counted {used} for a budget of {budget}"
        assert _stalled(stream.receiver.total_bytes, 1.0), "traffic passed a spent quota"
        start = stream.receiver.total_bytes()
        # a lease that is not renewed (the helper is gone) opens the gate
        key = policer_key(SLOT, POLICE_DOWN)
        datapath.gates._entry(key).lease_until_ns = 0
        assert eventually(lambda: stream.receiver.total_bytes() > start + 2_000_000, timeout_s=8)
    finally:
        datapath.gates.set(SLOT, Direction.DOWN, OPEN)
        datapath.set_process_slot(stream.app_pid, 0)
        stream.stop()
