"""A clsact's graft resets the uplink's own qdiscs (dev_deactivate_many):
what its root qdisc held queued is dropped and counted nowhere, neither in
the uplink's tx_dropped nor in the qdisc's drops, so add_hook_qdisc calls
such a graft lossy from the queue it read before the add."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from chadthrottle.helper.kernel.tc_hooks import add_hook_qdisc
from pyroute2 import IPRoute

from tests.support.netns import NetnsPair, entered_netns
from tests.support.waiting import eventually

DATAGRAMS = 8  # 1 KB each through a TBF of 1 KB/s: the first passes, the rest wait seconds
GRAFT_TRIES = 5  # a graft lasts about a grace period; the link's own packets come seconds apart


@dataclass(frozen=True)
class Graft:
    lossy: bool  # what add_hook_qdisc said
    held: int  # packets the root qdisc held before the add
    left: int  # ... and after it
    counted: int  # the uplink's tx_dropped and the root qdisc's drops, risen by the add


def _tc(pair: NetnsPair, *argv: str) -> str:
    return subprocess.run(["tc", "-n", pair.host_ns, *argv], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


def _root(pair: NetnsPair) -> tuple[int, int]:
    """The root qdisc's queue (packets) and drops."""
    shown = json.loads(_tc(pair, "-s", "-j", "qdisc", "show", "dev", pair.host_if, "root"))
    return int(shown[0].get("qlen", 0)), int(shown[0].get("drops", 0))


def _tx_dropped(pair: NetnsPair) -> int:
    out = subprocess.run(["ip", "-n", pair.host_ns, "-s", "-j", "link", "show", "dev", pair.host_if],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return int(json.loads(out)[0]["stats64"]["tx"]["dropped"])


@pytest.fixture
def slow_root(pair: NetnsPair) -> Iterator[NetnsPair]:
    """The uplink with a root TBF of 1 KB/s (a slow uplink's queue)."""
    _tc(pair, "qdisc", "add", "dev", pair.host_if, "root", "tbf", "rate", "8kbit", "burst", "1600",
        "limit", "100000")  # fmt: skip
    try:
        yield pair
    finally:
        subprocess.run(["tc", "-n", pair.host_ns, "qdisc", "del", "dev", pair.host_if, "clsact"],
                       capture_output=True)  # fmt: skip
        _tc(pair, "qdisc", "del", "dev", pair.host_if, "root")


def _graft(pair: NetnsPair, netlink: tuple[IPRoute, object], datagrams: int) -> Graft:
    ipr, _ = netlink
    with entered_netns(pair.host_ns):
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sender:
        for _ in range(datagrams):
            sender.sendto(b"x" * 1000, (pair.peer_addr, 9))
    # at least the datagrams the TBF's burst did not pass; the link's own
    # packets (ARP, IPv6 neighbour discovery) may queue beside them. With
    # none sent, the queue is waited empty: the case is an empty root qdisc.
    if datagrams:
        assert eventually(lambda: _root(pair)[0] >= datagrams - 1, 5.0), _root(pair)
    else:
        assert eventually(lambda: _root(pair)[0] == 0, 5.0), _root(pair)
    held, drops = _root(pair)
    tx_dropped = _tx_dropped(pair)
    lossy = add_hook_qdisc(ipr, ipr.link_lookup(ifname=pair.host_if)[0])
    left, drops_after = _root(pair)
    return Graft(lossy, held, left, drops_after - drops + _tx_dropped(pair) - tx_dropped)


def test_a_graft_over_packets_queued_at_the_root_qdisc_is_lossy(
    slow_root: NetnsPair, netlink: tuple[IPRoute, object]
) -> None:
    graft = _graft(slow_root, netlink, DATAGRAMS)
    # the kernel dropped the queue and counted it nowhere; add_hook_qdisc said so all the same
    assert graft.held >= DATAGRAMS - 1, graft  # CI run t: 8, a packet of the link's own beside
    assert (graft.left, graft.counted, graft.lossy) == (0, 0, True), graft


def test_a_graft_over_an_empty_root_qdisc_is_not_lossy(
    slow_root: NetnsPair, netlink: tuple[IPRoute, object]
) -> None:
    """A new link sends packets of its own for seconds (IPv6 duplicate address
    detection, MLD reports, router solicitations); one sent during the graft
    meets the noop qdisc and is counted in tx_dropped, and add_hook_qdisc
    rightly calls that graft lossy (CI, 2026-12-06: counted 1, lossy). Such a
    try is judged for what it is and the graft tried again, on a quiet link."""
    tries: list[Graft] = []
    for _ in range(GRAFT_TRIES):
        tries.append(_graft(slow_root, netlink, 0))
        if tries[-1].counted == 0:
            break
        assert tries[-1].lossy, tries  # a drop seen and not reported is the fault itself
        _tc(slow_root, "qdisc", "del", "dev", slow_root.host_if, "clsact")
    assert tries[-1] == Graft(False, 0, 0, 0), tries
