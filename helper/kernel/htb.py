"""One HTB hierarchy the helper owns on one device: the root, a default class
for unlimited traffic, and a class with a sized leaf per limited slot: a bfifo,
or a TBF that cuts GSO packets under small limits (tbf_leaf.py).

A class that is no longer wanted is first *retired*: opened up to the default
rate so its backlog drains at once, and deleted a second later. Deleting it
outright would drop up to a few megabytes of queued packets, and a TCP
connection whose RTT grew in that queue would stall for seconds on its
retransmission timer just when its limit was lifted.

A hierarchy a killed helper left can be *adopted* (adopt()): its classes are
read back from the kernel and kept as they are where they match what is
wanted. Adopted classes that are not wanted are *held* at their rate (the old
programs may still send packets to them) until release_held().

With a link capacity (`link`, priority_classes.LinkShaping: issue 16) the
classes sit under a link class shaped just under the capacity and are ordered
by priority (docs/backends.md, "Priorities and link shaping"); without one,
everything is as it always was. A hierarchy cannot switch between the two in
place (HTB cannot move a class to another parent): it is deleted and made
again. A linked hierarchy a killed helper left is adopted as linked
(adopt_linked).
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, cast

from chadthrottle.contract import DOWNLOAD_BURST_S, Direction
from chadthrottle.helper.errors import KernelError
from chadthrottle.helper.kernel import tbf_leaf
from chadthrottle.helper.kernel.htb_change import ClassChanger
from chadthrottle.helper.kernel.layout import HTB_MAJOR, class_id
from chadthrottle.priority import DEFAULT_PRIORITY, Priority
from pyroute2.iproute import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.tcmsg import plugins, sched_pfifo
from pyroute2.netlink.rtnl.tcmsg.common import calc_xmittime

if TYPE_CHECKING:
    from chadthrottle.helper.kernel.priority_classes import ClassPlan, LinkShaping

log = logging.getLogger("chadthrottle.kernel.htb")

# pyroute2 knows pfifo but not bfifo; both take the same tc_fifo_qopt. Without
# this, pyroute2 silently sends an unknown kind to the root instead of the class.
plugins.setdefault("bfifo", sched_pfifo)

ROOT_HANDLE = HTB_MAJOR << 16
# Unlimited traffic goes to a default class, not HTB's direct queue: the direct
# queue is served before every class, so a saturating bystander would starve
# the limited applications below their rate. The default class is fast enough
# never to be the bottleneck and yields to limited classes (lower priority).
DEFAULT_MINOR = 0xFFFF
# With a link capacity: the link class, and the default class's leaf (a leaf's
# handle is its class's minor, and the default's, ffff:, is the ingress
# qdisc's). App slots stay below both (MAX_SLOTS in helper/engine/limits.py).
LINK_MINOR = 0xFFFE
DEFAULT_LEAF_MAJOR = 0xFFFD
# ... and a class for small TCP packets (acknowledgements, mostly) of
# applications without a class: in the default class a download's
# acknowledgements waited behind the bulk upload, the remote senders then
# sent in bursts, and 150-200 ms of queue stayed at the modem (12-16 ms with
# them apart: docs/benchmarks.md, "Priorities through the helper's kernel layer").
ACK_MINOR = 0xFFFC
# IPv4, IPv6: u32 on the tree's root (our own IFB's), gone with it
ACK_FILTER_PRIORITIES = {0x0800: HTB_MAJOR, 0x86DD: HTB_MAJOR + 1}
# u32 keys (value/mask+offset from the IP header): TCP, and a packet under 128 bytes
ACK_KEYS = {0x0800: ["0x00060000/0x00ff0000+8", "0x00000000/0x0000ff80+0"],
            0x86DD: ["0x00000600/0xff80ff00+4"]}  # fmt: skip
DEFAULT_CLASS_RATE_BPS = 12_500_000_000  # 100 Gbit/s
DEFAULT_CLASS_BURST_BYTES = 1 << 20
LIMITED_PRIORITY, DEFAULT_CLASS_PRIORITY = 0, 1
RETIRE_AFTER_S = 1.0
EMPTY_START_BURST_BYTES = 2 * 1514  # what a new class may send at once before its rate applies
ETHERNET_HEADER_BYTES = 14
# Our mark inside the root qdisc, with its handle and default class: HTB's
# rate-to-quantum divisor, unused here (every class is given its quantum).
ROOT_MARKER_R2Q = HTB_MAJOR
BUFFER_TICKS_SLACK = 2  # the kernel's ns -> ticks round trip of a class's buffer
# A linked class's bfifo given a small limit is replaced by a cutting TBF,
# which drops what the bfifo holds (_swap_to_cutting): at once if that is at
# most one 64 KB GSO packet as a qdisc counts it (45 frames of 1,514 bytes; a
# TCP sender resends it after SACK within a round trip), else at a sync that
# finds that little, or this long after the limit came.
SWAP_LOSS_BYTES = 45 * 1514
SWAP_WAIT_S = 0.5

LEAF_QUEUE_SECONDS = 0.1  # a leaf bfifo holds this much of the class rate
MIN_UPLOAD_QUEUE_BYTES = 256 * 1024  # at least a few 64 KB GSO super-packets
# A download leaf holds this much of its rate, at least a few full frames, no
# more. Its packets wait there while the remote sender's retransmission timer
# runs (200 ms at least): a queue longer than that fills with retransmissions
# of what it already holds, and the application receives almost nothing (a
# 256 KiB floor, 2 s at 128 KiB/s, did). 0.1 s dropped a new connection's
# first GRO super-packets at 1 MiB/s (tests/e2e/test_limit_over_dbus.py).
DOWNLOAD_QUEUE_SECONDS = 0.15
MIN_DOWNLOAD_QUEUE_BYTES = 8 * 1514
# Uploads past this much virtual queue get congestion notices (see maps.h):
# well below the leaf queue, so TCP backs off before anything is dropped.
MIN_CN_QUEUE_NS = 20_000_000
CN_QUEUE_BYTES = 2 * 64 * 1024
TSQ_LIMIT_FILE = "/proc/sys/net/ipv4/tcp_limit_output_bytes"


@dataclass(frozen=True)
class ClassSpec:
    """One application's limit in one direction (rate_bps 0: none, a class for
    its priority alone), and its priority (which orders only under a link)."""

    rate_bps: int
    burst_bytes: int
    priority: Priority = DEFAULT_PRIORITY


Classes = dict[int, ClassSpec]  # app slot -> limit
_DIFFERS = ClassSpec(-1, -1)  # an adopted class that must be changed to what is wanted
# An adopted class of a linked tree: changed to its plan at the first sync
# (a ClassPlan equal to no plan; built lazily, priority_classes imports this module).
_ADOPTED_PLAN: object = object()


_tsq_cache: tuple[float, int] = (float("-inf"), 0)  # (read at, bytes)


def _tcp_small_queue_bytes(max_age_s: float = 1.0) -> int:
    """How much one TCP socket may have queued below it (TSQ), 4 MiB by default.
    Read at most once a second: reading /proc was a third of a limit change."""
    global _tsq_cache
    read_at, cached = _tsq_cache
    if time.monotonic() - read_at < max_age_s:
        return cached
    try:
        with open(TSQ_LIMIT_FILE) as file:
            value = int(file.read())
    except (OSError, ValueError):
        value = 4 << 20
    _tsq_cache = (time.monotonic(), value)
    return value


def leaf_queue_bytes(rate_bps: int, direction: Direction) -> int:
    """Downloads: a short queue. A TCP socket's clamped receive window keeps
    about WINDOW_QUEUE_US of the rate queued here (socket_tagging.py), a third
    of this, so three busy sockets of one application still fit; beyond that,
    and for UDP, the remote sender learns from drops. Uploads: room for what
    TCP small queues lets one local socket push, so a
    limit landing on a fast connection loses nothing while the congestion
    notices bring its window down; in steady state the queue stays short."""
    if direction is Direction.UP:
        return max(int(rate_bps * LEAF_QUEUE_SECONDS), MIN_UPLOAD_QUEUE_BYTES,
                   _tcp_small_queue_bytes() + CN_QUEUE_BYTES)  # fmt: skip
    return max(int(rate_bps * DOWNLOAD_QUEUE_SECONDS), MIN_DOWNLOAD_QUEUE_BYTES)


def cn_queue_ns(rate_bps: int) -> int:
    return max(MIN_CN_QUEUE_NS, CN_QUEUE_BYTES * 1_000_000_000 // rate_bps)


# (TBF rate, bucket) pairs whose bucket the kernel was seen to keep: checked
# once each (a dump of the IFB's qdiscs, a thousand of them with a thousand classes)
_verified_buckets: set[tuple[int, int]] = set()


def _leaf_handle(slot: int) -> int:
    return (slot & 0xFFFF) << 16  # leaf <slot>: under class <major>:<slot>


def _same_leaf(found: tbf_leaf.TbfLeaf | None, wanted: tbf_leaf.TbfLeaf) -> bool:
    """As given, or read back from the kernel (a bucket up to a tick below)."""
    return found is not None and (found == wanted or (
        found.rate_bps == wanted.rate_bps and found.limit_bytes == wanted.limit_bytes
        and abs(wanted.bucket_bytes - found.bucket_bytes) <= tbf_leaf.tick_bytes(wanted.rate_bps)))  # fmt: skip


def tc_call(ipr: IPRoute, command: str, *args: object, **kwargs: object) -> None:
    """ipr.tc with the kernel's refusal turned into a KernelError that says where."""
    try:
        ipr.tc(command, *args, **kwargs)
    except NetlinkError as error:
        where = kwargs.get("index", args[1] if len(args) > 1 else "?")
        raise KernelError(
            f"tc {command} on interface {where} failed: {error}", error.code
        ) from error


