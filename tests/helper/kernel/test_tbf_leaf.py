"""A small upload class's TBF leaf on a real veth (issue 13, docs/backends.md
"A TBF leaf for small uploads"): its bucket as the kernel keeps it, every
full-size frame through it, a raised MTU followed, its queue kept when the
class crosses the rate threshold, and adoption after a SIGKILL."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chadthrottle.contract import DOWNLOAD_BURST_S, Direction
from chadthrottle.helper.kernel import tbf_leaf
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.htb import ClassSpec, HtbHierarchy
from chadthrottle.helper.kernel.htb_change import ClassChanger
from chadthrottle.helper.kernel.layout import class_id
from chadthrottle.helper.kernel.tc_shaper import LINKS_MAX_AGE_S, TcShaper
from pyroute2 import IPRoute

from tests.support.netns import NetnsPair, entered_netns, tc_dump
from tests.support.own_names import JOURNAL_INSTANCE

SLOT = 7
SMALL = ClassSpec(300 * 1024, 131072)  # up to tbf_leaf.CUT_UP_TO_BPS: a cutting leaf
PORT = 5611
IP_MTU_DISCOVER, IP_PMTUDISC_DO = 10, 2
UDP_IP_HEADERS = 28


def _shown(pair: NetnsPair) -> str:
    return subprocess.run(["tc", "-n", pair.host_ns, "-s", "qdisc", "show", "dev", pair.host_if],
                          capture_output=True, text=True).stdout  # fmt: skip


def _set_mtu(pair: NetnsPair, mtu: int) -> None:
    for ns, dev in ((pair.host_ns, pair.host_if), (pair.peer_ns, pair.peer_if)):
        subprocess.run(["ip", "-n", ns, "link", "set", dev, "mtu", str(mtu)], check=True)


def _leaf(ipr: IPRoute, ifindex: int, slot: int) -> tuple[str, tbf_leaf.TbfLeaf | None, int]:
    """The class's leaf: kind, as a TbfLeaf (tbf only), packets it dropped."""
    (message,) = [m for m in ipr.get_qdiscs(index=ifindex) if m["handle"] == slot << 16]
    kind = message.get_attr("TCA_KIND")
    stats = message.get_attr("TCA_STATS2").get_attr("TCA_STATS_QUEUE")
    return kind, tbf_leaf.read_back(message) if kind == "tbf" else None, int(stats["drops"])


class Datagrams:
    """UDP frames of a given size from the host namespace into the class (the
    small_class fixture's filter), counted at the peer."""

    def __init__(self, pair: NetnsPair) -> None:
        with entered_netns(pair.peer_ns):
            self.receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.receiver.bind((pair.peer_addr, PORT))
        self.receiver.settimeout(0.05)
        with entered_netns(pair.host_ns):
            self.sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sender.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
        self.sender.connect((pair.peer_addr, PORT))
        self.received = 0
        self.sender.send(b"x")  # the neighbour resolved first
        assert self.count(1) == 1
        self.received = 0

    def send(self, count: int, frame_bytes: int) -> None:
        for _ in range(count):
            self.sender.send(b"x" * (frame_bytes - 14 - UDP_IP_HEADERS))

    def count(self, expected: int, within_s: float = 2.0) -> int:
        """Datagrams received so far, waiting up to within_s for expected."""
        deadline = time.monotonic() + within_s
        while self.received < expected and time.monotonic() < deadline:
            try:
                self.receiver.recv(65536)
                self.received += 1
            except TimeoutError:
                pass
        return self.received

    def close(self) -> None:
        self.sender.close()
        self.receiver.close()


@pytest.fixture
def small_class(
    pair: NetnsPair, netlink: tuple[IPRoute, ClassChanger]
) -> Iterator[tuple[HtbHierarchy, int]]:
    ipr, changer = netlink
    ifindex = ipr.link_lookup(ifname=pair.host_if)[0]
    tree = HtbHierarchy(ipr, ifindex, Direction.UP, changer=changer,
                        frame_bytes=tbf_leaf.largest_frame([(1500, True)]))  # fmt: skip
    tree.create()
    try:
        tree.sync({SLOT: SMALL})
        # Into the class by port: another session's helper may tag this process's
        # sockets (its programs see every cgroup) and set skb->priority itself.
        subprocess.run(["tc", "-n", pair.host_ns, "filter", "add", "dev", pair.host_if, "parent",
                        f"{class_id(SLOT) >> 16:x}:", "protocol", "ip", "prio", "1", "u32", "match", "ip",
                        "dport", str(PORT), "0xffff", "flowid", f"{class_id(SLOT) >> 16:x}:{SLOT:x}"],
                       check=True)  # fmt: skip
        yield tree, ifindex
    finally:
        tree.delete()


