"""Achieved / configured rate of the ebpf (policing) and tc (HTB) backends.

Runs real traffic between two network namespaces joined by a veth pair, with
the helper's datapath attached, and limits one stream per case through the
backend's own Python side (EbpfPolicer or TcShaper), as the engine does:

    sudo .venv/bin/python bench/policer_probe.py                 # the full table
    sudo .venv/bin/python bench/policer_probe.py --backends ebpf --rates 1M --directions up
    sudo .venv/bin/python bench/policer_probe.py --backends ebpf --protocols tcp \
        --directions down --rates 1M,4M,16M --congestion bbr --repeat 3 --ss

--congestion sets both ends' TCP congestion control (default: the namespace's,
this machine's sysctl); --repeat runs each case that many times (a fresh
stream each); --ss prints the sender's `ss -ti` (bbr: bw, pacing_rate; cwnd,
lost, retrans) at the end of each window. --streams N runs N streams of the
case at once, each its own application with its own limit of the rate (with
--one-app: one application, the rate for all of them), measured over the same
window; a line per stream. --unlimited-first S lets the streams run S seconds
at full speed before the limit lands (default 0: at once). A BBR sender at
full speed when the limit lands may fall silent once 1-3 s into it
(docs/backends.md, "BBR senders"); one limited at once did not, in 6 of 6.

Rates are bytes per second on the wire at L3 (IP header included), like the
limits. "achieved" is the receiver's payload rate over a steady-state window,
converted to L3 with the per-packet header overhead of the protocol (TCP over
IPv4 with timestamps: 52 B per 1448 B segment; UDP over IPv4: 28 B per 1200 B
datagram). The first --settle seconds after the limit lands are not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from chadthrottle.contract import Direction
from chadthrottle.helper.engine.limits import default_burst_bytes
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.kernel.policer import EbpfPolicer
from chadthrottle.helper.kernel.tc_shaper import TcShaper

from tests.support.netns import (
    NetnsPair,
    Stream,
    netns_pair,
    rates_together,
    start_stream,
    tc_shaper_in,
)
from tests.support.policer_counters import policer_counters

KiB, MiB = 1024, 1024 * 1024
L3_PER_PAYLOAD = {"tcp": 1500 / 1448, "udp": 1228 / 1200}
SLOT = 1


def parse_rate(text: str) -> int:
    units = {"K": KiB, "M": MiB}
    return (
        int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)
    )


@dataclass
class Result:
    backend: str
    protocol: str
    direction: str
    configured_bps: int
    achieved_bps: float
    dropped_packets: int = 0
    marked_packets: int = 0
    tcp_counters: str = ""
    admitted_bps: float = 0.0  # ebpf: L3 bytes the policer let through, per second

    @property
    def ratio(self) -> float:
        return self.achieved_bps / self.configured_bps


@contextlib.contextmanager
def backend_for(name: str, pair: NetnsPair, datapath: Datapath) -> Iterator[EbpfPolicer | TcShaper]:
    if name == "ebpf":
        policer = EbpfPolicer(datapath)
        try:
            yield policer
        finally:
            policer.close()
        return
    with tc_shaper_in(pair.host_ns, datapath) as shaper:
        yield shaper


def run_case(
    pair: NetnsPair,
    datapath: Datapath,
    backend: str,
    protocol: str,
    direction: Direction,
    rate_bps: int,
    settle_s: float,
    window_s: float,
    port: int,
    congestion: str = "",
    show_ss: bool = False,
    streams: int = 1,
    one_app: bool = False,
    unlimited_first_s: float = 0.0,
) -> list[Result]:
    """One window of `streams` streams at once; a Result per stream (with
    one_app, each stream's share, the admitted bytes being the application's)."""
    udp = protocol == "udp"
    running: list[Stream] = []
    try:
        for n in range(streams):
            running.append(start_stream(pair, port + n, direction.value, udp=udp,
                                        seconds=unlimited_first_s + settle_s + window_s + 5,
                                        congestion="" if udp else congestion))  # fmt: skip
        slots = [SLOT if one_app else SLOT + n for n in range(streams)]
        time.sleep(unlimited_first_s)
        with backend_for(backend, pair, datapath) as enforcer:
            for stream, slot in zip(running, slots, strict=True):
                datapath.set_process_slot(stream.app_pid, slot)
            spec = ClassSpec(rate_bps, default_burst_bytes(rate_bps))
            enforcer.reconcile({direction: {slot: spec for slot in set(slots)}})
            time.sleep(settle_s)
            _nstat(pair, reset=True)
            policed = isinstance(enforcer, EbpfPolicer)
            before = (
                {slot: policer_counters(datapath, slot, direction) for slot in slots}
                if policed
                else {}
            )
            started = time.monotonic()
            payload = rates_together([stream.receiver for stream in running], window_s)
            after = (
                {slot: policer_counters(datapath, slot, direction) for slot in slots}
                if policed
                else {}
            )
            elapsed = time.monotonic() - started  # the counters' window: the machine may be loaded
            results = [
                Result(backend, protocol, direction.value, rate_bps, bps * L3_PER_PAYLOAD[protocol])
                for bps in payload
            ]
            counters = _nstat(pair)
            for n, (result, slot) in enumerate(zip(results, slots, strict=True)):
                if policed:
                    result.dropped_packets = (
                        after[slot].dropped_packets - before[slot].dropped_packets
                    )
                    result.marked_packets = after[slot].marked_packets - before[slot].marked_packets
                    result.admitted_bps = (
                        after[slot].passed_bytes - before[slot].passed_bytes
                    ) / elapsed
                result.tcp_counters = counters
                if show_ss and not udp:
                    result.tcp_counters += "\n    ss: " + _sender_ss(pair, direction, port + n)
            for stream in running:
                datapath.set_process_slot(stream.app_pid, 0)
            return results
    finally:
        for stream in running:
            stream.stop()


NSTAT_KEYS = ("TcpRetransSegs", "TcpExtTCPTimeouts", "TcpExtTCPLossProbes", "TcpExtTCPSackRecovery")


def _nstat(pair: NetnsPair, reset: bool = False) -> str:
    """TCP retransmission counters of both namespaces since the last reset."""
    parts = []
    for netns in (pair.host_ns, pair.peer_ns):
        output = subprocess.run(
            ["ip", "netns", "exec", netns, "nstat", "-a" if reset else "-s", "-z", *NSTAT_KEYS],
            capture_output=True,
            text=True,
        ).stdout
        if not reset:
            values = dict(line.split()[:2] for line in output.splitlines()[1:] if line.strip())
            parts.append(
                " ".join(
                    f"{k.removeprefix('TcpExt').removeprefix('Tcp')}={values.get(k, '0')}"
                    for k in NSTAT_KEYS
                )
            )
    return " | ".join(parts)


def _sender_ss(pair: NetnsPair, direction: Direction, port: int) -> str:
    """The sending socket's `ss -ti` line: why a sender sends what it sends."""
    netns = pair.host_ns if direction is Direction.UP else pair.peer_ns
    output = subprocess.run(
        ["ip", "netns", "exec", netns, "ss", "-tinH", f"( sport = :{port} or dport = :{port} )"],
        capture_output=True,
        text=True,
    ).stdout
    words = output.split()
    keep = ("bbr", "cubic", "cwnd:", "lost:", "retrans:", "rtt:")
    fields = (
        [w for w in words if w.startswith(keep)]
        + [
            f"{w}:{words[i + 1]}"  # these two print their value as the next word
            for i, w in enumerate(words[:-1])
            if w in ("pacing_rate", "delivery_rate")
        ]
    )
    return " ".join(fields) if fields else output.strip()


