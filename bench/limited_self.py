"""The measured stream's own application limited by the tc backend, as a side of
bench/cpu_per_gb.py --compare ours:limited (issue 19: "limited applications'
overhead reported beside it").

One datapath (bpf/) stays attached and the tc shaper in the stream's host
namespace holds one class each way for SLOT at --limit-gbit, with the upload
pacing and the socket caps the engine would set (helper/engine/plan.py:
pacing a hair under the limit, receive windows clamped for it). A (False): the
client's sockets carry no slot, so its packets are counted and pass, while
the shaper's tc programs still see them (what a limit on some other
application costs this one); B (True): the client's sockets are tagged with
SLOT (Datapath.set_process_slot, which re-tags open sockets and applies the
caps), so its uploads are steered into the slot's class on the namespace's
upload IFB, its downloads redirected to the download IFB, its upload paced
and its ACKs' window clamped. The limit is set above what the stream reaches,
so the change B/A - 1 is what being limited costs the application in CPU and
speed, not the limit's own rate.

The pacing cap (SO_MAX_PACING_RATE) leaves a mark that lifting it does not
undo: the kernel switches the socket to TCP's internal pacing
(sk_pacing_status SK_PACING_NEEDED) and never back, so after the first B
window every A window of that connection paces too, at TCP's own rate.
pacing=False leaves the upload pacing cap out (the rest as the engine sets
it), so that A stays an application never limited.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.limits import default_burst_bytes
from chadthrottle.helper.engine.plan import UPLOAD_PACING_SHARE
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.kernel.layout import SocketCaps

from bench.overhead import CACHE_DIR
from bench.suspendable import SuspendableDatapath
from tests.support.netns import NetnsPair, tc_shaper_in

SLOT = 7  # any free application slot: this datapath is the bench's own


class LimitedSelf:
    """set(True) limits the stream's client, set(False) lifts it (accounting only)."""

    def __init__(self, datapath: SuspendableDatapath, rate_bps: int) -> None:
        self.datapath = datapath
        self.rate_bps = rate_bps
        self.client_pids: list[int] = []
        self.attached: bool | None = None

    def adopt(self, pids: list[int]) -> None:
        """pids: the server's, then the client's (bench.overhead.Iperf.pids)."""
        self.datapath.adopt_open_sockets(pids)
        self.client_pids = pids[1:]
        self.attached = None

    def set(self, attached: bool) -> None:
        if attached == self.attached:
            return
        for pid in self.client_pids:
            if not self.datapath.set_process_slot(pid, SLOT if attached else 0):
                raise RuntimeError(f"no open socket of the iperf3 client {pid} was tagged")
        self.attached = attached


@contextlib.contextmanager
def limited_self(
    pair: NetnsPair, locked: bool, rate_bps: int, pacing: bool = True, cgroup: Path | None = None
) -> Iterator[LimitedSelf]:
    """cgroup: where the datapath's programs go (None: the cgroup v2 root)."""
    datapath = SuspendableDatapath(cgroup, cache_dir=CACHE_DIR)
    datapath.open(machine_lock_held=locked)
    try:
        with tc_shaper_in(pair.host_ns, datapath, retire_after_s=0.0) as shaper:
            spec = ClassSpec(rate_bps, default_burst_bytes(rate_bps))
            shaper.reconcile({Direction.UP: {SLOT: spec}, Direction.DOWN: {SLOT: spec}})
            pacing_bps = round(rate_bps * UPLOAD_PACING_SHARE) if pacing else 0
            datapath.set_slot_caps(SLOT, SocketCaps(pacing_bps=pacing_bps, window_bps=rate_bps))
            yield LimitedSelf(datapath, rate_bps)
    finally:
        datapath.close()
