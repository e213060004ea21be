"""Accounting's cost against issue 19's targets, with a confidence interval
instead of an IQR: is it under 2% CPU per GB at 4 Gbit/s, and under 3% of
throughput at full speed?

    sudo .venv/bin/python -m bench.cpu_per_gb [--blocks 120] [--kinds rate,max] [--json FILE]

bench/overhead.py's iperf3 stream between two namespaces (client on CPU 0,
server on CPU 1), switched on one running connection between A (no program on
the cgroup root) and B (the datapath from bpf/, nothing limited: accounting)
in many short blocks, ABBA and BAAB by turns (an effect of a window's place in
its block cancels too). A block's change is B's CPU per byte (at full speed:
bytes per second) over A's, each summed over the block's two windows, less
one. One block's change spreads by 5-20 points on this shared 2-core VM (the
stream's own batching, the others' load), so the answer is neither one
block's nor the IQR of blocks: it is the median of the blocks' changes, and
the change of the totals over all blocks (weighted by what moved, so a window
in which a busy machine stalled the stream does not swing it), each with a
95% bootstrap confidence interval. The interval resamples whole connections,
not blocks (bench/connection_ci.py): blocks on one connection share whatever
that connection settled into, so blocks resampled as if independent leave the
spread between connections, and so between runs, out; --per-connection starts a
new connection every few blocks so that a run has a dozen or more. A
target is met when the interval lies under it (for throughput, the loss),
missed when it lies above, and open otherwise.

CPU time is the transfer's own, as in bench/overhead.py: the client's, the
server's and the ksoftirqd threads' run time by their CPU clocks
(clock_gettime of the process's CPU clock: the scheduler's clock brought up
to date for a task running at that moment, where /proc/PID/schedstat lags by
up to a tick, 4 ms at HZ=250, 5-10% of a 0.3 s window's CPU). It includes the
softirq work done in their context: on a veth pair all of the receive path,
as this kernel has no IRQ time accounting. /proc/stat's softirq column is
tick-sampled and too coarse for short windows, and a cgroup's cpu.stat
usage_usec lags like schedstat. The clocks miss softirq work that runs while a
CPU is idle (BBR's pacing timer sends from an hrtimer softirq, and on a veth the
receive follows in the same softirq), so each window also reads the machine's
busy time (bench/busy_cpu.py: cpuidle's residency per CPU, less the bench's own
and others' CPU), reported as "busy/GB" beside the clocks' "CPU per GB" with the
same blocks, pairing and intervals. "others" is every other process's CPU;
blocks are kept whatever it was (pairing keeps them unbiased), and the report
also gives the quiet blocks alone. The machine lock (no other datapath) is
held for each --chunk blocks and let go between chunks, so that other
sessions' tests, which wait up to 120 s for it, still get it. With
--beside-others a chunk whose lock did not come runs beside the other
datapaths: then B adds one more program on hooks already on, without the
hook's own entry (bench/hook_ns.py measures that part), and the report says
so. --compare A:B measures other pairs on the same stream: none:empty (the
cgroup hook's own cost, an empty program on both skb hooks), empty:ours (our
programs' part), DIR:ours (a copy of bpf/ from before a change against bpf/),
ours:limited (the stream's application unlimited, then limited by the tc
backend at --limit-gbit, above what the stream reaches: bench/limited_self.py).

Both ends of the veth are this machine's sockets, so with the programs on the
cgroup root (--hooked-end both, as the helper attaches them) every packet
enters the hooks twice: at the sender and at the receiver. A transfer with
another machine enters them once, at its local end. --hooked-end local puts
A's and B's programs on a child cgroup holding only the iperf3 client (it
sends on an upload, receives on a download) and runs the server in a sibling
cgroup, whose sockets enter no hook (bench/hooked_end.py). After each chunk's
blocks, one window with B on reads B's programs effective on each end's
cgroup and its skb programs' runs (the kernel's statistics) per GB and per
packet on the veth: 2 when both ends' sockets enter the hooks, 1 when one's do.
docs/benchmarks.md keeps the runs and the command for a quiet rerun.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from chadthrottle.helper.kernel import datapath as datapath_module
from chadthrottle.helper.kernel.bcc_env import kernel_source_dir
from chadthrottle.helper.kernel.ownership import RUN_DIR

from bench.busy_cpu import BusyClock, busy_ns
from bench.connection_ci import block_bootstrap_ci, chi2_95, cluster_bootstrap_ci, heterogeneity
from bench.hook_split import EmptyHooks
from bench.hooked_end import (
    HOOKED_ENDS,
    HookRuns,
    attached_ids,
    check,
    effective_summary,
    hooked_end,
    per_gb,
)
from bench.limited_self import limited_self
from bench.overhead import (
    CACHE_DIR,
    Iperf,
    machine_lock_or_not,
    measure_window,
    switchable,
    window_of,
)
from bench.suspendable import SuspendableDatapath
from tests.support.netns import netns_pair

ORDERS = ((False, True, True, False), (True, False, False, True))  # ABBA, BAAB
TARGETS = {"rate": 0.02, "max": 0.03}  # CPU per GB at the fixed rate; throughput lost at max
BOOTSTRAP = 4000
MIN_CONNECTIONS = 10  # fewer: no interval by connections (a percentile over few is too narrow)
CHECK_S = 1.0  # the window with the kernel's run-time statistics on, after each chunk


@dataclass
class Window:
    direction: str
    kind: str
    block: int
    attached: bool
    seconds: float
    moved_bytes: float
    cpu_ns: float
    others_cpus: float
    connection: int = -1  # the stream's connection (runs before it: one a chunk, block // chunk)
    busy_ns: float = -1.0  # the machine's busy time less the bench's and others' (-1: not read)
    packets: int = -1  # packets both ways on the veth (-1: not read)


@dataclass
class Results:
    started: str
    settings: dict[str, Any]
    windows: list[Window] = field(default_factory=list)
    load: list[str] = field(default_factory=list)
    beside: list[str] = field(default_factory=list)  # chunks run beside other datapaths
    hooks: list[HookRuns] = field(default_factory=list)  # B's programs, read after each chunk


def uptime() -> str:
    with open("/proc/loadavg") as loadavg:
        return time.strftime("%H:%M:%S UTC ", time.gmtime()) + " ".join(loadavg.read().split()[:3])


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Compared:
    """A and B of --compare on the cgroup root: set(True) puts B there, set(False) A.
    Each side is None (no program), "empty" (r0 = 1 on both skb hooks, bench/hook_split.py)
    or a SuspendableDatapath; one side is taken off before the other goes on."""

    def __init__(self, a: Any, b: Any) -> None:
        self.sides = {False: a, True: b}
        self.attached: bool | None = None

    def adopt(self, pids: list[int]) -> None:
        for side in self.sides.values():
            if isinstance(side, SuspendableDatapath):
                side.adopt_open_sockets(pids)

    def set(self, attached: bool) -> None:
        if attached == self.attached:
            return
        _put(self.sides[not attached], False)
        _put(self.sides[attached], True)
        self.attached = attached


def _put(side: Any, on: bool) -> None:
    if isinstance(side, EmptyHooks):
        side.set(on)
    elif isinstance(side, SuspendableDatapath) and on:
        side.resume()
    elif isinstance(side, SuspendableDatapath):
        side.suspend()


@contextlib.contextmanager
def compared(compare: str, pair: Any, locked: bool, limit_bps: int, pacing: bool,
             cgroup: Path | None) -> Iterator[Any]:  # fmt: skip
    """--compare A:B, each of none, empty, ours or a directory holding a copy of bpf/
    (built with a cache of its own, as bench/hook_ns.py --bpf); or ours:limited. The
    programs go on cgroup (None: the cgroup v2 root)."""
    if compare == "ours:limited":
        with limited_self(pair, locked, limit_bps, pacing, cgroup) as limited:
            yield limited
        return
    if compare == "none:ours":  # the measurement, through bench/overhead.py's switch
        with switchable("accounting", pair, locked, cgroup) as switch:
            yield Compared(None, switch.datapath)
        return
    with contextlib.ExitStack() as stack:
        sides = [stack.enter_context(_side(name, locked, cgroup)) for name in compare.split(":")]
        yield Compared(sides[0], sides[1])  # each side's own exit takes it off


@contextlib.contextmanager
def _side(name: str, locked: bool, cgroup: Path | None) -> Iterator[Any]:
    if name == "none":
        yield None
    elif name == "empty":
        hooks = EmptyHooks(cgroup)
        try:
            yield hooks
        finally:
            hooks.close()
    else:
        cache_dir, restore = CACHE_DIR, datapath_module.bpf_source_dir
        if name != "ours":
            os.environ.setdefault("BCC_KERNEL_SOURCE", str(kernel_source_dir(CACHE_DIR)))
            cache_dir = Path(tempfile.mkdtemp(prefix="chadthrottle-cpu-per-gb-"))
            cache_dir.chmod(0o755)
            source = Path(name).resolve()
            datapath_module.bpf_source_dir = lambda: source
        datapath = SuspendableDatapath(cgroup, cache_dir=cache_dir)
        try:
            datapath.open(machine_lock_held=locked)
        finally:
            datapath_module.bpf_source_dir = restore
        try:
            yield datapath
        finally:
            datapath.close()
            if cache_dir != CACHE_DIR:
                shutil.rmtree(cache_dir, ignore_errors=True)


def measure_stream(iperf: Iperf, direction: str, kind: str, args: argparse.Namespace,
                   results: Results) -> None:  # fmt: skip
    """The stream's blocks in chunks of --chunk blocks under the machine lock, which is
    let go between chunks: other sessions' tests wait at most 120 s for it, and a chunk
    is about a minute. Each chunk starts a new connection every --per-connection blocks:
    the connection is the unit the intervals resample (bench/connection_ci.py)."""
    results.load.append(f"{direction} {kind} start {uptime()}")
    per_connection = args.per_connection or args.chunk
    connection = 1 + max((w.connection for w in results.windows), default=-1)
    for first_block in range(0, args.blocks, args.chunk):
        blocks = range(first_block, min(args.blocks, first_block + args.chunk))
        with machine_lock_or_not(args.lock_wait) as locked:
            if not locked and not args.beside_others:
                raise SystemExit("another datapath holds the machine: it would see every packet")
            if not locked:
                results.beside.append(f"{direction} {kind} blocks {blocks.start}-{blocks.stop - 1}: "
                                      f"{len(list(RUN_DIR.glob('datapath-*.ids')))} datapaths")  # fmt: skip
            with compared(
                args.compare,
                iperf.pair,
                locked,
                int(args.limit_gbit * 1e9 / 8),
                not args.limit_no_pacing,
                iperf.ends.attach_at,
            ) as switch:  # fmt: skip
                starts = range(blocks.start, blocks.stop, per_connection)
                for start in starts:
                    mine = range(start, min(blocks.stop, start + per_connection))
                    last = start == starts[-1]
                    # the stream's -t: 1.5 s to pass slow start, then each window with its
                    # reads and switch (0.05 s spare: 0.15 s windows ran out before the last block)
                    seconds = (
                        1.5
                        + len(mine) * 4 * (args.settle + args.window + 0.05)
                        + (5 if last else 1)
                    )
                    switch.set(True)  # each connection is made with B on, as the first was
                    with iperf.stream(direction, seconds, kind, args.rate_gbit * 1e9 / 8):
                        switch.adopt(iperf.pids())
                        _blocks(iperf, switch, mine, connection, direction, kind, args, results)
                        if last:
                            _check(iperf, switch, direction, kind, args, results)
                    connection += 1
                switch.set(False)
        time.sleep(1.0)  # the machine lock is free: a waiting datapath gets its turn
    results.load.append(f"{direction} {kind} end {uptime()}")
    log(f"{direction} {kind} done, {uptime()}")


def _blocks(iperf: Iperf, switch: Any, blocks: range, connection: int, direction: str,
            kind: str, args: argparse.Namespace, results: Results) -> None:  # fmt: skip
    """ABBA and BAAB by turns on the running connection. Each window reads the tasks'
    CPU clocks (cpu_ns) and the machine's busy time (busy_ns, bench/busy_cpu.py): the
    clocks miss the softirq work that runs while a CPU was idle (BBR's pacing timer)."""
    clock = BusyClock()
    for block in blocks:
        for attached in ORDERS[block % 2]:
            switch.set(attached)
            time.sleep(args.settle)
            busy_first = clock.read()
            first, packets = iperf.sample(), iperf.veth_packets()
            time.sleep(args.window)
            busy_last = clock.read()
            last, packets = iperf.sample(), iperf.veth_packets() - packets
            others = window_of(first, last)[2]
            results.windows.append(Window(
                direction, kind, block, attached, (last.at_ns - first.at_ns) / 1e9,
                last.moved_bytes - first.moved_bytes,
                last.transfer_ns - first.transfer_ns, others, connection,
                busy_ns(busy_first, busy_last, last.others_ticks - first.others_ticks), packets))  # fmt: skip


def _check(iperf: Iperf, switch: Any, direction: str, kind: str, args: argparse.Namespace,
           results: Results) -> None:  # fmt: skip
    """One window with B on: B's programs effective on each end and their runs."""
    switch.set(False)
    a_side = attached_ids(iperf.ends.attach_at)
    switch.set(True)
    time.sleep(args.settle)
    results.hooks.append(check(iperf.ends.attach_at, a_side, iperf.ends_pids(),
                               lambda: _moved(iperf, CHECK_S), direction, kind))  # fmt: skip
    switch.set(False)


def _moved(iperf: Iperf, seconds: float) -> tuple[int, int]:
    """Bytes of the stream, and packets both ways on the veth, over a window."""
    packets = iperf.veth_packets()
    first, last = measure_window(iperf, seconds)
    return last.moved_bytes - first.moved_bytes, iperf.veth_packets() - packets


def _measure(windows: list[Window], kind: str) -> float:
    """Over these windows: bytes per second (max) or CPU ns per byte (rate)."""
    if kind == "max":
        return sum(w.moved_bytes for w in windows) / sum(w.seconds for w in windows)
    return sum(w.cpu_ns for w in windows) / max(1.0, sum(w.moved_bytes for w in windows))


def at_rate(windows: list[Window], kind: str) -> set[int]:
    """The blocks whose every window moved at least half the stream's median bytes per
    second (rate only: the stream ended or stalled in a window, whether A or B, and
    its CPU per byte means nothing; at max a stall is what is measured)."""
    blocks = {w.block for w in windows}
    if kind != "rate" or not windows:
        return blocks
    floor = statistics.median(w.moved_bytes / w.seconds for w in windows) / 2
    return blocks - {w.block for w in windows if w.moved_bytes / w.seconds < floor}


def block_changes(windows: list[Window], kind: str, max_others: float) -> list[float]:
    """Per block: B over A - 1 of CPU per byte (rate) or of bytes per second (max)."""
    changes = []
    kept = at_rate(windows, kind)
    for block in sorted(kept):
        mine = [w for w in windows if w.block == block]
        if len(mine) != 4 or max(w.others_cpus for w in mine) > max_others:
            continue
        value_b = _measure([w for w in mine if w.attached], kind)
        value_a = _measure([w for w in mine if not w.attached], kind)
        if value_a > 0 and value_b > 0:  # else the stream stalled in a window: no ratio
            changes.append(value_b / value_a - 1)
    return changes


def totals_change(blocks: list[list[Window]], kind: str) -> float:
    """B over A - 1 of the totals over the given blocks: CPU per byte (rate) or bytes per
    second (max). Weighted by what moved, so a window in which the stream stalled (the
    machine busy) cannot swing it as it swings a mean of per-block ratios."""
    value_b = _measure([w for block in blocks for w in block if w.attached], kind)
    value_a = _measure([w for block in blocks for w in block if not w.attached], kind)
    return value_b / value_a - 1 if value_a > 0 else float("nan")


def whole_blocks(windows: list[Window], max_others: float, kind: str = "max") -> list[list[Window]]:
    by_block: dict[int, list[Window]] = {}
    kept = at_rate(windows, kind)
    for w in windows:
        if w.block in kept:
            by_block.setdefault(w.block, []).append(w)
    return [
        mine
        for mine in by_block.values()
        if len(mine) == 4 and max(w.others_cpus for w in mine) <= max_others
    ]


def by_connection(windows: list[Window], chunk: int) -> dict[int, list[Window]]:
    """The windows of each connection; a run from before connections were recorded had
    one connection a chunk."""
    connections: dict[int, list[Window]] = {}
    for w in windows:
        key = w.connection if w.connection >= 0 else w.block // chunk
        connections.setdefault(key, []).append(w)
    return connections


def bootstrap_ci(items: list[Any], statistic: Any, seed: int = 19) -> tuple[float, float]:
    """95% percentile interval of statistic over resamples (with replacement) of items."""
    return block_bootstrap_ci(items, statistic, BOOTSTRAP, seed)


def verdict(kind: str, low: float, high: float) -> str:
    """Against the target: CPU per GB must rise by less; throughput must fall by less."""
    target = TARGETS[kind]
    worst, best = (high, low) if kind == "rate" else (-low, -high)
    if worst < target:
        return "met"
    if best > target:
        return "missed"
    return "open"


def summary(windows: list[Window], kind: str, max_others: float, chunk: int = 1) -> str:
    """The median of the blocks' changes and the change of the totals, each with its 95%
    interval by whole connections resampled (bench/connection_ci.py); then the median's
    interval by blocks resampled (the old method) and whether the connections differ
    beyond their blocks' spread (Q against its 95% point). chunk: blocks a connection in
    windows that do not name theirs (1: each block its own, as bench/lifted_pacing.py's)."""
    connections = list(by_connection(windows, chunk).values())
    changes = [block_changes(c, kind, max_others) for c in connections]
    blocks = [whole_blocks(c, max_others, kind) for c in connections]
    pooled = [change for mine in changes for change in mine]
    if len(pooled) < 8:
        return f"{len(pooled)} blocks: too few"
    old_lo, old_hi = bootstrap_ci(pooled, statistics.median)
    q, df = heterogeneity(changes)
    old = (
        f"(blocks resampled: median [{old_lo:+.2%}, {old_hi:+.2%}]; connections' Q {q:.1f}, "
        f"95% point {chi2_95(df) if df else float('nan'):.1f})"
    )
    count = sum(1 for mine in changes if mine)
    if count < MIN_CONNECTIONS:
        return (
            f"{count:>3} conn  median {statistics.median(pooled):+6.2%}: too few connections "
            f"for an interval by connections {old}"
        )
    median_lo, median_hi = cluster_bootstrap_ci(changes, statistics.median, BOOTSTRAP)
    total = totals_change([b for mine in blocks for b in mine], kind)
    total_lo, total_hi = cluster_bootstrap_ci(
        blocks, lambda sample: totals_change(sample, kind), BOOTSTRAP
    )
    return (
        f"{count:>3} conn  median {statistics.median(pooled):+6.2%} "
        f"[{median_lo:+.2%}, {median_hi:+.2%}] {verdict(kind, median_lo, median_hi):<6}  "
        f"totals {total:+6.2%} [{total_lo:+.2%}, {total_hi:+.2%}] "
        f"{verdict(kind, total_lo, total_hi):<6}  {old}"
    )


def busy_windows(windows: list[Window]) -> list[Window]:
    """The windows with the machine's busy time as their CPU (bench/busy_cpu.py). A
    window that did not read it (others' CPU unknown) is left out, and with it its
    block (a block needs its 4 windows); none when no window read it (runs saved
    before it, or no cpuidle)."""
    return [replace(w, cpu_ns=w.busy_ns) for w in windows if w.busy_ns >= 0]


def format_report(results: Results) -> str:
    s = results.settings
    lines = [
        f"Accounting's cost: bench/cpu_per_gb.py, {results.started}",
        f"{s['blocks']} blocks per stream of 4 windows of {s['window']} s (after {s['settle']} s each), "
        f"ABBA and BAAB by turns; A:B = {s.get('compare', 'none:ours')} (none: no program; empty: r0 = 1 "
        f"on both skb hooks; ours: bpf/, nothing limited; limited: ours, the stream's application limited "
        f"at {s.get('limit_gbit', 0):g} Gbit/s each way by tc{', no pacing cap' if s.get('limit_no_pacing') else ''}); "
        f"fixed rate {s['rate_gbit']:g} Gbit/s",
        "change = B/A - 1 (rate: CPU per GB; max: throughput): the median of the blocks' changes, and "
        "the change of the totals over all blocks; [95% bootstrap CI, whole connections resampled: "
        f"a new connection every {s.get('per_connection') or s['chunk']} blocks]; target: CPU "
        "per GB under +2%, throughput above -3% (met: the whole CI inside; missed: outside)",
    ]
    for quiet in (False, True):
        limit = s["max_others"] if quiet else float("inf")
        lines += [
            "",
            f"blocks where others used at most {limit} CPUs:" if quiet else "every block:",
        ]
        for direction in s["directions"].split(","):
            for kind in s["kinds"].split(","):
                mine = [w for w in results.windows if (w.direction, w.kind) == (direction, kind)]
                if not mine:
                    continue
                changes = block_changes(mine, kind, limit)
                what = "throughput" if kind == "max" else "CPU per GB"
                stream = "max" if kind == "max" else f"{s['rate_gbit']:g}Gbit/s"
                count = f"{len(changes)}/{len({w.block for w in mine})}"
                lines.append(
                    f"{direction:<5}{stream:<9}{what:<11}{count:>8}  {summary(mine, kind, limit, s['chunk'])}"
                )
                busy = busy_windows(mine) if kind == "rate" else []
                if busy:
                    count = (
                        f"{len(block_changes(busy, kind, limit))}/{len({w.block for w in mine})}"
                    )
                    lines.append(
                        f"{direction:<5}{stream:<9}{'busy/GB':<11}{count:>8}  {summary(busy, kind, limit, s['chunk'])}"
                    )
    for direction in s["directions"].split(","):
        for kind in s["kinds"].split(","):
            a = [
                w
                for w in results.windows
                if (w.direction, w.kind, w.attached) == (direction, kind, False)
            ]
            if a:
                gbit = sum(w.moved_bytes for w in a) * 8 / sum(w.seconds for w in a) / 1e9
                cpu = sum(w.cpu_ns for w in a) / sum(w.moved_bytes for w in a)
                others = statistics.median(w.others_cpus for w in results.windows
                                           if (w.direction, w.kind) == (direction, kind))  # fmt: skip
                busy = busy_windows(a)
                busy_text = (f", the machine's busy {sum(w.cpu_ns for w in busy) / sum(w.moved_bytes for w in busy):.3f}"
                             if busy else "")  # fmt: skip
                lines.append(f"A, {direction} {kind}: {gbit:.2f} Gbit/s, {cpu:.3f} s of CPU per GB{busy_text}, "
                             f"others median {others:.2f} CPUs")  # fmt: skip
    lines += ["", f"hooked end: {s.get('hooked_end', 'both')}; B's skb programs by the kernel's statistics "
              f"({CHECK_S:g} s with B on after each chunk's blocks):"]  # fmt: skip
    for direction in s["directions"].split(","):
        for kind in s["kinds"].split(","):
            checks = [c for c in results.hooks if (c.direction, c.kind) == (direction, kind)]
            if checks:
                runs, run_ns, per_packet = per_gb(checks)
                lines.append(f"{direction} {kind}: runs per GB " + ", ".join(
                    f"{name} {count:,.0f} ({run_ns.get(name, 0):.0f} ns a run)"
                    for name, count in runs.items()) + f", all {sum(runs.values()):,.0f} ({per_packet:.3f} a packet on "
                    "the veth, either way); B's programs effective: " +
                    "; ".join(f"{end} end's cgroup: {names}"
                              for end, names in effective_summary(checks).items()))  # fmt: skip
    if results.beside:
        lines += ["", "WITHOUT the machine lock (other datapaths' programs ran in A and B: the change is "
                  "one more program on hooks already on, not the hook's own entry): "
                  + "; ".join(results.beside)]  # fmt: skip
    lines += ["", "load: " + "; ".join(results.load)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_per_gb", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--blocks", type=int, default=120, help="blocks per stream")
    parser.add_argument("--window", type=float, default=0.3, help="seconds per window")
    parser.add_argument("--settle", type=float, default=0.05, help="seconds after each switch")
    parser.add_argument("--chunk", type=int, default=40, help="blocks per hold of the lock")
    parser.add_argument("--per-connection", type=int, default=0,
                        help="blocks per connection, the intervals' unit (0: one connection a chunk)")  # fmt: skip
    parser.add_argument("--rate-gbit", type=float, default=4.0)
    parser.add_argument("--directions", default="up,down")
    parser.add_argument("--kinds", default="rate,max", help="rate (CPU per GB), max (throughput)")
    parser.add_argument("--max-others", type=float, default=0.25)
    parser.add_argument("--lock-wait", type=float, default=300.0)
    parser.add_argument(
        "--beside-others",
        action="store_true",
        help="if the lock does not come in --lock-wait s, measure beside other datapaths",
    )
    parser.add_argument(
        "--compare",
        default="none:ours",
        help="A:B, each of none (no program), empty (r0 = 1 on both skb hooks: the hook's own "
        "cost), ours (the datapath from bpf/) or a directory with a copy of bpf/ (before a change); "
        "or ours:limited (the stream's application limited both ways by the tc backend, bench/limited_self.py)",
    )
    parser.add_argument("--limit-gbit", type=float, default=30.0,
                        help="ours:limited: the limit, each way (above what the stream reaches)")  # fmt: skip
    parser.add_argument("--limit-no-pacing", action="store_true",
                        help="ours:limited without the upload pacing cap, which stays on the socket once set")  # fmt: skip
    parser.add_argument("--hooked-end", choices=HOOKED_ENDS, default="both",
                        help="both: the programs on the cgroup root (both ends' sockets, as the helper); "
                        "local: on a child cgroup holding only the client, the server in another")  # fmt: skip
    parser.add_argument("--json", help="also write every window here")
    parser.add_argument("--report", metavar="JSON", nargs="+",
                        help="only print the report of saved runs (several: pooled, each run's connections apart)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.report:
        print(report_again(*args.report))
        return 0
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces, BPF)")
    sides = args.compare.split(":")
    if args.compare != "ours:limited" and (
        len(sides) != 2
        or sides[0] == sides[1]
        or not all(
            side in ("none", "empty", "ours") or (Path(side) / "datapath.c").is_file()
            for side in sides
        )
    ):
        parser.error("--compare is A:B, two of none, empty, ours or a directory with datapath.c")
    if not set(args.kinds.split(",")) <= set(TARGETS) or not set(args.directions.split(",")) <= {
        "up",
        "down",
    }:
        parser.error("unknown kind or direction")
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    results = Results(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), settings)
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))  # clean up on kill
    try:
        with hooked_end(args.hooked_end) as ends, netns_pair() as pair:
            iperf = Iperf(pair, None, ends)
            try:
                for direction in args.directions.split(","):
                    for kind in args.kinds.split(","):
                        measure_stream(iperf, direction, kind, args, results)
            finally:
                iperf.close()
    finally:
        if args.json:
            with open(args.json, "w") as out:
                json.dump(asdict(results), out, indent=1)
        print(format_report(results))
    return 0


