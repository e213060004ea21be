"""What do ChadThrottle's programs cost an application they do not limit?

    sudo .venv/bin/python -m bench.overhead [--blocks 20] [--rate-gbit 4] [--json FILE]

An iperf3 stream between the project's two network namespaces
(tests/support/netns.py), client pinned to CPU 0 and server to CPU 1, while the
machine switches between A (no ChadThrottle program anywhere) and B, one of:
  accounting  the datapath attached at the cgroup root, nothing limited (issue 4);
  limited     that, plus another application limited both ways by the tc
              backend: HTB root on the uplink, ingress cls_bpf + IFB (issue 3).
The switch takes microseconds (the programs stay loaded: bench/suspendable.py's
suspend and resume), so A and B alternate on one running connection in 0.5 s
windows, in ABBA blocks: each block's B/A ratio cancels a linear drift, and the
report is the median over blocks with its spread. Separate runs per configuration do not
work here: on this shared 2-core VM two iperf3 runs of one setup differ by 30%
and more, and a paired ratio of two such runs said anything from -55% to +131%.

Each stream runs twice: as fast as it goes (throughput: what issues 3 and 4
ask) and at a fixed rate (iperf3 -b), where the cost shows as CPU time per GB
rather than as lost speed. CPU time is the transfer's own: client and server
(the scheduler's run time, which includes the softirq work done in their
context) plus the ksoftirqd threads. "others" is the CPU time every other
process used meanwhile; a block with a window above --max-others CPUs is left
out of the summary (and counted). The machine lock is held during each stream,
so no other datapath runs (they would see every packet too).

After the blocks of each stream the kernel's run-time statistics
(BPF_ENABLE_STATS, off again when its fd closes) give each program's time per
run, set against the transfer's CPU time. docs/benchmarks.md explains the
output and keeps a run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chadthrottle.contract import Direction
from chadthrottle.helper.errors import BackendUnavailable
from chadthrottle.helper.kernel import bpf_syscalls
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.kernel.datapath import remove_leftover_programs
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.kernel.ownership import RUN_DIR, holding_machine_lock

from bench.hooked_end import Ends, in_cgroup
from bench.overhead_probes import (
    chadt_programs,
    cpu_ticks_of_all,
    ksoftirqd_pids,
    perf_share,
    run_stats,
    task_ns,
)
from bench.suspendable import SuspendableDatapath
from tests.support.netns import NetnsPair, netns_pair, nsenter_argv, tc_shaper_in

# B configurations: the limits another application has (none: accounting only).
LIMITED_DIRECTIONS = {
    "accounting": (),
    "limited": (Direction.UP, Direction.DOWN),
    "limited-up": (Direction.UP,),  # only the HTB root on the uplink
    "limited-down": (Direction.DOWN,),  # only the ingress hook and the IFB
}
CONFIGS = tuple(LIMITED_DIRECTIONS)
DEFAULT_CONFIGS = ("accounting", "limited")
DIRECTIONS = ("up", "down")
IPERF_PORT = 5998
CLIENT_CPU, SERVER_CPU = 0, 1
CACHE_DIR = Path("/var/cache/chadthrottle")
IDLE_SLOT = 1  # the other application's slot in "limited"; no socket carries it
IDLE_LIMIT = ClassSpec(rate_bps=1 << 20, burst_bytes=2 << 20)
SETTLE_S = (
    0.2,
    0.5,
)  # after a switch: the datapath alone; with tc changes (they purge a queue, TCP recovers)
ABBA = (False, True, True, False)
KINDS = ("max", "rate", "udp64")
UDP_PAYLOAD_BYTES = 64
STATS_WINDOWS = 4
PERF_SECONDS = 3
_USER_HZ = os.sysconf("SC_CLK_TCK")


# --- CPU time and bytes ---------------------------------------------------------------------


@dataclass
class Sample:
    at_ns: int
    moved_bytes: int
    transfer_ns: int
    others_ticks: int


class Iperf:
    """A long-lived iperf3 server in the peer namespace on SERVER_CPU; streams
    from clients in the host namespace on CLIENT_CPU. ends: the cgroups they run in
    (bench/hooked_end.py; by default the bench's own)."""

    def __init__(self, pair: NetnsPair, congestion: str | None, ends: Ends | None = None) -> None:
        self.pair = pair
        self.congestion = congestion
        self.ends = ends or Ends(None, None, None)
        self.server = subprocess.Popen(
            in_cgroup(nsenter_argv(pair.peer_ns, ["taskset", "-c", str(SERVER_CPU), "iperf3", "-s", "-p", str(IPERF_PORT)]), self.ends.far),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.ksoftirqd = ksoftirqd_pids()
        self.client: subprocess.Popen[bytes] | None = None
        self._direction = "up"
        self._count_packets = False
        time.sleep(0.5)

    @contextlib.contextmanager
    def stream(self, direction: str, seconds: float, kind: str, rate_bps: float) -> Iterator[None]:
        """kind: "max" (TCP as fast as it goes), "rate" (TCP at rate_bps), "udp64" (64-byte
        UDP datagrams as fast as they go: per-packet costs; sample() then counts packets)."""
        argv = [
            "taskset",
            "-c",
            str(CLIENT_CPU),
            "iperf3",
            "-c",
            self.pair.peer_addr,
            "-p",
            str(IPERF_PORT),
            "-t",
            str(int(seconds) + 1),
            "-i",
            "0",
        ]
        argv += ["-R"] if direction == "down" else []
        argv += ["-b", str(int(rate_bps * 8))] if kind == "rate" else []
        argv += ["-u", "-l", str(UDP_PAYLOAD_BYTES), "-b", "0"] if kind == "udp64" else []
        argv += ["-C", self.congestion] if self.congestion else []
        self._direction = direction
        self._count_packets = kind == "udp64"
        self.client = subprocess.Popen(
            in_cgroup(nsenter_argv(self.pair.host_ns, argv), self.ends.local),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.5)  # past slow start
            if self.client.poll() is not None:
                raise RuntimeError("iperf3 client ended early: is the server up?")
            yield
        finally:
            self.client.kill()
            self.client.wait()
            self.client = None
            time.sleep(0.3)  # the server notices and listens again

    def pids(self) -> list[int]:
        return [self.server.pid] + ([self.client.pid] if self.client else [])

    def veth_packets(self) -> int:
        """Packets the peer's veth received and sent (data and ACKs: every packet of the pair)."""
        with open(f"/proc/{self.server.pid}/net/dev") as dev:
            for line in dev:
                name, _, counters = line.partition(":")
                if name.strip() == self.pair.peer_if:
                    values = counters.split()
                    return int(values[1]) + int(values[9])
        raise RuntimeError(f"no {self.pair.peer_if} in the server's namespace")

    def ends_pids(self) -> dict[str, int]:
        """The stream's client as its local end and the server as its far end (hooked_end)."""
        if self.client is None:
            raise RuntimeError("no stream")
        return {"local": self.client.pid, "far": self.server.pid}

    def sample(self) -> Sample:
        """Bytes the peer's veth received (upload) or sent (download), read through the
        server's own /proc/PID/net/dev (its namespace), and CPU time so far."""
        moved = 0
        with open(f"/proc/{self.server.pid}/net/dev") as dev:
            for line in dev:
                name, _, counters = line.partition(":")
                if name.strip() == self.pair.peer_if:
                    values = counters.split()
                    column = (0 if self._direction == "up" else 8) + (
                        1 if self._count_packets else 0
                    )
                    moved = int(values[column])
        ours = [*self.pids(), *self.ksoftirqd]
        others = cpu_ticks_of_all({*ours, os.getpid()})
        return Sample(time.monotonic_ns(), moved, sum(task_ns(pid) for pid in ours), others)

    def close(self) -> None:
        self.server.kill()
        self.server.wait()


# --- switching the machine between A and B -------------------------------------------------------


class Switch:
    """Puts the machine in A (no programs attached) or B (the configuration) quickly."""

    def __init__(self, config: str, datapath: SuspendableDatapath, shaper: Any) -> None:
        self.config = config
        self.datapath = datapath
        self.shaper = shaper
        self.attached = True
        if shaper is not None:
            shaper.reconcile(self.limits())

    def limits(self) -> dict[Direction, dict[int, ClassSpec]]:
        return {direction: {IDLE_SLOT: IDLE_LIMIT} for direction in LIMITED_DIRECTIONS[self.config]}

    def set(self, attached: bool) -> None:
        if attached == self.attached:
            return
        if attached:
            self.datapath.resume()
            if self.shaper is not None:
                self.shaper.reconcile(self.limits())
        else:
            if self.shaper is not None:
                self.shaper.reconcile({})
            self.datapath.suspend()
        self.attached = attached


@contextlib.contextmanager
def switchable(
    config: str, pair: NetnsPair, machine_lock_held: bool, cgroup: Path | None = None
) -> Iterator[Switch]:
    """cgroup: where the programs go (None: the cgroup v2 root, as the helper's)."""
    datapath = SuspendableDatapath(cgroup, cache_dir=CACHE_DIR)
    datapath.open(machine_lock_held=machine_lock_held)
    try:
        if LIMITED_DIRECTIONS[config]:
            with tc_shaper_in(pair.host_ns, datapath, retire_after_s=0.0) as shaper:
                yield Switch(config, datapath, shaper)
        else:
            yield Switch(config, datapath, None)
    finally:
        datapath.close()


@contextlib.contextmanager
def machine_lock_or_not(wait_s: float) -> Iterator[bool]:
    """The machine lock if it comes within wait_s (then no other datapath runs); else go on without."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(holding_machine_lock(wait_s))
        except BackendUnavailable:
            locked = False
        else:
            locked = True
            remove_leftover_programs(
                cgroup2_mount(), instance=""
            )  # no datapath is alive: what dead datapaths of no helper recorded is left over
        yield locked


# --- measuring ------------------------------------------------------------------------------------


@dataclass
class Window:
    config: str
    direction: str
    kind: str  # see Iperf.stream
    block: int
    attached: bool
    bytes_per_s: float
    cpu_ns_per_byte: float
    others_cpus: float
    load1: float


@dataclass
class ProgramCost:
    config: str
    direction: str
    kind: str
    program: str
    runs_per_s: float
    ns_per_run: float
    share_of_transfer_cpu: float  # the program's run time / the transfer's CPU time


@dataclass
class PerfShare:
    config: str
    direction: str
    kind: str
    busy: float  # share of all samples that were not idle
    programs: float  # of the busy samples
    hook: float
    tc: float


@dataclass
class Results:
    started: str
    settings: dict[str, Any]
    windows: list[Window] = field(default_factory=list)
    costs: list[ProgramCost] = field(default_factory=list)
    perf: list[PerfShare] = field(default_factory=list)
    foreign_datapaths: list[str] = field(default_factory=list)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure_window(iperf: Iperf, seconds: float) -> tuple[Sample, Sample]:
    first = iperf.sample()
    time.sleep(seconds)
    return first, iperf.sample()


def window_of(first: Sample, last: Sample) -> tuple[float, float, float]:
    """(bytes/s, transfer CPU ns per byte, CPUs others used)."""
    wall_ns = last.at_ns - first.at_ns
    moved = max(1, last.moved_bytes - first.moved_bytes)
    others_s = (last.others_ticks - first.others_ticks) / _USER_HZ
    return (
        moved * 1e9 / wall_ns,
        (last.transfer_ns - first.transfer_ns) / moved,
        max(0.0, others_s * 1e9 / wall_ns),
    )


def measure_stream(
    iperf: Iperf, config: str, direction: str, kind: str, args: argparse.Namespace, results: Results
) -> None:
    rate_bps = args.rate_gbit * 1e9 / 8
    settle = SETTLE_S[1] if LIMITED_DIRECTIONS[config] else SETTLE_S[0]
    seconds = args.blocks * len(ABBA) * (settle + args.window) + STATS_WINDOWS * args.window + 5
    with machine_lock_or_not(args.lock_wait) as locked:
        if not locked:
            results.foreign_datapaths.append(
                f"{config} {direction} {kind}: {len(list(RUN_DIR.glob('datapath-*.ids')))}"
            )
        before_open = chadt_programs()
        with (
            switchable(config, iperf.pair, locked) as switch,
            iperf.stream(direction, seconds, kind, rate_bps),
        ):
            switch.datapath.adopt_open_sockets(
                iperf.pids()
            )  # tagged with their owner, as any application's
            programs = {
                i: n
                for i, n in chadt_programs().items()
                if i not in before_open and n != "chadt_sock"
            }
            for block in range(args.blocks):
                for attached in ABBA:
                    switch.set(attached)
                    time.sleep(settle)
                    speed, cpu, others = window_of(*measure_window(iperf, args.window))
                    results.windows.append(
                        Window(
                            config,
                            direction,
                            kind,
                            block,
                            attached,
                            speed,
                            cpu,
                            others,
                            os.getloadavg()[0],
                        )
                    )
            switch.set(True)
            time.sleep(settle)
            stats_fd = bpf_syscalls.enable_run_time_stats()
            try:
                stats0 = run_stats(programs)
                first, last = measure_window(iperf, STATS_WINDOWS * args.window)
                stats1 = run_stats(programs)
            finally:
                os.close(stats_fd)
            if args.perf:
                results.perf.append(PerfShare(config, direction, kind, *perf_share(PERF_SECONDS)))
            wall_s = (last.at_ns - first.at_ns) / 1e9
            for prog_id, name in sorted(programs.items(), key=lambda item: item[1]):
                if prog_id in stats0 and prog_id in stats1:
                    run_ns, runs = (
                        stats1[prog_id][0] - stats0[prog_id][0],
                        stats1[prog_id][1] - stats0[prog_id][1],
                    )
                    results.costs.append(
                        ProgramCost(
                            config,
                            direction,
                            kind,
                            name,
                            runs / wall_s,
                            run_ns / max(1, runs),
                            run_ns / (last.transfer_ns - first.transfer_ns),
                        )
                    )
    mine = [
        w for w in results.windows if (w.config, w.direction, w.kind) == (config, direction, kind)
    ]
    changes = block_changes(mine, "bytes_per_s", args.max_others)[0]
    log(
        f"{config} {direction} {kind}: {len(changes)} quiet blocks, throughput change "
        f"{statistics.median(changes) if changes else float('nan'):+.1%}, load {os.getloadavg()[0]:.2f}"
    )


def block_changes(windows: list[Window], attr: str, max_others: float) -> tuple[list[float], int]:
    """Per ABBA block: mean B / mean A - 1, over blocks where nobody else used more than
    max_others CPUs in any window; and how many blocks were left out."""
    changes, left_out = [], 0
    for block in sorted({w.block for w in windows}):
        mine = [w for w in windows if w.block == block]
        if len(mine) != len(ABBA):
            continue
        if max(w.others_cpus for w in mine) > max_others:
            left_out += 1
            continue
        with_programs = statistics.mean(getattr(w, attr) for w in mine if w.attached)
        without = statistics.mean(getattr(w, attr) for w in mine if not w.attached)
        changes.append(with_programs / without - 1)
    return changes, left_out


# --- the report -----------------------------------------------------------------------------------


def _spread(values: list[float]) -> str:
    if len(values) < 4:
        return f"({min(values):+6.1%}..{max(values):+6.1%})"
    q = statistics.quantiles(values, n=4)
    return f"[{q[0]:+6.1%}, {q[2]:+6.1%}]  ({min(values):+6.1%}..{max(values):+6.1%})"


def _summary_rows(results: Results, max_others: float) -> list[str]:
    rows: list[str] = []
    rate_gbit = results.settings["rate_gbit"]
    for config in CONFIGS:
        for direction in DIRECTIONS:
            for kind in KINDS:
                mine = [
                    w
                    for w in results.windows
                    if (w.config, w.direction, w.kind) == (config, direction, kind)
                ]
                if not mine:
                    continue
                speed, left_out = block_changes(mine, "bytes_per_s", max_others)
                cpu, _ = block_changes(mine, "cpu_ns_per_byte", max_others)
                a_windows = [w for w in mine if not w.attached]
                stream = kind if kind != "rate" else f"{rate_gbit:g} Gbit/s"
                blocks = f"{len(speed)}/{len(speed) + left_out}"
                speed_text = f"{statistics.median(speed):+6.1%}  {_spread(speed)}" if speed else "-"
                cpu_text = f"{statistics.median(cpu):+6.1%}  {_spread(cpu)}" if cpu else "-"
                a_speed = statistics.median(w.bytes_per_s for w in a_windows)
                a_cpu = statistics.median(w.cpu_ns_per_byte for w in a_windows)
                if kind == "udp64":  # packets, not bytes: kpkt/s and CPU ns per packet
                    a_speed_text, a_cpu_text = f"{a_speed / 1e3:.0f}k/s", f"{a_cpu:.0f} ns/pkt"
                else:
                    a_speed_text, a_cpu_text = f"{a_speed * 8 / 1e9:.2f}", f"{a_cpu:.3f}"
                rows.append(
                    f"{config:<11} {direction:<5}{stream:<9}{blocks:>7}"
                    f"{a_speed_text:>9}  {speed_text:<40}"
                    f"{a_cpu_text:>10}  {cpu_text:<40}"
                    f"{statistics.median(w.others_cpus for w in mine):>7.2f}"
                    f"{statistics.median(w.load1 for w in mine):>6.2f}"
                )
    return rows


def _stream_label(kind: str, settings: dict[str, Any]) -> str:
    return kind if kind != "rate" else f"{settings['rate_gbit']:g} Gbit/s"


def format_report(results: Results) -> str:
    s = results.settings
    lines = [
        f"ChadThrottle overhead benchmark, {results.started}",
        f"iperf3 over a veth pair between two namespaces, TCP {s['congestion']}, client on CPU {CLIENT_CPU}, server on "
        f"CPU {SERVER_CPU}; A = no programs, B = the configuration; ABBA blocks of {s['window']} s windows, "
        f"{s['blocks']} blocks per stream; fixed rate {s['rate_gbit']} Gbit/s",
        "change = median over blocks of (mean B / mean A - 1), [IQR], (min..max); blocks where others used more than "
        f"{s['max_others']} CPUs are left out",
        "CPU = the transfer's CPU time (client + server + ksoftirqd) per GB moved (udp64: per packet, "
        f"{UDP_PAYLOAD_BYTES}-byte datagrams, A in packets/s); others = CPUs every other process used",
        "",
        f"{'config':<11} {'dir':<5}{'stream':<9}{'blocks':>7}{'A Gbit/s':>9}  {'throughput change':<40}"
        f"{'A CPU s/GB':>10}  {'CPU per GB change':<40}{'others':>7}{'load':>6}",
    ]
    for quiet_only in (True, False):
        if not quiet_only:
            lines += [
                "",
                "The same over every block, busy ones included (pairing keeps it unbiased, not precise):",
            ]
        lines += _summary_rows(results, s["max_others"] if quiet_only else float("inf"))
    if results.costs:
        lines += [
            "",
            "The programs' own run time (kernel run-time statistics, B, over "
            f"{STATS_WINDOWS * s['window']:g} s after the blocks of each stream):",
            f"{'config':<11} {'dir':<5}{'stream':<9}{'program':<15}{'runs/s':>9}{'ns/run':>8}  share of the transfer's CPU",
        ]
        for c in results.costs:
            stream = _stream_label(c.kind, s)
            lines.append(
                f"{c.config:<11} {c.direction:<5}{stream:<9}{c.program:<15}{c.runs_per_s:>9.0f}"
                f"{c.ns_per_run:>8.0f}  {c.share_of_transfer_cpu:>8.2%}"
            )
    if results.perf:
        lines += [
            "",
            f"Where the CPU goes in B (perf cpu-clock samples on every CPU, {PERF_SECONDS} s after the statistics):",
            f"{'config':<11} {'dir':<5}{'stream':<9}{'busy':>6}  programs+helpers  cgroup-BPF hook  qdiscs+filters  (of busy)",
        ]
        for share in results.perf:
            stream = _stream_label(share.kind, s)
            lines.append(
                f"{share.config:<11} {share.direction:<5}{stream:<9}{share.busy:>6.0%}"
                f"  {share.programs:>16.2%}  {share.hook:>15.2%}  {share.tc:>14.2%}"
            )
    if results.foreign_datapaths:
        lines += [
            "",
            "streams measured without the machine lock (datapaths on the machine): "
            + "; ".join(results.foreign_datapaths),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--blocks", type=int, default=20, help="ABBA blocks per stream")
    parser.add_argument("--window", type=float, default=0.5, help="seconds per A or B window")
    parser.add_argument(
        "--rate-gbit", type=float, default=4.0, help="the fixed rate of the CPU-cost streams"
    )
    parser.add_argument(
        "--configs",
        default=",".join(DEFAULT_CONFIGS),
        help="comma-separated, of " + ",".join(CONFIGS),
    )
    parser.add_argument("--directions", default=",".join(DIRECTIONS))
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help="max: TCP as fast as it goes; rate: TCP at "
        "--rate-gbit; udp64: 64-byte UDP datagrams as fast as they go (CPU per packet)",
    )
    parser.add_argument(
        "--max-others",
        type=float,
        default=0.25,
        help="CPUs other processes may use in a window before its block is left out",
    )
    parser.add_argument(
        "--lock-wait",
        type=float,
        default=120.0,
        help="seconds to wait for the machine lock (no other datapath) before each stream",
    )
    parser.add_argument(
        "--congestion", help="TCP congestion control for iperf3 (default: the system's)"
    )
    parser.add_argument(
        "--perf", action="store_true", help="also sample where the CPU goes in B (perf record -a)"
    )
    parser.add_argument("--json", type=Path, help="also write every window here")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces, BPF, tc)")
    configs, directions, kinds = (
        args.configs.split(","),
        args.directions.split(","),
        args.kinds.split(","),
    )
    if not (
        set(configs) <= set(CONFIGS)
        and set(directions) <= set(DIRECTIONS)
        and set(kinds) <= set(KINDS)
    ):
        parser.error("unknown configuration, direction or kind")
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    settings["congestion"] = (
        args.congestion or Path("/proc/sys/net/ipv4/tcp_congestion_control").read_text().strip()
    )
    results = Results(
        time.strftime("%Y-%m-%d %H:%M:%S %Z") + f", {os.cpu_count()} CPUs, {os.uname().release}",
        settings,
    )
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))  # clean up on kill
    try:
        with netns_pair() as pair:
            iperf = Iperf(pair, args.congestion)
            try:
                for config in configs:
                    for direction in directions:
                        for kind in kinds:
                            measure_stream(iperf, config, direction, kind, args, results)
                            time.sleep(
                                1.0
                            )  # the machine lock is free: a waiting datapath gets its turn
            finally:
                iperf.close()
    finally:  # what was measured, also when interrupted
        print(format_report(results))
        if args.json:
            args.json.write_text(json.dumps(asdict(results), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
