"""Link shaping with priorities, with HTB alone (issue 16).

The queue that makes a call stutter is the modem's: hundreds of milliseconds
of bulk traffic in front of every packet. Shaping all traffic just under the
link's capacity (SHAPE_SHARE) moves the queue here, and here it can be
ordered. The tree, on one device (an uplink or an IFB), under the same root
as the limits (HTB_MAJOR:, default class DEFAULT_MINOR):

    root HTB_MAJOR:
      LINK_MINOR       rate = ceil = the capacity x SHAPE_SHARE
        <slot>         one application with a priority or a limit:
                       prio = its priority's rank, ceil = its limit or the link
        DEFAULT_MINOR  every other application, at normal priority

Every class under the link is guaranteed only a floor (FLOOR_SHARE of the
link split among them); the rest is lent by the link, and HTB lends first to
the lowest prio number: critical before high before normal before low.
Classes of one priority share what they are lent by HTB's deficit round
robin with equal quanta, i.e. per application. Nothing is reserved: a class
alone on an idle link may take all of it (its ceil). A limit holds inside,
as the class's ceil.

This kernel has no fq_codel nor cake (/proc/config.gz); the leaves are byte
FIFOs. Where fq_codel is present it should be the leaves' qdisc (flows of one
application kept apart, its bulk queue kept short): not done yet.

Pure planning (`plan_tree`) and one applier (`PriorityTree`): the helper's
wiring (rules, classification of every packet into the tree) is not here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from chadthrottle.helper.kernel.htb import DEFAULT_MINOR, ROOT_HANDLE, ROOT_MARKER_R2Q, tc_call
from chadthrottle.helper.kernel.layout import class_id
from chadthrottle.priority import DEFAULT_PRIORITY, Priority

log = logging.getLogger("chadthrottle.kernel.priorities")

LINK_MINOR = 0xFFFE  # the link class
# A leaf qdisc's handle is <minor>: of its class; the default class's would be
# ffff:, the ingress qdisc's. Its leaf takes this one; app slots must therefore
# stop below it (MAX_SLOTS 0xFFFC, not 0xFFFE, once the helper builds the tree).
DEFAULT_LEAF_MAJOR = 0xFFFD
SHAPE_SHARE = 0.95  # shape this far under the capacity, so the modem's queue stays empty
FLOOR_SHARE = 0.05  # what all classes under the link are guaranteed together
LINK_BURST_S = 0.004  # the link class may send this much of its rate at once: the modem's queue stays short
CLASS_QUANTUM_BYTES = 2 * 1514  # equal for every class: equal shares within a priority
LEAF_QUEUE_S = 0.1  # a leaf holds this much of its ceiling
MIN_LEAF_BYTES = 16 * 1514


@dataclass(frozen=True)
class AppClass:
    """What one application asks of the link: its priority and its limit (L3 bytes/s, None: none)."""

    priority: Priority = DEFAULT_PRIORITY
    limit_bps: int | None = None


@dataclass(frozen=True)
class ClassPlan:
    """One HTB class, as the kernel takes it: rates at the device's layer (L2 where it has a header)."""

    minor: int
    parent: int  # a full handle: ROOT_HANDLE or the link class
    rate_bps: int
    ceil_bps: int
    burst_bytes: int
    prio: int
    leaf_bytes: int | None  # the leaf bfifo; None: an inner class


def plan_tree(capacity_bps: int, apps: dict[int, AppClass], l3_to_l2: float = 1.0) -> list[ClassPlan]:
    """The classes for a link of `capacity_bps` (L3) and the applications' wishes
    (app slot -> AppClass), parents first."""
    if capacity_bps <= 0:
        raise ValueError(f"the link capacity must be positive, not {capacity_bps}")
    if not all(0 < slot < DEFAULT_LEAF_MAJOR for slot in apps):
        raise ValueError(f"app slots must be within 1..{DEFAULT_LEAF_MAJOR - 1}: {sorted(apps)}")
    link = max(1, round(capacity_bps * SHAPE_SHARE * l3_to_l2))
    floor = max(1, int(link * FLOOR_SHARE / (len(apps) + 1)))
    link_handle = ROOT_HANDLE | LINK_MINOR
    plans = [ClassPlan(LINK_MINOR, ROOT_HANDLE, link, link, max(3 * 1514, int(link * LINK_BURST_S)), 0, None)]
    for slot, wish in sorted(apps.items()):
        ceil = link if wish.limit_bps is None else max(1, min(link, round(wish.limit_bps * l3_to_l2)))
        plans.append(ClassPlan(slot, link_handle, min(floor, ceil), ceil, CLASS_QUANTUM_BYTES,
                               wish.priority.rank, _leaf_bytes(ceil)))  # fmt: skip
    plans.append(ClassPlan(DEFAULT_MINOR, link_handle, floor, link, CLASS_QUANTUM_BYTES, DEFAULT_PRIORITY.rank,
                           _leaf_bytes(link)))  # fmt: skip
    return plans


def _leaf_bytes(ceil_bps: int) -> int:
    return max(MIN_LEAF_BYTES, int(ceil_bps * LEAF_QUEUE_S))


class PriorityTree:
    """The tree on one device: made by the first apply(), changed in place by the
    next ones (the kernel keeps each class's queue and tokens), removed by
    remove(), which leaves the device as it was (its default root qdisc)."""

    def __init__(self, ipr: IPRoute, ifindex: int) -> None:
        self._ipr = ipr
        self.ifindex = ifindex
        self._classes: dict[int, ClassPlan] = {}

    def apply(self, plan: list[ClassPlan]) -> None:
        if not self._classes:
            tc_call(self._ipr, "add", "htb", self.ifindex, ROOT_HANDLE, default=DEFAULT_MINOR, r2q=ROOT_MARKER_R2Q)
        wanted = {c.minor: c for c in plan}
        for minor in [m for m in self._classes if m not in wanted]:  # leaves only: the link class always stays
            tc_call(self._ipr, "del-class", index=self.ifindex, handle=ROOT_HANDLE | minor, parent=ROOT_HANDLE | LINK_MINOR)
            del self._classes[minor]
        for spec in plan:
            old = self._classes.get(spec.minor)
            if old == spec:
                continue
            command = "add-class" if old is None else "change-class"
            tc_call(self._ipr, command, "htb", self.ifindex, ROOT_HANDLE | spec.minor, parent=spec.parent,
                    rate=f"{spec.rate_bps * 8}bit", ceil=f"{spec.ceil_bps * 8}bit", burst=spec.burst_bytes,
                    cburst=spec.burst_bytes, prio=spec.prio, quantum=CLASS_QUANTUM_BYTES)  # fmt: skip
            if spec.leaf_bytes is not None and (old is None or old.leaf_bytes != spec.leaf_bytes):
                major = DEFAULT_LEAF_MAJOR if spec.minor == DEFAULT_MINOR else spec.minor
                tc_call(self._ipr, "replace", "bfifo", self.ifindex, major << 16,
                        parent=class_id(spec.minor), limit=spec.leaf_bytes)  # fmt: skip
            self._classes[spec.minor] = spec

    def remove(self) -> None:
        if not self._classes:
            return
        try:
            self._ipr.tc("del", "htb", self.ifindex, ROOT_HANDLE)
        except NetlinkError as error:
            log.debug("priority tree on %d already gone: %s", self.ifindex, error)
        self._classes.clear()