def test_full_size_frames_and_a_tcp_stream_pass_the_cutting_leaf_whole(
    pair: NetnsPair, netlink: tuple[IPRoute, ClassChanger], small_class: tuple[HtbHierarchy, int]
) -> None:
    """The bucket is what was sent in bytes (pyroute2's ticks gave one a few
    bytes short of a frame, and every full-size frame was dropped), and TCP's
    GSO packets, far larger than the bucket, are cut, not dropped."""
    ipr, _changer = netlink
    _tree, ifindex = small_class
    kind, leaf, _ = _leaf(ipr, ifindex, SLOT)
    assert kind == "tbf" and leaf is not None
    assert abs(leaf.bucket_bytes - 1518) <= tbf_leaf.tick_bytes(leaf.rate_bps), leaf
    frames = Datagrams(pair)
    try:
        frames.send(5, 1514)
        assert frames.count(5) == 5
    finally:
        frames.close()
    with entered_netns(pair.peer_ns):
        listener = socket.create_server((pair.peer_addr, PORT))
    with entered_netns(pair.host_ns):
        client = socket.socket()
    try:
        client.connect((pair.peer_addr, PORT))
        accepted, _ = listener.accept()
        client.sendall(b"x" * 65536)
        accepted.settimeout(3.0)
        received = 0
        while received < 65536:
            received += len(accepted.recv(65536))
        accepted.close()
    finally:
        client.close()
        listener.close()
    assert _leaf(ipr, ifindex, SLOT)[2] == 0  # nothing dropped: GSO packets were cut


def test_a_raised_mtu_is_followed_in_place_and_until_then_larger_frames_drop(
    pair: NetnsPair, netlink: tuple[IPRoute, ClassChanger], small_class: tuple[HtbHierarchy, int]
) -> None:
    """Why the bucket must follow every link's MTU (the shaper re-sizes at its
    next reconcile: the next test)."""
    ipr, _changer = netlink
    tree, ifindex = small_class
    _set_mtu(pair, 4000)
    frames = Datagrams(pair)
    try:
        frames.send(1, 4014)
        assert (frames.count(1, within_s=0.3), _leaf(ipr, ifindex, SLOT)[2]) == (0, 1), _shown(pair)
        tree.set_frame_bytes(tbf_leaf.largest_frame([(4000, True)]))
        kind, leaf, drops = _leaf(ipr, ifindex, SLOT)
        assert kind == "tbf" and leaf is not None and drops == 1  # changed in place, not replaced
        assert abs(leaf.bucket_bytes - 4018) <= tbf_leaf.tick_bytes(leaf.rate_bps)
        frames.send(3, 4014)
        assert frames.count(3) == 3
    finally:
        frames.close()


def test_a_class_crossing_the_threshold_keeps_its_queue(
    pair: NetnsPair, netlink: tuple[IPRoute, ClassChanger], small_class: tuple[HtbHierarchy, int]
) -> None:
    """Replacing the leaf would drop its backlog; the TBF is changed in place
    to pass every packet whole, and passes on when lowered again (a cutting
    bucket could never send a whole GSO packet queued meanwhile)."""
    ipr, _changer = netlink
    tree, ifindex = small_class
    tree.sync({SLOT: ClassSpec(20_000, 131072)})  # 13 frames a second
    frames = Datagrams(pair)
    try:
        frames.send(30, 1514)
        time.sleep(0.05)
        tree.sync({SLOT: ClassSpec(4 << 20, 131072)})
        kind, leaf, _ = _leaf(ipr, ifindex, SLOT)
        assert kind == "tbf" and leaf is None  # the passing leaf's rate is above 32 bits
        assert frames.count(30) == 30
        tree.sync({SLOT: SMALL})  # it may hold whole GSO packets now: it keeps passing
        kind, leaf, drops = _leaf(ipr, ifindex, SLOT)
        assert kind == "tbf" and leaf is None and drops == 0
    finally:
        frames.close()


