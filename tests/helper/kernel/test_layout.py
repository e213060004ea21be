"""bpf/maps.h and helper/kernel/layout.py agree on constants and the ring buffer's record
(the map structs as compiled: test_layout_btf.py)."""

from __future__ import annotations

import ctypes
import re
from importlib import resources

from chadthrottle.helper.kernel import layout

C_TYPES = {
    "__u32": ctypes.c_uint32,
    "__u64": ctypes.c_uint64,
    "struct bpf_spin_lock": ctypes.c_uint32,
}


def _c_structs() -> dict[str, list[tuple[str, type]]]:
    bpf = resources.files("chadthrottle.bpf")
    header = bpf.joinpath("maps.h").read_text() + bpf.joinpath("policer.h").read_text()
    structs = {}
    for name, body in re.findall(r"struct (\w+) \{(.*?)\};", header, re.S):
        fields = re.findall(r"(__u\d+|struct bpf_spin_lock) (\w+);", body)
        structs[name] = [(field, C_TYPES[ctype]) for ctype, field in fields]
    return structs


def test_the_ring_buffers_record_agrees() -> None:
    """The map structs are compared as compiled (test_layout_btf.py); a ring
    buffer's record has no map type there, so its text is compared here."""
    assert [(f, t) for f, t in layout.OwnerEvent._fields_] == _c_structs()["owner_event"]


def test_counter_slot_constants_agree() -> None:
    header = resources.files("chadthrottle.bpf").joinpath("maps.h").read_text()
    source = resources.files("chadthrottle.bpf").joinpath("datapath.c").read_text()
    assert (
        1 << int(re.search(r"#define COUNTER_SLOT_BITS (\d+)", header).group(1))
        == layout.COUNTER_SLOTS_PER_CPU
    )
    assert int(re.search(r"#define SLOT_FREE (\d+)", source).group(1)) == layout.SLOT_FREE
    assert int(re.search(r"#define SLOT_HELD (\d+)", source).group(1)) == layout.SLOT_HELD
    assert ctypes.sizeof(layout.CounterSlot) == 64  # one cache line: CPUs never share one


def test_htb_major_default_agrees() -> None:
    header = resources.files("chadthrottle.bpf").joinpath("maps.h").read_text()
    assert (
        int(re.search(r"#define HTB_MAJOR (0x[0-9A-Fa-f]+)", header).group(1), 16)
        == layout.HTB_MAJOR
    )


def test_program_names_carry_the_prefix() -> None:
    source = resources.files("chadthrottle.bpf").joinpath("datapath.c").read_text()
    programs = re.findall(r"^int (\w+)\(", source, re.M)
    assert programs and all(
        p.startswith(layout.PROGRAM_NAME_PREFIX) and len(p) < 16 for p in programs
    )


def test_policer_key_and_directions_agree() -> None:
    header = resources.files("chadthrottle.bpf").joinpath("policer.h").read_text()
    assert int(re.search(r"#define POLICE_UP (\d+)", header).group(1)) == layout.POLICE_UP
    assert int(re.search(r"#define POLICE_DOWN (\d+)", header).group(1)) == layout.POLICE_DOWN
    assert "return (slot & 0xffff) * 2 + direction;" in header
    assert layout.policer_key(0x10003, layout.POLICE_DOWN) == 7


def test_gate_flags_agree() -> None:
    header = resources.files("chadthrottle.bpf").joinpath("maps.h").read_text()
    assert int(re.search(r"#define GATE_BLOCK (\d+)", header).group(1)) == layout.GATE_BLOCK
    assert int(re.search(r"#define GATE_QUOTA (\d+)", header).group(1)) == layout.GATE_QUOTA
