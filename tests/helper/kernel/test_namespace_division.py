"""NamespaceShapers divides a limit whose application has processes in two
network namespaces (helper/kernel/namespace_shares.py) on real IFBs: each
namespace's class at a share, the shares adding up to the limit, the guard
of the divided upload raised; a limit of one namespace only is not divided.
(The traffic itself: tests/e2e/test_namespace_fair_share.py.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.kernel.layout import HTB_MAJOR
from chadthrottle.helper.kernel.namespace_shapers import (
    DIVIDED_UPLOAD_GUARD,
    NamespaceShapers,
    NoPacing,
)
from chadthrottle.helper.kernel.tc_shaper import TcShaper

from tests.support.netns import NetnsPair, nsenter_argv, spawn

LIMIT = ClassSpec(rate_bps=1_000_000, burst_bytes=131072)
SLOT = 4
VETH_L3_TO_L2 = (1500 + 14) / 1500  # HTB counts from the Ethernet header; limits are at L3


def _class_bits(netns: str, shaper: TcShaper, direction: Direction) -> list[int]:
    """The rate (bit/s) of the slot's class on the shaper's IFB of a direction."""
    rates = []
    for ifb in {hook.ifb_name for hook in shaper._hooks[direction].values()}:
        shown = subprocess.run(["tc", "-n", netns, "class", "show", "dev", ifb],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        found = re.search(rf"class htb {HTB_MAJOR:x}:{SLOT:x} .* rate (\d+)(K?)bit", shown)
        assert found, shown
        rates.append(int(found.group(1)) * (1000 if found.group(2) else 1))
    return rates


def test_a_limit_over_two_namespaces_is_divided_and_one_over_one_is_not(
    pair: NetnsPair, shaper: TcShaper, datapath: Datapath
) -> None:
    program = "import time; print(1, flush=True); time.sleep(30)"
    process = spawn(nsenter_argv(pair.peer_ns, [sys.executable, "-c", program]), None)
    shapers = NamespaceShapers(shaper, lambda ipr: TcShaper(ipr, datapath.tc_program, NoPacing()))
    wanted = {Direction.UP: {SLOT: LIMIT}, Direction.DOWN: {SLOT: LIMIT}}
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "1"
        # the test process stands for the helper's own namespace (the shaper's own)
        shapers.shape_namespaces_of({os.getpid(): SLOT, process.pid: SLOT})
        shapers.reconcile(wanted)
        half = round(LIMIT.rate_bps / 2 * VETH_L3_TO_L2) * 8
        (other,) = shapers._elsewhere.values()
        for netns, each in ((pair.host_ns, shaper), (pair.peer_ns, other.shaper)):
            for direction in Direction:  # not measured yet: equal shares
                rates = _class_bits(netns, each, direction)
                assert rates and all(abs(r - half) <= 0.01 * half for r in rates), (netns, rates)
        guard = shapers.guard_plan(wanted)
        assert guard[Direction.UP][SLOT].rate_bps == round(LIMIT.rate_bps * DIVIDED_UPLOAD_GUARD)
        assert guard[Direction.DOWN][SLOT] == LIMIT  # downloads: the guard is after the IFB

        shapers.shape_namespaces_of({process.pid: SLOT})  # its processes in one namespace only
        shapers.reconcile(wanted)
        whole = round(LIMIT.rate_bps * VETH_L3_TO_L2) * 8
        rates = _class_bits(pair.peer_ns, other.shaper, Direction.DOWN)
        assert rates and all(abs(r - whole) <= 0.01 * whole for r in rates), rates
        assert shapers.guard_plan(wanted) == wanted
    finally:
        process.kill()
        process.wait(10)
        shapers.reconcile({})
    assert not shapers._elsewhere