def _summed(results: list[Result]) -> Result:
    """One application's streams as one: their rates summed, its policer's counts once."""
    first = results[0]
    return Result(
        first.backend, first.protocol, first.direction, first.configured_bps,
        sum(r.achieved_bps for r in results), first.dropped_packets, first.marked_packets,
        "\n".join(r.tcp_counters for r in results), first.admitted_bps,
    )  # fmt: skip


def format_rate(bps: float) -> str:
    return f"{bps / MiB:.3f} MiB/s" if bps >= MiB else f"{bps / KiB:.1f} KiB/s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="ebpf,tc")
    parser.add_argument("--rates", default="128K,1M,10M,50M")
    parser.add_argument("--directions", default="up,down")
    parser.add_argument("--protocols", default="tcp,udp")
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds after the limit lands, not counted"
    )
    parser.add_argument(
        "--window", type=float, default=10.0, help="seconds of steady state measured"
    )
    parser.add_argument("--congestion", default="", help="TCP congestion control of both ends")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case")
    parser.add_argument("--ss", action="store_true", help="print the sender's ss -ti per run")
    parser.add_argument("--streams", type=int, default=1, help="streams of each case at once")
    parser.add_argument(
        "--one-app", action="store_true", help="the streams are one application's, one limit"
    )
    parser.add_argument(
        "--unlimited-first", type=float, default=0.0, help="seconds at full speed before the limit"
    )
    args = parser.parse_args()
    results = []
    port = 6100
    with netns_pair() as pair:
        datapath = Datapath()
        datapath.open()
        try:
            for protocol in args.protocols.split(","):
                for backend in args.backends.split(","):
                    for direction in (Direction(d) for d in args.directions.split(",")):
                        rates = [parse_rate(r) for r in args.rates.split(",")]
                        for rate in (r for r in rates for _ in range(args.repeat)):
                            port += args.streams
                            case_results = run_case(
                                pair,
                                datapath,
                                backend,
                                protocol,
                                direction,
                                rate,
                                args.settle,
                                args.window,
                                port,
                                args.congestion,
                                args.ss,
                                args.streams,
                                args.one_app,
                                args.unlimited_first,
                            )
                            # one application: its streams' sum against the limit
                            shown = case_results if not args.one_app else [_summed(case_results)]
                            results.extend(shown)
                            for result in shown:
                                print(
                                    f"{time.strftime('%H:%M:%S')} {backend:5} {protocol:4} {args.congestion or 'default':7} {direction.value:5} {format_rate(rate):>14} "
                                    f"achieved {format_rate(result.achieved_bps):>14}  ratio {result.ratio:6.3f}  "
                                    f"admitted {result.admitted_bps / rate:6.3f}  drops {result.dropped_packets:7}  ce {result.marked_packets:6}  {result.tcp_counters}",
                                    flush=True,
                                )
        finally:
            datapath.close()
    worst = max(results, key=lambda r: abs(1 - r.ratio))
    print(
        f"worst: {worst.backend} {worst.protocol} {worst.direction} {format_rate(worst.configured_bps)} "
        f"ratio {worst.ratio:.3f}"
    )


if __name__ == "__main__":
    main()
