"""The hand-built class change sets exactly what pyroute2's does, in the right
namespace only, and says so when the kernel refuses."""

from __future__ import annotations

import subprocess

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.errors import KernelError
from chadthrottle.helper.kernel.htb import (
    DEFAULT_CLASS_BURST_BYTES,
    DEFAULT_CLASS_RATE_BPS,
    ClassSpec,
    HtbHierarchy,
)
from chadthrottle.helper.kernel.htb_change import ClassChanger
from chadthrottle.helper.kernel.layout import class_id
from pyroute2 import IPRoute

from tests.support.netns import NetnsPair, entered_netns

SLOT = 5


def _class_line(pair: NetnsPair, slot: int) -> str:
    shown = subprocess.run(["tc", "-n", pair.host_ns, "-d", "class", "show", "dev", pair.host_if],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    handle = f"{class_id(slot) >> 16:x}:{slot:x} "
    (line,) = [line for line in shown.splitlines() if f"htb {handle}" in line]
    return line


@pytest.mark.parametrize("rate_bps, burst_bytes", [(128 * 1024, 131072), (52_428_800, 2_621_440),
                                                    (DEFAULT_CLASS_RATE_BPS, DEFAULT_CLASS_BURST_BYTES)])  # fmt: skip
def test_a_fast_change_sets_what_pyroute2_sets(
    pair: NetnsPair, netlink: tuple[IPRoute, ClassChanger], rate_bps: int, burst_bytes: int
) -> None:
    ipr, changer = netlink
    ifindex = ipr.link_lookup(ifname=pair.host_if)[0]
    slow = HtbHierarchy(ipr, ifindex, Direction.UP)
    fast = HtbHierarchy(ipr, ifindex, Direction.UP, changer=changer)
    slow.create()
    try:
        slow.sync({SLOT: ClassSpec(1_000_000, 131072)})
        slow.sync({SLOT: ClassSpec(rate_bps, burst_bytes)})  # change-class through pyroute2
        by_pyroute2 = _class_line(pair, SLOT)
        slow.sync({SLOT: ClassSpec(3_000_000, 262144)})
        fast.classes = dict(slow.classes)
        fast._leaf_limits = dict(slow._leaf_limits)
        fast.sync({SLOT: ClassSpec(rate_bps, burst_bytes)})  # the same change, by hand
        assert _class_line(pair, SLOT) == by_pyroute2
    finally:
        slow.delete()


def test_a_refused_change_is_a_kernel_error(
    pair: NetnsPair, netlink: tuple[IPRoute, ClassChanger]
) -> None:
    ipr, changer = netlink
    ifindex = ipr.link_lookup(ifname=pair.host_if)[0]
    with pytest.raises(KernelError, match="No such file or directory"):
        changer.change(
            ifindex, class_id(SLOT), class_id(0), 1_000_000, 131072, 0, 100_000
        )  # no HTB there


def test_no_changer_for_a_socket_in_another_namespace(pair: NetnsPair) -> None:
    with entered_netns(pair.host_ns):
        ipr = IPRoute()
    try:
        assert ClassChanger.beside(ipr.fileno()) is None  # built here, in the test's namespace
    finally:
        ipr.close()


def _tokens(pair: NetnsPair, slot: int) -> int:
    shown = subprocess.run(["tc", "-n", pair.host_ns, "-s", "class", "show", "dev", pair.host_if],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    handle = f"htb {class_id(slot) >> 16:x}:{slot:x} "
    block = shown.split(handle, 1)[1]
    return int(block.split("tokens: ", 1)[1].split()[0])


def test_a_new_upload_class_starts_with_an_empty_bucket_and_a_download_class_full(
    pair: NetnsPair, netlink: tuple[IPRoute, ClassChanger]
) -> None:
    """A paced upload just above its limit would otherwise spend a whole burst
    (a second of traffic at 128 KiB/s) inside the first seconds."""
    ipr, changer = netlink
    ifindex = ipr.link_lookup(ifname=pair.host_if)[0]
    spec = ClassSpec(4 << 20, 131072)  # above tbf_leaf.CUT_UP_TO_BPS: the burst is the limit's
    root = HtbHierarchy(ipr, ifindex, Direction.UP, changer=changer)
    root.create()
    try:
        root.sync({3: spec})
        HtbHierarchy(ipr, ifindex, Direction.DOWN, changer=changer).sync(
            {4: spec}
        )  # same root: the class is what counts
        up, down = _tokens(pair, 3), _tokens(pair, 4)
        assert up * 20 < down  # a couple of frames' worth against the full burst
        assert "burst 128Kb" in _class_line(pair, 3)  # and the burst it is given afterwards
    finally:
        root.delete()
