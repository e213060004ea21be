"""ctypes mirrors of the structs in bpf/maps.h (tests/helper/kernel/test_layout_btf.py
checks them against the compiled programs), and the constants the programs
share with the helper, whose one home is here: the programs get them with -D
(program_build.compile_flags)."""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import Protocol

PROGRAM_NAME_PREFIX = "chadt_"  # every program we load; used to find leftovers
HTB_MAJOR = 0xC7AD  # tc handle major of our HTB qdiscs


class SockTag(ctypes.Structure):
    _fields_ = [
        ("owner_tgid", ctypes.c_uint32),
        ("app_slot", ctypes.c_uint32),
        ("netns_cookie", ctypes.c_uint64),
        ("owner_start", ctypes.c_uint64),  # the owner's start, PROCESS_START_TICK_NS ticks
    ]


class OwnedSlot(ctypes.Structure):
    """struct owned_slot in bpf/maps.h: a slot for new sockets a process of
    uid creates (ANY_UID: anyone's); in slot_by_tgid, only the process of
    that start (owner_start; 0: whichever runs under the pid)."""

    _fields_ = [("app_slot", ctypes.c_uint32), ("uid", ctypes.c_uint32), ("start", ctypes.c_uint64)]


ANY_UID = 0xFFFFFFFF  # an administrator's rule or a fair share: every process's sockets


class TrafficKey(ctypes.Structure):
    _fields_ = [
        ("netns_cookie", ctypes.c_uint64),
        ("owner_tgid", ctypes.c_uint32),
        ("ifindex", ctypes.c_uint32),
        ("owner_start", ctypes.c_uint64),
    ]


class CounterSample(Protocol):
    """One socket owner's monotonic byte counters on one interface, as the
    helper reads them from the traffic map (datapath.TrafficSample): the key
    of a TrafficKey and its totals."""

    @property
    def netns_cookie(self) -> int: ...
    @property
    def owner_tgid(self) -> int: ...
    @property
    def owner_start(self) -> int: ...
    @property
    def ifindex(self) -> int: ...
    @property
    def rx_bytes(self) -> int: ...
    @property
    def tx_bytes(self) -> int: ...


def owner_key(tgid: int, start: int) -> int:
    """A socket owner, one process, as one int (the engine's key of its
    counters and attribution): the pid in the low 32 bits, its start
    (owner_start) above. A pid the kernel hands out again names another
    process then. With start 0 (not known) it is the pid itself."""
    return start << 32 | tgid


def pid_of(owner: int) -> int:
    """The pid of an owner_key."""
    return owner & 0xFFFFFFFF


