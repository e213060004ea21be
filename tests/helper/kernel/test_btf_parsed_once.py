"""The kernel's BTF is read for five members of four structs at every helper
start (and by the tests' helper_process before each start): its ~130,000
types are walked once per blob, not once per struct (four walks cost
0.22-0.26 s of CPU a start on the 2-core CI machine)."""

from __future__ import annotations

import struct
import tracemalloc
from typing import Any

import pytest
from chadthrottle.helper.kernel import task_offsets
from chadthrottle.helper.kernel.task_offsets import (
    VMLINUX_BTF,
    member_offsets,
    netns_offset_flags,
    offset_flags,
    task_offset_flags,
)

from tests.support.requirements import require


class _CountingStruct:
    """task_offsets' struct module, counting the records it reads."""

    error = struct.error

    def __init__(self) -> None:
        self.reads = 0

    def unpack_from(self, fmt: str, buffer: Any, offset: int = 0) -> tuple[Any, ...]:
        self.reads += 1
        return struct.unpack_from(fmt, buffer, offset)


def test_the_four_structs_offsets_take_one_walk_of_the_kernels_types(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require(VMLINUX_BTF.is_file(), f"needs the kernel's BTF at {VMLINUX_BTF}")
    counting = _CountingStruct()
    monkeypatch.setattr(task_offsets, "struct", counting)
    monkeypatch.setattr(task_offsets, "_TABLES", {}, raising=False)
    member_offsets(VMLINUX_BTF.read_bytes(), "task_struct", {"group_leader"})
    one_walk = counting.reads  # one record a type, and a few members
    assert one_walk > 10_000, one_walk

    monkeypatch.setattr(task_offsets, "_TABLES", {}, raising=False)
    counting.reads = 0
    flags = task_offset_flags() + netns_offset_flags()
    assert all(not flag.endswith("=0") for flag in flags), flags  # every member found
    assert counting.reads < 1.1 * one_walk, (
        f"{counting.reads / one_walk:.1f} walks of the kernel's types for four structs"
    )
    counting.reads = 0
    assert task_offset_flags() + netns_offset_flags() == flags
    assert counting.reads < 0.1 * one_walk, "the same BTF walked again"


def test_what_the_walk_keeps_for_the_helpers_life_is_small(monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk's table stays (the next struct needs no walk): as a tuple of
    three ints per type it kept 24 MB of the helper's resident memory (55 ->
    79 MiB, bench/helper_start.py); a position per type keeps under 1 MB."""
    require(VMLINUX_BTF.is_file(), f"needs the kernel's BTF at {VMLINUX_BTF}")
    monkeypatch.setattr(task_offsets, "_TABLES", {}, raising=False)
    tracemalloc.start()
    try:
        flags = offset_flags()
        kept, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert flags == task_offset_flags() + netns_offset_flags()
    assert all(not flag.endswith("=0") for flag in flags), flags
    assert kept < 2 * 2**20, f"{kept / 2**20:.1f} MiB kept after the walk"
