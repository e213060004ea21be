"""Does a limit hold on every path an application's traffic takes? The real
helper (tc backend, in the "host" namespace of a veth pair, on a private
system bus) and one application, limited over D-Bus, on three paths:

  uplink      the helper's own uplink
  namespace   the application's own network namespace with its own link (a
              container, a VPN split tunnel): tc shapes there too (issue 13)
  two         two uplinks of the helper's namespace at once, one connection each

    sudo .venv/bin/python -m bench.paths [--rates 128K,1M,10M,50M] [--window-s 6] [--paths uplink,namespace,two]

Prints achieved/configured per path, direction and rate (TCP, bytes at L3 from
the payload the receiver read, full segments: payload x 1500/1448), the
least-squares rate over the window after a warm-up; and the convergence after
a change from 1 to 10 MiB/s (0.25 s windows within 5%, as bench/limits.py
measures it). docs/benchmarks.md keeps a run.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.limits import fmt_rate, settle_time, slope
from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus
from chadthrottle.units import parse_rate
from tests.support.helper_calls import call_helper
from tests.support.netns import NetnsPair, Stream, app_scope, extra_link, netns_pair, start_stream

KiB, MiB = 1024, 1024 * 1024
WIRE = 1448 / 1500
PATHS = ("uplink", "namespace", "two")
START_TIMEOUT_S = 150.0


class Bench:
    def __init__(self, bus: PrivateSystemBus, pair: NetnsPair, other_ns: NetnsPair, second: NetnsPair) -> None:
        self.bus, self.pair, self.other_ns, self.second = bus, pair, other_ns, second
        self._ports = iter(range(6100, 7000))

    @contextlib.contextmanager
    def streams(self, path: str, direction: str) -> Iterator[list[Stream]]:
        """The application's streams on a path, in an app scope of their own
        (and the peers in another, so no limit but ours reaches them)."""
        tag = secrets.token_hex(3)
        with app_scope(cgroup2_mount(), f"org.chadthrottle.BenchPath{tag}") as scope, \
                app_scope(cgroup2_mount(), f"org.chadthrottle.BenchPeer{tag}") as peer_scope:  # fmt: skip
            pairs = {"uplink": [self.pair], "namespace": [self.other_ns], "two": [self.pair, self.second]}[path]
            streams: list[Stream] = []
            try:
                for pair in pairs:
                    streams.append(start_stream(pair, next(self._ports), direction, app_cgroup=scope,
                                                peer_cgroup=peer_scope, seconds=120))  # fmt: skip
                yield streams
            finally:
                for stream in streams:
                    stream.stop()

    def wire_series(self, streams: list[Stream], since: float) -> list[tuple[float, float]]:
        """Summed L3 bytes of the streams at each report of the first one."""
        merged: list[tuple[float, float]] = []
        samples = [[s for s in stream.receiver.samples if s[0] >= since] for stream in streams]
        for t, _ in samples[0]:
            total = 0.0
            for series in samples:
                before = [b for ts, b in series if ts <= t]
                total += before[-1] if before else (series[0][1] if series else 0)
            merged.append((t, total / WIRE))
        return merged

    def limit(self, target: str, direction: str, rate: int) -> str:
        return call_helper(self.bus.address, lambda c: c.set_limit(target, Direction(direction), rate))

    def clear(self, app_id: str) -> None:
        call_helper(self.bus.address, lambda c: c.clear_limit(app_id))

    def rate(self, path: str, direction: str, rate: int, warmup_s: float, window_s: float) -> float:
        with self.streams(path, direction) as streams:
            app_id = self.limit(f"pid:{streams[0].app_pid}", direction, rate)
            try:
                time.sleep(warmup_s)
                began = time.monotonic()
                time.sleep(window_s)
                return slope(self.wire_series(streams, began)) / rate
            finally:
                self.clear(app_id)

    def converge(self, path: str, direction: str, first: int = MiB, second: int = 10 * MiB) -> float | None:
        with self.streams(path, direction) as streams:
            app_id = self.limit(f"pid:{streams[0].app_pid}", direction, first)
            try:
                time.sleep(3.0)
                began = time.monotonic()
                self.limit(app_id, direction, second)
                time.sleep(4.0)
                return settle_time(self.wire_series(streams, began - 1.0), second, began, time.monotonic())
            finally:
                self.clear(app_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.paths", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--rates", default="128KiB,1MiB,10MiB,50MiB", help="comma-separated (default 128KiB,1MiB,10MiB,50MiB)")
    parser.add_argument("--warmup-s", type=float, default=3.0)
    parser.add_argument("--window-s", type=float, default=6.0)
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, of {','.join(PATHS)} (default: all)")
    arguments = parser.parse_args(argv)
    paths = arguments.paths.split(",")
    if not set(paths) <= set(PATHS):
        parser.error(f"unknown path in --paths: {', '.join(sorted(set(paths) - set(PATHS)))}")
    rates = [int(parse_rate(text) or 0) for text in arguments.rates.split(",")]
    tag = secrets.token_hex(3)
    with PrivateSystemBus() as bus, netns_pair() as pair, tempfile.TemporaryDirectory(prefix="ct-paths-") as state, \
            extra_link(f"ctbapp-{tag}", pair.peer_ns) as other_ns, extra_link(pair.host_ns, pair.peer_ns) as second, \
            HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state), backend="tc",
                          start_timeout_s=START_TIMEOUT_S) as helper:  # fmt: skip
        bench = Bench(bus, pair, other_ns, second)
        print("| path | dir | configured | achieved/configured |")
        print("|---|---|---|---|")
        for path in paths:
            for direction in ("down", "up"):
                for rate in rates:
                    ratio = bench.rate(path, direction, rate, arguments.warmup_s, arguments.window_s)
                    print(f"| {path} | {direction} | {fmt_rate(rate)} | {ratio:.3f} |", flush=True)
        print()
        print("| path | dir | converge 1 -> 10 MiB/s (0.25 s windows within 5%) |")
        print("|---|---|---|")
        for path in paths:
            for direction in ("down", "up"):
                settled = bench.converge(path, direction)
                print(f"| {path} | {direction} | {'never' if settled is None else f'{settled:.2f} s'} |", flush=True)
        if helper.returncode is not None:
            raise RuntimeError(f"the helper died:\n{helper.log_text()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
