"""Issue 19's suggestion, its per-packet part alone: count in the socket's own
sk_storage tag (which chadt_egress/chadt_ingress look up anyway) instead of the
per-CPU counter slot, measured against bpf/ by another bench.

    sudo .venv/bin/python -m bench.sock_counters [--plain] hook_ns --bpf VARIANT --blocks 20
    sudo .venv/bin/python -m bench.sock_counters cpu_per_gb --compare ours:VARIANT --kinds rate

The variant is a copy of bpf/ whose struct sock_tag carries, per direction, the
device its counters are of and the bytes and packets (56 bytes: with the storage
element's map pointer, one cache line), and whose count() adds there, with
atomic adds (a socket's packets are counted on several CPUs at once: egress by
its senders, ingress in softirq before the socket lock) or, with --plain, with
plain adds (not exact under concurrency: a lower bound of the cost). A packet on
another device than the socket's first goes to the counter slot as before. It is
an upper bound of what the design saves per packet: nothing folds a closed
socket's counts into the slots and nothing reads them live (a sock_release
program and a sock_diag walk with INET_DIAG_REQ_SK_BPF_STORAGES would), so the
helper's totals are not right with it; a bench only. VARIANT in the arguments is
replaced by the copy's path; the helper's SockTag is widened in this process to
the variant's layout (the datapath takes whichever layout a program set has).
docs/benchmarks.md, "Per-socket counters in the socket's tag", keeps a run.
"""

from __future__ import annotations

import argparse
import ctypes
import runpy
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from chadthrottle.helper.kernel import datapath, layout, socket_tagging
from chadthrottle.helper.kernel.program_build import bpf_source_dir

_TAG_END = """                           again: tgid and start name one process); 0 when unknown */
};
"""
_TAG_FIELDS = """                           again: tgid and start name one process); 0 when unknown */
    __u32 tx_ifindex;   /* bench/sock_counters.py: the device of the counters below */
    __u32 rx_ifindex;
    __u64 tx_bytes;
    __u64 rx_bytes;
    __u32 tx_packets;
    __u32 rx_packets;
};
"""
_COUNT_START = """static __always_inline __u64 count(struct sock_tag *tag, struct __sk_buff *skb, int egress)
{
"""


def _count_start(add: str) -> str:
    def adds(direction: str) -> str:
        return (f"            {add.format(field=f'tag->{direction}_bytes', value='sbytes')};\n"
                f"            {add.format(field=f'tag->{direction}_packets', value='spackets')};\n")  # fmt: skip

    return (
        _COUNT_START
        + """    __u32 ifindex = skb->ifindex;
    if (tag && (egress ? tag->tx_ifindex : tag->rx_ifindex) == ifindex) {
        __u64 sbytes = wire_bytes(skb, 0);
        __u32 spackets = skb->gso_segs > 1 ? skb->gso_segs : 1;
        if (egress) {
"""
        + adds("tx")
        + "        } else {\n"
        + adds("rx")
        + """        }
        return sbytes;
    }
    if (tag && !(egress ? tag->tx_ifindex : tag->rx_ifindex)) {
        if (egress)
            tag->tx_ifindex = ifindex;
        else
            tag->rx_ifindex = ifindex;
    }
"""
    )


def make_variant(dest: Path, plain: bool) -> Path:
    """A copy of bpf/ counting in the socket's tag, under dest; its path."""
    copy = dest / "bpf"
    shutil.copytree(bpf_source_dir(), copy)
    for name, old, new in (
        ("maps.h", _TAG_END, _TAG_FIELDS),
        ("datapath.c", _COUNT_START,
         _count_start("{field} += {value}" if plain else "__sync_fetch_and_add(&{field}, {value})")),
    ):  # fmt: skip
        text = (copy / name).read_text()
        if old not in text:
            raise SystemExit(f"bpf/{name} changed: update bench/sock_counters.py")
        (copy / name).write_text(text.replace(old, new, 1))
    return copy


class WideTag(layout.SockTag):
    """struct sock_tag of the variant."""

    _fields_ = (
        ("tx_ifindex", ctypes.c_uint32),
        ("rx_ifindex", ctypes.c_uint32),
        ("tx_bytes", ctypes.c_uint64),
        ("rx_bytes", ctypes.c_uint64),
        ("tx_packets", ctypes.c_uint32),
        ("rx_packets", ctypes.c_uint32),
    )


def widen_tag() -> None:
    """Socket tagging reads and writes tags through a buffer as wide as the
    variant's (the kernel copies the map's own value size), and the datapath
    checks socket_tags against the layout of the program set it opens."""
    socket_tagging.SockTag = WideTag  # type: ignore[misc]
    attach = datapath.Datapath._attach

    def attach_either(self: datapath.Datapath, program_set: Any) -> None:
        size = program_set.maps[program_set.map_index("socket_tags")].value_size
        wide = size == ctypes.sizeof(WideTag)
        datapath._MAP_TYPES["socket_tags"] = (ctypes.c_int, WideTag if wide else layout.SockTag)
        attach(self, program_set)

    datapath.Datapath._attach = attach_either  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sock_counters", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--plain", action="store_true", help="plain adds (a lower bound)")
    parser.add_argument("bench", choices=("hook_ns", "cpu_per_gb"))
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the bench's own; VARIANT: the copy")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chadthrottle-sock-counters-") as work:
        variant = make_variant(Path(work), args.plain)
        widen_tag()
        sys.argv = [f"bench.{args.bench}"] + [a.replace("VARIANT", str(variant)) for a in args.args]
        try:
            runpy.run_module(f"bench.{args.bench}", run_name="__main__", alter_sys=True)
        except SystemExit as done:
            return int(done.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
