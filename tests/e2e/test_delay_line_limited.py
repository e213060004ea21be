"""The tests' long path (bench/delay_line.py) delays what an upload limit
passes through its IFB as it delays the rest.

The tc backend limits an upload by redirecting its packets to an IFB, which
marks each one classified (skb->tc_skip_classify) before sending it on out
of the uplink; the veth keeps that mark into the peer's namespace, where the
receive path then skips tc ingress. Until 2026-12-06 the delay line was a tc
filter there: from the moment a limit landed, its packets went around the
delay, their round trip fell from the delay to microseconds, and they
overtook the stream's older packets still held (the graft test failed 3 runs
in 39 so: docs/development.md, "Fifteenth round"). A real uplink has no such
shortcut. Judged from the sender's own shortest round trip (tcpi_min_rtt):
at least the delay, once it has sent at the limit for a while.
"""

from __future__ import annotations

import subprocess

from chadthrottle.contract import Direction

from bench.delay_line import delayed
from tests.e2e.conftest import Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import NetnsPair, app_scope, start_stream
from tests.support.sender_info import SenderSampler
from tests.support.waiting import eventually

DELAY_MS = 100
LIMIT_BPS = 300 * 1024
AT_THE_LIMIT_BYTES = 300 * 1024  # sent after the cap and acknowledged: about a second of it
CLOCK_SLACK = 0.95  # TCP's round trips are in microseconds, the relay's clock is another


def test_a_limited_upload_keeps_the_delay_lines_round_trip(stack: Stack) -> None:
    pair = stack.pair
    with (
        delayed(pair, DELAY_MS, realtime=True),
        app_scope(stack.cgroup_root, own_names.desktop_id("TestDelayLine")) as scope,
    ):
        stream = start_stream(pair, 5752, "up", app_cgroup=scope, congestion="cubic")
        app_id = ""
        try:
            found: list[SenderSampler] = []
            assert eventually(lambda: _sampler(stream.app_pid, found), 10.0, 0.05), (
                "the upload never connected"
            )
            sampler = found[0]
            sampler.start()
            try:
                app_id = call_helper(
                    stack.bus_address,
                    lambda c: c.set_limit(f"pid:{stream.app_pid}", Direction.UP, LIMIT_BPS),
                )
                assert eventually(lambda: sampler.first_capped() is not None, 10.0, 0.01)
                capped = sampler.first_capped()
                assert capped is not None
                due = capped[1].acked + capped[1].unacked_new + AT_THE_LIMIT_BYTES
                assert eventually(lambda: sampler.samples[-1].acked >= due, 30.0, 0.05), (
                    "the limited upload stalled"
                )
            finally:
                sampler.stop()
        finally:
            stream.stop()
            if app_id:
                call_helper(stack.bus_address, lambda c: c.clear_limit(app_id))
    before, last = capped[0], sampler.samples[-1]
    assert before.min_rtt_us >= DELAY_MS * 1000 * CLOCK_SLACK, (
        f"the path was short before: {before}"
    )
    assert last.min_rtt_us >= DELAY_MS * 1000 * CLOCK_SLACK, (
        f"the limited upload's shortest round trip {last.min_rtt_us} us, under the delay line's "
        f"{DELAY_MS} ms (before the limit {before.min_rtt_us} us): its packets went around it"
    )


def _sampler(pid: int, found: list[SenderSampler]) -> bool:
    """A sampler of the process's established TCP socket, once it has one."""
    try:
        found.append(SenderSampler(pid, interval_s=0.005))
    except (LookupError, OSError):
        return False
    return True


def test_the_delay_line_puts_back_the_peers_rp_filter() -> None:
    """serve() turns the peer namespace's reverse-path check off (its packets
    come in on the tun); as the rest of delayed() does, it puts back what it
    changed. Until 2026-12-06 "all" stayed 0 (the namespace went soon after)."""
    from tests.support.netns import netns_pair, nsenter_argv
    from tests.support.requirements import require_root

    require_root()

    def rp_filter(pair: NetnsPair) -> str:
        argv = nsenter_argv(pair.peer_ns, ["sysctl", "-n", "net.ipv4.conf.all.rp_filter"])
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()

    with netns_pair() as pair:
        subprocess.run(nsenter_argv(pair.peer_ns, ["sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=2"]),
                       check=True)  # fmt: skip
        with delayed(pair, DELAY_MS):
            assert rp_filter(pair) == "0"
        assert rp_filter(pair) == "2"
