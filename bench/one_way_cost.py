"""What the upload's one-way reading (helper/kernel/one_way.py, bpf/one_way.h) costs per
packet: nanoseconds per run of the uplink's egress program (chadt_tc_out: every upload
packet twice under a link, before our upload IFB and as the IFB sends it on) and of its
ingress program (chadt_tc_in: every arriving packet, the upload's ACKs), by the kernel's
per-program run-time statistics, with the reading on (looked at every 0.1 s, as the
helper's glances) and off, alternating per block (issue 16, issue 19's concern).

    .venv/bin/python -m bench.one_way_cost [--blocks 6] [--seconds 3] [--modem]

One bulk TCP upload from the helper's namespace (tests/support/bulk_upload.py) under a
link capacity both ways. Default: full speed, the link at 1 Gbit/s straight to the
veth's peer. --modem: the modem in miniature of bench/bottleneck.py (5 Mbit/s up, 20
down, 400 ms of buffer) and the link at its rates, so our shaper holds the upload at 95%.
Report per state: ns a run of each program (median [min-max] over blocks), runs/s, the
ACKs read a second (on), and on - off.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterator

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel import bpf_syscalls
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.one_way import UploadQueueReader
from chadthrottle.helper.kernel.priority_classes import LinkShaping
from chadthrottle.helper.kernel.tc_shaper import TcShaper

from bench.bottleneck import modem
from bench.forwarded_ns import hook_program, run_ns
from bench.hook_split import uptime
from bench.overhead import CACHE_DIR
from tests.support.bulk_upload import bulk_upload
from tests.support.netns import NetnsPair, netns_pair, tc_shaper_in

FULL_BPS = 125_000_000  # 1 Gbit/s
MODEM_UP_BPS, MODEM_DOWN_BPS, MODEM_BUFFER_MS = 625_000, 2_500_000, 400.0
LOOK_S = 0.1


@contextlib.contextmanager
def far_end(pair: NetnsPair, with_modem: bool) -> Iterator[tuple[str, str]]:
    """(namespace, address) of the upload's server: the veth's peer, or behind the modem."""
    if not with_modem:
        yield pair.peer_ns, pair.peer_addr
        return
    with modem(pair, MODEM_DOWN_BPS, MODEM_UP_BPS, MODEM_BUFFER_MS) as internet:
        yield internet.netns, internet.addr


def one_block(reader: UploadQueueReader, ifb: int, on: bool, seconds: float,
              prog_ids: tuple[int, int]) -> tuple[list[float], list[int], int]:  # fmt: skip
    """([ns a run of each program], [runs of each], ACKs read) over `seconds` of the upload."""
    if on:
        reader.start(ifb)
    before = [run_ns(prog_id) for prog_id in prog_ids]
    read, due = 0, time.monotonic()
    end = due + seconds
    while due < end:
        due += LOOK_S
        time.sleep(max(0.0, due - time.monotonic()))
        reading = reader.look()
        read += reading.readings if reading is not None else 0
    after = [run_ns(prog_id) for prog_id in prog_ids]
    reader.stop()
    runs = [a[1] - b[1] for a, b in zip(after, before, strict=True)]
    spent = [(a[0] - b[0]) / max(n, 1) for a, b, n in zip(after, before, runs, strict=True)]
    return spent, runs, read


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.one_way_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--modem", action="store_true", help="5 Mbit/s through a modem in miniature"
    )
    args = parser.parse_args(argv)
    print(f"load before: {uptime()}")
    states = ("off", "on")
    spent: dict[str, list[list[float]]] = {state: [] for state in states}
    runs: dict[str, list[list[int]]] = {state: [] for state in states}
    read: dict[str, list[int]] = {state: [] for state in states}
    stats_fd = bpf_syscalls.enable_run_time_stats()
    datapath = Datapath(cache_dir=CACHE_DIR)
    datapath.open()
    try:
        with netns_pair() as pair, tc_shaper_in(pair.host_ns, datapath) as shaper, \
                far_end(pair, args.modem) as (to_ns, to_addr):  # fmt: skip
            assert isinstance(shaper, TcShaper)
            for direction, rate in ((Direction.DOWN, MODEM_DOWN_BPS), (Direction.UP, MODEM_UP_BPS)):
                shaper.set_link(
                    direction, LinkShaping(capacity_bps=rate if args.modem else FULL_BPS)
                )
            shaper.reconcile({})
            (ifb,) = {hook.ifb.ifindex for hook in shaper._hooks[Direction.UP].values()}
            prog_ids = (hook_program(pair.host_ns, pair.host_if, "egress", "chadt_tc_out"),
                        hook_program(pair.host_ns, pair.host_if, "ingress", "chadt_tc_in"))  # fmt: skip
            reader = UploadQueueReader(datapath)
            with bulk_upload(pair.host_ns, to_ns, to_addr):
                one_block(reader, ifb, False, 1.0, prog_ids)  # the upload's start, not counted
                for block in range(args.blocks):
                    for state in states if block % 2 == 0 else states[::-1]:
                        ns, counted, acks = one_block(
                            reader, ifb, state == "on", args.seconds, prog_ids
                        )
                        spent[state].append(ns)
                        runs[state].append(counted)
                        read[state].append(acks)
            shaper.reconcile({})
    finally:
        datapath.close()
        os.close(stats_fd)
    medians: dict[str, list[float]] = {}
    for state in states:
        medians[state] = []
        parts = []
        for index, name in enumerate(("egress chadt_tc_out", "ingress chadt_tc_in")):
            values = [block[index] for block in spent[state]]
            per_s = statistics.median(block[index] for block in runs[state]) / args.seconds
            medians[state].append(statistics.median(values))
            parts.append(f"{name} {statistics.median(values):.1f} ns a run "
                         f"[{min(values):.1f}-{max(values):.1f}], {per_s / 1000:.1f} k runs/s")  # fmt: skip
        acks = statistics.median(read[state]) / args.seconds
        print(f"{state}: " + "; ".join(parts) + f"; ACKs read {acks:.0f}/s")
    print("on - off: egress {:.1f} ns, ingress {:.1f} ns a run".format(
        *(on - off for on, off in zip(medians["on"], medians["off"], strict=True))))  # fmt: skip
    print(f"load after: {uptime()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
