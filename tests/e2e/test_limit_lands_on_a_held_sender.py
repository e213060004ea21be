"""A download limit landing while the sender gets no CPU loses nothing at the
shaper (issue 13: up to ~1,650 segments lost at the leaf at load 2-13, and
seconds of stalled reads while they were resent through the limit).

The helper clamps the receive window first and tags the sockets once the
sender has spent the old window. A sender that gets no CPU meanwhile still
holds that window (megabytes) when the limit lands, and sends it at once
into a leaf queue of 0.15 s of the rate. Here the sender is stopped
(SIGSTOP) from just before the call for HELD_S, as a loaded machine holds it
back; the helper must wait until the advertised window came down to the
clamp. Before: 749-1,794 drops at the leaf and 0.18-0.43 of the limit read
1-4 s after the call (bench/landing_loss.py, BBR, 1 MiB/s)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

from chadthrottle.contract import Direction

from tests.e2e.conftest import MiB, Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import app_scope, start_stream

LIMIT_BPS = MiB
PAYLOAD_SHARE = 1448 / 1500
HELD_S = 0.2  # under the helper's longest wait (0.5 s), over its old estimate (50-70 ms)
MAX_LEAF_DROPS = 20  # 0 in every run after the fix; 749-1,794 before


def _ifb_drops(netns: str) -> int:
    """Drops of every qdisc on the namespace's IFBs (HTB and its leaves)."""
    links = json.loads(subprocess.run(["ip", "-n", netns, "-j", "link", "show"],
                                      capture_output=True, text=True, check=True).stdout)  # fmt: skip
    drops = 0
    for link in links:
        if link["ifname"].startswith("ctifb"):
            shown = subprocess.run(
                ["tc", "-n", netns, "-s", "-j", "qdisc", "show", "dev", link["ifname"]],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            drops += sum(int(q.get("drops", 0)) for q in json.loads(shown or "[]"))
    return drops


def test_a_limit_landing_while_the_sender_is_held_back_drops_nothing(stack: Stack) -> None:
    port = 5690
    with app_scope(stack.cgroup_root, own_names.desktop_id("TestHeldSender")) as scope:
        stream = start_stream(stack.pair, port, "down", app_cgroup=scope)
        try:
            stream.receiver.rate_bps(1.0)  # at full speed first
            before = _ifb_drops(stack.pair.host_ns)
            os.kill(stream.server.pid, signal.SIGSTOP)
            resume = threading.Timer(HELD_S, os.kill, (stream.server.pid, signal.SIGCONT))
            resume.start()
            try:
                call_helper(
                    stack.bus_address,
                    lambda c: c.set_limit(f"pid:{stream.app_pid}", Direction.DOWN, LIMIT_BPS),
                )
            finally:
                resume.join()
                os.kill(stream.server.pid, signal.SIGCONT)
            time.sleep(1.0)
            rate = stream.receiver.rate_bps(2.0) / PAYLOAD_SHARE  # 1-3 s after the call
            dropped = _ifb_drops(stack.pair.host_ns) - before
            assert dropped <= MAX_LEAF_DROPS, f"{dropped} packets dropped at the IFB"
            assert 0.9 * LIMIT_BPS <= rate <= 1.1 * LIMIT_BPS, (
                f"{rate / LIMIT_BPS:.3f} of the limit"
            )
        finally:
            stream.stop()
