"""An upload's first limit on an uplink adds the clsact that carries its hook,
and the kernel's graft drops what the uplink sends for a moment (noop qdisc,
the uplink's tx_dropped; docs/backends.md, "Adding a clsact drops the uplink's
packets for a moment"). A full-speed sender that finds those losses only
after its limit landed resends them at the limit, and its peer's reads
waited seconds for them (issue 13). The helper now tags the sockets only
once what they sent before is acknowledged.

Here the data takes a round trip like a real uplink's to the peer (40 ms,
bench/delay_line.py), so TCP finds the graft's losses after the helper tagged
the socket unless it waits. Each landing that dropped packets at the uplink
on a path that lost nothing before (the delay line's queue can overflow
under load) is judged from the sender's socket, sampled every millisecond
(tests/support/sender_info.py): from the moment the limit's pacing cap
reached it, nothing resent for a second. Before the fix: 45 segments
resent through the limit in each of the two landings judged."""

from __future__ import annotations

import subprocess
import time

from chadthrottle.contract import Direction

from bench.clsact_graft import has_clsact, tx_dropped
from bench.delay_line import delayed
from tests.e2e.conftest import Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import app_scope, start_stream
from tests.support.sender_info import Sample, SenderSampler
from tests.support.waiting import eventually

LIMIT_BPS = 300 * 1024
DATA_DELAY_MS = 40  # the round trip (bench/delay_line.py)
RESENT_OVER_S = 1.0
LANDINGS_WITH_DROPS = 1  # judged (each resent 19-194 segments before the fix); the graft dropped in 10 of 58 landings at this round trip
MAX_LANDINGS = 30  # about 4-7 s each
TUN_QUEUE_PACKETS = 10_000  # the sender's 4 MiB buffer is about 2,900 segments


def _land(stack: Stack, port: int) -> tuple[int, bool, Sample | None, Sample | None]:
    """One first upload limit on a full-speed stream: (packets the uplink
    dropped during the call, whether the sender had resent anything before
    it (the delay line's queue overflowed: losses not the graft's), the
    sender's first sample with the cap, its sample RESENT_OVER_S later)."""
    with app_scope(stack.cgroup_root, own_names.desktop_id(f"TestGraft{port}")) as scope:
        stream = start_stream(stack.pair, port, "up", app_cgroup=scope)
        app_id = ""
        try:
            stream.receiver.rate_bps(1.0)  # at full speed first
            sampler = SenderSampler(stream.app_pid)
            sampler.start()
            try:
                dropped, began = tx_dropped(stack.pair), time.monotonic()
                app_id = call_helper(
                    stack.bus_address,
                    lambda c: c.set_limit(f"pid:{stream.app_pid}", Direction.UP, LIMIT_BPS),
                )
                dropped = tx_dropped(stack.pair) - dropped
                eventually(lambda: sampler.first_capped() is not None, 5.0, 0.01)
                time.sleep(RESENT_OVER_S + 0.1)
            finally:
                sampler.stop()
            capped = sampler.first_capped()
            lossy_path = (sampler.at(began) or sampler.samples[-1]).total_retrans > 0
            if capped is None:
                return dropped, lossy_path, None, None
            return dropped, lossy_path, capped[1], sampler.at(capped[1].at + RESENT_OVER_S)
        finally:
            stream.stop()
            if app_id:
                call_helper(stack.bus_address, lambda c: c.clear_limit(app_id))
            hooks_gone = eventually(lambda: not has_clsact(stack.pair), 15.0)
            assert hooks_gone, "the hooks stayed: the next limit would not graft"


def test_what_the_graft_drops_is_resent_before_the_limit(stack: Stack) -> None:
    assert not has_clsact(stack.pair), "the uplink has a clsact already: no graft to judge"
    judged: list[tuple[int, Sample, Sample | None]] = []
    seen: list[tuple[int, bool]] = []  # (dropped, lossy path) of every landing
    with delayed(stack.pair, DATA_DELAY_MS):
        # the delay line's tun queues the whole send buffer rather than drop (under load its
        # relay falls behind): the path loses nothing, so the graft's are the only losses
        subprocess.run(["ip", "-n", stack.pair.peer_ns, "link", "set", "dev", f"ctd{stack.pair.peer_if[3:]}",
                        "txqueuelen", str(TUN_QUEUE_PACKETS)], check=True)  # fmt: skip
        for landing in range(MAX_LANDINGS):
            dropped, lossy_path, at_cap, later = _land(stack, 5750 + landing)
            seen.append((dropped, lossy_path))
            if dropped and at_cap is not None and not lossy_path:
                judged.append((dropped, at_cap, later))
            if len(judged) == LANDINGS_WITH_DROPS:
                break
    assert judged, (
        f"no landing of {MAX_LANDINGS} where the graft dropped on a path that lost nothing else "
        f"(dropped, path lossy before: {seen})"
    )
    for dropped, at_cap, later in judged:
        assert later is not None, "the sampler stopped early"
        resent = later.total_retrans - at_cap.total_retrans
        assert resent == 0, (
            f"the graft dropped {dropped} packets and {resent} segments were resent through the "
            f"limit (every landing judged: {judged})"
        )
