"""Where the programs' time per packet goes: bench/overhead.py on variants of
bpf/datapath.c that each leave out one part of the accounting path.

    sudo .venv/bin/python -m bench.program_variants [--variants empty,tag,no-counter,hash,as-is] [--blocks 3]

Each variant is a copy of bpf/ with one edit, built into a cache of its own
(the kernel headers are shared with the helper's cache) and measured by
bench/overhead.py on a TCP stream at --rate-gbit and a 64-byte UDP stream;
the report is each program's ns per run from the kernel's run-time
statistics. Those include the statistics' own clock reads: the empty variant
shows how much. docs/benchmarks.md, "Per-packet cost of accounting", keeps a
run and what it showed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from chadthrottle.helper.kernel import datapath
from chadthrottle.helper.kernel.bcc_env import kernel_source_dir
from chadthrottle.helper.kernel.program_build import bpf_source_dir

import bench.overhead as overhead

_TAG = "    struct sock_tag *tag = tag_of(skb);\n"
_SLOT_LOOKUP = "    struct traffic_counters *counters = slot_counters(&key);\n"


def _at_program_start(source: str, line: str) -> str:
    for program in ("chadt_egress", "chadt_ingress"):
        start = f"int {program}(struct __sk_buff *skb)\n{{\n"
        source = _replace_once(source, start, start + line)
    return source


def _replace_once(source: str, old: str, new: str) -> str:
    if old not in source:
        raise SystemExit(
            f"bpf/datapath.c changed: cannot find {old.strip()!r}; update bench/program_variants.py"
        )
    return source.replace(old, new)


VARIANTS: dict[str, tuple[str, Callable[[str], str]]] = {
    "empty": (
        "return 1 at once: the hook and the statistics alone",
        lambda c: _at_program_start(c, "    return 1;\n"),
    ),
    "tag": (
        "the socket's tag only (sk_fullsock, sk_storage)",
        lambda c: _replace_once(
            c, _TAG, _TAG + "    if (!tag || !tag->app_slot)\n        return 1;\n"
        ),
    ),
    "no-counter": (
        "everything but the counter (key, GSO bytes)",
        lambda c: _replace_once(c, _SLOT_LOOKUP, "    return bytes;\n" + _SLOT_LOOKUP),
    ),
    "hash": (
        "the per-CPU hash for every packet (no counter slots)",
        lambda c: _replace_once(c, _SLOT_LOOKUP, "    struct traffic_counters *counters = 0;\n"),
    ),
    "as-is": ("bpf/datapath.c as it is", lambda c: c),
}


def run_variant(name: str, work: Path, args: argparse.Namespace) -> list[dict[str, object]]:
    """bench/overhead.py's program costs for one variant."""
    source = work / name / "bpf"
    shutil.copytree(bpf_source_dir(), source, ignore=shutil.ignore_patterns("__pycache__"))
    (source / "datapath.c").write_text(VARIANTS[name][1]((source / "datapath.c").read_text()))
    cache = work / name / "cache"
    cache.mkdir(mode=0o755)
    datapath.bpf_source_dir = lambda: source  # what Datapath.open builds
    overhead.CACHE_DIR = cache
    report = work / name / "overhead.json"
    overhead.main(
        [
            "--configs",
            "accounting",
            "--kinds",
            "rate,udp64",
            "--directions",
            args.directions,
            "--blocks",
            str(args.blocks),
            "--rate-gbit",
            str(args.rate_gbit),
            "--lock-wait",
            "30",
            "--json",
            str(report),
        ]
    )
    return [cost for cost in json.loads(report.read_text())["costs"] if cost["runs_per_s"] > 0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.program_variants",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--blocks", type=int, default=3, help="ABBA blocks per stream (the costs come after them)"
    )
    parser.add_argument("--directions", default="up")
    parser.add_argument("--rate-gbit", type=float, default=4.0)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces, BPF)")
    names = args.variants.split(",")
    if not set(names) <= set(VARIANTS):
        parser.error(f"variants are {', '.join(VARIANTS)}")
    os.environ.setdefault(
        "BCC_KERNEL_SOURCE", str(kernel_source_dir(Path("/var/cache/chadthrottle")))
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="chadthrottle-variants-") as work:
        for name in names:
            for cost in run_variant(name, Path(work), args):
                if cost["program"] in ("chadt_egress", "chadt_ingress"):
                    rows.append(
                        f"{name:<11}{cost['direction']:<6}{cost['kind']:<7}{cost['program']:<15}"
                        f"{cost['ns_per_run']:>8.0f}  {VARIANTS[name][0]}"
                    )
    load = os.getloadavg()[0]
    print(
        f"{'variant':<11}{'dir':<6}{'kind':<7}{'program':<15}{'ns/run':>8}  what it runs (load {load:.2f})"
    )
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
