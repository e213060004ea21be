"""A tiny BPF program built from the real headers, for what no datapath map shows.

    python -m tests.support.layout_probe SOURCE_DIR

compiles a probe with bcc and the datapath's own flags (program_build.compile_flags)
that #includes SOURCE_DIR's maps.h and policer.h: an array of struct owner_event
puts the ring buffer's record into the probe's BTF (no product map is typed with
it), and a run of the program (BPF_PROG_TEST_RUN) stores policer_key() of
POLICER_KEY_INPUTS as compiled. Prints JSON: the BTF (hex), owner_event's type id,
the keys. A child process, as program_build is: bcc keeps LLVM mapped for the life
of the process that used it. Nothing is pinned; the maps and program go with it.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from pathlib import Path

from chadthrottle.helper.kernel.bpf_objects import btf_blob, map_spec
from chadthrottle.helper.kernel.bpf_syscalls import attr_buffer, command
from chadthrottle.helper.kernel.layout import POLICE_DOWN, POLICE_UP
from chadthrottle.helper.kernel.program_build import compile_flags

BPF_PROG_TEST_RUN = 10
# (slot, direction): the 16-bit mask, both directions, the highest slot.
POLICER_KEY_INPUTS = [(0, POLICE_UP), (0x10003, POLICE_DOWN), (0xFFFF, POLICE_DOWN), (7, POLICE_UP)]


def probe_source() -> str:
    """The probe's C: the inputs are written in, so the compiled policer_key runs on them."""
    stores = "\n".join(
        f"    key = {i}; value = policer_key({slot:#x}, {direction}); "
        "layout_probe_keys.update(&key, &value);"
        for i, (slot, direction) in enumerate(POLICER_KEY_INPUTS)
    )
    return f"""#include <uapi/linux/bpf.h>
#include "maps.h"
#define POLICER_LAYOUT_ONLY
#include "policer.h"

BPF_ARRAY(layout_probe_owner, struct owner_event, 1);
BPF_ARRAY(layout_probe_keys, __u32, {len(POLICER_KEY_INPUTS)});

int layout_probe(struct __sk_buff *skb)
{{
    __u32 key, value;
{stores}
    return 0;
}}
"""


def _test_run(prog_fd: int) -> None:
    packet = ctypes.create_string_buffer(64)  # a socket filter's run needs an Ethernet header
    attr = attr_buffer()
    ctypes.c_uint32.from_buffer(attr, 0).value = prog_fd
    ctypes.c_uint32.from_buffer(attr, 8).value = len(packet)
    ctypes.c_uint64.from_buffer(attr, 16).value = ctypes.addressof(packet)
    ctypes.c_uint32.from_buffer(attr, 32).value = 1  # repeat
    command(BPF_PROG_TEST_RUN, attr)


def probe(source_dir: Path) -> dict[str, object]:
    """Compile, run once, read back the owner_event type and the keys."""
    from bcc import BPF

    bpf = BPF(text=probe_source().encode(), cflags=compile_flags(source_dir))
    try:
        _test_run(bpf.load_func(b"layout_probe", BPF.SOCKET_FILTER).fd)
        owner = bpf[b"layout_probe_owner"]
        spec, btf_id = map_spec(owner.map_fd, "layout_probe_owner")
        keys = bpf[b"layout_probe_keys"]
        return {
            "btf": btf_blob(btf_id).hex(),
            "owner_event_type_id": spec.btf_value_type_id,
            "policer_keys": [keys[ctypes.c_int(i)].value for i in range(len(POLICER_KEY_INPUTS))],
        }
    finally:
        bpf.cleanup()


if __name__ == "__main__":
    sys.stdout.write(json.dumps(probe(Path(sys.argv[1]).resolve())))
    sys.stdout.flush()
    os._exit(0)  # skip bcc's and LLVM's teardown
