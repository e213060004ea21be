"""The structs as the compiler laid them out agree with helper/kernel/layout.py.

This compares layout.py with the BTF of the compiled programs, the types the
kernel checks map values against: for each map, its key and value struct's size and every member's name,
offset and size. Padding the compiler adds, a reordered field or a changed width
fails here even where the header's text still looks like the mirror. The ring
buffer's record types no map: a probe built from the same headers and flags
(tests/support/layout_probe.py) carries it, and runs policer_key() as compiled.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from chadthrottle.helper.kernel import layout
from chadthrottle.helper.kernel.bcc_env import kernel_source_dir
from chadthrottle.helper.kernel.program_build import bpf_source_dir, compile_flags
from chadthrottle.helper.kernel.program_cache import obtain_program_set
from chadthrottle.helper.kernel.program_set import ProgramSet

from tests.support.layout_probe import POLICER_KEY_INPUTS
from tests.support.requirements import require_program

MIRRORS: dict[str, type[ctypes.Structure]] = {
    "sock_tag": layout.SockTag,
    "owned_slot": layout.OwnedSlot,
    "traffic_key": layout.TrafficKey,
    "traffic_counters": layout.TrafficCounters,
    "counter_slot": layout.CounterSlot,
    "slot_pacing": layout.SlotPacing,
    "namespace_slot": layout.NamespaceSlot,
    "carrying_device": layout.CarryingDevice,
    "slot_policer": layout.SlotPolicer,
    "slot_gate": layout.SlotGate,
    "forwarded_flow": layout.ForwardedFlow,
    "forwarded_note": layout.ForwardedNote,
    "forwarded_count": layout.ForwardedCount,
    "window_first": layout.WindowFirst,
    "one_way_control": layout.OneWayControl,
    "one_way_conn": layout.OneWayConn,
    "one_way_segment_key": layout.OneWaySegmentKey,
    "one_way_segment": layout.OneWaySegment,
    "one_way_reading": layout.OneWayReading,
    "unheard_owner": layout.UnheardOwner,
}
# A value the helper writes field by field, each a __u32 (a dataclass, not ctypes).
U32_VALUES = {"socket_caps": layout.SocketCaps}
# A ring buffer's record has no map type: the layout probe's BTF carries it.
PROBED: dict[str, type[ctypes.Structure]] = {"owner_event": layout.OwnerEvent}
_REPO = Path(__file__).resolve().parents[3]  # where tests.support imports from
_QUALIFIERS = {"TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG"}


@pytest.fixture
def compiled(kernel_ready: Path) -> ProgramSet:
    require_program("bpftool")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BCC_KERNEL_SOURCE", str(kernel_source_dir(kernel_ready)))
        source = bpf_source_dir()
        program_set, _origin = obtain_program_set(kernel_ready, source, compile_flags(source))
    return program_set


@pytest.fixture
def probed(kernel_ready: Path) -> dict[str, Any]:
    """The layout probe's output, built from the installed bpf/ as the datapath is."""
    return _probe(kernel_ready, bpf_source_dir())


