"""The tc shaper with a link capacity (TcShaper.set_link, issue 16) on a real
veth: the namespace's IFB carries the priority tree (link class, a class per
application with its priority and its limit as ceiling, the default class)
while a link is set, even with no limit; a switch to and from a link remakes
the tree; without a link the shaper does what it always did; the link's
going restores the namespace exactly; a killed shaper's linked tree is
adopted in place by the next one."""

from __future__ import annotations

import random
import re
import subprocess

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.htb import ACK_MINOR, DEFAULT_MINOR, ClassSpec, cn_queue_ns
from chadthrottle.helper.kernel.layout import HTB_MAJOR
from chadthrottle.helper.kernel.namespace_shapers import NamespaceShapers
from chadthrottle.helper.kernel.priority_classes import ACK_PACE_SHARE, SHAPE_SHARE, LinkShaping
from chadthrottle.helper.kernel.tc_shaper import TcShaper
from chadthrottle.priority import Priority
from pyroute2 import IPRoute

from tests.support.netns import NetnsPair, entered_netns, start_stream, tc_dump
from tests.support.own_names import JOURNAL_INSTANCE
from tests.support.unadopted import remove_own_unadopted

LINK = LinkShaping(capacity_bps=1_250_000)  # 10 Mbit/s
CALL = ClassSpec(rate_bps=0, burst_bytes=0, priority=Priority.CRITICAL)  # a priority alone
LIMITED = ClassSpec(rate_bps=200_000, burst_bytes=65536, priority=Priority.LOW)
VETH_L3_TO_L2 = (1500 + 14) / 1500  # HTB counts from the Ethernet header; limits are at L3
ACTION_INDEX = re.compile(r"\tindex \d+ ref")  # a swapped filter's mirred is a new action


