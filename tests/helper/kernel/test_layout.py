"""bpf/ and helper/kernel/layout.py agree on the ring buffer's record and the policer's
key (the map structs as compiled: test_layout_btf.py), and the programs are built
with the helper's constants."""

from __future__ import annotations

import ctypes
import re
from importlib import resources

from chadthrottle.helper.kernel import layout, socket_tagging
from chadthrottle.helper.kernel.program_build import bpf_source_dir, compile_flags

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


def test_counter_slot_is_one_cache_line() -> None:
    assert ctypes.sizeof(layout.CounterSlot) == 64  # CPUs never share one


def test_the_programs_get_the_shared_constants_from_python() -> None:
    """bpf/ defines none of them (-Werror=macro-redefined fails the build on a
    #define with another value): each comes with -D, with the helper's value."""
    flags = compile_flags(bpf_source_dir())
    assert "-Werror=macro-redefined" in flags
    defined = dict(f[2:].split("=", 1) for f in flags if f.startswith("-D"))
    expected = {**layout.c_constants(), **socket_tagging.c_constants()}
    assert {name: int(defined[name], 0) for name in expected} == expected
    assert layout.COUNTER_SLOTS_PER_CPU == 1 << layout.COUNTER_SLOT_BITS


def test_program_names_carry_the_prefix() -> None:
    source = resources.files("chadthrottle.bpf").joinpath("datapath.c").read_text()
    programs = re.findall(r"^int (\w+)\(", source, re.M)
    assert programs and all(
        p.startswith(layout.PROGRAM_NAME_PREFIX) and len(p) < 16 for p in programs
    )


def test_policer_key_agrees() -> None:
    header = resources.files("chadthrottle.bpf").joinpath("policer.h").read_text()
    assert "return (slot & 0xffff) * 2 + direction;" in header
    assert layout.policer_key(0x10003, layout.POLICE_DOWN) == 7