def report_again(*paths: str) -> str:
    """The report of runs' --json files (another --max-others: edit settings). Several
    runs of one --compare are pooled: each run's blocks and connections are numbered
    apart, so the intervals resample every run's connections as one set; the settings
    are the first run's, with the blocks summed."""
    pooled: Results | None = None
    for path in paths:
        with open(path) as saved:
            data = json.load(saved)
        windows = [Window(**w) for w in data.pop("windows")]
        hooks = [HookRuns(**h) for h in data.pop("hooks", [])]
        run = Results(**data, windows=windows, hooks=hooks)
        if pooled is None:
            pooled = run
            continue
        first_block = 1 + max((w.block for w in pooled.windows), default=-1)
        first_connection = 1 + max(
            (c for c in by_connection(pooled.windows, pooled.settings["chunk"])), default=-1
        )
        for key, mine in by_connection(run.windows, run.settings["chunk"]).items():
            for w in mine:
                w.block += first_block
                w.connection = key + first_connection
        pooled.windows += run.windows
        pooled.hooks += run.hooks
        pooled.load += [f"{path}: {line}" for line in run.load]
        pooled.settings["blocks"] += run.settings["blocks"]
        pooled.started += f"; {run.started}"
    assert pooled is not None
    return format_report(pooled)


if __name__ == "__main__":
    sys.exit(main())
