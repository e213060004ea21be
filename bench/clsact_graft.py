"""An upload's first limit on a full-speed stream: what the clsact's graft costs.

    sudo .venv/bin/python -m bench.clsact_graft --plan cubic:6,bbr:6 [--rate 300KiB] [--delay-ms 25] [--json FILE]

Each run, in one helper (tc backend) on the bare veth: a full-speed TCP upload,
limited 1.5 s after it starts, the limit cleared after 4 s and the run ended
once the helper removed its hooks (so every run's limit adds the clsact
again, docs/backends.md "Adding a clsact drops the uplink's packets for a
moment"). Per run: the uplink's tx_dropped over the call (the graft's
drops), how long the call took, the sender's retransmissions
(tcpi_total_retrans) from the call's return over 3 s (segments resent
through the limit), and when the application's reads and the wire settled
within ±5% (bench.limits' settle_time). The plan alternates as written:
congestion:runs ("default": the system's). --direction down: a download's
first limit (the same clsact, its ingress hook): what the uplink drops are
the ACKs; resent counts the peer's. --delay-ms delays the data on
its way to the peer (bench/delay_line.py): a round trip like a real uplink's, so TCP finds the
graft's losses a round trip later. The sender's socket is sampled every
millisecond (tests/support/sender_info.py): when the limit's pacing cap
reached it, whether it was still repairing losses then, and what it resent
since. Another client lists the applications back to back meanwhile
(ListingProbe): list_ms is the longest such call in flight from the limit
call to the cap, list_idle_ms the median before the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from chadthrottle.client import HelperClient
from chadthrottle.contract import Direction
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus
from chadthrottle.units import parse_rate

from bench.delay_line import delayed
from bench.flows import MTU, start_flow
from bench.limits import Bench, Settings, settle_time
from tests.support import own_names
from tests.support.netns import NetnsPair, app_scope, netns_pair
from tests.support.sender_info import SenderSampler

OBSERVE_S = 4.0
TUN_QUEUE_PACKETS = 10_000  # the delay line's (tests/e2e/test_first_upload_limit_graft.py)
RESENT_OVER_S = 3.0


def tx_dropped(pair: NetnsPair) -> int:
    out = subprocess.run(["ip", "-n", pair.host_ns, "-s", "-j", "link", "show", "dev", pair.host_if],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return int(json.loads(out)[0]["stats64"]["tx"]["dropped"])


def has_clsact(pair: NetnsPair) -> bool:
    out = subprocess.run(["tc", "-n", pair.host_ns, "qdisc", "show", "dev", pair.host_if],
                         capture_output=True, text=True).stdout  # fmt: skip
    return "clsact" in out


class ListingProbe:
    """ListApplications called back to back from a thread of its own (one bus
    connection) while a limit lands: how long another client waits on the
    helper meanwhile (the graft wait held the engine's lock and its D-Bus
    thread until 2026-12-04)."""

    def __init__(self, bus_address: str) -> None:
        self._bus_address = bus_address
        self.calls: list[tuple[float, float]] = []  # (sent, answered), monotonic
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        async with HelperClient(self._bus_address) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                await client.list_applications()
                self.calls.append((sent, time.monotonic()))

    def start(self) -> None:
        self._thread.start()
        while not self.calls and self._thread.is_alive():
            time.sleep(0.005)  # connected and answered once

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def worst_ms(self, since: float, until: float) -> float | None:
        """The longest call in flight at some moment of [since, until]."""
        spans = [end - sent for sent, end in self.calls if end >= since and sent <= until]
        return round(max(spans) * 1000, 1) if spans else None

    def typical_ms(self, before: float) -> float | None:
        """The median call before `before` (no limit landing)."""
        spans = sorted(end - sent for sent, end in self.calls if end < before)
        return round(spans[len(spans) // 2] * 1000, 1) if spans else None


def retrans_at(flow: Any, at: float) -> int | None:
    """The sender's total retransmissions in its first report at or after `at`."""
    later = flow.source.series(at)
    return int(later[0][1].get("retrans", 0)) if later else None


