"""How a first limit lands on a full-speed MPTCP stream beside plain TCP, one
subflow and two (two uplinks at once), each direction (issue 13).

    sudo .venv/bin/python -m bench.mptcp_landing [--rates 300KiB,1MiB,10MiB]
        [--kinds tcp,mptcp,mptcp2] [--directions up,down] [--runs 2]

The real helper (tc backend, in the "host" namespace of a veth pair, on a
private system bus); a second veth from the host namespace to the same peer
is the second uplink. The peer announces its address on it (`ip mptcp
endpoint ... signal`); with kind mptcp2 the host namespace accepts one
announced address and one more subflow (`ip mptcp limits`), so the
application's connection runs on both uplinks; with mptcp none (one
subflow). The application connects from the host namespace (the client: the
side whose path manager opens subflows), both ends MPTCP or both TCP.

Per run: the stream at full speed for FULL_SPEED_S, then the limit; for
OBSERVE_S after the call: the settle time (every 0.25 s window within 5%,
bench.limits.settle_time) as the application read it (payload x 1500 over a
full segment's payload: 1448 TCP, 1424 MPTCP with its 24-byte DSS option)
and at the shaper (the limited HTB classes, bench.shaper_bytes); the rate
1-4 s after the call at each; the drops of the IFBs' qdiscs (the HTB leaf's
are what a limit that lands well does not have); the sender's resent
segments (its namespace's TcpRetransSegs: subflows are TCP); the share of
the second uplink (its veth's bytes); how many subflows the host had.

    sudo .venv/bin/python -m bench.mptcp_landing --cost [--kinds tcp,mptcp,mptcp2]

--cost: the helper's own chadt_egress, chadt_ingress and chadt_sockops,
by the kernel's run-time statistics, over COST_S of a full-speed stream of
each kind and direction, unlimited and then limited to COST_LIMIT: ns per
run and runs per MiB of payload (every socket on the machine passes these
programs: others' traffic meanwhile is in the counts).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel import bpf_syscalls
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus
from chadthrottle.units import parse_rate

from bench.landing_loss import _qdisc_drops, _retrans_segs
from bench.limits import fmt_rate, settle_time
from bench.overhead_probes import chadt_programs, run_stats
from bench.shaper_bytes import ShaperBytes
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import (
    NetnsPair,
    Stream,
    app_scope,
    extra_link,
    netns_pair,
    nsenter_argv,
    start_stream,
)

KINDS = ("tcp", "mptcp", "mptcp2")
PAYLOAD = {"tcp": 1448, "mptcp": 1424, "mptcp2": 1424}  # of a 1500-byte segment
MiB = 1024 * 1024
START_TIMEOUT_S = 150.0
FULL_SPEED_S = 1.5
OBSERVE_S = 4.0
SUBFLOW_WAIT_S = 3.0
COST_S = 2.0
COST_LIMIT = 10 * 1024 * 1024
COST_PROGRAMS = ("chadt_egress", "chadt_ingress", "chadt_sockops")


def _ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", netns, *args], check=True, capture_output=True, text=True)


def _link_bytes(netns: str, ifname: str) -> int:
    """rx + tx bytes of a device: how much of the traffic took that uplink."""
    text = subprocess.run(["ip", "-n", netns, "-s", "-j", "link", "show", "dev", ifname],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    stats = json.loads(text)[0]["stats64"]
    return int(stats["rx"]["bytes"]) + int(stats["tx"]["bytes"])


def _subflows(netns: str, port: int) -> int:
    """Established TCP sockets (MPTCP subflows included) of the connection to port."""
    text = subprocess.run(nsenter_argv(netns, ["ss", "-tnH", "state", "established", f"dport = :{port}"]),
                          capture_output=True, text=True, check=False).stdout  # fmt: skip
    return len(text.splitlines())


def _rate(series: list[tuple[float, float]], start: float, end: float) -> float:
    inside = [(t, v) for t, v in series if start <= t <= end]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return 0.0
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


@dataclass(frozen=True)
class Landed:
    kind: str
    direction: str
    rate: int
    subflows: int
    second_share: float
    call_s: float
    app_s: float | None
    shaper_s: float | None
    app_ratio: float
    shaper_ratio: float
    leaf_drops: int
    other_drops: int
    resent: int
    load: str


@contextlib.contextmanager
def two_uplinks(pair: NetnsPair) -> Iterator[NetnsPair]:
    """A second veth host -> peer, the peer announcing its address on it."""
    with extra_link(pair.host_ns, pair.peer_ns) as second:
        _ip(pair.peer_ns, "mptcp", "limits", "set", "subflow", "2", "add_addr_accepted", "2")
        _ip(
            pair.peer_ns,
            "mptcp",
            "endpoint",
            "add",
            second.peer_addr,
            "dev",
            second.peer_if,
            "signal",
        )
        yield second


@contextlib.contextmanager
def _stream(pair: NetnsPair, port: int, kind: str, direction: str) -> Iterator[Stream]:
    """A 30 s stream of ``kind`` in app scopes of its own at both ends, the
    host accepting a second subflow only for mptcp2; stopped on leaving."""
    extra = "1" if kind == "mptcp2" else "0"
    _ip(pair.host_ns, "mptcp", "limits", "set", "subflow", extra, "add_addr_accepted", extra)
    tag = secrets.token_hex(3)
    with app_scope(cgroup2_mount(), own_names.desktop_id(f"BenchMptcp{tag}")) as scope, \
            app_scope(cgroup2_mount(), own_names.desktop_id(f"BenchMptcpPeer{tag}")) as peer_scope:  # fmt: skip
        stream = start_stream(pair, port, direction, app_cgroup=scope, peer_cgroup=peer_scope,
                              seconds=30, mptcp=kind != "tcp")  # fmt: skip
        try:
            yield stream
        finally:
            stream.stop()


def landing(bus: str, pair: NetnsPair, second: NetnsPair, port: int, kind: str, direction: str,
            rate: int) -> Landed:  # fmt: skip
    load = f"{os.getloadavg()[0]:.2f}"
    with _stream(pair, port, kind, direction) as stream:
        app = ""
        try:
            deadline = time.monotonic() + SUBFLOW_WAIT_S
            wanted = 2 if kind == "mptcp2" else 1
            while _subflows(pair.host_ns, port) < wanted and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(FULL_SPEED_S)
            subflows = _subflows(pair.host_ns, port)
            drops = _qdisc_drops(pair.host_ns)
            sender_ns = pair.host_ns if direction == "up" else pair.peer_ns
            resent = _retrans_segs(sender_ns)
            began = time.monotonic()
            app = call_helper(
                bus, lambda c: c.set_limit(f"pid:{stream.app_pid}", Direction(direction), rate)
            )
            call_s = time.monotonic() - began
            links = [_link_bytes(pair.host_ns, p.host_if) for p in (pair, second)]
            with ShaperBytes(pair.host_ns, Direction(direction)) as shaper:
                time.sleep(max(0.0, began + OBSERVE_S - time.monotonic()))
            ended = time.monotonic()
            moved = [
                _link_bytes(pair.host_ns, p.host_if) - was
                for p, was in zip((pair, second), links, strict=True)
            ]
            after = _qdisc_drops(pair.host_ns)
            dropped = {k: v - drops.get(k, 0) for k, v in after.items()}
            leaf = sum(v for k, v in dropped.items() if not k.startswith("htb"))
            app_series = [(t, total * 1500 / PAYLOAD[kind])
                          for t, total in stream.receiver.sink_samples if t >= began - 1.0]  # fmt: skip
            return Landed(
                kind, direction, rate, subflows, moved[1] / max(1, sum(moved)), call_s,
                settle_time(app_series, rate, began, ended), settle_time(shaper.samples, rate, began, ended),
                _rate(app_series, began + 1.0, ended) / rate, _rate(shaper.samples, began + 1.0, ended) / rate,
                leaf, sum(dropped.values()) - leaf, _retrans_segs(sender_ns) - resent,
                f"{load} -> {os.getloadavg()[0]:.2f}",
            )  # fmt: skip
        finally:
            if app:
                call_helper(bus, lambda c: c.clear_limit(app))


def program_cost(bus: str, pair: NetnsPair, port: int, kind: str, direction: str, rate: int,
                 programs: dict[int, str]) -> dict[str, tuple[float, float]]:  # fmt: skip
    """name -> (ns per run, runs per MiB of payload) over COST_S of a stream, limited to rate (0: not)."""
    with _stream(pair, port, kind, direction) as stream:
        app = ""
        try:
            if rate:
                app = call_helper(
                    bus, lambda c: c.set_limit(f"pid:{stream.app_pid}", Direction(direction), rate)
                )
            time.sleep(1.0)
            stats_fd = bpf_syscalls.enable_run_time_stats()
            try:
                before, payload = run_stats(programs), stream.receiver.total_bytes()
                time.sleep(COST_S)
                after, payload = run_stats(programs), stream.receiver.total_bytes() - payload
            finally:
                os.close(stats_fd)
        finally:
            if app:
                call_helper(bus, lambda c: c.clear_limit(app))
    cost = {}
    for prog_id, name in programs.items():
        runs = after[prog_id][1] - before[prog_id][1]
        cost[name] = (
            (after[prog_id][0] - before[prog_id][0]) / max(1, runs),
            runs / max(1, payload) * MiB,
        )
    return cost


def _time(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mptcp_landing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--rates", default="300KiB,1MiB,10MiB")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--directions", default="up,down")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--cost", action="store_true", help="the programs' cost per run, no landing"
    )
    arguments = parser.parse_args(argv)
    kinds = arguments.kinds.split(",")
    if not set(kinds) <= set(KINDS):
        parser.error(f"--kinds: of {','.join(KINDS)}")
    rates = [int(parse_rate(text) or 0) for text in arguments.rates.split(",")]
    ports = iter(range(7100, 7999))
    if arguments.cost:
        return cost_main(kinds, arguments.directions.split(","), ports)
    print("| kind | dir | limit | run | subflows | 2nd uplink share | call s | settled: app / shaper s "
          "| 1-4 s: app / shaper | leaf drops | other drops | resent | load |")  # fmt: skip
    print("|---" * 13 + "|")
    results: list[Landed] = []
    with PrivateSystemBus() as bus, netns_pair() as pair, two_uplinks(pair) as second, \
            tempfile.TemporaryDirectory(prefix="ct-mptcp13-") as state, \
            HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state), backend="tc",
                          start_timeout_s=START_TIMEOUT_S) as helper:  # fmt: skip
        for run in range(1, arguments.runs + 1):  # interleaved: drift hits every case alike
            for rate in rates:
                for direction in arguments.directions.split(","):
                    for kind in kinds:
                        r = landing(bus.address, pair, second, next(ports), kind, direction, rate)
                        results.append(r)
                        print(f"| {kind} | {direction} | {fmt_rate(rate)} | {run} | {r.subflows} "
                              f"| {r.second_share:.2f} | {r.call_s:.2f} | {_time(r.app_s)} / {_time(r.shaper_s)} "
                              f"| {r.app_ratio:.3f} / {r.shaper_ratio:.3f} | {r.leaf_drops} | {r.other_drops} "
                              f"| {r.resent} | {r.load} |", flush=True)  # fmt: skip
        if helper.returncode is not None:
            raise RuntimeError(f"the helper died:\n{helper.log_text()}")
    print()
    print("| kind | dir | limit | shaper settled, median s | leaf drops, median |")
    print("|---|---|---|---|---|")
    for kind in kinds:
        for direction in arguments.directions.split(","):
            for rate in rates:
                runs = [
                    r for r in results if (r.kind, r.direction, r.rate) == (kind, direction, rate)
                ]
                settled = median(float("inf") if r.shaper_s is None else r.shaper_s for r in runs)
                print(f"| {kind} | {direction} | {fmt_rate(rate)} | {settled:.2f} "
                      f"| {median(r.leaf_drops for r in runs)} |")  # fmt: skip
    return 0


def cost_main(kinds: list[str], directions: list[str], ports: Iterator[int]) -> int:
    print(f"bench.mptcp_landing --cost, load {os.getloadavg()[0]:.2f}")
    print(
        "| kind | dir | limit | "
        + " | ".join(f"{name}: ns/run, runs/MiB" for name in COST_PROGRAMS)
        + " |"
    )
    print("|---" * (3 + len(COST_PROGRAMS)) + "|")
    known = chadt_programs()
    with PrivateSystemBus() as bus, netns_pair() as pair, two_uplinks(pair), \
            tempfile.TemporaryDirectory(prefix="ct-mptcp13-") as state, \
            HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state), backend="tc",
                          start_timeout_s=START_TIMEOUT_S):  # fmt: skip
        programs = {
            i: n for i, n in chadt_programs().items() if i not in known and n in COST_PROGRAMS
        }
        if sorted(programs.values()) != sorted(COST_PROGRAMS):
            raise SystemExit(f"not one of each program new with this helper: {programs}")
        for rate in (0, COST_LIMIT):
            for direction in directions:
                for kind in kinds:
                    cost = program_cost(
                        bus.address, pair, next(ports), kind, direction, rate, programs
                    )
                    cells = " | ".join(
                        f"{cost[name][0]:.1f}, {cost[name][1]:.0f}" for name in COST_PROGRAMS
                    )
                    limit = fmt_rate(rate) if rate else "none"
                    print(f"| {kind} | {direction} | {limit} | {cells} |", flush=True)
    print(f"load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
