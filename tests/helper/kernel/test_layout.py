"""The programs are built with the helper's constants (the structs, policer_key and the
program names as compiled agree with layout.py: test_layout_btf.py)."""

from __future__ import annotations

import ctypes

from chadthrottle.helper.kernel import layout, socket_tagging
from chadthrottle.helper.kernel.program_build import bpf_source_dir, compile_flags


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
