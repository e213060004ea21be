"""ctypes mirrors of the structs in bpf/maps.h (a test checks they agree)."""

from __future__ import annotations

import ctypes

PROGRAM_NAME_PREFIX = "chadt_"  # every program we load; used to find leftovers
HTB_MAJOR = 0xC7AD  # tc handle major of our HTB qdiscs; passed to the C code with -D


class SockTag(ctypes.Structure):
    _fields_ = [("owner_tgid", ctypes.c_uint32), ("app_slot", ctypes.c_uint32)]


class TrafficKey(ctypes.Structure):
    _fields_ = [("owner_tgid", ctypes.c_uint32), ("ifindex", ctypes.c_uint32)]


class TrafficCounters(ctypes.Structure):
    _fields_ = [
        ("rx_bytes", ctypes.c_uint64),
        ("rx_packets", ctypes.c_uint64),
        ("tx_bytes", ctypes.c_uint64),
        ("tx_packets", ctypes.c_uint64),
    ]


class SlotPacing(ctypes.Structure):
    _fields_ = [
        ("lock", ctypes.c_uint32),  # struct bpf_spin_lock
        ("pad", ctypes.c_uint32),
        ("rate_bps", ctypes.c_uint64),
        ("cn_queue_ns", ctypes.c_uint64),
        ("virtual_time_ns", ctypes.c_uint64),
        ("cn_marks", ctypes.c_uint64),
    ]


def class_id(app_slot: int) -> int:
    """The HTB class (major:minor) of an application's limit slot."""
    return (HTB_MAJOR << 16) | (app_slot & 0xFFFF)
