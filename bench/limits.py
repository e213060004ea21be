"""How exact are ChadThrottle's limits? Real traffic between two network
namespaces, the real helper (in the "host" namespace, on a private system bus
with polkitd), limits set over D-Bus as the GUI sets them.

    sudo .venv/bin/python -m bench.limits [--backend tc|ebpf|both] [--quick] [--json FILE]

Prints, per backend and direction: achieved/configured at several rates (TCP and
UDP, IPv4, one IPv6 row), convergence after a change, retransmits and drops, two
applications with different limits at once, and the throughput of an unlimited
application with the programs attached versus none. Bytes are counted on the
wire at L3 (what a limit counts), from the receiving socket, not from the helper:
see bench/flows.py. docs/benchmarks.md explains the columns and keeps a run.
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
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from chadthrottle.client import HelperClient
from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.kernel.datapath import remove_leftover_programs
from chadthrottle.helper.kernel.ownership import RUN_DIR, holding_machine_lock
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus, StandaloneError
from chadthrottle.units import parse_rate

from bench.delay_line import delayed
from bench.flows import MTU, Flow, begin, htb_l3_rate, start_flow, tc_snapshot
from tests.support import own_names
from tests.support.netns import NetnsPair, app_scope, netns_pair, nsenter_argv

KiB, MiB = 1024, 1024 * 1024
RATES = (128 * KiB, 1 * MiB, 10 * MiB, 50 * MiB)
TARGET_TCP, TARGET_UDP, TARGET_CONVERGE_S, TARGET_LOSS = 0.03, 0.05, 1.0, 0.05
CONVERGE_WINDOW_S, CONVERGE_BAND = 0.25, 0.05
SECTIONS = ("tcp", "udp", "ipv6", "two", "converge", "throughput")
IPERF_PORT = 5999
LOCK_WAIT_S = 900.0  # the baseline waits until no datapath runs anywhere on the machine
T = TypeVar("T")


@dataclass
class Settings:
    warmup_s: float = 3.0
    window_s: float = 10.0
    throughput_runs: int = 5
    throughput_s: float = 3.0
    quiet_cpu: float = 0.25  # share of both CPUs others may use while we measure
    quiet_wait_s: float = 180.0
    congestion: str | None = None  # TCP congestion control of both ends; None: the system's
    converge_rates: tuple[int, int] = (
        1024 * 1024,
        10 * 1024 * 1024,
    )  # unlimited -> first -> second


@dataclass
class RateRow:
    backend: str
    direction: str
    proto: str
    family: int
    configured_bps: int
    wire_bps: float
    wire_in_order_bps: float
    goodput_bps: float
    htb_bps: float | None
    retrans: int
    drops: int
    udp_loss: float | None
    load: str
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.wire_bps / self.configured_bps

    @property
    def ok(self) -> bool:
        return abs(self.ratio - 1) <= (TARGET_UDP if self.proto == "udp" else TARGET_TCP)


@dataclass
class ConvergeRow:
    backend: str
    direction: str
    step: str
    wire_s: float | None
    app_s: float | None
    call_s: float
    load: str
    wire_windows: list[tuple[float, float]] = field(
        default_factory=list
    )  # (s after the change, B/s)


@dataclass
class ThroughputRow:
    backend: str
    direction: str
    config: str
    runs_bps: list[float]
    load: str

    @property
    def median_bps(self) -> float:
        return statistics.median(self.runs_bps) if self.runs_bps else 0.0


@dataclass
class Results:
    started: str
    rates: list[RateRow] = field(default_factory=list)
    converge: list[ConvergeRow] = field(default_factory=list)
    throughput: list[ThroughputRow] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)


# --- the machine ---------------------------------------------------------------


def _cpu_busy(interval_s: float = 1.0) -> float:
    """Share of all CPUs busy over interval_s (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    total0, idle0 = sample()
    time.sleep(interval_s)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def machine_load() -> str:
    """Load average, CPU use by others just before, and how many datapaths
    (ours included) run: every one of them sees every packet on the machine."""
    datapaths = len(list(RUN_DIR.glob("datapath-*.ids")))
    return f"load {os.getloadavg()[0]:.2f}, cpu {_cpu_busy():.0%}, {datapaths} datapaths"


def wait_for_quiet(settings: Settings) -> str:
    """Wait (bounded) until the CPUs are mostly idle; returns the load then.
    Other test runs may be waiting for the datapath lock without using CPU."""
    deadline = time.monotonic() + settings.quiet_wait_s
    while _cpu_busy() > settings.quiet_cpu and time.monotonic() < deadline:
        time.sleep(2)
    return machine_load()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the bench -----------------------------------------------------------------


class Bench:
    def __init__(self, bus_address: str, pair: NetnsPair, backend: str, settings: Settings) -> None:
        self.bus_address = bus_address
        self.pair = pair
        self.backend = backend
        self.settings = settings
        self.cgroup_root = cgroup2_mount()
        self._port = 6000

    def call(self, action: Callable[[HelperClient], Awaitable[T]]) -> T:
        import asyncio

        async def run() -> T:
            async with HelperClient(self.bus_address) as client:
                return await action(client)

        return asyncio.run(run())

    def next_port(self) -> int:
        self._port += 1
        return self._port

    @contextlib.contextmanager
    def limited_flows(
        self, direction: str, rates: list[int], *, udp: bool = False, family: int = 4
    ) -> Iterator[list[Flow]]:
        """Flows of separate applications, each limited from its first packet."""
        with contextlib.ExitStack() as stack:
            flows, app_ids = [], []
            for rate in rates:
                port = self.next_port()
                scope = stack.enter_context(
                    app_scope(self.cgroup_root, own_names.desktop_id(f"Bench{port}"))
                )
                flow = start_flow(
                    self.pair,
                    port,
                    direction,
                    udp=udp,
                    family=family,
                    app_cgroup=scope,
                    gated=True,
                    congestion=self.settings.congestion,
                )
                stack.callback(flow.stop)
                app_id = self.call(
                    lambda c, f=flow, r=rate: c.set_limit(
                        f"pid:{f.app_pid}", Direction(direction), r
                    )
                )
                stack.callback(self.call, lambda c, a=app_id: c.clear_limit(a))
                flows.append(flow)
                app_ids.append(app_id)
            for flow in flows:
                begin(flow)
            yield flows

    def measure(
        self, flows: list[Flow], rates: list[int], proto: str, family: int, load: str
    ) -> list[RateRow]:
        time.sleep(self.settings.warmup_s)
        start = [(f.sink.latest(), f.source.latest()) for f in flows]
        tc_before = tc_snapshot(self.pair)
        time.sleep(self.settings.window_s)
        end = [(f.sink.latest(), f.source.latest()) for f in flows]
        tc_after = tc_snapshot(self.pair)
        rows = []
        for flow, rate, ((t0, s0), (_, src0)), ((t1, s1), (_, src1)) in zip(
            flows, rates, start, end, strict=True
        ):
            received = s1["bytes"] - s0["bytes"]
            sent = src1.get("bytes", 0) - src0.get("bytes", 0)
            retrans = int(src1.get("retrans", 0) - src0.get("retrans", 0))
            reports = [(t, r) for t, r in flow.sink.series(t0) if t <= t1]
            in_order_bps = slope([(t, flow.l3_bytes_in_order(r)) for t, r in reports])
            rows.append(
                RateRow(
                    backend=self.backend, direction=flow.direction, proto=proto, family=family, configured_bps=rate,
                    # with nothing sent twice, every segment received is in order: exact for any size
                    wire_bps=in_order_bps if retrans == 0 else slope([(t, flow.l3_bytes(r)) for t, r in reports]),
                    wire_in_order_bps=in_order_bps,
                    goodput_bps=slope([(t, r["bytes"]) for t, r in reports]),
                    htb_bps=htb_l3_rate(tc_before, tc_after, flow.direction, self.pair, rate),
                    retrans=retrans,
                    drops=tc_after.drops - tc_before.drops,
                    udp_loss=(1 - received / sent) if flow.udp and sent else None,
                    load=load,
                )
            )  # fmt: skip
        return rows

    # --- scenarios -------------------------------------------------------------

    def rate(self, direction: str, rate: int, *, udp: bool = False, family: int = 4) -> RateRow:
        load = wait_for_quiet(self.settings)
        proto = "udp" if udp else "tcp"
        log(f"{self.backend} {direction} {proto}/v{family} {fmt_rate(rate)} ({load})")
        with self.limited_flows(direction, [rate], udp=udp, family=family) as flows:
            (row,) = self.measure(flows, [rate], proto, family, load)
        log(f"  -> {row.ratio:.4f}")
        return row

    def two_apps(self, direction: str, rates: list[int]) -> list[RateRow]:
        load = wait_for_quiet(self.settings)
        log(f"{self.backend} {direction} two applications {[fmt_rate(r) for r in rates]} ({load})")
        with self.limited_flows(direction, rates) as flows:
            rows = self.measure(flows, rates, "tcp", 4, load)
        for row in rows:
            row.note = "two apps"
        return rows

    def converge(
        self, direction: str, first: int = MiB, second: int = 10 * MiB
    ) -> list[ConvergeRow]:
        """A limit set on a full-speed stream, then changed: how long until the
        0.25 s-window rate stays within 5% (on the wire, and as the app reads)."""
        load = wait_for_quiet(self.settings)
        log(f"{self.backend} {direction} convergence ({load})")
        port = self.next_port()
        with app_scope(self.cgroup_root, own_names.desktop_id(f"Bench{port}")) as scope:
            flow = start_flow(
                self.pair, port, direction, app_cgroup=scope, congestion=self.settings.congestion
            )
            app_id = ""
            try:
                time.sleep(1.5)
                steps = []
                for label, rate, observe_s in (
                    (f"unlimited -> {fmt_rate(first)}", first, 6.0),
                    (f"{fmt_rate(first)} -> {fmt_rate(second)}", second, 4.0),
                ):
                    target = app_id or f"pid:{flow.app_pid}"
                    began = time.monotonic()
                    app_id = self.call(
                        lambda c, t=target, r=rate: c.set_limit(t, Direction(direction), r)
                    )
                    call_s = time.monotonic() - began
                    time.sleep(observe_s)
                    steps.append((label, rate, began, time.monotonic(), call_s))
                rows = []
                for label, rate, began, ended, call_s in steps:
                    series = flow.sink.series(began - 1.0)
                    header = flow.header_bytes()
                    wire = [(t, r["segs"] * MTU) for t, r in series]
                    read = [(t, r["bytes"] * MTU / (MTU - header)) for t, r in series]
                    rows.append(
                        ConvergeRow(
                            self.backend,
                            direction,
                            label,
                            settle_time(wire, rate, began, ended),
                            settle_time(read, rate, began, ended),
                            call_s,
                            load,
                            [
                                (round(t - began, 3), round(r))
                                for t, r in windows(wire, began, ended)
                            ],
                        )
                    )
                return rows
            finally:
                flow.stop()
                if app_id:
                    self.call(lambda c: c.clear_limit(app_id))


def slope(cumulative: list[tuple[float, float]]) -> float:
    """The least-squares rate of a cumulative count. Two end points would be off
    by up to one step of a stream that arrives in steps: 64 KB super-packets
    every half second at 128 KiB/s on veth (see docs/backends.md) are +-5%
    over 10 s, depending only on where the window falls."""
    n = len(cumulative)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in cumulative) / n
    mean_v = sum(v for _, v in cumulative) / n
    spread = sum((t - mean_t) ** 2 for t, _ in cumulative)
    return sum((t - mean_t) * (v - mean_v) for t, v in cumulative) / spread if spread else 0.0