class HtbHierarchy:
    def __init__(
        self,
        ipr: IPRoute,
        ifindex: int,
        direction: Direction,
        clock: Callable[[], float] = time.monotonic,
        l3_to_l2: float = 1.0,
        changer: ClassChanger | None = None,
        link: LinkShaping | None = None,
        frame_bytes: int = tbf_leaf.largest_frame([]),
    ) -> None:
        """l3_to_l2: HTB counts from the link-layer header, a limit at L3; rates
        are scaled by this so full-size packets come out exact at L3. changer:
        the fast path for rate changes, in ipr's namespace (None: pyroute2, and
        bfifo leaves only). link: shape everything under a link capacity, by
        priority. frame_bytes: the largest frame of any link in the namespace
        (set_frame_bytes), which an upload class's cutting TBF leaf must take."""
        self.ifindex = ifindex
        self.frame_bytes = frame_bytes
        # slot -> its TBF leaf as given (or read back): new upload classes
        # without a link have one (tbf_leaf.py); bfifo leaves are in _leaf_limits
        self._tbf: dict[int, tbf_leaf.TbfLeaf | None] = {}
        self._tbf_refused = False  # the kernel would not make one (no sch_tbf): bfifo leaves
        # slots whose TBF leaf passed whole packets: they never cut again (_cuts)
        self._passed: set[int] = set()
        self.link = link
        self._planned: dict[
            int, ClassPlan | object
        ] = {}  # with a link: minor -> what the kernel has
        self._changer = changer
        self._l3_to_l2 = l3_to_l2
        self._ipr = ipr
        self._direction = direction
        self._clock = clock
        self.classes: Classes = {}
        self._leaf_limits: dict[int, int] = {}  # slot -> bytes its bfifo holds
        self._retiring: dict[int, float] = {}  # slot -> when it was opened up
        self._adopted: dict[int, tuple[int, int]] = {}  # slot -> kernel (rate at L2, buffer ticks)
        self._held: set[int] = set()  # adopted, not wanted, kept at their rate
        # linked slot -> since when its bfifo waits to be swapped (_swap_to_cutting)
        self._swap_waiting: dict[int, float] = {}

    @classmethod
    def adopt(
        cls,
        ipr: IPRoute,
        ifindex: int,
        direction: Direction,
        l3_to_l2: float = 1.0,
        changer: ClassChanger | None = None,
        frame_bytes: int = tbf_leaf.largest_frame([]),
    ) -> HtbHierarchy:
        """The hierarchy a killed helper left on ifindex, as the kernel has it
        (a linked one: adopt_linked). frame_bytes: the namespace's largest
        frame now; a cutting TBF leaf sized for a smaller one (an MTU raised
        while no helper ran) is re-sized before anything else, as it would
        drop the larger frames (review L2)."""
        messages = list(ipr.get_classes(index=ifindex))
        if any(message["handle"] == ROOT_HANDLE | LINK_MINOR for message in messages):
            return cls.adopt_linked(
                ipr, ifindex, direction, l3_to_l2, changer, messages, frame_bytes
            )
        hierarchy = cls(ipr, ifindex, direction, l3_to_l2=l3_to_l2, changer=changer,
                        frame_bytes=frame_bytes)  # fmt: skip
        for message in messages:
            slot = message["handle"] & 0xFFFF
            options = message.get_attr("TCA_OPTIONS")
            parms = options.get_attr("TCA_HTB_PARMS") if options is not None else None
            if message["handle"] >> 16 != HTB_MAJOR or slot == DEFAULT_MINOR or parms is None:
                continue
            rate = options.get_attr("TCA_HTB_RATE64") or parms["rate"]
            hierarchy._adopted[slot] = (int(rate), int(parms["buffer"]))
            hierarchy._held.add(slot)
        hierarchy._read_leaves(set(hierarchy._adopted))
        hierarchy._resize_adopted_leaves()
        return hierarchy

    def _read_leaves(self, slots: set[int]) -> None:
        """The leaves of these adopted classes, as the kernel has them."""
        for message in self._ipr.get_qdiscs(index=self.ifindex):
            slot = message["parent"] & 0xFFFF
            if slot not in slots or message["parent"] >> 16 != HTB_MAJOR:
                continue
            if message.get_attr("TCA_KIND") == "bfifo":
                self._leaf_limits[slot] = int(message.get_attr("TCA_OPTIONS")["limit"])
            elif message.get_attr("TCA_KIND") == "tbf" and message["handle"] == _leaf_handle(slot):
                self._tbf[slot] = tbf_leaf.read_back(message)  # None: changed at the first sync
                if self._tbf[slot] is None:
                    self._passed.add(slot)  # it may hold whole GSO packets

    def _resize_adopted_leaves(self, slots: Iterable[int] | None = None) -> None:
        """Adopted cutting leaves, wanted yet or not, take the largest frame
        now (in place: the kernel keeps their queue); without a changer to
        send a TBF message they become bfifo leaves, which cut nothing and
        drop nothing a bfifo would not (review L1). slots: these (a linked
        tree's), not the adopted ones."""
        for slot in list(self._adopted if slots is None else slots):
            leaf = self._tbf.get(slot)
            if leaf is None or not leaf.cuts:
                continue
            if self._changer is None:
                self._bfifo_leaf(slot, leaf.limit_bytes)
                continue
            wanted = tbf_leaf.TbfLeaf(leaf.rate_bps, self.frame_bytes, leaf.limit_bytes)
            if not _same_leaf(leaf, wanted):
                self._set_tbf(slot, wanted)

    def _bfifo_leaf(self, slot: int, limit: int) -> None:
        """A bfifo leaf in place of what the class has. The kernel changes a
        qdisc in place only into its own kind (EINVAL), so a TBF goes first
        (its queue with it; the class holds its rate meanwhile)."""
        if slot in self._tbf:
            try:
                tc_call(self._ipr, "del", index=self.ifindex, handle=_leaf_handle(slot),
                        parent=class_id(slot))  # fmt: skip
            except KernelError as error:
                if error.errno != errno.ENOENT:  # still there: the next sync tries again
                    raise
            del self._tbf[slot]
        tc_call(self._ipr, "replace", "bfifo", self.ifindex, _leaf_handle(slot),
                parent=class_id(slot), limit=limit)  # fmt: skip
        self._leaf_limits[slot] = limit

    @classmethod
    def adopt_linked(
        cls,
        ipr: IPRoute,
        ifindex: int,
        direction: Direction,
        l3_to_l2: float,
        changer: ClassChanger | None,
        messages: list,
        frame_bytes: int = tbf_leaf.largest_frame([]),
    ) -> HtbHierarchy:
        """A linked tree a killed helper left: its link is read back from the
        link class's rate, and every class is taken as planned differently, so
        the first sync changes in place what it wants (the kernel keeps the
        queues and tokens) and retires the rest. Its leaves are read back as
        adopt() reads them (a TBF leaf changed in place, never replaced by a
        bfifo: EINVAL), and cutting ones re-sized for frame_bytes at once."""
        from chadthrottle.helper.kernel.priority_classes import SHAPE_SHARE, LinkShaping

        link_rate = next(int(m.get_attr("TCA_OPTIONS").get_attr("TCA_HTB_RATE64") or
                              m.get_attr("TCA_OPTIONS").get_attr("TCA_HTB_PARMS")["rate"])
                         for m in messages if m["handle"] == ROOT_HANDLE | LINK_MINOR)  # fmt: skip
        capacity = max(1, round(link_rate / SHAPE_SHARE / l3_to_l2))
        hierarchy = cls(ipr, ifindex, direction, l3_to_l2=l3_to_l2, changer=changer,
                        link=LinkShaping(capacity), frame_bytes=frame_bytes)  # fmt: skip
        for message in messages:
            if message["handle"] >> 16 == HTB_MAJOR:
                hierarchy._planned[message["handle"] & 0xFFFF] = _ADOPTED_PLAN
        hierarchy._read_leaves(set(hierarchy._planned) - {LINK_MINOR})
        hierarchy._resize_adopted_leaves(list(hierarchy._tbf))
        return hierarchy

    def release_held(self) -> None:
        """The new programs classify now: adopted classes nobody wants retire
        (opened up, deleted a retire period later)."""
        now = self._clock()
        for slot in self._held:
            self._open(slot)
            self._retiring[slot] = now
            del self._adopted[slot]
        self._held.clear()

    def _take_adopted(self, wanted: Classes, closing: bool) -> None:
        """Adopted classes that are wanted become ours: as they are where they
        match (no netlink call, no change to the traffic), changed in place
        (the kernel keeps their tokens and queue) where they differ. Closing,
        held ones are treated as ours too, so they go with the rest."""
        for slot in [slot for slot in self._adopted if slot in wanted or closing]:
            rate, buffer_ticks = self._adopted.pop(slot)
            self._held.discard(slot)
            spec = wanted.get(slot)
            wanted_rate = round(spec.rate_bps * self._l3_to_l2) if spec else -1
            matches = (
                spec is not None
                and rate == wanted_rate
                and abs(buffer_ticks - calc_xmittime(wanted_rate, self._class_burst(slot, spec)))
                <= BUFFER_TICKS_SLACK
            )
            self.classes[slot] = spec if spec is not None and matches else _DIFFERS

    def create(self) -> None:
        tc_call(
            self._ipr,
            "add",
            "htb",
            self.ifindex,
            ROOT_HANDLE,
            default=DEFAULT_MINOR,
            r2q=ROOT_MARKER_R2Q,
        )
        if self.link is not None:
            self._sync_linked(
                {}, 0.0
            )  # the link class, the acknowledgements' and the default class under it
            for protocol, priority in ACK_FILTER_PRIORITIES.items():
                # skb->priority (a tagged application's class) is read before filters: only the rest is classified
                tc_call(self._ipr, "add-filter", "u32", self.ifindex, parent=ROOT_HANDLE, prio=priority,
                        protocol=protocol, target=ROOT_HANDLE | ACK_MINOR, keys=ACK_KEYS[protocol])  # fmt: skip
            return
        self._set_class(DEFAULT_MINOR, DEFAULT_CLASS_RATE_BPS, DEFAULT_CLASS_BURST_BYTES, DEFAULT_CLASS_PRIORITY,
                        "add-class")  # fmt: skip

    def delete(self) -> None:
        try:
            self._ipr.tc("del", "htb", self.ifindex, ROOT_HANDLE)
        except NetlinkError as error:
            log.debug("HTB root on %d already gone: %s", self.ifindex, error)

    @property
    def l3_to_l2(self) -> float:
        return self._l3_to_l2

    @property
    def idle(self) -> bool:
        """No limited, held or retiring class and no link to shape: the root can go."""
        return not self.classes and not self._retiring and not self._held and self.link is None

    def sync(self, wanted: Classes, retire_after_s: float = RETIRE_AFTER_S) -> None:
        if self.link is not None:
            self._sync_linked(wanted, retire_after_s)
            return
        now = self._clock()
        self._take_adopted(wanted, closing=retire_after_s <= 0)
        for slot in set(self.classes) - set(wanted):
            del self.classes[slot]
            self._retiring[slot] = now
            if retire_after_s > 0:
                self._open(slot)
        for slot, since in list(self._retiring.items()):
            if slot in wanted:
                del self._retiring[slot]
                self.classes[slot] = ClassSpec(DEFAULT_CLASS_RATE_BPS, DEFAULT_CLASS_BURST_BYTES)
            elif now - since >= retire_after_s:
                # Without a kind: pyroute2 would otherwise build HTB rate tables for a delete.
                tc_call(
                    self._ipr,
                    "del-class",
                    index=self.ifindex,
                    handle=class_id(slot),
                    parent=ROOT_HANDLE,
                )
                del self._retiring[slot]
                self._leaf_limits.pop(slot, None)
                self._tbf.pop(slot, None)
                self._passed.discard(slot)
        for slot, spec in wanted.items():
            if self.classes.get(slot) == spec:
                if self._uses_tbf(slot):
                    self._sync_leaf(slot, spec)  # an adopted leaf
                continue
            rate_bps = round(spec.rate_bps * self._l3_to_l2)
            burst = self._class_burst(slot, spec)
            if slot in self.classes:
                self._set_class(slot, rate_bps, burst, LIMITED_PRIORITY)
            elif self._direction is Direction.UP:
                # A new class starts with a full bucket, which a paced upload that is
                # only a little too fast spends over many seconds (at 128 KiB/s the
                # default burst is a second of traffic): create it nearly empty, then
                # give it its burst. The kernel keeps the tokens on a change, so the
                # limit holds from the first packet and the burst refills only while
                # the application is idle. (Downloads keep the full bucket: the remote
                # sender's slow start needs the room; measured 0.964 without it.)
                self._set_class(
                    slot, rate_bps, EMPTY_START_BURST_BYTES, LIMITED_PRIORITY, "add-class"
                )
                self.classes[slot] = _DIFFERS  # made: if what follows fails, a retry changes it
                if burst != EMPTY_START_BURST_BYTES:
                    self._set_class(slot, rate_bps, burst, LIMITED_PRIORITY)
            else:
                self._set_class(slot, rate_bps, burst, LIMITED_PRIORITY, "add-class")
            self.classes[slot] = _DIFFERS  # (an "add-class" again would fail: it exists)
            uses_tbf = self._uses_tbf(slot)
            self._sync_leaf(slot, spec)
            # a refused TBF leaf left the class a cutting leaf's burst: changed next tick
            self.classes[slot] = spec if uses_tbf == self._uses_tbf(slot) else _DIFFERS

    def set_frame_bytes(self, frame_bytes: int) -> None:
        """A link's MTU changed (or a link came): the cutting leaves take the new
        largest frame at once, before any new uplink's hook sends frames here
        (a TBF drops a frame larger than its bucket)."""
        if frame_bytes == self.frame_bytes:
            return
        self.frame_bytes = frame_bytes
        if self.link is not None:  # every TBF leaf in place; the class bursts at the next sync
            self._resize_adopted_leaves(list(self._tbf))
            return
        for slot, spec in self.classes.items():
            if spec is not _DIFFERS and slot not in self._retiring and self._uses_tbf(slot):
                self._sync_leaf(slot, spec)
        self._resize_adopted_leaves()  # held ones too: the old programs still classify into them

    def _uses_tbf(self, slot: int) -> bool:
        """A new class gets a TBF leaf (both directions), fixed for its life
        (replacing a leaf drops its queue); one adopted with a bfifo keeps it.
        Under a link, a class made without a limit gets a bfifo
        (_sync_linked_leaf)."""
        return self._changer is not None and not self._tbf_refused and slot not in self._leaf_limits

    def _cuts(self, slot: int, rate_bps: int) -> bool:
        """Whether the class's TBF leaf cuts at this rate. A leaf that passed
        whole packets never cuts again: its queue may hold GSO packets larger
        than a cutting bucket, which TBF can never send, and the class would
        send nothing more (a download, where the remote sender keeps ~50 ms
        queued, lowered 10 MiB/s -> 300 KiB/s: nothing for 4 s; UDP GSO
        uploads in tests/helper/kernel/test_tbf_leaf.py)."""
        return tbf_leaf.cuts_at(rate_bps) and slot not in self._passed

    def _class_burst(self, slot: int, spec: ClassSpec) -> int:
        """An upload class whose leaf cuts GSO packets passes two frames at once,
        whatever the limit's burst: a larger one lets a paced sender's packets
        through in bursts again (bench/upload_grain.py: htbseg8, htb). A cutting
        download class keeps what its clamped senders hold queued there
        (DOWNLOAD_BURST_S of its rate, socket_tagging.WINDOW_QUEUE_US), so a
        dequeue held up to that long is made up from the queue: HTB caps a class's tokens at its
        burst, so with two frames (1.45 ms at 2 MiB/s) every wait of its dequeue
        longer than that (the CPU's softirq work held, a vCPU the hypervisor
        took away) lost rate for good: 0.91-0.93 of the rate with 11 ms stalls
        every 100 ms per CPU, where CI read 0.845-0.900 of 2 MiB/s downloads in
        its runs with 4-6% steal (band36, docs/benchmarks/flakes.md)."""
        if self._uses_tbf(slot) and self._cuts(slot, spec.rate_bps):
            if self._direction is Direction.DOWN:
                return max(2 * self.frame_bytes, int(spec.rate_bps * DOWNLOAD_BURST_S))
            return 2 * self.frame_bytes
        return spec.burst_bytes

    def _sync_leaf(self, slot: int, spec: ClassSpec, limit: int | None = None) -> None:
        """limit: the leaf's queue in bytes (None: leaf_queue_bytes, without a link)."""
        limit = leaf_queue_bytes(spec.rate_bps, self._direction) if limit is None else limit
        if self._uses_tbf(slot):
            wanted = (
                tbf_leaf.leaf_for(spec.rate_bps, self.frame_bytes, limit)
                if self._cuts(slot, spec.rate_bps)
                else tbf_leaf.passing(spec.rate_bps, limit)
            )
            if not wanted.cuts:
                self._passed.add(slot)
            if _same_leaf(self._tbf.get(slot), wanted):
                return
            try:
                self._set_tbf(slot, wanted)
                return
            except KernelError as error:
                if slot in self._tbf:
                    raise  # a leaf we made, not changed: said, and tried again next tick
                # No TBF here (a kernel without sch_tbf, modules disabled): a bfifo
                # leaf as before, rather than failing this and every later limit.
                log.error("%s: bfifo leaves instead (a small limit settles slower)", error)
                self._tbf_refused = True
        if self._leaf_limits.get(slot) != limit:  # often the same: a netlink call saved
            self._bfifo_leaf(slot, limit)

    def _set_tbf(self, slot: int, leaf: tbf_leaf.TbfLeaf) -> None:
        """Create or change in place (the kernel keeps its queue); a cutting
        leaf is read back, and one whose bucket would not take a frame is
        opened instead (traffic fails open)."""
        assert self._changer is not None
        handle, where = _leaf_handle(slot), f"tc tbf leaf {slot:x} on interface {self.ifindex}"
        self._changer.request(
            lambda seq: tbf_leaf.tbf_message(seq, self.ifindex, handle, class_id(slot), leaf), where
        )
        self._tbf[slot] = leaf
        if not leaf.cuts or (leaf.rate_bps, leaf.bucket_bytes) in _verified_buckets:
            return
        found = next((tbf_leaf.read_back(m) for m in self._ipr.get_qdiscs(index=self.ifindex)
                      if m["handle"] == handle and m.get_attr("TCA_KIND") == "tbf"), None)  # fmt: skip
        if not _same_leaf(found, leaf):
            log.error(
                "%s: the kernel's bucket is %s, not %d bytes: not cutting",
                where,
                found,
                leaf.bucket_bytes,
            )
            self._set_tbf(slot, tbf_leaf.passing(0, leaf.limit_bytes))
        else:
            _verified_buckets.add((leaf.rate_bps, leaf.bucket_bytes))

    def _open(self, slot: int) -> None:
        """A retiring class's backlog drains at once: the class opened up, and its TBF too."""
        self._set_class(slot, DEFAULT_CLASS_RATE_BPS, DEFAULT_CLASS_BURST_BYTES, LIMITED_PRIORITY)
        leaf = self._tbf.get(slot)
        if slot not in self._tbf or (leaf is not None and not leaf.cuts):
            return
        limit = (
            leaf.limit_bytes if leaf else leaf_queue_bytes(tbf_leaf.CUT_UP_TO_BPS, self._direction)
        )
        if self._changer is None:  # adopted, with no way to send a TBF message (review L1)
            self._bfifo_leaf(slot, limit)
        else:
            self._set_tbf(slot, tbf_leaf.passing(DEFAULT_CLASS_RATE_BPS, limit))

    def relink(self, link: LinkShaping) -> None:
        """A new capacity, applied in place at the next sync (the kernel keeps
        the classes' queues). Switching to or from a link needs a new hierarchy."""
        if self.link is None:
            raise ValueError("a hierarchy without a link cannot take one in place: make it again")
        self.link = link

    def _sync_linked(self, wanted: Classes, retire_after_s: float) -> None:
        """sync() under a link: the planned classes made or changed in place; a
        class no longer wanted is opened up to the link (its backlog drains)
        and deleted retire_after_s later, as without a link."""
        assert self.link is not None
        plans = {plan.minor: plan for plan in self.link.plan(wanted, self._l3_to_l2)}
        now = self._clock()
        for minor in [m for m in self._planned if m not in plans]:
            self._swap_waiting.pop(minor, None)
            if minor not in self._retiring:
                self._retiring[minor] = now
                if retire_after_s > 0:
                    current = self._planned[minor]
                    if (
                        current is _ADOPTED_PLAN
                    ):  # read back from the kernel: open it like the default class
                        current = replace(plans[DEFAULT_MINOR], minor=minor)
                    opened = self.link.opened(cast("ClassPlan", current), plans[LINK_MINOR])
                    self._set_planned(opened, "change-class")
                    self._planned[minor] = opened
            if now - self._retiring[minor] >= retire_after_s:
                tc_call(self._ipr, "del-class", index=self.ifindex, handle=class_id(minor),
                        parent=ROOT_HANDLE | LINK_MINOR)  # fmt: skip
                del self._retiring[minor], self._planned[minor]
                self._leaf_limits.pop(minor, None)
                self._tbf.pop(minor, None)
                self._passed.discard(minor)
        for minor, plan in plans.items():  # parents first
            self._retiring.pop(minor, None)
            spec = wanted.get(minor)
            if spec is not None and minor in self._planned:
                self._swap_to_cutting(minor, spec)
            if spec is not None and spec.rate_bps and self._uses_tbf(minor):
                plan = replace(
                    plan, cburst_bytes=self._class_burst(minor, spec)
                )  # two frames if it cuts
            if self._planned.get(minor) != plan:
                self._set_planned(
                    plan, "change-class" if minor in self._planned else "add-class", spec
                )
                self._planned[minor] = plan
            elif spec is not None and minor in self._tbf:
                self._sync_linked_leaf(minor, spec, plan)  # adopted, or a new frame size
        self.classes = {slot: spec for slot, spec in wanted.items()}

    def _swap_to_cutting(self, slot: int, spec: ClassSpec) -> None:
        """A linked class made without a limit has a bfifo leaf (an active
        application's fair share, or its priority's class); given a limit up
        to CUT_UP_TO_BPS it gets a cutting TBF, which must replace the bfifo
        (the kernel changes a qdisc in place only into its own kind, and
        moves no qdisc under another parent). The replaced bfifo's queue is
        dropped, so the swap waits for a sync that finds it empty, holding at
        most SWAP_LOSS_BYTES, or SWAP_WAIT_S after the limit came (a class
        that is never idle: a TCP sender keeps a GSO packet or two queued):
        what is queued then is lost (docs/backends.md, "Under a link
        capacity"). Until then the limit holds with the old grain."""
        if (slot not in self._leaf_limits or not spec.rate_bps or not tbf_leaf.cuts_at(spec.rate_bps)
                or self._changer is None or self._tbf_refused):  # fmt: skip
            self._swap_waiting.pop(slot, None)
            return
        now = self._clock()
        since = self._swap_waiting.setdefault(slot, now)
        queue = self._leaf_queue(slot)
        if queue is None or (queue[2] > SWAP_LOSS_BYTES and now - since < SWAP_WAIT_S):
            return
        log.debug("leaf %x on %d: bfifo swapped %.2f s after its limit, dropping %d packets (%d bytes)",
                  slot, self.ifindex, now - since, queue[1], queue[2])  # fmt: skip
        tc_call(
            self._ipr, "del", index=self.ifindex, handle=_leaf_handle(slot), parent=class_id(slot)
        )
        del self._leaf_limits[slot], self._swap_waiting[slot]  # HTB's default leaf until the TBF
        self._planned[slot] = _ADOPTED_PLAN  # changed (burst, leaf) now

    def _leaf_queue(self, slot: int) -> tuple[str, int, int] | None:
        """The slot's leaf: its kind, packets and bytes queued, from one
        RTM_GETQDISC (the kernel finds it by its parent; a dump of every
        qdisc took ~60 ms on an IFB with 1,000 leaves). None: no leaf there."""
        assert self._changer is not None
        ifindex, handle, parent = self.ifindex, _leaf_handle(slot), class_id(slot)
        try:
            replies = self._changer.query(
                lambda seq: tbf_leaf.qdisc_get_message(seq, ifindex, handle, parent),
                f"tc get leaf {slot:x} on interface {ifindex}",
            )
        except KernelError as error:
            if error.errno in (errno.ENOENT, errno.EINVAL):
                return None
            raise
        return next((found for kind, body in replies if kind == tbf_leaf.RTM_NEWQDISC
                     and (found := tbf_leaf.queue_of(body)) is not None), None)  # fmt: skip

    def _sync_linked_leaf(self, slot: int, spec: ClassSpec, plan: ClassPlan) -> None:
        """An application's leaf in a linked tree: a TBF for a class made with a
        limit (cutting up to CUT_UP_TO_BPS, the rules of a tree without a link),
        kept for the class's life and passing while it has no limit; a bfifo
        for one made without (_swap_to_cutting)."""
        assert plan.leaf_bytes is not None
        if slot in self._tbf or (spec.rate_bps and self._uses_tbf(slot)):
            self._sync_leaf(slot, replace(spec, rate_bps=spec.rate_bps or DEFAULT_CLASS_RATE_BPS),
                            plan.leaf_bytes)  # fmt: skip
        elif self._leaf_limits.get(slot) != plan.leaf_bytes:
            self._bfifo_leaf(slot, plan.leaf_bytes)

    def _set_planned(self, plan: ClassPlan, command: str, spec: ClassSpec | None = None) -> None:
        """One class of a linked hierarchy (its ceil differs from its rate:
        pyroute2, not the rate-only fast path), and its leaf. spec: the
        application's (None: ours, or retiring)."""
        tc_call(self._ipr, command, "htb", self.ifindex, class_id(plan.minor), parent=plan.parent,
                rate=f"{plan.rate_bps * 8}bit", ceil=f"{plan.ceil_bps * 8}bit", burst=plan.burst_bytes,
                cburst=plan.cburst_bytes, prio=plan.prio, quantum=plan.quantum_bytes)  # fmt: skip
        if plan.leaf_bytes is not None and (spec is not None or plan.minor in self._tbf):
            self._sync_linked_leaf(plan.minor, spec or ClassSpec(0, 0), plan)  # retiring: opened
        elif plan.leaf_bytes is not None and self._leaf_limits.get(plan.minor) != plan.leaf_bytes:
            major = DEFAULT_LEAF_MAJOR if plan.minor == DEFAULT_MINOR else plan.minor
            tc_call(self._ipr, "replace", "bfifo", self.ifindex, major << 16, parent=class_id(plan.minor),
                    limit=plan.leaf_bytes)  # fmt: skip
            self._leaf_limits[plan.minor] = plan.leaf_bytes

    def sent_l3_bytes(self) -> dict[int, int]:
        """Bytes each limited class has sent, at L3: HTB counts from the Ethernet
        header, so 14 bytes per packet (segment) come off (on an Ethernet-like link)."""
        sent = {}
        for message in self._ipr.get_classes(index=self.ifindex):
            slot = message["handle"] & 0xFFFF
            if (
                message["handle"] >> 16 != HTB_MAJOR
                or slot not in self.classes
                or message.get_attr("TCA_KIND") != "htb"
            ):  # a TBF leaf's class: major = its slot
                continue
            stats = message.get_attr("TCA_STATS2")
            basic = stats.get_attr("TCA_STATS_BASIC") if stats is not None else None
            if basic is not None:
                l2_bytes = ETHERNET_HEADER_BYTES if self._l3_to_l2 > 1.0 else 0
                sent[slot] = max(0, basic["bytes"] - l2_bytes * basic["packets"])
        return sent

    def _set_class(
        self,
        minor: int,
        rate_bps: int,
        burst_bytes: int,
        priority: int,
        command: str = "change-class",
    ) -> None:
        quantum = max(1514, min(rate_bps // 10, 200_000))
        if command == "change-class" and self._changer is not None:
            self._changer.change(
                self.ifindex,
                ROOT_HANDLE | minor,
                ROOT_HANDLE,
                rate_bps,
                burst_bytes,
                priority,
                quantum,
            )
            return
        rate = f"{rate_bps * 8}bit"
        tc_call(
            self._ipr,
            command,
            "htb",
            self.ifindex,
            ROOT_HANDLE | minor,
            parent=ROOT_HANDLE,
            rate=rate,
            ceil=rate,
            burst=burst_bytes,
            cburst=burst_bytes,
            prio=priority,
            quantum=quantum,
        )
