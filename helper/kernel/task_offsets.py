"""Where struct task_struct keeps a process's group leader and start time,
read from the running kernel's BTF (/sys/kernel/btf/vmlinux): chadt_sock
reads a socket owner's start from them (bpf/datapath.c, process_start).

The kernel headers bcc compiles against lay the struct out otherwise (its
BPF target aligns cache-line-aligned members differently: group_leader at
byte 2480 there, 1328 in the 6.18 kernel), so the offsets come from the
kernel itself, as -D flags at build time (program_build.build; the program
cache is keyed by these flags; a warm start takes them from the cache's
directory, under the BTF's digest: program_cache.remembered_offset_flags). Without
BTF both are 0 and the programs record no start (each pid is then one owner,
as before starts were kept)."""

from __future__ import annotations

import hashlib
import struct
from array import array
from pathlib import Path

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
BTF_MAGIC = 0xEB9F
KIND_STRUCT = 4
KIND_UNION = 5
# Bytes after each kind's 12-byte btf_type: (fixed, per vlen item).
_TRAILING = {1: (4, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 13: (0, 8),
             14: (4, 0), 15: (0, 12), 17: (4, 0), 19: (0, 12)}  # fmt: skip
FIELDS = {
    "TASK_GROUP_LEADER_OFFSET": "group_leader",
    "TASK_START_BOOTTIME_OFFSET": "start_boottime",
}


# The last blob's type table (its digest: the table): the helper reads four
# structs' members at each start and a test session starts helpers by the
# hundred; one pass over vmlinux's ~130,000 types takes ~60 ms of CPU. Kept
# small, as it stays for the helper's life: a position per type in an array
# (0.5 MB), not a tuple of three ints per type (24 MB of the helper's resident
# memory, 55 -> 79 MiB: bench/helper_start.py, 2026-12-05).
_Table = tuple[int, "array[int]", dict[int, int]]
_TABLES: dict[bytes, _Table | None] = {}


def _type_table(blob: bytes) -> _Table | None:
    """Where the strings start; each type by id - 1: where its members start
    (its btf_type's info 8 bytes before); the first struct of each name (its
    name's offset) by index; None if blob is not BTF."""
    key = hashlib.blake2b(blob, digest_size=16).digest()
    if key in _TABLES:
        return _TABLES[key]
    magic, _version, _flags, hdr_len, type_off, type_len, str_off, _str_len = struct.unpack_from(
        "<HBBIIIII", blob
    )
    table = None
    if magic == BTF_MAGIC:
        types = array("I")
        structs: dict[int, int] = {}
        at, end = hdr_len + type_off, hdr_len + type_off + type_len
        while at < end:
            name_off, info, _size = struct.unpack_from("<III", blob, at)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            at += 12
            types.append(at)
            if kind == KIND_STRUCT:
                structs.setdefault(name_off, len(types) - 1)
            fixed, per_item = _TRAILING.get(kind, (0, 0))
            at += fixed + per_item * vlen
        table = (hdr_len + str_off, types, structs)
    _TABLES.clear()
    _TABLES[key] = table
    return table


def _info(blob: bytes, types: array[int], index: int) -> int:
    """The btf_type info word of the type at index (id - 1)."""
    (info,) = struct.unpack_from("<I", blob, types[index] - 8)
    return int(info)


def member_offsets(
    blob: bytes, struct_name: str, members: set[str], table: _Table | None = None
) -> dict[str, int]:
    """Byte offsets of the named members of a struct in a BTF blob, as C names
    them: direct ones, and those of its anonymous struct and union members
    (sk_buff's dev is in a union in a struct in a union); those found, {} if
    the struct is not there. table: the blob's _type_table if the caller has it
    (each look-up hashes the blob: ~6 ms for vmlinux's)."""
    table = table or _type_table(blob)
    if table is None:
        return {}
    strings, _types, structs = table
    name = blob.find(b"\0" + struct_name.encode() + b"\0", strings) + 1 - strings
    if name <= 0:
        return {}
    wanted = structs.get(name)
    if wanted is None:
        return {}
    found: dict[str, int] = {}
    _walk(blob, table, wanted, 0, 0, members, found)
    return found


def _walk(blob: bytes, table: _Table, index: int, base: int, depth: int, members: set[str],
          found: dict[str, int]) -> None:  # fmt: skip
    """member_offsets' walk of one struct or union, at byte base; depth first, as
    C finds a name. A function of its own, not a closure calling itself: that
    was a cycle holding the ~6 MB blob until the collector ran."""
    strings, types, _structs = table
    info, first = _info(blob, types, index), types[index]
    for item in range(info & 0xFFFF):
        member_name, member_type, offset = struct.unpack_from("<III", blob, first + 12 * item)
        bits = offset & 0xFFFFFF if info >> 31 else offset  # kind_flag: bitfield size above
        if member_name == 0:  # anonymous: its members are the struct's own
            if depth < 8 and 0 < member_type <= len(types) and (
                _info(blob, types, member_type - 1) >> 24) & 0x1F in (KIND_STRUCT, KIND_UNION):  # fmt: skip
                _walk(blob, table, member_type - 1, base + bits // 8, depth + 1, members, found)
            continue
        text = blob[strings + member_name : blob.index(b"\0", strings + member_name)].decode()
        if text in members and text not in found:
            found[text] = base + bits // 8


NETNS_FIELDS = {  # struct, member: a packet's device's namespace cookie (bpf/datapath.c, device_netns_cookie)
    "SKB_DEV_OFFSET": ("sk_buff", "dev"),
    "NET_DEVICE_ND_NET_OFFSET": ("net_device", "nd_net"),
    "NET_COOKIE_OFFSET": ("net", "net_cookie"),
}


def read_btf(path: Path = VMLINUX_BTF) -> bytes | None:
    """The BTF blob at path, None if it cannot be read."""
    try:
        return path.read_bytes()
    except OSError:
        return None


def _netns_flags(blob: bytes | None) -> list[str]:
    found: dict[str, int] = {}
    try:
        table = None if blob is None else _type_table(blob)
        for flag, (struct_name, member) in NETNS_FIELDS.items():
            if blob is not None and table is not None:
                offset = member_offsets(blob, struct_name, {member}, table).get(member)
                if offset is not None:
                    found[flag] = offset
    except (struct.error, ValueError):
        found = {}  # malformed: no forwarded flow is classed
    if set(found) != set(NETNS_FIELDS):
        found = {}
    return [f"-D{flag}={found.get(flag, 0)}" for flag in NETNS_FIELDS]


def _task_flags(blob: bytes | None) -> list[str]:
    try:
        found = {} if blob is None else member_offsets(blob, "task_struct", set(FIELDS.values()))
    except (struct.error, ValueError):  # malformed: start times unknown
        found = {}
    if set(found) != set(FIELDS.values()):
        found = {}
    return [f"-D{flag}={found.get(member, 0)}" for flag, member in FIELDS.items()]


def netns_offset_flags(path: Path = VMLINUX_BTF) -> list[str]:
    """-D flags of NETNS_FIELDS' offsets (all 0 unless every one is known):
    chadt_tc_out reads a forwarded packet's namespace from its device, as it
    has no socket to ask. sk_buff's dev was a constant (16, behind next and
    prev) until 2026-12-05: a kernel that moved it would have had its
    programs read another field as a device pointer (the read fails safe,
    but the cookie would be wrong: no flow, or a flow of no device we hook)."""
    return _netns_flags(read_btf(path))


def task_offset_flags(path: Path = VMLINUX_BTF) -> list[str]:
    """-D flags of FIELDS' offsets in struct task_struct (0: not known)."""
    return _task_flags(read_btf(path))


def offset_flags(path: Path = VMLINUX_BTF) -> list[str]:
    """task_offset_flags() and netns_offset_flags() from one read of the BTF:
    a second read of its ~6 MB came from the heap (glibc raises its mmap
    threshold to a freed mapping's size) and stayed in the helper's resident
    memory after it was freed (+10 MiB, bench/helper_start.py)."""
    return offset_flags_of(read_btf(path))


def offset_flags_of(blob: bytes | None) -> list[str]:
    """offset_flags() of a blob already read (None: no BTF, every offset 0)."""
    return _task_flags(blob) + _netns_flags(blob)