def windows(
    cumulative: list[tuple[float, float]], began: float, ended: float
) -> list[tuple[float, float]]:
    """(end time, rate) of the CONVERGE_WINDOW_S windows between began and ended,
    one ending at each report."""
    result = []
    j = 0
    for i, (t, value) in enumerate(cumulative):
        if t > ended:
            break
        while j < i and cumulative[j + 1][0] <= t - CONVERGE_WINDOW_S:
            j += 1
        t0, v0 = cumulative[j]
        if t - t0 >= CONVERGE_WINDOW_S * 0.8 and t0 >= began:
            result.append((t, (value - v0) / (t - t0)))
    return result


def settle_time(
    cumulative: list[tuple[float, float]], rate: float, began: float, ended: float
) -> float | None:
    """Seconds from `began` to the end of the first window after which every
    window up to `ended` is within the band; None if it never settles."""
    settled = None
    for t, measured in windows(cumulative, began, ended):
        if abs(measured / rate - 1) <= CONVERGE_BAND:
            settled = settled if settled is not None else t
        else:
            settled = None
    return None if settled is None else settled - began


# --- an unlimited application's throughput -----------------------------------------


def iperf_rate(pair: NetnsPair, direction: str, seconds: float) -> float:
    argv = [
        "iperf3",
        "-c",
        pair.peer_addr,
        "-p",
        str(IPERF_PORT),
        "-t",
        str(seconds),
        "-O",
        "1",
        "-J",
    ]
    if direction == "down":
        argv.append("-R")
    out = subprocess.run(
        nsenter_argv(pair.host_ns, argv), capture_output=True, text=True, timeout=seconds + 30
    )
    return float(json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"]) / 8


def throughput(
    backend: str, config: str, pair: NetnsPair, settings: Settings
) -> list[ThroughputRow]:
    load = wait_for_quiet(settings)
    log(f"{backend} unlimited throughput, {config} ({load})")
    rows = [ThroughputRow(backend, direction, config, [], load) for direction in ("up", "down")]
    for _ in range(settings.throughput_runs):
        for row in rows:  # interleaved, so drift hits both directions alike
            row.runs_bps.append(iperf_rate(pair, row.direction, settings.throughput_s))
    return rows


@contextlib.contextmanager
def iperf_server(pair: NetnsPair) -> Iterator[None]:
    server = subprocess.Popen(
        nsenter_argv(pair.peer_ns, ["iperf3", "-s", "-p", str(IPERF_PORT)]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    try:
        yield
    finally:
        server.kill()
        server.wait()


@contextlib.contextmanager
def idle_limited_app(bench: Bench) -> Iterator[None]:
    """Another application with both limits set, so every program, the HTB
    roots and the ingress redirect are in place while the unlimited one runs."""
    with app_scope(bench.cgroup_root, own_names.desktop_id("BenchIdle")) as scope:
        idle = subprocess.Popen(["sh", "-c", f'echo $$ > "{scope}/cgroup.procs" && exec sleep 600'])
        try:
            time.sleep(0.2)
            app_id = bench.call(lambda c: c.set_limit(f"pid:{idle.pid}", Direction.UP, MiB))
            bench.call(lambda c: c.set_limit(app_id, Direction.DOWN, MiB))
            try:
                yield
            finally:
                bench.call(lambda c: c.clear_limit(app_id))
        finally:
            idle.kill()
            idle.wait()


# --- output --------------------------------------------------------------------------


def fmt_rate(bps: float) -> str:
    return f"{bps / MiB:.3f} MiB/s" if bps >= MiB else f"{bps / KiB:.1f} KiB/s"


def format_tables(results: Results) -> str:
    lines = [f"ChadThrottle limits benchmark, {results.started}", ""]
    lines.append(
        "wire L3 = bytes on the wire at L3 (IP header included: what a limit counts), at the receiving socket,"
    )
    lines.append(
        "  not from the helper. TCP: the in-order bytes below when the sender retransmitted nothing, else"
    )
    lines.append(
        "  tcpi_data_segs_in x 1500 (full-size segments of a bulk sender, duplicates included; a receive window"
    )
    lines.append(
        "  smaller than 64 KB makes segments smaller). UDP: payload + datagrams x (IP+UDP header)."
    )
    lines.append(
        "  ratio = wire L3 / configured. Rates are least-squares slopes over the window's 50 ms reports."
    )
    lines.append(
        "in-order = tcpi_bytes_received + segments x (IP+TCP+timestamps header), ratio: exact for any segment size,"
    )
    lines.append(
        "  but behind the wire while a loss leaves a hole. HTB = the tc backend's class counters (bytes - 14 x packets),"
    )
    lines.append(
        "  ratio. goodput = payload the application moved. retrans = the sender's tcpi_total_retrans; drops = tc -s"
    )
    lines.append(
        "  drops on the uplink and IFB qdiscs; udp loss = 1 - received/sent. All over the same window."
    )
    lines.append("")
    for backend, reason in results.unavailable.items():
        lines.append(f"backend {backend}: not measured: {reason}")
    for backend in dict.fromkeys(
        [row.backend for row in results.rates] + [r.backend for r in results.converge]
    ):
        lines.append(f"== backend {backend}: achieved / configured (steady state)")
        lines.append(
            f"{'dir':<5}{'proto':<9}{'configured':>14}{'wire L3':>15}{'ratio':>8}{'in-order':>9}{'HTB':>8}"
            f"{'goodput':>15}{'retrans':>9}{'drops':>7}{'udp loss':>9}  target  note / load"
        )
        for row in results.rates:
            if row.backend != backend:
                continue
            htb = f"{row.htb_bps / row.configured_bps:.4f}" if row.htb_bps else "-"
            loss = f"{row.udp_loss:.2%}" if row.udp_loss is not None else "-"
            verdict = "ok" if row.ok else "MISS"
            lines.append(
                f"{row.direction:<5}{row.proto + '/v' + str(row.family):<9}{fmt_rate(row.configured_bps):>14}"
                f"{fmt_rate(row.wire_bps):>15}{row.ratio:>8.4f}{row.wire_in_order_bps / row.configured_bps:>9.4f}{htb:>8}{fmt_rate(row.goodput_bps):>15}"
                f"{row.retrans:>9}{row.drops:>7}{loss:>9}  {verdict:<6}  {row.note + ' ' if row.note else ''}({row.load})"
            )
        lines.append("")
        converge = [r for r in results.converge if r.backend == backend]
        if converge:
            lines.append(
                f"== backend {backend}: convergence (0.25 s windows within ±5%; target < {TARGET_CONVERGE_S:.0f} s)"
            )
            lines.append(f"{'dir':<5}{'change':<28}{'wire':>9}{'app read':>10}{'D-Bus call':>12}")
            for r in converge:
                wire = f"{r.wire_s:.2f} s" if r.wire_s is not None else "never"
                app = f"{r.app_s:.2f} s" if r.app_s is not None else "never"
                lines.append(
                    f"{r.direction:<5}{r.step:<28}{wire:>9}{app:>10}{r.call_s * 1000:>10.0f}ms  ({r.load})"
                )
            lines.append("")
    if results.throughput:
        lines.append(
            "== unlimited application (iperf3, median of runs): throughput and loss against no programs"
        )
        base = {r.direction: r.median_bps for r in results.throughput if r.backend == "-"}
        for r in sorted(results.throughput, key=lambda r: r.backend != "-"):
            loss = 1 - r.median_bps / base[r.direction] if base.get(r.direction) else 0.0
            runs = " ".join(f"{b * 8 / 1e9:.2f}" for b in r.runs_bps)
            lines.append(
                f"{r.backend:<6}{r.direction:<6}{r.config:<34}{r.median_bps * 8 / 1e9:>7.2f} Gbit/s"
                f"  loss {loss:>6.1%}  runs [{runs}]  ({r.load})"
            )
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------


def run_backend(
    backend: str,
    bus: PrivateSystemBus,
    pair: NetnsPair,
    settings: Settings,
    results: Results,
    quick: bool,
    sections: set[str],
) -> None:
    load = wait_for_quiet(settings)
    log(f"starting the helper with backend {backend} ({load})")
    try:
        with tempfile.TemporaryDirectory(prefix="chadthrottle-bench-") as state_dir, HelperProcess(
            bus.address, netns=pair.host_ns, state_dir=Path(state_dir), backend=backend, log_level="warning",
            start_timeout_s=150.0,
        ) as helper:  # fmt: skip
            bench = Bench(bus.address, pair, backend, settings)
            if "throughput" in sections:
                results.throughput += throughput(
                    backend, "helper running, no limits (accounting)", pair, settings
                )
            for proto in ("tcp", "udp"):
                if proto in sections:
                    for direction in ("up", "down"):
                        for rate in RATES[1:3] if quick else RATES:
                            results.rates.append(bench.rate(direction, rate, udp=proto == "udp"))
            if "ipv6" in sections:
                for direction in ("up", "down"):
                    results.rates.append(bench.rate(direction, 10 * MiB, family=6))
            if "two" in sections:
                for direction in ("up", "down"):
                    results.rates += bench.two_apps(direction, [MiB, 5 * MiB])
            if "converge" in sections:
                for direction in ("up", "down"):
                    results.converge += bench.converge(direction, *settings.converge_rates)
            if "throughput" in sections:
                with idle_limited_app(bench):
                    time.sleep(1.0)
                    results.throughput += throughput(
                        backend, "all programs, other app limited", pair, settings
                    )
            if helper.returncode is not None:
                raise StandaloneError(f"the helper died:\n{helper.log_text()}")
    except StandaloneError as error:
        reason = str(error).strip().splitlines()
        results.unavailable[backend] = next(
            (line for line in reversed(reason) if "Unavailable" in line or "unavailable" in line),
            reason[0] if reason else "the helper did not start",
        )
        log(f"backend {backend} unavailable: {results.unavailable[backend]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.limits",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backend", choices=("tc", "ebpf", "both"), default="both")
    parser.add_argument(
        "--quick", action="store_true", help="two rates, 4 s windows, 3 throughput runs"
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run, of {','.join(SECTIONS)} (default: all); "
        "the throughput baseline waits until no other datapath runs on the machine",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=180.0,
        help="seconds to wait for other test runs to finish before each measurement",
    )
    parser.add_argument(
        "--congestion", help="TCP congestion control of the flows (default: the system's)"
    )
    parser.add_argument(
        "--rtt-ms",
        type=float,
        default=0.0,
        help="add this much to the path's round trip (bench/delay_line.py); default 0: the bare "
        "veth, tens of microseconds",
    )
    parser.add_argument(
        "--converge-rates",
        default="1MiB,10MiB",
        help="the limit set on a full-speed stream, then the one it is changed to (default 1MiB,10MiB)",
    )
    arguments = parser.parse_args(argv)
    converge_rates = tuple(
        int(parse_rate(text) or 0) for text in arguments.converge_rates.split(",")
    )
    if len(converge_rates) != 2 or not all(converge_rates):
        parser.error("--converge-rates takes two rates, such as 300KiB,10MiB")
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces, BPF, tc)")
    settings = Settings(
        quiet_wait_s=arguments.quiet_wait,
        congestion=arguments.congestion,
        converge_rates=converge_rates,
    )  # type: ignore[arg-type]
    if arguments.quick:
        settings = Settings(
            warmup_s=2.0,
            window_s=4.0,
            throughput_runs=3,
            quiet_wait_s=arguments.quiet_wait,
            congestion=arguments.congestion,
            converge_rates=converge_rates,
        )  # type: ignore[arg-type]
    sections = set(arguments.only.split(","))
    if not sections <= set(SECTIONS):
        parser.error(f"unknown section in --only: {', '.join(sorted(sections - set(SECTIONS)))}")
    backends = ["tc", "ebpf"] if arguments.backend == "both" else [arguments.backend]
    congestion = (
        arguments.congestion
        or Path("/proc/sys/net/ipv4/tcp_congestion_control").read_text().strip()
    )
    results = Results(
        started=time.strftime("%Y-%m-%d %H:%M:%S %Z")
        + f", {os.cpu_count()} CPUs, {os.uname().release}, TCP {congestion}"
        + f", round trip {f'+{arguments.rtt_ms:g} ms' if arguments.rtt_ms else 'veth (tens of us)'}"
    )
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))  # clean up on kill
    try:
        with (
            PrivateSystemBus() as bus,
            netns_pair() as pair,
            delayed(pair, arguments.rtt_ms),
            iperf_server(pair),
        ):
            for backend in backends:
                run_backend(backend, bus, pair, settings, results, arguments.quick, sections)
            if "throughput" in sections:
                log("waiting until no datapath runs on the machine, for the baseline")
                with holding_machine_lock(
                    LOCK_WAIT_S
                ):  # no datapath attached anywhere during the baseline
                    remove_leftover_programs(cgroup2_mount(), instance="")
                    results.throughput += throughput(
                        "-", "none (helper not running)", pair, settings
                    )
    finally:  # what was measured, also when interrupted
        print(format_tables(results))
        if arguments.json:
            payload: dict[str, Any] = asdict(results)
            arguments.json.write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
