"""bench.limits' convergence case, repeated in one helper, read at the shaper too.

    sudo .venv/bin/python -m bench.converge_at_shaper --plan up:bbr:5,up:cubic:5,down:bbr:3
        [--rates 300KiB,10MiB] [--json FILE]

Each run is bench.limits' converge: a full-speed stream, a limit set on it
(unlimited -> first), then changed (first -> second). Besides the receiving
socket's counters (`wire`: tcpi_data_segs_in x 1500; `read`: what the
application read), it samples the limited HTB class's counters on the
helper's IFBs every ~25 ms (`shaper`: bytes - 14 x packets, L3), the one
reading that needs no full-size segments: a clamped download's segments are
smaller than a frame, so `wire` over-counts it. Also per step: the sender's
retransmissions (tcpi_total_retrans), and the kernel's drop counters in both
namespaces over the landing's first second (nstat, ip -s link, softnet), to
say where a resent segment was lost. The plan alternates as written:
direction:congestion:runs, congestion "default" for the system's.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from chadthrottle.contract import Direction
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus
from chadthrottle.units import parse_rate

from bench.flows import ETH_HEADER_BYTES, MTU, ifb_devices, start_flow
from bench.limits import Bench, Settings, fmt_rate, settle_time
from tests.support import own_names
from tests.support.netns import NetnsPair, app_scope, netns_pair

SAMPLE_S = 0.025
_CLASS = re.compile(r"^class htb c7ad:([0-9a-f]+) .*?\n\s*Sent (\d+) bytes (\d+) pkt", re.M)
DROP_COUNTERS = (
    "TcpExtTCPBacklogDrop", "TcpExtTCPRcvQDrop", "TcpExtTCPOFODrop", "TcpExtTCPZeroWindowDrop",
    "TcpExtPruneCalled", "TcpExtRcvPruned", "TcpExtOfoPruned", "TcpExtTCPLossProbes",
)  # fmt: skip


class ClassSampler(threading.Thread):
    """(time, {device/class: L3 bytes}) of every limited HTB class on the IFBs."""

    def __init__(self, pair: NetnsPair) -> None:
        super().__init__(daemon=True)
        self.pair = pair
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            began = time.monotonic()
            sample = {}
            for device in ifb_devices(self.pair.host_ns):
                text = subprocess.run(
                    ["tc", "-n", self.pair.host_ns, "-s", "class", "show", "dev", device],
                    capture_output=True, text=True,
                ).stdout  # fmt: skip
                for minor, sent, packets in _CLASS.findall(text):
                    if minor != "ffff":
                        sample[f"{device}/{minor}"] = int(sent) - ETH_HEADER_BYTES * int(packets)
            self.samples.append(((began + time.monotonic()) / 2, sample))
            time.sleep(max(0.0, SAMPLE_S - (time.monotonic() - began)))

    def busiest(self, began: float, ended: float) -> list[tuple[float, float]]:
        """The cumulative L3 bytes of the class that passed most in [began, ended]."""
        inside = [(t, s) for t, s in self.samples if began - 0.5 <= t <= ended]
        keys = {k for _, s in inside for k in s}
        series = {k: [(t, float(s[k])) for t, s in inside if k in s] for k in keys}
        return max(series.values(), key=lambda c: c[-1][1] - c[0][1], default=[])


def drop_counters(pair: NetnsPair) -> dict[str, int]:
    found: dict[str, int] = {}
    for side, netns in (("host", pair.host_ns), ("peer", pair.peer_ns)):
        text = subprocess.run(
            ["ip", "netns", "exec", netns, "nstat", "-asz"], capture_output=True, text=True
        ).stdout
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] in DROP_COUNTERS:
                found[f"{side} {parts[0]}"] = int(parts[1])
        links = subprocess.run(
            ["ip", "-n", netns, "-s", "-j", "link"], capture_output=True, text=True
        )
        for link in json.loads(links.stdout or "[]"):
            for way in ("rx", "tx"):
                found[f"{side} {link['ifname']} {way}_dropped"] = link["stats64"][way]["dropped"]
    with open("/proc/net/softnet_stat") as stat:
        found["softnet dropped"] = sum(int(line.split()[1], 16) for line in stat)
    return found


def run_once(bench: Bench, direction: str, first: int, second: int) -> dict[str, Any]:
    port = bench.next_port()
    with app_scope(bench.cgroup_root, own_names.desktop_id(f"Shaper{port}")) as scope:
        flow = start_flow(
            bench.pair, port, direction, app_cgroup=scope, congestion=bench.settings.congestion
        )
        sampler = ClassSampler(bench.pair)
        sampler.start()
        app_id = ""
        try:
            started = time.monotonic()
            time.sleep(1.5)
            steps = []
            for label, rate, observe_s in (
                (f"unlimited -> {fmt_rate(first)}", first, 6.0),
                (f"{fmt_rate(first)} -> {fmt_rate(second)}", second, 4.0),
            ):
                before = drop_counters(bench.pair)
                target = app_id or f"pid:{flow.app_pid}"
                began = time.monotonic()
                app_id = bench.call(
                    lambda c, t=target, r=rate: c.set_limit(t, Direction(direction), r)
                )
                time.sleep(1.0)
                after = drop_counters(bench.pair)
                time.sleep(observe_s - 1.0)
                drops = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
                steps.append((label, rate, began, time.monotonic(), drops))
            sampler.halt.set()
            sampler.join(2.0)
            rows = []
            header = flow.header_bytes()
            for label, rate, began, ended, drops in steps:
                series = flow.sink.series(began - 1.0)
                sent = [
                    r.get("retrans", 0) for t, r in flow.source.series(began - 1.0) if t <= ended
                ]
                rows.append({
                    "direction": direction, "congestion": bench.settings.congestion or "default",
                    "change": label, "since_start_s": round(began - started, 2),
                    "wire_s": settle_time([(t, r["segs"] * MTU) for t, r in series], rate, began, ended),
                    "read_s": settle_time([(t, r["bytes"] * MTU / (MTU - header)) for t, r in series], rate, began, ended),
                    "shaper_s": settle_time(sampler.busiest(began, ended), rate, began, ended),
                    "retrans": (sent[-1] - sent[0]) if sent else None, "drops_first_s": drops,
                    "load": Path("/proc/loadavg").read_text().split()[0],
                })  # fmt: skip
            return {"time": time.strftime("%H:%M:%S"), "steps": rows}
        finally:
            sampler.halt.set()
            flow.stop()
            if app_id:
                bench.call(lambda c: c.clear_limit(app_id))


def fmt(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.converge_at_shaper", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--plan", default="up:default:5,down:default:3")
    parser.add_argument("--rates", default="300KiB,10MiB")
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    first, second = (int(parse_rate(text) or 0) for text in arguments.rates.split(","))
    plan = [
        (direction, congestion)
        for item in arguments.plan.split(",")
        for direction, congestion, runs in [item.split(":")]
        for _ in range(int(runs))
    ]
    results = []
    with (
        PrivateSystemBus() as bus,
        netns_pair() as pair,
        tempfile.TemporaryDirectory(prefix="chadthrottle-bench-") as state,
        HelperProcess(
            bus.address, netns=pair.host_ns, state_dir=Path(state), backend="tc",
            log_level="warning", start_timeout_s=150.0,
        ),
    ):  # fmt: skip
        bench = Bench(bus.address, pair, "tc", Settings())
        for direction, congestion in plan:
            bench.settings.congestion = None if congestion == "default" else congestion
            result = run_once(bench, direction, first, second)
            results.append(result)
            for row in result["steps"]:
                print(f"{result['time']} {row['direction']:4} {row['congestion']:7} {row['change']:22} "
                      f"wire {fmt(row['wire_s']):>7} read {fmt(row['read_s']):>7} shaper {fmt(row['shaper_s']):>7} "
                      f"resent {row['retrans']} load {row['load']} drops in 1 s {row['drops_first_s']}", flush=True)  # fmt: skip
            if arguments.json:
                arguments.json.write_text(json.dumps(results, indent=1))
            time.sleep(1.0)


if __name__ == "__main__":
    main()