def _classes(pair: NetnsPair, shaper: TcShaper, direction: Direction) -> str:
    (ifb,) = {hook.ifb_name for hook in shaper._hooks[direction].values()}
    return subprocess.run(["tc", "-n", pair.host_ns, "class", "show", "dev", ifb],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip


def _kbit(rate_bps: float) -> str:
    """How tc prints a rate the shaper set for an L3 rate on the veth."""
    return f"{round(rate_bps * VETH_L3_TO_L2) * 8 // 1000}Kbit"


def _class_line(classes: str, minor: int) -> str:
    return next(
        line
        for line in classes.splitlines()
        if line.startswith(f"class htb {HTB_MAJOR:x}:{minor:x} ")
    )


def _wire(rate_bps: float) -> int:
    """The bit/s tc shows for an L3 rate the shaper set on the veth (it rounds to Kbit
    where the rate is that high)."""
    bits = round(rate_bps * VETH_L3_TO_L2) * 8
    return bits if bits < 1_000_000 else bits // 1000 * 1000


def _ack_ceil(pair: NetnsPair, shaper: TcShaper, direction: Direction) -> int:
    """The ceiling of a direction's acknowledgement class, bit/s (to tc's rounding)."""
    line = _class_line(_classes(pair, shaper, direction), ACK_MINOR)
    number, unit = re.search(r" ceil (\d+)([A-Za-z]+) ", line).groups()  # type: ignore[union-attr]
    return int(number) * {"bit": 1, "Kbit": 1000, "Mbit": 1000**2}[unit]


def _shaper(netns: str, datapath: Datapath) -> tuple[IPRoute, TcShaper]:
    with entered_netns(netns):
        ipr = IPRoute()
    return ipr, TcShaper(ipr, datapath.tc_program, datapath, instance=JOURNAL_INSTANCE)


def test_a_link_carries_the_priority_tree_and_its_going_restores_the_namespace(
    pair: NetnsPair, shaper: TcShaper, datapath: Datapath
) -> None:
    before = tc_dump(pair.host_ns)
    shaper.reconcile({Direction.UP: {3: CALL}})  # a priority without a link: nothing at all
    assert tc_dump(pair.host_ns) == before and not shaper.linked_directions()
    shaper.set_link(Direction.UP, LINK)
    shaper.reconcile({})  # a link alone: the tree with its default class, for every upload
    tree = _classes(pair, shaper, Direction.UP)
    assert (
        f"class htb {HTB_MAJOR:x}:fffe root" in tree
        and f"parent {HTB_MAJOR:x}:fffe" in _class_line(tree, 0xFFFF)
    )
    assert "chadt_tc_out" in tc_dump(pair.host_ns) and shaper.linked_directions() == {Direction.UP}
    shaper.reconcile({Direction.UP: {3: CALL, 4: LIMITED}})
    tree = _classes(pair, shaper, Direction.UP)
    assert " prio 0 " in _class_line(tree, 3) and " prio 3 " in _class_line(tree, 4)
    assert f"ceil {_kbit(LIMITED.rate_bps)}" in _class_line(tree, 4), _class_line(
        tree, 4
    )  # its limit, its ceiling
    assert datapath._maps["upload_pacing"].get(3).rate_bps == round(
        LINK.capacity_bps * 0.95
    )  # classified
    shaper.set_link(Direction.UP, LinkShaping(2_500_000))  # a new capacity: in place
    shaper.reconcile({Direction.UP: {3: CALL, 4: LIMITED}})
    assert f"ceil {_kbit(2_500_000 * 0.95)}" in _class_line(_classes(pair, shaper, Direction.UP), 3)
    shaper.set_link(Direction.UP, None)  # the limit stays, unlinked; the priority alone goes
    shaper.reconcile({Direction.UP: {3: CALL, 4: LIMITED}})
    tree = _classes(pair, shaper, Direction.UP)
    assert f"{HTB_MAJOR:x}:fffe" not in tree and f"{HTB_MAJOR:x}:3 " not in tree
    assert f"rate {_kbit(LIMITED.rate_bps)}" in tree
    assert datapath._maps["upload_pacing"].get(3).rate_bps == 0
    shaper.reconcile({})
    assert tc_dump(pair.host_ns) == before
    shaper.set_link(Direction.DOWN, LINK)
    shaper.reconcile({Direction.DOWN: {5: CALL}})
    assert " prio 0 " in _class_line(_classes(pair, shaper, Direction.DOWN), 5)
    shaper.set_link(Direction.DOWN, None)
    shaper.reconcile({Direction.DOWN: {5: CALL}})
    assert tc_dump(pair.host_ns) == before, "the last link's going left something behind"


def test_a_priority_alone_is_paced_again_when_the_link_capacity_changes(
    shaper: TcShaper, datapath: Datapath
) -> None:
    """A priority-only slot's upload pacing is its link's share (the egress
    program writes skb->priority for a paced slot): a new capacity with the
    same spec repaces it in the kernel's map, as its class's ceiling follows."""
    pacing = datapath._maps["upload_pacing"]
    shaper.set_link(Direction.UP, LINK)
    shaper.reconcile({Direction.UP: {3: CALL}})
    assert pacing.get(3).rate_bps == round(LINK.capacity_bps * SHAPE_SHARE)
    for capacity_bps in (2_500_000, 600_000):  # faster, then slower than the first
        shaper.set_link(Direction.UP, LinkShaping(capacity_bps))
        shaper.reconcile({Direction.UP: {3: CALL}})
        rate_bps = round(capacity_bps * SHAPE_SHARE)
        assert (pacing.get(3).rate_bps, pacing.get(3).cn_queue_ns) == (
            rate_bps, cn_queue_ns(rate_bps),
        ), f"still paced for the old capacity after {capacity_bps} B/s"  # fmt: skip
    shaper.set_link(Direction.UP, None)
    shaper.reconcile({})


def test_a_killed_shapers_linked_tree_is_adopted_in_place(
    pair: NetnsPair, datapath: Datapath
) -> None:
    before = tc_dump(pair.host_ns)
    wanted = {Direction.UP: {3: CALL, 4: LIMITED}, Direction.DOWN: {3: CALL}}
    ipr, killed = _shaper(pair.host_ns, datapath)
    try:
        for direction in Direction:
            killed.set_link(direction, LINK)
        killed.reconcile(wanted)
        killed._journal.release()  # what SIGKILL does: objects and journal stay, unlocked
        linked = tc_dump(pair.host_ns)
        other_ipr, adopting = _shaper(pair.host_ns, datapath)
        try:  # read back as linked trees (a switch would make them again, counters and queues lost)
            assert adopting.linked_directions() == {Direction.UP, Direction.DOWN}
            for direction in Direction:
                adopting.set_link(direction, LINK)
            adopting.reconcile(wanted)
            adopting.reconcile(
                wanted
            )  # the takeover finishes: the filters' programs swapped in place
            assert ACTION_INDEX.sub("", tc_dump(pair.host_ns)) == ACTION_INDEX.sub("", linked)
            assert adopting.linked_directions() == {Direction.UP, Direction.DOWN}
        finally:
            adopting.close()
            other_ipr.close()
        assert tc_dump(pair.host_ns) == before
    finally:
        ipr.close()


def _class_packets(
    pair: NetnsPair, shaper: TcShaper, direction: Direction, minor: int = DEFAULT_MINOR
) -> int:
    (ifb,) = {hook.ifb_name for hook in shaper._hooks[direction].values()}
    shown = subprocess.run(["tc", "-n", pair.host_ns, "-s", "class", "show", "dev", ifb, "classid",
                            f"{HTB_MAJOR:x}:{minor:x}"], capture_output=True, text=True, check=True).stdout  # fmt: skip
    return int(re.search(r"Sent \d+ bytes (\d+) pkt", shown).group(1))  # type: ignore[union-attr]


def test_under_a_link_every_packet_goes_through_the_tree_both_ways(
    pair: NetnsPair, shaper: TcShaper
) -> None:
    """Traffic of applications without a class (an untagged TCP upload here)
    reaches the IFBs through the catch-all, its data is sent from the default
    class, its acknowledgements from their own class (not behind anybody's
    bulk), and it is held under the link."""
    before = tc_dump(pair.host_ns)
    for direction in Direction:
        shaper.set_link(direction, LINK)
    shaper.reconcile({})
    assert tc_dump(pair.host_ns).count("match 00000000/00000000 at 0") == 4  # u32 lists both hooks
    # the upload paces the download's acknowledgements (ACK_PACE_SHARE), the download does not
    assert _ack_ceil(pair, shaper, Direction.UP) == _wire(LINK.capacity_bps * 0.95 * ACK_PACE_SHARE)
    assert _ack_ceil(pair, shaper, Direction.DOWN) == _wire(LINK.capacity_bps * 0.95)
    seconds = 1.5
    stream = start_stream(pair, random.randrange(20000, 60000), "up", seconds=seconds)
    try:
        sent = stream.wait()
    finally:
        stream.stop()
    link_bytes = LINK.capacity_bps * 0.95 * seconds
    assert 0.5 * link_bytes < sent < 1.15 * link_bytes, (
        f"{sent} bytes in {seconds} s: not held under the link"
    )
    assert _class_packets(pair, shaper, Direction.UP) > 100
    # the uploader's handshake and close are small too, its data is not
    assert _class_packets(pair, shaper, Direction.DOWN, ACK_MINOR) > 20 > _class_packets(
        pair, shaper, Direction.UP, ACK_MINOR)  # fmt: skip
    shaper.set_link(Direction.DOWN, LinkShaping(2 * LINK.capacity_bps))  # the pace follows it
    shaper.reconcile({})
    assert _ack_ceil(pair, shaper, Direction.UP) == _wire(
        2 * LINK.capacity_bps * 0.95 * ACK_PACE_SHARE
    )
    shaper.set_link(Direction.DOWN, None)
    shaper.reconcile({})
    assert _ack_ceil(pair, shaper, Direction.UP) == _wire(LINK.capacity_bps * 0.95)  # not paced
    assert (
        tc_dump(pair.host_ns).count("match 00000000/00000000 at 0") == 1
        and not shaper._hooks[Direction.DOWN]
    )
    shaper.close()
    assert tc_dump(pair.host_ns) == before


def test_a_killed_shapers_link_nobody_wants_any_more_goes_entirely(
    pair: NetnsPair, datapath: Datapath
) -> None:
    """The capacity was switched off while no helper ran (the next shaper has
    no link), or the next helper runs without the tc backend
    (remove_unadopted): the tree, its catch-alls and the hooks all go."""
    before = tc_dump(pair.host_ns)
    for successor in ("shaper without a link", "nobody"):
        ipr, killed = _shaper(pair.host_ns, datapath)
        try:
            for direction in Direction:
                killed.set_link(direction, LINK)
            killed.reconcile({Direction.UP: {3: CALL}})
            killed._journal.release()
            assert "match 00000000/00000000 at 0" in tc_dump(pair.host_ns)
            if successor == "nobody":
                assert remove_own_unadopted(ipr) == 2
            else:
                other_ipr, adopting = _shaper(pair.host_ns, datapath)
                try:
                    adopting.reconcile(
                        {Direction.UP: {3: CALL}}
                    )  # a priority alone, no link: nothing
                    assert tc_dump(pair.host_ns) == before, successor
                finally:
                    adopting.close()
                    other_ipr.close()
        finally:
            ipr.close()
        assert tc_dump(pair.host_ns) == before, successor


def test_the_engines_shaper_puts_the_link_on_its_own_namespace(
    pair: NetnsPair, shaper: TcShaper
) -> None:
    """NamespaceShapers (what the engine drives) passes the link to the
    helper's own namespace's shaper; a priority alone elsewhere is nothing."""
    before = tc_dump(pair.host_ns)
    shapers = NamespaceShapers(
        shaper,
        lambda ipr: TcShaper(ipr, lambda *_: (0, ""), shaper._pacer, instance=JOURNAL_INSTANCE),
    )
    shapers.set_link(Direction.UP, LINK)
    shapers.reconcile({Direction.UP: {3: CALL}})
    assert shapers.linked_directions() == {Direction.UP}
    assert " prio 0 " in _class_line(_classes(pair, shaper, Direction.UP), 3)
    shapers.set_link(Direction.UP, None)
    shapers.reconcile({Direction.UP: {3: CALL}})
    assert not shapers.linked_directions() and tc_dump(pair.host_ns) == before


def test_a_catch_all_someone_removed_is_put_back(pair: NetnsPair, shaper: TcShaper) -> None:
    """Without it every packet of the applications without a class passes the
    tree (the queue is back in the modem): the periodic read of the hooks
    (enforcement_gaps) notices, the next reconcile puts it back."""
    shaper.GAPS_MAX_AGE_S = 0.0  # read at every call, not once a second
    shaper.set_link(Direction.UP, LINK)
    shaper.reconcile({})
    (hook,) = shaper._hooks[Direction.UP].values()
    subprocess.run(["tc", "-n", pair.host_ns, "filter", "del", "dev", pair.host_if, "egress", "pref", "51118"],
                   check=True)  # fmt: skip
    assert "match 00000000/00000000 at 0" not in tc_dump(pair.host_ns)
    shaper.enforcement_gaps()
    shaper.reconcile({})
    assert tc_dump(pair.host_ns).count("match 00000000/00000000 at 0") == 1 and hook.catch_all


def test_the_link_hears_only_its_own_namespaces_gaps(pair: NetnsPair, shaper: TcShaper) -> None:
    """The link tree is in the helper's namespace only: a limit's shaper that
    fails in another namespace (policed there) is that limit's gap, not the link's."""
    import sys

    from tests.support.netns import nsenter_argv, spawn

    program = "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); print(1, flush=True); time.sleep(30)"
    process = spawn(nsenter_argv(pair.peer_ns, [sys.executable, "-c", program]), None)
    shapers = NamespaceShapers(
        shaper,
        lambda ipr: TcShaper(ipr, lambda *_: (0, ""), shaper._pacer, instance=JOURNAL_INSTANCE),
    )  # no program: fails
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "1"
        shapers.set_link(Direction.UP, LINK)
        shapers.shape_namespaces_of({process.pid: 4})
        shapers.reconcile({Direction.UP: {4: LIMITED}})
        assert shapers.enforcement_gaps().get(Direction.UP) and shapers.link_gaps() == {}
    finally:
        process.kill()
        process.wait(10)
        shapers.reconcile({})  # the other namespace's shaper goes with the last limit there
    assert not shapers._elsewhere


def test_a_lost_hooks_catch_all_goes_with_its_ifb(
    pair: NetnsPair, shaper: TcShaper, monkeypatch
) -> None:
    """Someone removes our classifier only: the hook is forgotten and its IFB
    deleted. Its catch-all must go first: left behind it redirects to a
    device that is gone, which drops every packet of the uplink while the
    hook cannot be made again (here: it cannot)."""
    from chadthrottle.helper.kernel.tc_hooks import NoHookPoint

    shaper.GAPS_MAX_AGE_S = 0.0
    shaper.set_link(Direction.UP, LINK)
    shaper.reconcile({})
    subprocess.run(["tc", "-n", pair.host_ns, "filter", "del", "dev", pair.host_if, "egress", "pref", "51117"],
                   check=True)  # fmt: skip
    shaper.enforcement_gaps()  # notices our filter is gone

    def no_hook(*_: object) -> None:
        raise NoHookPoint("refused for the test")

    monkeypatch.setattr(shaper, "_create_hook", no_hook)
    shaper.reconcile({})
    assert not shaper._hooks[Direction.UP]
    assert "00000000/00000000" not in tc_dump(pair.host_ns), (
        "a catch-all to a deleted IFB was left behind"
    )


def test_the_link_is_only_on_the_uplinks_default_routes_leave_by(
    pair: NetnsPair, shaper: TcShaper
) -> None:
    """A container's veth in the helper's namespace is an uplink for limits,
    but what it forwards leaves by the real uplink: the link tree's catch-all
    (and a hook for the link alone) goes only where default routes leave, so
    a container's traffic crosses each direction's tree once (on both, its
    downloads crossed the upload's tree too: held to the upload capacity).
    With no default route every uplink has it, as before."""
    from tests.support.netns import extra_link

    def filters(device: str, hook: str) -> str:
        return subprocess.run(["tc", "-n", pair.host_ns, "filter", "show", "dev", device, hook],
                              capture_output=True, text=True).stdout  # fmt: skip

    before = tc_dump(pair.host_ns)
    with extra_link(pair.host_ns) as container:
        subprocess.run(["ip", "-n", pair.host_ns, "route", "add", "default", "via", pair.peer_addr],
                       check=True)  # fmt: skip
        veth = container.host_if
        for direction in Direction:
            shaper.set_link(direction, LINK)
        shaper.reconcile({})
        assert shaper.linked_interfaces() == [pair.host_if]
        assert "u32" in filters(pair.host_if, "egress") and filters(veth, "egress") == ""
        shaper.reconcile({Direction.UP: {3: CALL}, Direction.DOWN: {3: CALL}})  # hooks everywhere
        assert "bpf" in filters(veth, "egress") and "u32" not in filters(veth, "egress")
        assert "bpf" in filters(veth, "ingress") and "u32" not in filters(veth, "ingress")
        assert "u32" in filters(pair.host_if, "ingress") and shaper.linked_interfaces() == [
            pair.host_if
        ]
        subprocess.run(["ip", "-n", pair.host_ns, "route", "del", "default"], check=True)
        shaper.links_moved()
        shaper.reconcile({})  # no default route: the link is on every uplink
        assert "u32" in filters(veth, "egress") and "u32" in filters(veth, "ingress")
        for direction in Direction:
            shaper.set_link(direction, None)
        shaper.reconcile({})
    assert tc_dump(pair.host_ns) == before
