"""A TBF leaf under a small upload class, which cuts GSO packets into frames
(issue 13; docs/backends.md, "A TBF leaf for small uploads").

On a path of under a millisecond TCP builds 64 KB TSO packets whatever its
pacing rate, and HTB passes a GSO packet whole: at 300 KiB/s that is 44 KB
every 0.15 s. TBF cuts a GSO packet larger than its bucket into its segments
as it queues them (tbf_segment), so HTB then passes frames. Its own rate is
far above the class's: it only cuts, HTB paces.

The bucket is sent in bytes (TCA_TBF_BURST), as tc does: pyroute2 sends only
a buffer in ticks, and the kernel's bucket came back smaller than a frame, so
every full-size frame was dropped (TBF drops a packet larger than its bucket
that it cannot cut). For the same reason the bucket must take the largest
frame of every link in the namespace.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any

from chadthrottle.contract import CUT_UP_TO_BPS as CUT_UP_TO_BPS  # re-exported: htb.py
from chadthrottle.helper.kernel.htb_change import (
    NLM_F_ACK,
    NLM_F_REQUEST,
    TC_LINKLAYER_ETHERNET,
    TCA_KIND,
    TCA_OPTIONS,
    U32_MAX,
    attribute,
)

RTM_NEWQDISC, RTM_GETQDISC = 36, 38
TCA_STATS2, TCA_STATS_QUEUE = 7, 3  # gnet_stats_queue: qlen, backlog, drops, ...
NLM_F_REPLACE, NLM_F_CREATE = 0x100, 0x400
# A get's answer is sent as a notification: without ECHO (and with no
# listener) the kernel answers only the ack (6.18; pyroute2's get too).
NLM_F_ECHO = 0x8
TCA_TBF_PARMS, TCA_TBF_RATE64, TCA_TBF_BURST = 1, 4, 6
PSCHED_TICK_NS = 64  # the kernel's psched tick (PSCHED_SHIFT 6): dumps give the bucket in these

# Classes up to CUT_UP_TO_BPS get a cutting leaf (a download's only while it
# never passed above it: htb.py): there one 64 KB packet is
# more than 30 ms of the rate, an eighth of a 0.25 s window (bench/upload_grain.py:
# at 1 and 2 MiB/s the class alone settled within 0.5 s in 0 of 8 runs,
# cutting in 5 of 8, at 0.4% less rate at 2 MiB/s).
# The cutting TBF's own rate: 32 times the fastest class it cuts for, so it
# never holds HTB back, and slow enough that a dump's tick is 4 bytes of
# bucket (the read-back check below resolves a frame).
CUT_RATE_BPS = 64 << 20
# Above CUT_UP_TO_BPS the leaf passes every packet whole: a bucket above any
# GSO packet (64 KB, 512 KB with BIG TCP), at a rate no class reaches.
PASS_BUCKET_BYTES = 1 << 20
PASS_RATE_BPS = 12_500_000_000  # 100 Gbit/s, the default class's
FRAME_SLACK_BYTES = 4  # a VLAN tag
MIN_FRAME_BYTES = 1514  # an Ethernet frame of MTU 1500

_TCMSG = struct.Struct("=BxxxiIII")
_HEADER = struct.Struct("=IHHII")
_RATESPEC = struct.Struct("=BBHhHI")
_TBF_TAIL = struct.Struct("=III")  # limit, buffer, mtu


@dataclass(frozen=True)
class TbfLeaf:
    """What a leaf is given: its own rate, its bucket and its queue, in bytes."""

    rate_bps: int
    bucket_bytes: int
    limit_bytes: int

    @property
    def cuts(self) -> bool:
        return self.bucket_bytes < PASS_BUCKET_BYTES


def largest_frame(mtus: list[tuple[int, bool]]) -> int:
    """The bucket that takes every link's largest frame: (MTU, Ethernet header?)."""
    frames = [mtu + (14 if ethernet else 0) for mtu, ethernet in mtus]
    return max([MIN_FRAME_BYTES, *frames]) + FRAME_SLACK_BYTES


def cuts_at(class_rate_bps: int) -> bool:
    return class_rate_bps <= CUT_UP_TO_BPS


