"""A policer's limit changed in place (policer.configured), as the guard of
every tc limit is on each SetLimit: what the virtual queue carries over.

Raised from 300 KiB/s to 10 MiB/s with its queue kept in time, a download
guard's queue of the small limit (0.42-0.46 s, about 130 KiB) was more than
the large limit's whole burst (0.3 s): the programs dropped the next packets,
the sender stalled 0.35 s, and the raise settled in 0.57-0.77 s instead of
0.26-0.32 s (docs/benchmarks.md, "Raising a limit").
"""

from __future__ import annotations

from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.kernel.layout import SlotPolicer
from chadthrottle.helper.kernel.policer import burst_ns, configured

KiB, MiB = 1024, 1024 * 1024
NOW_NS = 10**12  # CLOCK_MONOTONIC, as bpf_ktime_get_ns reads it


def _policing(rate_bps: int, queue_ns: int) -> SlotPolicer:
    """An active policer with queue_ns of virtual queue ahead of now."""
    state = SlotPolicer()
    state.active, state.rate_bps = 1, rate_bps
    state.burst_ns = burst_ns(ClassSpec(rate_bps, 0))
    state.mark_ns = state.burst_ns // 2
    state.virtual_time_ns, state.virtual_rem = NOW_NS + queue_ns, 77
    state.passed_bytes, state.dropped_packets = 123_456, 7
    return state


def test_a_raised_limit_keeps_its_queue_in_bytes_so_the_sender_is_not_refused() -> None:
    small = _policing(300 * KiB, 400_000_000)  # under its mark: passing freely
    assert small.virtual_time_ns - NOW_NS < small.mark_ns
    raised = configured(small, ClassSpec(10 * MiB, 0), now_ns=NOW_NS)
    queue_ns = raised.virtual_time_ns - NOW_NS
    assert queue_ns == 400_000_000 * 300 * KiB // (10 * MiB)  # the same 120 KiB: 11.7 ms
    assert queue_ns < raised.mark_ns  # kept in time (0.4 s) it was past the whole burst (0.3 s)
    assert (raised.virtual_rem, raised.rate_bps, raised.active) == (0, 10 * MiB, 1)
    assert (raised.passed_bytes, raised.dropped_packets) == (123_456, 7)  # counters carry over


def test_a_lowered_limit_and_an_idle_one_keep_their_clock() -> None:
    """Lowering keeps the queue in time, as before (lowering settled fast):
    in bytes it would be 33 times longer at the small limit."""
    large = _policing(10 * MiB, 5_000_000)
    lowered = configured(large, ClassSpec(300 * KiB, 0), now_ns=NOW_NS)
    assert lowered.virtual_time_ns == large.virtual_time_ns
    assert lowered.virtual_rem == 77
    idle = _policing(300 * KiB, 0)
    idle.virtual_time_ns = NOW_NS - 5_000_000_000  # sent everything 5 s ago
    assert configured(idle, ClassSpec(10 * MiB, 0), now_ns=NOW_NS).virtual_time_ns == (
        idle.virtual_time_ns
    )
    first = _policing(300 * KiB, 400_000_000)
    first.active = 0  # an inactive entry's clock is stale: nothing to scale
    assert configured(first, ClassSpec(10 * MiB, 0), now_ns=NOW_NS).virtual_time_ns == (
        first.virtual_time_ns
    )
