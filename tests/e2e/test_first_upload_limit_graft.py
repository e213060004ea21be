"""An upload's first limit on an uplink adds the clsact that carries its hook,
and the kernel's graft drops what the uplink sends for a moment (noop qdisc,
the uplink's tx_dropped; docs/backends.md, "Adding a clsact drops the uplink's
packets for a moment"). A full-speed sender that finds those losses only
after its limit landed resends them at the limit, and its peer's reads
waited seconds for them (issue 13). The helper now tags the sockets only
once what they sent before is acknowledged.

Here the data takes a long round trip to the peer (150 ms, bench/delay_line.py),
so TCP finds the graft's losses after the helper tagged the socket unless it
waits. Each landing that dropped packets at the uplink on a path that lost
nothing before (the delay line's queue can overflow under load) is judged
from the sender's socket, sampled every millisecond
(tests/support/sender_info.py): from the moment the limit's pacing cap
reached it, nothing resent for a second; and while the process was held back
from its tag, another client's ListApplications was answered (the wait is
neither under the engine's lock nor on the thread that serves D-Bus calls).
Before the first fix (40 ms): 45 segments resent through the limit in each of
the two landings judged; with the wait of at most 0.2 s under the lock, at
150 ms: see the commit that moved it off the lock."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

from chadthrottle.contract import Direction

from bench.clsact_graft import ListingProbe, has_clsact, tx_dropped
from bench.delay_line import delayed
from tests.e2e.conftest import Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import app_scope, start_stream
from tests.support.sender_info import Sample, SenderSampler
from tests.support.waiting import eventually

LIMIT_BPS = 300 * 1024
DATA_DELAY_MS = 150  # the round trip (bench/delay_line.py): a long path
RESENT_OVER_S = 1.0
LANDINGS_WITH_DROPS = 1  # judged (each resent 19-194 segments before the fix); the graft dropped in 10 of 58 landings at this round trip
MAX_LANDINGS = 40  # about 3 s each (no linger: tests/support/helper_process.py), the judged 4-5 s
TUN_QUEUE_PACKETS = 10_000  # the sender's 4 MiB buffer is about 2,900 segments


@dataclass(frozen=True)
class Landing:
    """One first upload limit on a full-speed stream."""

    dropped: int  # packets the uplink dropped during the call
    lossy_path: bool  # the sender had resent before it (the delay line's queue overflowed)
    at_cap: Sample | None  # the sender's first sample with the cap
    later: Sample | None  # its sample RESENT_OVER_S later
    answered: int  # ListApplications sent once the limit call returned, answered before the cap


def _land(stack: Stack, port: int) -> Landing:
    with app_scope(stack.cgroup_root, own_names.desktop_id(f"TestGraft{port}")) as scope:
        stream = start_stream(stack.pair, port, "up", app_cgroup=scope)
        app_id = ""
        try:
            stream.receiver.rate_bps(1.0)  # at full speed first
            sampler = SenderSampler(stream.app_pid)
            sampler.start()
            probe = ListingProbe(stack.bus_address)
            probe.start()
            try:
                dropped, began = tx_dropped(stack.pair), time.monotonic()
                app_id = call_helper(
                    stack.bus_address,
                    lambda c: c.set_limit(f"pid:{stream.app_pid}", Direction.UP, LIMIT_BPS),
                )
                returned = time.monotonic()
                dropped = tx_dropped(stack.pair) - dropped
                if dropped:  # judged: watched until RESENT_OVER_S after the cap
                    eventually(lambda: sampler.first_capped() is not None, 5.0, 0.01)
                    time.sleep(RESENT_OVER_S + 0.1)
            finally:
                sampler.stop()
                probe.stop()
            capped = sampler.first_capped()
            lossy_path = (sampler.at(began) or sampler.samples[-1]).total_retrans > 0
            if capped is None or not dropped:  # not judged: the next landing at once
                return Landing(dropped, lossy_path, None, None, 0)
            answered = sum(returned <= sent and end < capped[1].at for sent, end in probe.calls)
            later = sampler.at(capped[1].at + RESENT_OVER_S)
            return Landing(dropped, lossy_path, capped[1], later, answered)
        finally:
            stream.stop()
            if app_id:
                call_helper(stack.bus_address, lambda c: c.clear_limit(app_id))
            hooks_gone = eventually(lambda: not has_clsact(stack.pair), 15.0)
            assert hooks_gone, "the hooks stayed: the next limit would not graft"


def test_what_the_graft_drops_is_resent_before_the_limit(stack: Stack) -> None:
    assert not has_clsact(stack.pair), "the uplink has a clsact already: no graft to judge"
    judged: list[Landing] = []
    seen: list[tuple[int, bool]] = []  # (dropped, lossy path) of every landing
    with delayed(stack.pair, DATA_DELAY_MS):
        # the delay line's tun queues the whole send buffer rather than drop (under load its
        # relay falls behind): the path loses nothing, so the graft's are the only losses
        subprocess.run(["ip", "-n", stack.pair.peer_ns, "link", "set", "dev", f"ctd{stack.pair.peer_if[3:]}",
                        "txqueuelen", str(TUN_QUEUE_PACKETS)], check=True)  # fmt: skip
        for landing in range(MAX_LANDINGS):
            landed = _land(stack, 5750 + landing)
            seen.append((landed.dropped, landed.lossy_path))
            if landed.dropped and landed.at_cap is not None and not landed.lossy_path:
                judged.append(landed)
            if len(judged) == LANDINGS_WITH_DROPS:
                break
    assert judged, (
        f"no landing of {MAX_LANDINGS} where the graft dropped on a path that lost nothing else "
        f"(dropped, path lossy before: {seen})"
    )
    for landed in judged:
        assert landed.later is not None and landed.at_cap is not None, "the sampler stopped early"
        resent = landed.later.total_retrans - landed.at_cap.total_retrans
        assert resent == 0, (
            f"the graft dropped {landed.dropped} packets and {resent} segments were resent "
            f"through the limit (every landing judged: {judged})"
        )
        assert landed.answered > 0, (
            f"no ListApplications answered while the process was held back from its tag: "
            f"the wait blocked the helper ({landed})"
        )