def leaf_for(class_rate_bps: int, frame_bytes: int, limit_bytes: int) -> TbfLeaf:
    """A cutting leaf up to CUT_UP_TO_BPS, a passing one above."""
    if cuts_at(class_rate_bps):
        return TbfLeaf(CUT_RATE_BPS, frame_bytes, limit_bytes)
    return passing(class_rate_bps, limit_bytes)


def passing(class_rate_bps: int, limit_bytes: int) -> TbfLeaf:
    """A leaf that cuts nothing and never holds its class back."""
    return TbfLeaf(max(PASS_RATE_BPS, class_rate_bps), PASS_BUCKET_BYTES, limit_bytes)


def tbf_message(seq: int, ifindex: int, handle: int, parent: int, leaf: TbfLeaf) -> bytes:
    """RTM_NEWQDISC create-or-replace: a new leaf replaces the class's default
    (empty) one; an existing TBF of the same handle is changed in place, which
    keeps its queue."""
    rate = _RATESPEC.pack(0, TC_LINKLAYER_ETHERNET, 0, 0, 0, min(leaf.rate_bps, U32_MAX))
    peak = _RATESPEC.pack(0, 0, 0, 0, 0, 0)
    parms = rate + peak + _TBF_TAIL.pack(leaf.limit_bytes, 0, 0)  # buffer: from TCA_TBF_BURST
    options = attribute(TCA_TBF_PARMS, parms) + attribute(
        TCA_TBF_BURST, struct.pack("=I", leaf.bucket_bytes)
    )
    if leaf.rate_bps > U32_MAX:
        options += attribute(TCA_TBF_RATE64, struct.pack("=Q", leaf.rate_bps))
    body = _TCMSG.pack(socket.AF_UNSPEC, ifindex, handle, parent, 0)
    body += attribute(TCA_KIND, b"tbf\0") + attribute(TCA_OPTIONS, options)
    flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    return _HEADER.pack(_HEADER.size + len(body), RTM_NEWQDISC, flags, seq, 0) + body


def qdisc_get_message(seq: int, ifindex: int, handle: int, parent: int) -> bytes:
    """RTM_GETQDISC for one qdisc (not a dump): the kernel looks it up by its
    parent (a hash lookup) and answers with it alone, whatever else the
    device holds."""
    body = _TCMSG.pack(socket.AF_UNSPEC, ifindex, handle, parent, 0)
    return (
        _HEADER.pack(
            _HEADER.size + len(body), RTM_GETQDISC, NLM_F_REQUEST | NLM_F_ACK | NLM_F_ECHO, seq, 0
        )
        + body
    )


def _attributes(data: bytes, offset: int = 0) -> dict[int, bytes]:
    found = {}
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        found[kind & 0x3FFF] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return found


def queue_of(body: bytes) -> tuple[str, int, int] | None:
    """An RTM_NEWQDISC answer's kind, packets and bytes queued (TCA_STATS2's
    TCA_STATS_QUEUE); None if it carries no queue."""
    top = _attributes(body, _TCMSG.size)
    stats = _attributes(top.get(TCA_STATS2, b""))
    queue = stats.get(TCA_STATS_QUEUE)
    if queue is None or len(queue) < 8:
        return None
    qlen, backlog = struct.unpack_from("=II", queue)
    return top.get(TCA_KIND, b"").rstrip(b"\0").decode(), qlen, backlog


def read_back(message: Any) -> TbfLeaf | None:
    """A dumped tbf qdisc (pyroute2) as a TbfLeaf: the bucket from the buffer
    in ticks at its rate, so within one tick's bytes below what was given.
    None for a rate pyroute2 cannot give (over 32 bits: a passing leaf)."""
    options = message.get_attr("TCA_OPTIONS")
    parms = options.get_attr("TCA_TBF_PARMS") if options is not None else None
    if parms is None or parms["rate"] >= U32_MAX:
        return None
    rate = int(parms["rate"])
    bucket = int(parms["buffer"]) * PSCHED_TICK_NS * rate // 1_000_000_000
    return TbfLeaf(rate, bucket, int(parms["limit"]))


def tick_bytes(rate_bps: int) -> int:
    """How far below the given bucket a read-back one may be (one tick, rounded up)."""
    return -(-PSCHED_TICK_NS * rate_bps // 1_000_000_000) + 1
