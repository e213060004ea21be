"""Quota gates in the cgroup programs (helper/kernel/gates.py) on a real
stream between two namespaces, without the helper: the kernel's own count
stops within one packet past the budget, and a lease that runs out opens the
gate (the helper is gone: traffic fails open). Blocks, and quotas through the
helper, are tested end to end (tests/e2e/test_block_and_quota.py)."""

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
