"""Link shaping with priorities, with HTB alone (issue 16).

The queue that makes a call stutter is the modem's: hundreds of milliseconds
of bulk traffic in front of every packet. Shaping all traffic just under the
link's capacity (SHAPE_SHARE) moves the queue here, and here it can be
ordered. The tree, on one device (an uplink or an IFB), under the same root
as the limits (HTB_MAJOR:, default class DEFAULT_MINOR):

    root HTB_MAJOR:
      LINK_MINOR       rate = ceil = the capacity x SHAPE_SHARE
        <slot>         one application: with a rule (a priority, a limit), or
                       without one but active (the engine's fair shares):
                       prio = its priority's rank, ceil = its limit or the link
        ACK_MINOR      small TCP packets of every other application, high;
                       on the upload side paced (ACK_PACE_SHARE)
        DEFAULT_MINOR  every other application, at normal priority

Every class under the link is guaranteed a floor: its priority's share of
the link (FLOOR_SHARES) split among the classes of that priority. A class
within its floor is sent at once, even while the link class waits for
tokens; above it, it borrows from the link, and HTB lends first to the
lowest prio number: critical before high before normal before low. The
floors matter for latency: a borrowing packet waits for the link's next
token, about one full frame's time (2.4 ms at 5 Mbit/s), and a call above a
tiny floor measured 2.6-3.1 ms median instead of 0.2. Together they stay
well under the link (a class within its floor is sent even if the link has
no tokens: the link's average still holds, its parent is charged).
Classes of one priority share what they are lent by HTB's deficit round
robin with equal quanta, i.e. per application, whatever the number of its
connections (CLASS_QUANTUM_BYTES: at least a GSO super-packet, or the round
robin goes by packets). Nothing is reserved: a class
alone on an idle link may take all of it (its ceil). A limit holds inside,
as the class's ceil.

This kernel has no fq_codel nor cake (/proc/config.gz); the leaves are byte
FIFOs (a class made with a limit: a TBF, cutting GSO packets under small
limits, htb.py). Where fq_codel is present it should be the leaves' qdisc (flows of one
application kept apart, its bulk queue kept short): not done yet.

Pure planning: HtbHierarchy (htb.py) applies the plan, given a
LinkShaping; TcShaper.set_link puts it on a namespace's IFBs and every
packet into it (catch_all.py). The engine gives a class to every
application with a rule and, while a link is in force, to every active one
without (helper/engine/plan.py, fair_shares): the default class then holds
only what no application is known for yet.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from chadthrottle.helper.kernel.htb import (
    ACK_MINOR,
    DEFAULT_MINOR,
    LINK_MINOR,
    ROOT_HANDLE,
    Classes,
)
from chadthrottle.priority import DEFAULT_PRIORITY, Priority

ACK_PRIORITY = Priority.HIGH  # small TCP packets of applications without a class (htb.ACK_MINOR)
SHAPE_SHARE = 0.95  # shape this far under the capacity, so the modem's queue stays empty
# What the classes of each priority are guaranteed together, as a share of the link.
FLOOR_SHARES = {
    Priority.CRITICAL: 0.10,
    Priority.HIGH: 0.05,
    Priority.NORMAL: 0.02,
    Priority.LOW: 0.01,
}
LINK_BURST_S = (
    0.004  # the link class may send this much of its rate at once: the modem's queue stays short
)
# Equal for every class: equal shares within a priority. At least the largest
# packet a class dequeues, a GSO/GRO super-packet as HTB counts it (64 KB of IP
# packet, its headers counted once per segment, ~68.5 KB): HTB takes a packet
# from a class before it looks at the deficit, so with a smaller quantum each
# turn is one packet, whatever its size, and an application sending larger
# super-packets took more (bench/app_fairness.py: 3028 bytes gave an
# application 0.56-1.27 of its fair share, 70000 0.92-0.99). Only classes of
# one priority take turns: a higher priority is served first, whatever this.
CLASS_QUANTUM_BYTES = 70_000
FLOOR_BURST_BYTES = 2 * 1514  # a class's own bucket: no more than this ahead of a higher priority
LEAF_QUEUE_S = 0.1  # a leaf holds this much of its ceiling, and at least
# two 64 KB GSO/GRO super-packets: a smaller leaf drops every one a local TCP
# sender hands it at a short round trip, and the connection stalls (measured:
# 24 KB at 200 KB/s passed 64 KB in 3 s)
MIN_LEAF_BYTES = 2 * 65536 + 2 * 1514
# The upload's acknowledgement class is paced at this share of the download's
# shaped rate (both at L2), in bursts of ACK_PACE_BURST_BYTES. Why: the
# download's queue forms at the modem, beyond us, when the remote senders
# burst, and they burst when our acknowledgements leave in bunches (a
# receiver whose CPU was taken processes, and acknowledges, a run of
# segments at once: docs/benchmarks.md, "Why a queue stayed at the modem").
# Paced, a bunch leaves at most this fast, and the senders' answer reaches
# the modem not much faster than its rate. Steady acknowledgements need less:
# a 66-byte ACK per two 1514-byte segments is 0.022 of the download (IPv6's
# 86 bytes: 0.028; the bench's veth measured 0.019), so the download is not
# held back; an ACK per segment (quick-ack, after idle) is 0.044 (IPv6
# 0.057), and for that while a download grows a little slower. A pace that
# binds is worse than none: at 0.020 (just over the bench's 0.019) the
# modem's queue grew to 84-155 ms p99 in two runs of three. With stretch
# ACKs (GRO) far fewer ACKs are sent and the pace is not reached.
ACK_PACE_SHARE = 0.045
ACK_PACE_BURST_BYTES = 600  # ~9 ACKs at once: enough for HTB's timer, short of a bunch
ACK_PACE_MIN_BPS = 4000  # ~60 ACKs/s at least: handshakes pass even under a tiny download capacity


@dataclass(frozen=True)
class AppClass:
    """What one application asks of the link: its priority and its limit
    (L3 bytes/s and burst; None: none)."""

    priority: Priority = DEFAULT_PRIORITY
    limit_bps: int | None = None
    burst_bytes: int | None = None


@dataclass(frozen=True)
class ClassPlan:
    """One HTB class, as the kernel takes it: rates at the device's layer (L2 where it has a header)."""

    minor: int
    parent: int  # a full handle: ROOT_HANDLE or the link class
    rate_bps: int
    ceil_bps: int
    burst_bytes: int
    cburst_bytes: int
    prio: int
    leaf_bytes: int | None  # the leaf's queue (bfifo or TBF: htb.py); None: an inner class
    quantum_bytes: int = CLASS_QUANTUM_BYTES