class OwnerEvent(ctypes.Structure):
    _fields_ = [
        ("cgroup_id", ctypes.c_uint64),
        ("tgid", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("start", ctypes.c_uint64),
    ]


class UnheardOwner(ctypes.Structure):
    """struct unheard_owner: an announcement the ring buffer had no room for
    (its cgroup id is the map's value)."""

    _fields_ = [
        ("start", ctypes.c_uint64),
        ("tgid", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
    ]


# owner_drops' entries (bpf/datapath.c announce()): announcements the ring
# buffer had no room for, and of those the ones unheard_owners had none for either
OWNER_DROPS_RING = 0
OWNER_DROPS_LOST = 1


class TrafficCounters(ctypes.Structure):
    _fields_ = [
        ("rx_bytes", ctypes.c_uint64),
        ("rx_packets", ctypes.c_uint64),
        ("tx_bytes", ctypes.c_uint64),
        ("tx_packets", ctypes.c_uint64),
    ]


class CounterSlot(ctypes.Structure):
    """struct counter_slot in bpf/maps.h: one CPU's counters of one traffic key."""

    _fields_ = [
        ("state", ctypes.c_uint64),
        ("netns_cookie", ctypes.c_uint64),
        ("owner_tgid", ctypes.c_uint32),
        ("ifindex", ctypes.c_uint32),
        ("owner_start", ctypes.c_uint64),
        ("rx_bytes", ctypes.c_uint64),
        ("rx_packets", ctypes.c_uint64),
        ("tx_bytes", ctypes.c_uint64),
        ("tx_packets", ctypes.c_uint64),
    ]


COUNTER_SLOT_BITS = 10  # a key's home slot is its hash's top bits (datapath.c)
COUNTER_SLOTS_PER_CPU = 1 << COUNTER_SLOT_BITS
SLOT_FREE, SLOT_CLAIMING, SLOT_HELD = 0, 1, 2  # struct counter_slot states
# A process's start (struct sock_tag's owner_start) is counted in the clock
# ticks of /proc/PID/stat's starttime: the programs divide the kernel's
# nanoseconds by this, so the helper compares what it reads there as it is.
PROCESS_START_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


FORWARDED_UP, FORWARDED_DOWN = 1, 2  # forwarded_classes' bits (bpf/datapath.c)
# carrying_devices' values (bpf/datapath.c): a device whose ingress runs our hook, our upload IFB
CARRIED_BY_HOOK, CARRIED_BY_IFB = 1, 2
# and a flag beside them: one of the link's uplinks, the only egress where a
# forwarded packet is classed in the link tree (review24)
ON_LINK = 4


class ForwardedCount(ctypes.Structure):
    """struct forwarded_count in bpf/datapath.c: a slot's forwarded packets
    the uplinks' hooks matched to its class, per direction."""

    _fields_ = [("up_packets", ctypes.c_uint64), ("down_packets", ctypes.c_uint64)]


class ForwardedFlow(ctypes.Structure):
    """struct forwarded_flow in bpf/datapath.c: a forwarded flow as the uplink
    sees it (after SNAT, before de-NAT; addresses and ports in network order).
    Only the programs read it; mirrored so its layout is checked."""

    _fields_ = [
        ("remote", ctypes.c_uint32 * 4),
        ("local", ctypes.c_uint32 * 4),
        ("remote_port", ctypes.c_uint16),
        ("local_port", ctypes.c_uint16),
        ("proto", ctypes.c_uint8),
        ("family", ctypes.c_uint8),
        ("pad", ctypes.c_uint16),
    ]


class ForwardedNote(ctypes.Structure):
    """struct forwarded_note in bpf/datapath.c: a noted flow's slot and the
    namespace that noted it (only that one classes its downloads by it).
    Only the programs read it; mirrored so its layout is checked."""

    _fields_ = [
        ("slot", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("netns_cookie", ctypes.c_uint64),
    ]


class WindowFirst(ctypes.Structure):
    """struct window_first in bpf/datapath.c: the window a process's MPTCP
    subflows are clamped to ahead of its tags (wire bytes/s), and until when."""

    _fields_ = [("window_bps", ctypes.c_uint64), ("until_ns", ctypes.c_uint64)]


class SlotPacing(ctypes.Structure):
    """struct slot_pacing in bpf/maps.h: a slot's upload virtual queue, or
    (namespace_pacing) one namespace's of a divided limit."""

    _fields_ = [
        ("lock", ctypes.c_uint32),  # struct bpf_spin_lock
        ("divided", ctypes.c_uint32),  # 1: namespace_pacing's entries pace the namespaces'
        ("rate_bps", ctypes.c_uint64),
        ("cn_queue_ns", ctypes.c_uint64),
        ("virtual_time_ns", ctypes.c_uint64),
        ("cn_marks", ctypes.c_uint64),
    ]


class NamespaceSlot(ctypes.Structure):
    """struct namespace_slot in bpf/maps.h: a slot in one network namespace."""

    _fields_ = [
        ("netns_cookie", ctypes.c_uint64),
        ("app_slot", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
    ]


class CarryingDevice(ctypes.Structure):
    """struct carrying_device in bpf/datapath.c: a device of one namespace whose
    ingress runs our hook, so a forwarded packet's tc_index from it is ours."""

    _fields_ = [
        ("netns_cookie", ctypes.c_uint64),
        ("ifindex", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
    ]


class OneWayControl(ctypes.Structure):
    """struct one_way_control in bpf/one_way.h: whether the upload's one-way
    reading is taken, and the upload IFB whose sent-on packets left our shaper."""

    _fields_ = [
        ("on", ctypes.c_uint32),
        ("ifb_ifindex", ctypes.c_uint32),
        ("until_ns", ctypes.c_uint64),
    ]


class OneWayConn(ctypes.Structure):
    """struct one_way_conn in bpf/one_way.h: a connection as its data leaves
    (addresses as on the wire, IPv6's or an IPv4 one as ::ffff:a.b.c.d; ports in
    host order)."""

    _fields_ = [
        ("ours", ctypes.c_uint8 * 16),
        ("theirs", ctypes.c_uint8 * 16),
        ("our_port", ctypes.c_uint16),
        ("their_port", ctypes.c_uint16),
    ]


class OneWaySegmentKey(ctypes.Structure):
    """struct one_way_segment_key in bpf/one_way.h."""

    _fields_ = [("conn", OneWayConn), ("end", ctypes.c_uint32)]


class OneWaySegment(ctypes.Structure):
    """struct one_way_segment in bpf/one_way.h."""

    _fields_ = [
        ("left_ns", ctypes.c_uint64),
        ("tsval", ctypes.c_uint32),
        ("state", ctypes.c_uint32),
    ]


class OneWayReading(ctypes.Structure):
    """struct one_way_reading in bpf/one_way.h: a connection's least raw
    reading (far TSval x 1 ms less when its segment left, ns) and how many."""

    _fields_ = [("least_ns", ctypes.c_int64), ("count", ctypes.c_uint64)]


class SlotPolicer(ctypes.Structure):
    """struct slot_policer in bpf/policer.h: one slot and direction of the ebpf backend."""

    _fields_ = [
        ("lock", ctypes.c_uint32),  # struct bpf_spin_lock
        ("active", ctypes.c_uint32),
        ("rate_bps", ctypes.c_uint64),
        ("burst_ns", ctypes.c_uint64),
        ("mark_ns", ctypes.c_uint64),
        ("virtual_time_ns", ctypes.c_uint64),
        ("virtual_rem", ctypes.c_uint64),
        ("passed_bytes", ctypes.c_uint64),
        ("passed_packets", ctypes.c_uint64),
        ("dropped_bytes", ctypes.c_uint64),
        ("dropped_packets", ctypes.c_uint64),
        ("marked_packets", ctypes.c_uint64),
        ("notified_packets", ctypes.c_uint64),
    ]


class SlotGate(ctypes.Structure):
    """struct slot_gate in bpf/maps.h: the block and quota of one slot and direction."""

    _fields_ = [
        ("lease_until_ns", ctypes.c_uint64),
        ("quota_allowance_bytes", ctypes.c_uint64),
        ("quota_used_bytes", ctypes.c_uint64),
        ("flags", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
    ]


GATE_BLOCK, GATE_QUOTA = 1, 2  # struct slot_gate flags


POLICE_UP, POLICE_DOWN = 0, 1  # the direction half of a policer key


def policer_key(app_slot: int, police_direction: int) -> int:
    """Index of a slot's policer in the policers array (policer_key in policer.h)."""
    return (app_slot & 0xFFFF) * 2 + police_direction


def class_id(app_slot: int) -> int:
    """The HTB class (major:minor) of an application's limit slot."""
    return (HTB_MAJOR << 16) | (app_slot & 0xFFFF)


@dataclass(frozen=True)
class SocketCaps:
    """struct socket_caps in bpf/maps.h: what each TCP socket of a limited
    application is held to, as wire rates (L3 bytes/s; 0: not held): the
    pacing of its uploads, and the receive window of its downloads."""

    pacing_bps: int = 0
    window_bps: int = 0


NO_CAPS = SocketCaps()


def c_constants() -> dict[str, int]:
    """Passed to the BPF programs with -D (program_build.compile_flags): bpf/
    defines none of these itself."""
    return {
        "HTB_MAJOR": HTB_MAJOR,
        "ANY_UID": ANY_UID,
        "COUNTER_SLOT_BITS": COUNTER_SLOT_BITS,
        "SLOT_FREE": SLOT_FREE,
        "SLOT_CLAIMING": SLOT_CLAIMING,
        "SLOT_HELD": SLOT_HELD,
        "GATE_BLOCK": GATE_BLOCK,
        "GATE_QUOTA": GATE_QUOTA,
        "POLICE_UP": POLICE_UP,
        "POLICE_DOWN": POLICE_DOWN,
        "PROCESS_START_TICK_NS": PROCESS_START_TICK_NS,
        "CARRIED_BY_HOOK": CARRIED_BY_HOOK,
        "CARRIED_BY_IFB": CARRIED_BY_IFB,
        "ON_LINK": ON_LINK,
        "OWNER_DROPS_RING": OWNER_DROPS_RING,
        "OWNER_DROPS_LOST": OWNER_DROPS_LOST,
    }
