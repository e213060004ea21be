"""A limit toggled on and off: how often the uplink's clsact is grafted, and
what that costs another application's traffic on the same uplink.

    sudo .venv/bin/python -m bench.toggle_graft [--seconds 30] [--on-s 1] [--off-s 1] [--json FILE]

One helper (tc backend) on the bare veth. A neighbour uploads at full speed
(cubic, unlimited, an app scope of its own) throughout. First a quiet period
of --seconds with nothing limited, then the same with another application's
upload limit set for --on-s and cleared for --off-s in turn. Per period: how
many times the clsact appeared on the uplink (polled every 10 ms), the
uplink's tx_dropped, the neighbour's retransmitted segments (its sender's
tcpi_total_retrans) and its throughput. Each graft drops what the uplink sends
for a moment (docs/backends.md, "Adding a clsact drops the uplink's packets for
a moment"), whoever sent it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus

from bench.clsact_graft import has_clsact, tx_dropped
from bench.flows import Flow, start_flow
from bench.limits import Bench, Settings
from tests.support.netns import NetnsPair, app_scope, netns_pair

LIMIT_BPS = 1024 * 1024


class ClsactWatch:
    """Counts the clsact's appearances on the uplink (a graft each)."""

    def __init__(self, pair: NetnsPair) -> None:
        self._pair = pair
        self.grafts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        present = has_clsact(self._pair)
        while not self._stop.wait(0.01):
            now = has_clsact(self._pair)
            self.grafts += now and not present
            present = now

    def __enter__(self) -> ClsactWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _sent(flow: Flow) -> tuple[int, int]:
    """(segments received by the neighbour's sink, its sender's retransmissions)."""
    sink, source = flow.sink.latest()[1], flow.source.latest()[1]
    return int(sink.get("segs", 0)), int(source.get("retrans", 0))


def period(
    bench: Bench, neighbour: Flow, toggled: Flow | None, args: argparse.Namespace
) -> dict[str, Any]:
    load = Path("/proc/loadavg").read_text().split()[0]
    dropped, (segs, retrans), began = tx_dropped(bench.pair), _sent(neighbour), time.monotonic()
    toggles = 0
    with ClsactWatch(bench.pair) as watch:
        while time.monotonic() - began < args.seconds:
            if toggled is None:
                time.sleep(0.1)
                continue
            app_id = bench.call(
                lambda c: c.set_limit(f"pid:{toggled.app_pid}", Direction.UP, LIMIT_BPS)
            )
            toggles += 1
            time.sleep(args.on_s)
            bench.call(lambda c, app_id=app_id: c.clear_limit(app_id))
            time.sleep(args.off_s)
    elapsed = time.monotonic() - began
    segs_after, retrans_after = _sent(neighbour)
    return {
        "time": time.strftime("%H:%M:%S"), "toggled": toggled is not None, "toggles": toggles,
        "grafts": watch.grafts, "tx_dropped": tx_dropped(bench.pair) - dropped,
        "neighbour_retrans": retrans_after - retrans, "neighbour_mbit_s": round((segs_after - segs) * 1500 * 8 / elapsed / 1e6, 1),
        "load": f"{load}-{Path('/proc/loadavg').read_text().split()[0]}",
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.toggle_graft", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--on-s", type=float, default=1.0)
    parser.add_argument("--off-s", type=float, default=1.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with (
        PrivateSystemBus() as bus,
        netns_pair() as pair,
        tempfile.TemporaryDirectory(prefix="chadthrottle-bench-") as state,
        HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state), backend="tc",
                      log_level="warning", start_timeout_s=150.0),
        app_scope(cgroup2_mount(), "org.chadthrottle.ToggleNeighbour") as neighbour_scope,
        app_scope(cgroup2_mount(), "org.chadthrottle.Toggled") as toggled_scope,
    ):  # fmt: skip
        bench = Bench(bus.address, pair, "tc", Settings())
        port = bench.next_port()
        neighbour = start_flow(pair, port, "up", app_cgroup=neighbour_scope, congestion="cubic",
                               seconds=4 * args.seconds + 30)  # fmt: skip
        toggled = start_flow(pair, port + 1, "up", app_cgroup=toggled_scope, congestion="cubic",
                             seconds=4 * args.seconds + 30)  # fmt: skip
        rows = []
        try:
            time.sleep(2.0)
            for flow in (None, toggled):
                row = period(bench, neighbour, flow, args)
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            neighbour.stop()
            toggled.stop()
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