def run_once(bench: Bench, rate: int, direction: str = "up") -> dict[str, Any]:
    port = bench.next_port()
    with app_scope(bench.cgroup_root, own_names.desktop_id(f"Graft{port}")) as scope:
        flow = start_flow(
            bench.pair, port, direction, app_cgroup=scope, congestion=bench.settings.congestion
        )
        app_id = ""
        try:
            time.sleep(1.5)
            sampler = SenderSampler(flow.app_pid if direction == "up" else flow.peer.pid)
            sampler.start()
            probe = ListingProbe(bench.bus_address)
            probe.start()
            time.sleep(0.2)  # a few listings before the limit
            clsact_before = has_clsact(bench.pair)
            dropped = tx_dropped(bench.pair)
            began = time.monotonic()
            app_id = bench.call(
                lambda c: c.set_limit(f"pid:{flow.app_pid}", Direction(direction), rate)
            )
            landed = time.monotonic()
            dropped = tx_dropped(bench.pair) - dropped
            time.sleep(OBSERVE_S)
            ended = time.monotonic()
            sampler.stop()
            probe.stop()
            cap = sampler.first_capped()
            at_cap = cap[1] if cap else None
            tagged = max(landed, at_cap.at) if at_cap else landed
            later = sampler.at(at_cap.at + RESENT_OVER_S) if at_cap else None
            series = flow.sink.series(began - 1.0)
            header = flow.header_bytes()
            at_landing, after = retrans_at(flow, landed), retrans_at(flow, landed + RESENT_OVER_S)
            return {
                "time": time.strftime("%H:%M:%S"), "congestion": bench.settings.congestion or "default",
                "clsact_before": clsact_before, "call_ms": round((landed - began) * 1000),
                "tx_dropped": dropped,
                "resent_after": None if at_landing is None or after is None else after - at_landing,
                "cap_ms": round((at_cap.at - began) * 1000) if at_cap else None,
                "list_ms": probe.worst_ms(began, tagged), "list_idle_ms": probe.typical_ms(began),
                "sample_gap_ms": round((cap[1].at - cap[0].at) * 1000, 1) if cap else None,
                "recovering_at_cap": at_cap.recovering if at_cap else None,
                "at_cap": f"ca {at_cap.ca_state} lost {at_cap.lost} retrans_out {at_cap.retrans_out}" if at_cap else "",
                "resent_since_cap": later.total_retrans - at_cap.total_retrans if at_cap and later else None,
                "resent_call": (at_cap.total_retrans - sampler.samples[0].total_retrans) if at_cap else None,
                "read_s": settle_time([(t, r["bytes"] * MTU / (MTU - header)) for t, r in series], rate, began, ended),
                "wire_s": settle_time([(t, r["segs"] * MTU) for t, r in series], rate, began, ended),
                "load": Path("/proc/loadavg").read_text().split()[0],
            }  # fmt: skip
        finally:
            flow.stop()
            if app_id:
                bench.call(lambda c: c.clear_limit(app_id))
            deadline = time.monotonic() + 10
            while has_clsact(bench.pair) and time.monotonic() < deadline:
                time.sleep(0.1)  # the hooks go a second after the last class


def fmt(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.clsact_graft", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--plan", default="cubic:6,bbr:6")
    parser.add_argument("--rate", default="300KiB")
    parser.add_argument("--direction", default="up", choices=("up", "down"))
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=0.0,
        help="the data's delay to the peer (bench/delay_line.py)",
    )
    arguments = parser.parse_args()
    rate = int(parse_rate(arguments.rate) or 0)
    runs = [item.split(":") for item in arguments.plan.split(",")]
    plan = [congestion for congestion, count in runs for _ in range(int(count))]
    plan = [
        plan[i] for i in sorted(range(len(plan)), key=lambda i: (plan[: i + 1].count(plan[i]), i))
    ]
    results = []
    with (
        PrivateSystemBus() as bus,
        netns_pair() as pair,
        tempfile.TemporaryDirectory(prefix="chadthrottle-bench-") as state,
        delayed(pair, arguments.delay_ms),
        HelperProcess(
            bus.address, netns=pair.host_ns, state_dir=Path(state), backend="tc",
            log_level="warning", start_timeout_s=150.0,
        ),
    ):  # fmt: skip
        bench = Bench(bus.address, pair, "tc", Settings())
        if arguments.delay_ms > 0:  # queue the whole send buffer rather than drop (as the e2e test)
            subprocess.run(["ip", "-n", pair.peer_ns, "link", "set", "dev", f"ctd{pair.peer_if[3:]}",
                            "txqueuelen", str(TUN_QUEUE_PACKETS)], check=True)  # fmt: skip
        for congestion in plan:
            bench.settings.congestion = None if congestion == "default" else congestion
            row = run_once(bench, rate, arguments.direction)
            results.append(row)
            print(f"{row['time']} {row['congestion']:7} clsact before {row['clsact_before']!s:5} "
                  f"call {row['call_ms']:4d} ms tx_dropped {row['tx_dropped']:3d} resent after {row['resent_after']} "
                  f"read {fmt(row['read_s']):>7} wire {fmt(row['wire_s']):>7} load {row['load']} | "
                  f"list {row['list_ms']} ms (idle {row['list_idle_ms']}) | cap at {row['cap_ms']} ms "
                  f"(gap {row['sample_gap_ms']}): {row['at_cap']}; resent before cap {row['resent_call']}, "
                  f"since cap {row['resent_since_cap']}", flush=True)  # fmt: skip
            if arguments.json:
                arguments.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
