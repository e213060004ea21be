"""How much of accounting's per-packet cost is the cgroup-BPF hook itself, and
how much is what our programs do there?

    sudo .venv/bin/python -m bench.hook_split [--blocks 16] [--kinds max,rate] [--json FILE]

bench/overhead.py's iperf3 stream between two namespaces (client on CPU 0,
server on CPU 1), switched between three states on one running connection:
  none  no program on the cgroup root's skb hooks;
  hook  an empty program (r0 = 1; exit) on INET_INGRESS and INET_EGRESS: the
        cost any cgroup skb program pays, which only attaching fewer hooks
        can cut;
  full  the datapath as built from bpf/ (accounting, nothing limited).
Each block runs the windows none, hook, full, full, hook, none: every pair of
states has the same centre, so a linear drift cancels in each block's ratios
hook/none (the hook), full/hook (our programs' bodies and what they touch)
and full/none (the whole, as bench/overhead.py reports it). The report is the
median over blocks with its IQR, for blocks where other processes used at
most --max-others CPUs in every window, and over every block. After the
blocks, the kernel's run-time statistics give both programs' ns per run.
docs/benchmarks.md keeps a run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chadthrottle.helper.kernel import bpf_syscalls
from chadthrottle.helper.kernel.bpf_objects import load_program
from chadthrottle.helper.kernel.bpf_syscalls import CgroupAttachType
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.kernel.program_set import BPF_PROG_TYPE_CGROUP_SKB

from bench.overhead import (
    STATS_WINDOWS,
    Iperf,
    Switch,
    machine_lock_or_not,
    measure_window,
    switchable,
    window_of,
)
from bench.overhead_probes import chadt_programs, run_stats
from tests.support.netns import netns_pair

STATES = ("none", "hook", "full")
ORDER = ("none", "hook", "full", "full", "hook", "none")
SPLITS = (  # (name, B state, A state)
    ("hook", "hook", "none"),
    ("programs", "full", "hook"),
    ("whole", "full", "none"),
)
SETTLE_S = 0.2
# r0 = 1 (pass); exit. Not named chadt_: a helper starting meanwhile would take
# them for a killed helper's leftovers and detach them. Killed with SIGKILL, a run
# leaves them attached (they pass every packet): detach ctbench_* by hand.
EMPTY_PROGRAM = struct.pack("<BBhi", 0xB7, 0, 0, 1) + struct.pack("<BBhi", 0x95, 0, 0, 0)
EMPTY_NAMES = {
    CgroupAttachType.INET_INGRESS: "ctbench_in",
    CgroupAttachType.INET_EGRESS: "ctbench_out",
}


class EmptyHooks:
    """The empty program loaded once per skb hook, attached and detached at will,
    on cgroup (None: the cgroup v2 root)."""

    def __init__(self, cgroup: Path | None = None) -> None:
        self.fds = {
            hook: load_program(name, BPF_PROG_TYPE_CGROUP_SKB, hook, EMPTY_PROGRAM)
            for hook, name in EMPTY_NAMES.items()
        }
        self.cgroup_fd = os.open(cgroup or cgroup2_mount(), os.O_RDONLY | os.O_DIRECTORY)
        self.attached = False

    def set(self, attached: bool) -> None:
        if attached == self.attached:
            return
        for hook, fd in self.fds.items():
            if attached:
                bpf_syscalls.attach_to_cgroup(fd, self.cgroup_fd, hook)
            else:
                bpf_syscalls.detach_from_cgroup(fd, self.cgroup_fd, hook)
        self.attached = attached

    def ids(self) -> dict[int, str]:
        return {bpf_syscalls.program_id(fd): EMPTY_NAMES[hook] for hook, fd in self.fds.items()}

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.set(False)
        for fd in self.fds.values():
            os.close(fd)
        os.close(self.cgroup_fd)


@contextlib.contextmanager
def empty_hooks() -> Iterator[EmptyHooks]:
    hooks = EmptyHooks()
    try:
        yield hooks
    finally:
        hooks.close()


def enter(state: str, switch: Switch, hooks: EmptyHooks) -> None:
    """Detach first, then attach: never both sets at once."""
    if state != "full":
        switch.set(False)
    if state != "hook":
        hooks.set(False)
    hooks.set(state == "hook")
    switch.set(state == "full")


@dataclass
class Window:
    direction: str
    kind: str
    block: int
    state: str
    bytes_per_s: float
    cpu_ns_per_byte: float
    others_cpus: float
    load1: float


@dataclass
class Results:
    started: str
    settings: dict[str, Any]
    windows: list[Window] = field(default_factory=list)
    ns_per_run: list[dict[str, Any]] = field(default_factory=list)
    uptime: list[str] = field(default_factory=list)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def uptime() -> str:
    with open("/proc/loadavg") as loadavg:
        return time.strftime("%H:%M:%S UTC ", time.gmtime()) + " ".join(loadavg.read().split()[:3])


def bench_programs() -> dict[int, str]:
    """The empty programs of any run (ours are the ones that run)."""
    out = subprocess.run(
        ["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True
    )
    names = set(EMPTY_NAMES.values())
    return {p["id"]: p["name"] for p in json.loads(out.stdout) if p.get("name") in names}


def program_costs(iperf: Iperf, seconds: float) -> dict[str, float]:
    """ns per run of each chadt_ program that ran, over `seconds` of the stream."""
    programs = chadt_programs() | bench_programs()
    stats_fd = bpf_syscalls.enable_run_time_stats()
    try:
        before = run_stats(programs)
        measure_window(iperf, seconds)
        after = run_stats(programs)
    finally:
        os.close(stats_fd)
    costs: dict[str, float] = {}
    for prog_id, name in programs.items():
        if prog_id in before and prog_id in after:
            runs = after[prog_id][1] - before[prog_id][1]
            if runs > 0:
                costs[name] = (after[prog_id][0] - before[prog_id][0]) / runs
    return costs


def measure_stream(iperf: Iperf, direction: str, kind: str, args: argparse.Namespace,
                   results: Results) -> None:  # fmt: skip
    seconds = (
        args.blocks * len(ORDER) * (SETTLE_S + args.window) + 2 * STATS_WINDOWS * args.window + 5
    )
    results.uptime.append(f"{direction} {kind} start: {uptime()}")
    with machine_lock_or_not(args.lock_wait) as locked:
        if not locked:
            raise SystemExit("another datapath holds the machine: it would see every packet too")
        with (
            empty_hooks() as hooks,
            switchable("accounting", iperf.pair, locked) as switch,
            iperf.stream(direction, seconds, kind, args.rate_gbit * 1e9 / 8),
        ):
            switch.datapath.adopt_open_sockets(iperf.pids())
            for block in range(args.blocks):
                for state in ORDER:
                    enter(state, switch, hooks)
                    time.sleep(SETTLE_S)
                    speed, cpu, others = window_of(*measure_window(iperf, args.window))
                    results.windows.append(Window(direction, kind, block, state, speed, cpu,
                                                  others, os.getloadavg()[0]))  # fmt: skip
            for state in ("hook", "full"):
                enter(state, switch, hooks)
                time.sleep(SETTLE_S)
                for name, ns in program_costs(iperf, STATS_WINDOWS * args.window).items():
                    results.ns_per_run.append(
                        {
                            "direction": direction,
                            "kind": kind,
                            "state": state,
                            "program": name,
                            "ns_per_run": ns,
                        }
                    )
            enter("none", switch, hooks)
    results.uptime.append(f"{direction} {kind} end: {uptime()}")
    log(f"{direction} {kind} done, {uptime()}")


def block_ratios(windows: list[Window], attr: str, max_others: float) -> dict[str, list[float]]:
    """Per block, for each split: mean of B's windows / mean of A's - 1."""
    ratios: dict[str, list[float]] = {name: [] for name, _b, _a in SPLITS}
    for block in sorted({w.block for w in windows}):
        mine = [w for w in windows if w.block == block]
        if len(mine) != len(ORDER) or max(w.others_cpus for w in mine) > max_others:
            continue
        mean = {s: statistics.mean(getattr(w, attr) for w in mine if w.state == s) for s in STATES}
        for name, b, a in SPLITS:
            ratios[name].append(mean[b] / mean[a] - 1)
    return ratios


def _median_iqr(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) < 4:
        return f"{statistics.median(values):+6.1%} ({min(values):+.1%}..{max(values):+.1%})"
    q = statistics.quantiles(values, n=4)
    return f"{statistics.median(values):+6.1%} [{q[0]:+.1%}, {q[2]:+.1%}]"


def format_report(results: Results) -> str:
    s = results.settings
    lines = [
        f"Hook or programs: bench/hook_split.py, {results.started}",
        f"blocks of {' '.join(ORDER)}, {s['window']} s windows, {s['blocks']} blocks per stream; "
        f"fixed rate {s['rate_gbit']} Gbit/s; change = median over blocks [IQR] of B/A - 1",
        "hook = empty program vs none; programs = bpf/ vs empty program; whole = bpf/ vs none",
    ]
    for quiet in (True, False):
        limit = s["max_others"] if quiet else float("inf")
        lines += [
            "",
            f"blocks where others used at most {limit} CPUs:" if quiet else "every block:",
        ]
        lines.append(
            f"{'dir':<5}{'stream':<9}{'blocks':>7}  {'split':<9} {'throughput':<26} {'CPU per GB':<26}"
        )
        for direction in s["directions"].split(","):
            for kind in s["kinds"].split(","):
                mine = [w for w in results.windows if (w.direction, w.kind) == (direction, kind)]
                if not mine:
                    continue
                speed = block_ratios(mine, "bytes_per_s", limit)
                cpu = block_ratios(mine, "cpu_ns_per_byte", limit)
                blocks = f"{len(speed['hook'])}/{len({w.block for w in mine})}"
                stream = kind if kind != "rate" else f"{s['rate_gbit']:g}Gbit/s"
                for name, _b, _a in SPLITS:
                    lines.append(f"{direction:<5}{stream:<9}{blocks:>7}  {name:<9} "
                                 f"{_median_iqr(speed[name]):<26} {_median_iqr(cpu[name]):<26}")  # fmt: skip
    lines += ["", "ns per run (kernel run-time statistics, includes their own ~70-95 ns):"]
    for cost in results.ns_per_run:
        lines.append(f"  {cost['direction']:<5}{cost['kind']:<6}{cost['state']:<6}{cost['program']:<15}"
                     f"{cost['ns_per_run']:>6.0f}")  # fmt: skip
    lines += ["", "load: " + "; ".join(results.uptime)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hook_split", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--blocks", type=int, default=16, help="blocks per stream")
    parser.add_argument("--window", type=float, default=0.5, help="seconds per window")
    parser.add_argument("--rate-gbit", type=float, default=4.0)
    parser.add_argument("--directions", default="up,down")
    parser.add_argument(
        "--kinds", default="max,rate", help="max, rate, udp64 (see bench/overhead.py)"
    )
    parser.add_argument("--max-others", type=float, default=0.25)
    parser.add_argument("--lock-wait", type=float, default=300.0)
    parser.add_argument("--json", help="also write every window here")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces, BPF)")
    if not set(args.kinds.split(",")) <= {"max", "rate", "udp64"} or not set(
        args.directions.split(",")
    ) <= {"up", "down"}:
        parser.error("unknown kind or direction")
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    results = Results(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), settings)
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        with netns_pair() as pair:
            iperf = Iperf(pair, None)
            try:
                for direction in args.directions.split(","):
                    for kind in args.kinds.split(","):
                        measure_stream(iperf, direction, kind, args, results)
                        time.sleep(
                            1.0
                        )  # the machine lock is free: a waiting datapath gets its turn
            finally:
                iperf.close()
    finally:
        print(format_report(results))
        if args.json:
            with open(args.json, "w") as out:
                json.dump(asdict(results), out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
