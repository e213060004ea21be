"""The kernel's BTF is input too: a blob the parser cannot read leaves the
start times unknown (0), it never stops the helper from starting."""

from __future__ import annotations

import struct
from pathlib import Path

from chadthrottle.helper.kernel.task_offsets import BTF_MAGIC, KIND_STRUCT, task_offset_flags


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