def test_a_shaper_follows_a_raised_mtu_and_adopts_its_leaves_after_a_kill(
    pair: NetnsPair, datapath: Datapath
) -> None:
    """The shaper sizes the leaves from every link of the namespace at each
    reconcile; a shaper that replaces a killed one takes the TBF leaf as it is
    (no tc change), or changes it in place if an MTU changed meanwhile."""
    before = tc_dump(pair.host_ns)
    wanted = {Direction.UP: {1: SMALL}}
    with entered_netns(pair.host_ns):
        ipr = IPRoute()
        killed = TcShaper(
            ipr, datapath.tc_program, datapath, instance=JOURNAL_INSTANCE
        )  # its changer beside ipr

    def bucket(shaper: TcShaper) -> int:
        (hook,) = shaper._hooks[Direction.UP].values()
        _kind, leaf, _drops = _leaf(ipr, hook.ifb.ifindex, 1)
        assert leaf is not None
        return leaf.bucket_bytes

    try:
        killed.reconcile(wanted)
        assert abs(bucket(killed) - 1518) <= 4
        killed._journal.release()  # what SIGKILL leaves: objects and journal, unlocked
        limited = tc_dump(pair.host_ns)
        with entered_netns(pair.host_ns):
            adopting = TcShaper(ipr, datapath.tc_program, datapath, instance=JOURNAL_INSTANCE)
        try:
            adopting.reconcile(wanted)
            assert tc_dump(pair.host_ns) == limited, "the adopting shaper changed a matching leaf"
            adopting._journal.release()
            _set_mtu(pair, 3000)  # while no helper runs
            with entered_netns(pair.host_ns):
                adopting = TcShaper(ipr, datapath.tc_program, datapath, instance=JOURNAL_INSTANCE)
            adopting.reconcile(wanted)
            assert abs(bucket(adopting) - 3018) <= 4
            _set_mtu(
                pair, 2000
            )  # while it runs: followed at a reconcile once the links are listed again
            time.sleep(LINKS_MAX_AGE_S)
            adopting.reconcile(wanted)
            assert abs(bucket(adopting) - 2018) <= 4
            _set_mtu(pair, 1500)
        finally:
            adopting.close()
        assert tc_dump(pair.host_ns) == before
    finally:
        ipr.close()


class _TbfRefused:
    """The real changer, but a TBF leaf goes out under a kind no module here
    provides, so this kernel refuses it as one built without sch_tbf would."""

    def __init__(self, changer: ClassChanger) -> None:
        self._changer = changer

    def request(self, build: Callable[[int], bytes], what: str) -> None:
        if "tbf leaf" in what:
            self._changer.request(lambda seq: build(seq).replace(b"tbf\x00", b"tbx\x00"), what)
        else:
            self._changer.request(build, what)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._changer, name)