def plan_tree(
    capacity_bps: int,
    apps: dict[int, AppClass],
    l3_to_l2: float = 1.0,
    acked_bps: int | None = None,
) -> list[ClassPlan]:
    """The classes for a link of `capacity_bps` (L3) and the applications' wishes
    (app slot -> AppClass), parents first. acked_bps: the capacity (L3) of the
    other direction, whose acknowledgements this one's ACK class carries and
    paces (ACK_PACE_SHARE); None: not paced."""
    if capacity_bps <= 0:
        raise ValueError(f"the link capacity must be positive, not {capacity_bps}")
    if not all(
        0 < slot < ACK_MINOR for slot in apps
    ):  # below the minors and handles the tree takes
        raise ValueError(f"app slots must be within 1..{ACK_MINOR - 1}: {sorted(apps)}")
    link = max(1, round(capacity_bps * SHAPE_SHARE * l3_to_l2))
    link_burst = max(3 * 1514, int(link * LINK_BURST_S))
    sharing = Counter(
        [wish.priority for wish in apps.values()] + [DEFAULT_PRIORITY, ACK_PRIORITY]
    )  # ours too

    def floor(priority: Priority) -> int:
        return max(1, int(link * FLOOR_SHARES[priority] / sharing[priority]))

    link_handle = ROOT_HANDLE | LINK_MINOR
    plans = [ClassPlan(LINK_MINOR, ROOT_HANDLE, link, link, link_burst, link_burst, 0, None)]
    for slot, wish in sorted(apps.items()):
        ceil = (
            link if wish.limit_bps is None else max(1, min(link, round(wish.limit_bps * l3_to_l2)))
        )
        cburst = wish.burst_bytes if wish.limit_bps is not None and wish.burst_bytes else link_burst
        plans.append(ClassPlan(slot, link_handle, min(floor(wish.priority), ceil), ceil, FLOOR_BURST_BYTES, cburst,
                               wish.priority.rank, _leaf_bytes(ceil)))  # fmt: skip
    ack_ceil, ack_cburst = link, link_burst
    if acked_bps is not None:
        if acked_bps <= 0:
            raise ValueError(f"the acknowledged capacity must be positive, not {acked_bps}")
        paced = max(ACK_PACE_MIN_BPS, round(acked_bps * SHAPE_SHARE * ACK_PACE_SHARE * l3_to_l2))
        ack_ceil, ack_cburst = min(link, paced), ACK_PACE_BURST_BYTES
    plans.append(ClassPlan(ACK_MINOR, link_handle, min(floor(ACK_PRIORITY), ack_ceil), ack_ceil,
                           FLOOR_BURST_BYTES, ack_cburst, ACK_PRIORITY.rank, _leaf_bytes(link)))  # fmt: skip
    plans.append(ClassPlan(DEFAULT_MINOR, link_handle, floor(DEFAULT_PRIORITY), link, FLOOR_BURST_BYTES, link_burst,
                           DEFAULT_PRIORITY.rank, _leaf_bytes(link)))  # fmt: skip
    return plans


def _leaf_bytes(ceil_bps: int) -> int:
    return max(MIN_LEAF_BYTES, int(ceil_bps * LEAF_QUEUE_S))


@dataclass(frozen=True)
class LinkShaping:
    """A link capacity (L3 bytes/s) for HtbHierarchy: its classes under it, by
    priority. acked_bps: the other direction's capacity, whose acknowledgements
    are paced here (TcShaper sets it for uploads; None: not paced)."""

    capacity_bps: int
    acked_bps: int | None = None

    def plan(self, wanted: Classes, l3_to_l2: float) -> list[ClassPlan]:
        apps = {
            slot: AppClass(spec.priority, spec.rate_bps or None, spec.burst_bytes)
            for slot, spec in wanted.items()
        }
        return plan_tree(self.capacity_bps, apps, l3_to_l2, self.acked_bps)

    @staticmethod
    def opened(plan: ClassPlan, link: ClassPlan) -> ClassPlan:
        """A class no longer wanted, opened up so its backlog drains before it goes."""
        return replace(
            plan, ceil_bps=link.ceil_bps, cburst_bytes=link.cburst_bytes, prio=DEFAULT_PRIORITY.rank
        )
