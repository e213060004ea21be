"""A small limit inside a priority tree (a link capacity set, issue 16), through
the real helper: does it hold as in a tree without a link, or keep the GSO
grain (docs/backends.md, "A TBF leaf for small uploads")?

    sudo .venv/bin/python -m bench.linked_grain [--rate 300KiB] [--capacity 20MiB] [--runs 3]
        [--directions up,down] [--cases running,new] [--no-link]

The helper (tc backend) in the pair's host namespace, the link capacity set
over D-Bus both ways (--no-link: none, the plain tree for comparison). Each
run: one TCP stream of an application in its own app scope, at full speed;
"running": the limit is set after 3 s (the application is active and has
its class under the link already), "new": right after the stream starts.
From the call on, 0.25 s windows (bench/limits.settle_time: settled = every
window after within +-5%) and 0.5 s windows (lowest and highest in 1-5 s)
of the payload the receiver read, then the rate over 10 s (least squares).
The leaf kind under the application's class is read from tc while it runs.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus
from chadthrottle.units import parse_rate

from bench.limits import fmt_rate, settle_time, slope
from bench.paths import START_TIMEOUT_S, Bench
from bench.priority_helper import ETHERNET_L2_TO_L3
from tests.support.helper_calls import call_helper
from tests.support.netns import netns_pair

FOLLOW_S = 5.0
HALF_S = 0.5


def half_windows(series: list[tuple[float, float]], began: float, ended: float) -> list[float]:
    """Rates of consecutive 0.5 s windows from began + 1 s to ended, the counts
    interpolated linearly at the window edges."""

    def at(t: float) -> float:
        for (t0, v0), (t1, v1) in itertools.pairwise(series):
            if t0 <= t <= t1:
                return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else v1
        return float("nan")

    edges = [began + 1.0 + i * HALF_S for i in range(int((ended - began - 1.0) / HALF_S) + 1)]
    return [(at(b) - at(a)) / HALF_S for a, b in itertools.pairwise(edges)]


def leaf_kinds(namespace: str) -> str:
    """The leaves under app classes (minor below 0xfffc) on the namespace's devices."""
    text = subprocess.run(["tc", "-n", namespace, "qdisc", "show"], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    kinds = []
    for line in text.splitlines():
        found = re.match(r"qdisc (\w+) \w+: dev (\S+) parent c7ad:([0-9a-f]+)", line)
        if found and int(found.group(3), 16) < 0xFFFC:
            kinds.append(f"{found.group(1)}@{found.group(2)}")
    return ",".join(sorted(kinds)) or "-"


def run(bench: Bench, direction: str, rate: int, case: str) -> str:
    with bench.streams("uplink", direction) as streams:
        if case == "running":
            time.sleep(3.0)
        began = time.monotonic()
        app_id = bench.limit(f"pid:{streams[0].app_pid}", direction, rate)
        try:
            time.sleep(FOLLOW_S)
            ended = time.monotonic()
            kinds = leaf_kinds(bench.pair.host_ns)
            time.sleep(0.5)
            steady_from = time.monotonic()
            time.sleep(10.0)
            series = bench.wire_series(streams, began - 1.0)
            settled = settle_time(series, rate, began, ended)
            halves = [r / rate for r in half_windows(series, began, ended)]
            steady = slope([(t, v) for t, v in series if t >= steady_from]) / rate
        finally:
            bench.clear(app_id)
    when = "never" if settled is None else f"{settled:.2f}"
    return (f"| {direction} | {fmt_rate(rate)} | {case} | {when} | {min(halves):.2f}-{max(halves):.2f} "
            f"| {steady:.4f} | {kinds} | {os.getloadavg()[0]:.1f} |")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.linked_grain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--rate", default="300KiB")
    parser.add_argument("--capacity", default="20MiB", help="the link capacity, both ways (L2)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--directions", default="up,down")
    parser.add_argument("--cases", default="running,new")
    parser.add_argument("--no-link", action="store_true", help="no link capacity: the plain tree")
    arguments = parser.parse_args(argv)
    rate, capacity = int(parse_rate(arguments.rate) or 0), int(parse_rate(arguments.capacity) or 0)
    directions, cases = arguments.directions.split(","), arguments.cases.split(",")
    if not rate or not capacity or not set(directions) <= {"up", "down"} \
            or not set(cases) <= {"running", "new"}:  # fmt: skip
        parser.error("--rate/--capacity: rates; --directions: up,down; --cases: running,new")
    with PrivateSystemBus() as bus, netns_pair() as pair, tempfile.TemporaryDirectory(prefix="ct-grain13-") as state, \
            HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state), backend="tc",
                          start_timeout_s=START_TIMEOUT_S) as helper:  # fmt: skip
        bench = Bench(bus, pair, pair, pair)  # the uplink path only
        if not arguments.no_link:
            l3 = round(capacity * ETHERNET_L2_TO_L3)
            call_helper(bus.address, lambda c: c.set_link_capacity(l3, l3, False))
            time.sleep(2.0)
        print(
            f"link: {'none' if arguments.no_link else fmt_rate(capacity)}; load {os.getloadavg()}"
        )
        print(
            "| dir | limit | case | settled (s, 0.25 s +-5%) | 0.5 s windows 1-5 s | 10 s | leaves | load |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for _ in range(arguments.runs):
            for direction in directions:
                for case in cases:
                    print(run(bench, direction, rate, case), flush=True)
        if not arguments.no_link:
            call_helper(bus.address, lambda c: c.set_link_capacity(0, 0, False))
        if helper.returncode is not None:
            raise RuntimeError(f"the helper died:\n{helper.log_text()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
