"""A limit toggled on and off: how often the uplink's clsact is grafted, and
what that costs another application's traffic on the same uplink.

    sudo .venv/bin/python -m bench.toggle_graft [--seconds 30] [--on-s 1] [--off-s 1] [--netns]
        [--hook-linger-s S] [--json FILE]

One helper (tc backend) on the bare veth. With --netns both applications run
in a namespace of their own (a container, `ip netns exec`) with a veth of its
own to the peer: the helper shapes there through that namespace's shaper
(namespace_shapers.py), and the clsact counted is that veth's. A neighbour uploads at --neighbour
(paced, cubic, unlimited, an app scope of its own) throughout, and the toggled
application at 10 MB/s (two streams at full speed saturated this 2-core
machine, and the bus calls timed out). First a quiet period
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
import contextlib
import json
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus

from bench.clsact_graft import has_clsact, tx_dropped
from bench.limits import Bench, Settings
from tests.support import own_names
from tests.support.netns import (
    NetnsPair,
    Stream,
    app_scope,
    extra_link,
    netns_pair,
    start_stream,
)
from tests.support.sender_info import SenderSampler

LIMIT_BPS = 1024 * 1024


class ClsactWatch:
    """Counts the clsact's appearances on the uplink (a graft each)."""

    def __init__(self, pair: NetnsPair) -> None:
        self._pair = pair
        self.grafts = 0
        self._present = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        present = self._present
        while not self._stop.wait(0.01):
            now = has_clsact(self._pair)
            self.grafts += now and not present
            present = now

    def __enter__(self) -> ClsactWatch:
        # The first reading before the caller goes on: taken by the thread, it
        # could come after the caller's first graft (a loaded machine), which
        # then read as there from the start and was not counted.
        self._present = has_clsact(self._pair)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _sent(flow: Stream, sampler: SenderSampler) -> tuple[int, int]:
    """(payload bytes the neighbour's sink received, its sender's retransmissions)."""
    return flow.receiver._latest()[1], sampler.samples[-1].total_retrans if sampler.samples else 0


def period(bench: Bench, uplink: NetnsPair, neighbour: Stream, sampler: SenderSampler,
           toggled: Stream | None, args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    """uplink: the pair whose host side both applications send on."""
    load = Path("/proc/loadavg").read_text().split()[0]
    dropped, (received, retrans) = tx_dropped(uplink), _sent(neighbour, sampler)
    began = time.monotonic()
    toggles = 0
    with ClsactWatch(uplink) as watch:
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
    received_after, retrans_after = _sent(neighbour, sampler)
    return {
        "time": time.strftime("%H:%M:%S"), "toggled": toggled is not None, "toggles": toggles,
        "netns": uplink is not bench.pair, "linger_s": args.hook_linger_s, "grafts": watch.grafts, "tx_dropped": tx_dropped(uplink) - dropped,
        "neighbour_retrans": retrans_after - retrans, "neighbour_mb_s": round((received_after - received) / elapsed / 1e6, 1),
        "load": f"{load}-{Path('/proc/loadavg').read_text().split()[0]}",
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.toggle_graft", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--on-s", type=float, default=1.0)
    parser.add_argument("--off-s", type=float, default=1.0)
    parser.add_argument("--neighbour", type=float, default=200e6, help="its payload rate, B/s")
    parser.add_argument("--netns", action="store_true",
                        help="the applications in a namespace of their own")  # fmt: skip
    parser.add_argument("--hook-linger-s", type=float,
                        help="the helper's --hook-linger-s (0: as before the linger)")  # fmt: skip
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with (
        PrivateSystemBus() as bus,
        netns_pair() as pair,
        tempfile.TemporaryDirectory(prefix="chadthrottle-bench-") as state,
        app_scope(cgroup2_mount(), own_names.desktop_id("ToggleNeighbour")) as neighbour_scope,
        app_scope(cgroup2_mount(), own_names.desktop_id("Toggled")) as toggled_scope,
        contextlib.ExitStack() as stack,
    ):  # fmt: skip
        helper = HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state), backend="tc",
                               log_level="warning", start_timeout_s=150.0)  # fmt: skip
        if args.hook_linger_s is not None:
            helper.command += ["--hook-linger-s", str(args.hook_linger_s)]
        stack.enter_context(helper)
        bench = Bench(bus.address, pair, "tc", Settings())
        uplink = (stack.enter_context(extra_link(f"ctapp-linger-{secrets.token_hex(3)}", pair.peer_ns))
                  if args.netns else pair)  # fmt: skip
        port = bench.next_port()
        neighbour = start_stream(uplink, port, "up", app_cgroup=neighbour_scope, congestion="cubic",
                                 rate_bps=args.neighbour, seconds=4 * args.seconds + 30)  # fmt: skip
        toggled = start_stream(uplink, port + 1, "up", app_cgroup=toggled_scope, rate_bps=10e6,
                               seconds=4 * args.seconds + 30)  # fmt: skip
        rows = []
        sampler = SenderSampler(neighbour.app_pid, 0.05)
        sampler.start()
        try:
            time.sleep(2.0)
            for flow in (None, toggled):
                row = period(bench, uplink, neighbour, sampler, flow, args)
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            sampler.stop()
            neighbour.stop()
            toggled.stop()
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
