"""The kernel's BTF is input too: a blob the parser cannot read leaves the
start times unknown (0), it never stops the helper from starting."""

from __future__ import annotations

import struct
from pathlib import Path

from chadthrottle.helper.kernel.task_offsets import (
    BTF_MAGIC,
    KIND_STRUCT,
    KIND_UNION,
    netns_offset_flags,
    task_offset_flags,
)


def _blob(member_name: bytes) -> bytes:
    """A BTF blob with one struct task_struct whose one member is named member_name."""
    strings = b"\0task_struct\0" + member_name + b"\0"
    types = struct.pack("<III", 1, (KIND_STRUCT << 24) | 1, 0) + struct.pack("<III", 13, 0, 0)
    header = struct.pack("<HBBIIIII", BTF_MAGIC, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def test_a_member_name_that_is_not_text_leaves_the_offsets_unknown(tmp_path: Path) -> None:
    btf = tmp_path / "vmlinux"
    btf.write_bytes(_blob(b"\xff\xfe"))
    assert task_offset_flags(btf) == [
        "-DTASK_GROUP_LEADER_OFFSET=0",
        "-DTASK_START_BOOTTIME_OFFSET=0",
    ]


def test_a_member_name_without_its_end_leaves_the_offsets_unknown(tmp_path: Path) -> None:
    btf = tmp_path / "vmlinux"
    btf.write_bytes(_blob(b"group_leader")[:-1])  # the string table cut before its last NUL
    assert task_offset_flags(btf) == [
        "-DTASK_GROUP_LEADER_OFFSET=0",
        "-DTASK_START_BOOTTIME_OFFSET=0",
    ]


def _nested_blob(dev_at: int, with_skb: bool = True) -> bytes:
    """A BTF blob laid out as the kernel's: struct sk_buff { union { struct {
    next; prev; union { dev; dev_scratch; }; }; rbnode; }; sk; }, with the
    inner union at dev_at, and net_device's nd_net, net's net_cookie."""
    strings = bytearray(b"\0")

    def text(word: str) -> int:
        strings.extend(word.encode() + b"\0")
        return len(strings) - len(word) - 1

    types: list[bytes] = []

    def compound(kind: int, name: str, members: list[tuple[str, int, int]]) -> int:
        """members: (name or "" for anonymous, type id, byte offset); returns the type id."""
        head = struct.pack("<III", text(name) if name else 0, (kind << 24) | len(members), 8)
        body = b"".join(struct.pack("<III", text(m) if m else 0, t, o * 8) for m, t, o in members)
        types.append(head + body)
        return len(types)

    dev_union = compound(KIND_UNION, "", [("dev", 0, 0), ("dev_scratch", 0, 0)])
    linked = compound(KIND_STRUCT, "", [("next", 0, 0), ("prev", 0, 8), ("", dev_union, dev_at)])
    outer = compound(KIND_UNION, "", [("", linked, 0), ("rbnode", 0, 0)])
    if with_skb:
        compound(KIND_STRUCT, "sk_buff", [("", outer, 0), ("sk", 0, dev_at + 8)])
    compound(KIND_STRUCT, "net_device", [("nd_net", 0, 264)])
    compound(KIND_STRUCT, "net", [("net_cookie", 0, 4096)])
    blob = b"".join(types)
    header = struct.pack("<HBBIIIII", BTF_MAGIC, 1, 0, 24, 0, len(blob), len(blob), len(strings))
    return header + blob + bytes(strings)


def test_a_packets_device_is_found_where_the_kernels_btf_puts_it(tmp_path: Path) -> None:
    """sk_buff's dev sits in a union in a struct in a union: read from BTF
    through the anonymous members, not assumed at 16 (it was a constant in
    bpf/datapath.c until 2026-12-05)."""
    btf = tmp_path / "vmlinux"
    btf.write_bytes(_nested_blob(dev_at=24))
    assert netns_offset_flags(btf) == [
        "-DSKB_DEV_OFFSET=24", "-DNET_DEVICE_ND_NET_OFFSET=264", "-DNET_COOKIE_OFFSET=4096"]  # fmt: skip
    assert "-DSKB_DEV_OFFSET=16" in netns_offset_flags()  # this kernel's, behind next and prev


def test_a_btf_without_sk_buff_leaves_every_device_offset_unknown(tmp_path: Path) -> None:
    """Fail open: no offset known, no forwarded packet's tc_index trusted."""
    btf = tmp_path / "vmlinux"
    btf.write_bytes(_nested_blob(dev_at=16, with_skb=False))
    assert netns_offset_flags(btf) == [
        "-DSKB_DEV_OFFSET=0", "-DNET_DEVICE_ND_NET_OFFSET=0", "-DNET_COOKIE_OFFSET=0"]  # fmt: skip