def test_a_kernel_that_refuses_tbf_gets_bfifo_leaves_and_later_limits_still_land(
    pair: NetnsPair, netlink: tuple[IPRoute, ClassChanger]
) -> None:
    """Before, the refusal came after the class was made: every later sync
    tried "add-class" again (EEXIST), and no limit reached the kernel any more."""
    ipr, changer = netlink
    ifindex = ipr.link_lookup(ifname=pair.host_if)[0]
    tree = HtbHierarchy(ipr, ifindex, Direction.UP, changer=_TbfRefused(changer),  # type: ignore[arg-type]
                        frame_bytes=tbf_leaf.largest_frame([(1500, True)]))  # fmt: skip
    tree.create()
    try:
        tree.sync({SLOT: SMALL})
        assert _leaf(ipr, ifindex, SLOT)[0] == "bfifo"
        tree.sync({SLOT: SMALL, SLOT + 1: SMALL})
        assert _leaf(ipr, ifindex, SLOT + 1)[0] == "bfifo"
        assert tree.classes == {SLOT: SMALL, SLOT + 1: SMALL}
        shown = subprocess.run(["tc", "-n", pair.host_ns, "class", "show", "dev", pair.host_if],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert shown.count(" burst 128Kb ") == 2, shown  # the limit's burst, not a cutting leaf's
    finally:
        tree.delete()


def test_an_adopted_leaf_is_resized_at_adoption_and_managed_like_its_own(
    pair: NetnsPair, datapath: Datapath
) -> None:
    """Review L2: an MTU raised while no helper ran is taken by the adopted
    leaf as it is adopted, before any reconcile (before, at the first one,
    and never for a class nobody wanted yet). Review L1: the adopted leaf
    then follows MTU changes while held and limit changes once wanted, in
    place, as a leaf the shaper made would."""
    before = tc_dump(pair.host_ns)
    with entered_netns(pair.host_ns):
        ipr = IPRoute()
        killed = TcShaper(ipr, datapath.tc_program, datapath, instance=JOURNAL_INSTANCE)

    def leaf(shaper: TcShaper) -> tbf_leaf.TbfLeaf | None:
        """The class's TBF leaf; None for a passing one (a rate above 32 bits)."""
        (hook,) = shaper._hooks[Direction.UP].values()
        kind, found, _drops = _leaf(ipr, hook.ifb.ifindex, 1)
        assert kind == "tbf"
        return found

    def bucket(shaper: TcShaper) -> int:
        found = leaf(shaper)
        assert found is not None and found.cuts
        return found.bucket_bytes

    try:
        killed.reconcile({Direction.UP: {1: SMALL}})
        killed._journal.release()  # what SIGKILL leaves
        _set_mtu(pair, 3000)  # while no helper runs
        with entered_netns(pair.host_ns):
            adopting = TcShaper(ipr, datapath.tc_program, datapath, instance=JOURNAL_INSTANCE)
        try:
            assert abs(bucket(adopting) - 3018) <= 4, "not re-sized at adoption"
            _set_mtu(pair, 2000)
            adopting.links_moved()
            adopting.reconcile({})  # nobody wants it yet: held at its rate
            assert abs(bucket(adopting) - 2018) <= 4, "a held leaf missed the MTU"
            adopting.reconcile({Direction.UP: {1: ClassSpec(1 << 20, 131072)}})
            assert abs(bucket(adopting) - 2018) <= 4
            _set_mtu(pair, 1500)
            adopting.links_moved()
            adopting.reconcile({Direction.UP: {1: SMALL}})
            assert abs(bucket(adopting) - 1518) <= 4
            # Raised past the threshold it passes, and keeps passing when lowered
            # (a cutting bucket could never send a whole GSO packet it queued).
            for spec in (ClassSpec(10 << 20, 131072), SMALL):
                adopting.reconcile({Direction.UP: {1: spec}})
                assert leaf(adopting) is None, spec
        finally:
            adopting.close()
        assert tc_dump(pair.host_ns) == before
    finally:
        _set_mtu(pair, 1500)
        ipr.close()


def test_a_leaf_adopted_without_a_changer_becomes_a_bfifo_and_is_released_cleanly(
    pair: NetnsPair, datapath: Datapath
) -> None:
    """A shaper whose changer could not be opened beside its socket cannot
    send a TBF message: an adopted cutting leaf becomes a bfifo (it drops
    nothing a bfifo would not), and releasing the class nobody wants no
    longer fails on the missing changer (before: an AssertionError at every
    reconcile after the takeover)."""
    before = tc_dump(pair.host_ns)
    with entered_netns(pair.host_ns):
        ipr = IPRoute()
        killed = TcShaper(ipr, datapath.tc_program, datapath, instance=JOURNAL_INSTANCE)
    try:
        killed.reconcile({Direction.UP: {1: SMALL, 2: ClassSpec(10 << 20, 131072)}})  # cuts, passes
        killed._journal.release()
        adopting = TcShaper(
            ipr, datapath.tc_program, datapath, instance=JOURNAL_INSTANCE
        )  # out here: no changer beside ipr
        try:
            assert adopting._changer is None
            (hook,) = adopting._hooks[Direction.UP].values()
            assert [_leaf(ipr, hook.ifb.ifindex, slot)[0] for slot in (1, 2)] == ["bfifo", "tbf"]
            adopting.reconcile({})
            adopting.reconcile({})  # the takeover: the held classes are released (opened)
            assert [_leaf(ipr, hook.ifb.ifindex, slot)[0] for slot in (1, 2)] == ["bfifo", "bfifo"]
            adopting.reconcile({Direction.UP: {3: SMALL}})
            assert _leaf(ipr, hook.ifb.ifindex, 3)[0] == "bfifo"
        finally:
            adopting.close()
        assert tc_dump(pair.host_ns) == before
    finally:
        ipr.close()


def _class_buffer_ns(ipr: IPRoute, ifindex: int, slot: int) -> int:
    (message,) = [m for m in ipr.get_classes(index=ifindex) if m["handle"] == class_id(slot)]
    return int(message.get_attr("TCA_OPTIONS").get_attr("TCA_HTB_PARMS")["buffer"])


@pytest.mark.parametrize("direction", [Direction.DOWN, Direction.UP])
def test_a_small_class_cuts_and_one_that_passed_never_strands_its_gso_packets(
    pair: NetnsPair, netlink: tuple[IPRoute, ClassChanger], direction: Direction
) -> None:
    """Download classes up to the threshold cut GRO/GSO packets as uploads do
    (bfifo leaves and the limit's burst before: 0.5 s windows read 0.38-0.55
    of a split 300 KiB/s), an upload's with a class burst of two frames. A leaf that
    passed whole packets keeps passing when lowered, in both directions: TBF
    cannot send a queued packet larger than a cutting bucket, and the class
    sent nothing again (160 of 208 frames)."""
    ipr, changer = netlink
    ifindex = ipr.link_lookup(ifname=pair.host_if)[0]
    tree = HtbHierarchy(ipr, ifindex, direction, changer=changer,
                        frame_bytes=tbf_leaf.largest_frame([(1500, True)]))  # fmt: skip
    tree.create()
    frames: Datagrams | None = None
    try:
        tree.sync({SLOT: SMALL, SLOT + 1: ClassSpec(3 << 20, 3028)})
        kind, leaf, _ = _leaf(ipr, ifindex, SLOT)
        assert kind == "tbf" and leaf is not None and leaf.cuts, (kind, leaf)
        small_burst = _class_buffer_ns(ipr, ifindex, SLOT)
        # in ticks, not 128 KiB's 0.43 s: an upload two frames, a download what its
        # clamped senders keep queued (a stall of its dequeue made up, not lost: band36)
        frame = tbf_leaf.largest_frame([(1500, True)])
        wanted_s = 2 * frame / SMALL.rate_bps if direction is Direction.UP else DOWNLOAD_BURST_S
        assert abs(small_burst * 64 / 1e9 - wanted_s) < 0.002, (small_burst, wanted_s)
        subprocess.run(["tc", "-n", pair.host_ns, "filter", "add", "dev", pair.host_if, "parent",
                        f"{class_id(SLOT) >> 16:x}:", "protocol", "ip", "prio", "1", "u32", "match", "ip",
                        "dport", str(PORT), "0xffff", "flowid", f"{class_id(SLOT) >> 16:x}:{SLOT + 1:x}"],
                       check=True)  # fmt: skip
        frames = Datagrams(pair)
        frames.sender.setsockopt(socket.SOL_UDP, UDP_SEGMENT, 1472)
        frames.receiver.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)  # none lost there
        stranded = 0
        for _attempt in range(3):  # the queue must still hold the GSO packet at the change
            tree.sync({SLOT: SMALL, SLOT + 1: ClassSpec(3 << 20, 3028)})
            for _ in range(5):  # ~0.1 s of the class, as GSO packets of 40 frames
                frames.sender.send(b"x" * 1472 * 40)
            frames.sender.send(b"x" * 1472 * 8)
            tree.sync({SLOT: SMALL, SLOT + 1: ClassSpec(1 << 20, 3028)})
            stranded = max(stranded, int(_leaf_backlog(ipr, ifindex, SLOT + 1)))
            expected = frames.received + 208
            assert frames.count(expected, within_s=3.0) == expected
            if stranded:
                break
        assert stranded, "the queue drained before the change: the case was not tried"
        kind, leaf, drops = _leaf(ipr, ifindex, SLOT + 1)
        assert kind == "tbf" and leaf is None and drops == 0  # still passing whole packets
        # A helper after SIGKILL adopts both as they are: the small one still cuts.
        adopted = HtbHierarchy.adopt(ipr, ifindex, direction, changer=changer,
                                     frame_bytes=tbf_leaf.largest_frame([(1500, True)]))  # fmt: skip
        adopted.sync({SLOT: SMALL, SLOT + 1: ClassSpec(1 << 20, 3028)})
        kind, leaf, _ = _leaf(ipr, ifindex, SLOT)
        assert kind == "tbf" and leaf is not None and leaf.cuts, (kind, leaf)
        assert _class_buffer_ns(ipr, ifindex, SLOT) == small_burst
        assert _leaf(ipr, ifindex, SLOT + 1)[:2] == ("tbf", None)
    finally:
        if frames is not None:
            frames.close()
        tree.delete()


UDP_SEGMENT, SO_RCVBUFFORCE = 103, 33


def _leaf_backlog(ipr: IPRoute, ifindex: int, slot: int) -> int:
    (message,) = [m for m in ipr.get_qdiscs(index=ifindex) if m["handle"] == slot << 16]
    return int(message.get_attr("TCA_STATS2").get_attr("TCA_STATS_QUEUE")["backlog"])
