"""The helper estimates the link capacity (issue 16), end to end: asked
SetLinkCapacity(0, 0, estimate=true) it knows nothing and shapes nothing,
then a bulk TCP upload through a modem in miniature (bench/bottleneck.py:
tbf at 2 Mbit/s with 300 ms of buffer, a namespace away) lets it find the
upload's rate and put the link tree on; estimation off leaves the
interface as it was. (The estimator itself: tests/helper/engine; following
a rate that changes: bench/capacity_follow.py.)"""

from __future__ import annotations

from chadthrottle.contract import LinkShapingInfo

from bench.bottleneck import modem
from tests.e2e.conftest import Stack
from tests.support.helper_calls import call_helper, priorities_undone
from tests.support.netns import NetnsPair, start_stream
from tests.support.waiting import eventually

UP_L2 = 250_000  # the modem's upload, bytes/s as tbf counts (from the Ethernet header)
UP_L3 = UP_L2 * 1500 / 1514
BUFFER_MS = 300
FIND_S = (
    12.0  # the first rise shows 1-3 s after the modem's queue fills; the estimate is then in band
)


def _shaping(bus: str) -> LinkShapingInfo:
    return call_helper(bus, lambda c: c.get_link_shaping())


def test_from_nothing_the_helper_finds_the_modems_upload_rate_and_shapes_under_it(
    stack: Stack,
) -> None:
    bus, untouched = stack.bus_address, stack.idle_tc_state()
    with modem(stack.pair, 4 * UP_L2, UP_L2, BUFFER_MS) as internet, priorities_undone(bus):
        call_helper(bus, lambda c: c.set_link_capacity(0, 0, True))
        unknown = _shaping(bus)
        assert (unknown.estimate, unknown.up_capacity_bps, unknown.up_shaping) == (
            True,
            0,
            False,
        ), unknown
        assert stack.tc_state() == untouched  # nothing known: nothing shaped
        far = NetnsPair(peer_ns=internet.netns, host_ns=stack.pair.host_ns, peer_if="", host_if=stack.pair.host_if,
                        peer_addr=internet.addr, host_addr=stack.pair.host_addr, peer_addr6="", host_addr6="")  # fmt: skip
        streams = [start_stream(far, 7400 + i, "up", seconds=30) for i in range(2)]
        try:
            found = eventually(
                lambda: 0.7 * UP_L3 <= _shaping(bus).up_capacity_bps <= 1.15 * UP_L3, FIND_S
            )
            seen = _shaping(bus)
        finally:
            for stream in streams:
                stream.stop()
        assert found, seen
        assert seen.up_shaping and seen.interfaces == (stack.pair.host_if,), seen
        assert (
            seen.down_capacity_bps == 0
        )  # acknowledgements only: nothing learnt about the download
        call_helper(bus, lambda c: c.set_link_capacity(0, 0, False))
    assert stack.idle_tc_state() == untouched