@functools.cache  # one build for the tests that read the installed bpf/
def _probe(kernel_ready: Path, source_dir: Path) -> dict[str, Any]:
    env = {**os.environ, "BCC_KERNEL_SOURCE": str(kernel_source_dir(kernel_ready))}
    done = subprocess.run([sys.executable, "-m", "tests.support.layout_probe", str(source_dir)],
                          capture_output=True, text=True, timeout=60, env=env, cwd=_REPO)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _btf_types(blob: bytes) -> dict[int, dict[str, Any]]:
    with tempfile.NamedTemporaryFile(suffix=".btf") as raw:
        raw.write(blob)
        raw.flush()
        dumped = subprocess.run(["bpftool", "-j", "btf", "dump", "file", raw.name],
                                capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    return {entry["id"]: entry for entry in json.loads(dumped.stdout)["types"]}


def _resolved(types: dict[int, dict[str, Any]], type_id: int) -> dict[str, Any]:
    entry = types[type_id]
    while entry["kind"] in _QUALIFIERS:
        entry = types[entry["type_id"]]
    return entry


def _size(types: dict[int, dict[str, Any]], type_id: int) -> int:
    entry = _resolved(types, type_id)
    if entry["kind"] == "ARRAY":
        return int(entry["nr_elems"]) * _size(types, entry["type_id"])
    return int(entry["size"])


def _compiled_members(
    types: dict[int, dict[str, Any]], struct: dict[str, Any]
) -> list[tuple[str, int, int]]:
    return [
        (m["name"], m["bits_offset"] // 8, _size(types, m["type_id"])) for m in struct["members"]
    ]


def _mirror_members(mirror: type) -> list[tuple[str, int, int]]:
    if dataclasses.is_dataclass(mirror):
        return [
            (field.name, 4 * index, 4) for index, field in enumerate(dataclasses.fields(mirror))
        ]
    return [
        (name, getattr(mirror, name).offset, getattr(mirror, name).size)
        for name, *_ in mirror._fields_
    ]


def _mirror_size(mirror: type) -> int:
    return (
        4 * len(dataclasses.fields(mirror))
        if dataclasses.is_dataclass(mirror)
        else ctypes.sizeof(mirror)
    )


def test_every_map_struct_is_laid_out_as_its_mirror(compiled: ProgramSet) -> None:
    types = _btf_types(compiled.btf)
    seen = set()
    for spec in compiled.maps:
        for type_id, size in (
            (spec.btf_key_type_id, spec.key_size),
            (spec.btf_value_type_id, spec.value_size),
        ):
            if not type_id:
                continue
            struct = _resolved(types, type_id)
            if struct["kind"] != "STRUCT":
                continue
            name = struct["name"]
            mirror = {**MIRRORS, **U32_VALUES}.get(name)
            assert mirror is not None, (
                f"map {spec.name} is typed with struct {name}, which layout.py does not mirror"
            )
            assert struct["size"] == size == _mirror_size(mirror), (
                f"{spec.name}: struct {name} sizes"
            )
            assert _compiled_members(types, struct) == _mirror_members(mirror), (
                f"struct {name} as compiled"
            )
            seen.add(name)
    assert seen == set(MIRRORS) | set(U32_VALUES), (
        f"mirrored structs no map is typed with: {sorted(set(MIRRORS) - seen)}"
    )


def _probed_struct_is_its_mirror(probed: dict[str, Any]) -> None:
    types = _btf_types(bytes.fromhex(probed["btf"]))
    struct = _resolved(types, probed["owner_event_type_id"])
    mirror = PROBED[struct["name"]]
    assert struct["size"] == ctypes.sizeof(mirror), f"struct {struct['name']} size"
    assert _compiled_members(types, struct) == _mirror_members(mirror), (
        f"struct {struct['name']} as compiled"
    )


def test_the_ring_buffers_record_is_laid_out_as_its_mirror(probed: dict[str, Any]) -> None:
    _probed_struct_is_its_mirror(probed)


def test_policer_key_as_compiled_agrees(probed: dict[str, Any]) -> None:
    assert probed["policer_keys"] == [layout.policer_key(*given) for given in POLICER_KEY_INPUTS]


def test_the_probe_sees_a_moved_field(kernel_ready: Path, tmp_path: Path) -> None:
    """The probe reads the headers it is given: owner_event's fields swapped in a
    copy of bpf/ fail the comparison (so the check above can fail)."""
    source = bpf_source_dir()
    for header in ("maps.h", "policer.h"):
        (tmp_path / header).write_text((source / header).read_text())
    maps = tmp_path / "maps.h"
    text = maps.read_text()
    record = "    __u32 tgid;\n    __u32 pad;\n"
    assert record in text, "struct owner_event changed: update this test's copy edit"
    maps.write_text(text.replace(record, "    __u32 pad;\n    __u32 tgid;\n", 1))
    with pytest.raises(AssertionError, match="owner_event as compiled"):
        _probed_struct_is_its_mirror(_probe(kernel_ready, tmp_path))


def test_program_names_carry_the_prefix(compiled: ProgramSet) -> None:
    """Every function compiled as a program (a FUNC in the BTF; the static inline
    helpers leave none) is one the helper loads and finds as a leftover by name."""
    types = _btf_types(compiled.btf)
    functions = {entry["name"] for entry in types.values() if entry["kind"] == "FUNC"}
    assert functions == set(compiled.programs)
    assert all(f.startswith(layout.PROGRAM_NAME_PREFIX) and len(f) < 16 for f in functions)
