"""How one application's limit is shared between its connections in two network
namespaces (two containers or sandboxes of one program, each with its own
link). The real helper (tc backend) shapes in each namespace with a class of
its own at the whole limit, and the guard (the policer in the cgroup
programs, one per application for the machine) holds the sum: this prints
each namespace's share of the limit and the sum (docs/backends.md, "One limit
over several namespaces").

    sudo .venv/bin/python -m bench.namespace_share [--rates 300KB,2MiB] [--directions up,down] [--windows 3]
        [--split]

Three cases per rate and direction: a connection in namespace A limited, one in
B started 3 s later (and the same with B first), and both started together
before the limit. Each is read over --windows windows of 3 s, 4 s after the
last start (TCP, L3 bytes from the payload read). Before that, the 4 s after
the last start (together: after the limit) are read in 0.5 s windows:
"settled" is when the first of the windows began from which on every one
has both shares within 0.5 +-15% (none: not by 4 s), "+-5%" the same within
0.5 +-5%, and "lowest" the smallest share of any of those windows (a stall). --split sets each namespace's class to half the limit by
hand 2 s after the last start: what a fair split would hold, measured before
the helper divided the limit itself (helper/kernel/namespace_shares.py).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus
from chadthrottle.units import parse_rate

from bench.limits import fmt_rate
from bench.paths import START_TIMEOUT_S, WIRE
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import (
    NetnsPair,
    Stream,
    app_scope,
    extra_link,
    netns_pair,
    rates_together,
    start_stream,
)

CASES = ("A, then B", "B, then A", "together")
FOLLOW_WINDOW_S = 0.5
FOLLOW_S = 4.0
FAIR = (0.425, 0.575)  # half the limit +-15%
CLOSE = (0.475, 0.525)  # half the limit +-5%


def settled_at(windows: list[list[float]], band: tuple[float, float] = FAIR) -> float | None:
    """When the first window began from which on every window has each share
    within band (seconds after the start of the first), or None."""
    at = None
    for number, shares in enumerate(windows):
        if all(band[0] <= share <= band[1] for share in shares):
            at = number * FOLLOW_WINDOW_S if at is None else at
        else:
            at = None
    return at


_CLASS = re.compile(r"class htb (c7ad:([0-9a-f]+)) (?:root|parent \S+) (?:leaf \S+ )?prio \d+ (?:quantum \d+ )?"
                    r"rate (\d+(?:\.\d+)?)([KMG]?)bit ceil \S+ burst (\S+) cburst (\S+)")  # fmt: skip
_SI = {"": 1, "K": 1_000, "M": 1_000_000, "G": 1_000_000_000}


def halve_classes(namespace: str) -> int:
    """The fair split by hand (docs/backends.md, "One limit over several
    namespaces"): every limited class on the namespace's IFBs at half its
    rate, so two namespaces' classes add up to the limit. The helper keeps
    what it set in its own record and does not undo this until the limit
    changes. Returns how many classes were changed."""
    devices = subprocess.run(["ip", "-n", namespace, "-o", "link", "show", "type", "ifb"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    changed = 0
    for device in (line.split(": ")[1].split("@")[0] for line in devices.splitlines()):
        shown = subprocess.run(["tc", "-n", namespace, "class", "show", "dev", device],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        for handle, minor, number, unit, burst, cburst in _CLASS.findall(shown):
            bits = float(number) * _SI[unit]
            if int(minor, 16) >= 0xFFF0 or bits >= 10e9:  # the tree's own classes
                continue
            subprocess.run(["tc", "-n", namespace, "class", "change", "dev", device, "parent", "c7ad:",
                            "classid", handle, "htb", "rate", f"{int(bits / 2)}bit", "ceil",
                            f"{int(bits / 2)}bit", "burst", burst, "cburst", cburst], check=True)  # fmt: skip
            changed += 1
    return changed


def measure(bus: PrivateSystemBus, links: tuple[NetnsPair, NetnsPair], case: str, direction: str, rate: int,
            windows: int, port: int, split: bool = False) -> tuple[list[list[float]], list[list[float]]]:  # fmt: skip
    """Each 3 s window's [A, B] shares of the limit, and each 0.5 s window's
    from the last start (settled_at; none with split: each namespace's class
    at half the limit (halve_classes) from 2 s after the last start)."""
    first, second = links if case != "B, then A" else links[::-1]
    tag = secrets.token_hex(3)
    with app_scope(cgroup2_mount(), own_names.desktop_id(f"BenchShare{tag}")) as scope, \
            app_scope(cgroup2_mount(), own_names.desktop_id(f"BenchSharePeer{tag}")) as peer:  # fmt: skip
        streams: list[Stream] = []
        app_id = ""
        try:
            streams.append(
                start_stream(first, port, direction, app_cgroup=scope, peer_cgroup=peer, seconds=60)
            )
            if case == "together":
                streams.append(
                    start_stream(
                        second, port + 1, direction, app_cgroup=scope, peer_cgroup=peer, seconds=60
                    )
                )
            app_id = call_helper(
                bus.address,
                lambda c: c.set_limit(f"pid:{streams[0].app_pid}", Direction(direction), rate),
            )
            if case != "together":
                time.sleep(3.0)
                streams.append(
                    start_stream(
                        second, port + 1, direction, app_cgroup=scope, peer_cgroup=peer, seconds=60
                    )
                )
            if split:  # once the helper's tick has made the second namespace's class
                time.sleep(2.0)
                for link in links:
                    halve_classes(link.host_ns)
                time.sleep(2.0)
                follow = []
            else:
                follow = [
                    [r / WIRE / rate for r in rates_together([s.receiver for s in streams], FOLLOW_WINDOW_S)]
                    for _ in range(int(FOLLOW_S / FOLLOW_WINDOW_S))
                ]  # fmt: skip
            shares = []
            for _ in range(windows):
                read = [r / WIRE / rate for r in rates_together([s.receiver for s in streams], 3.0)]
                shares.append(read if case != "B, then A" else read[::-1])
            return shares, follow if case != "B, then A" else [w[::-1] for w in follow]
        finally:
            if app_id:
                call_helper(bus.address, lambda c: c.clear_limit(app_id))
            for stream in streams:
                stream.stop()


def _when(follow: list[list[float]], band: tuple[float, float]) -> str:
    if not follow:
        return "-"
    settled = settled_at(follow, band)
    return "none" if settled is None else f"{settled:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.namespace_share", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--rates", default="300KB,2MiB")
    parser.add_argument("--directions", default="up,down")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--trace", action="store_true", help="also print each case's 0.5 s windows")
    parser.add_argument("--split", action="store_true",
                        help="each namespace's class at half the limit, by hand (the fair split's core)")  # fmt: skip
    arguments = parser.parse_args(argv)
    rates = [int(parse_rate(text) or 0) for text in arguments.rates.split(",")]
    directions = arguments.directions.split(",")
    if not all(rates) or not set(directions) <= {"up", "down"} or arguments.windows < 1:
        parser.error("--rates: rates; --directions: up and/or down; --windows: at least 1")
    tag = secrets.token_hex(3)
    ports = iter(range(6600, 7000, 2))
    with PrivateSystemBus() as bus, netns_pair() as pair, tempfile.TemporaryDirectory(prefix="ct-share-") as state, \
            extra_link(f"ctsha-{tag}", pair.peer_ns) as ns_a, extra_link(f"ctshb-{tag}", pair.peer_ns) as ns_b, \
            HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state), backend="tc",
                          start_timeout_s=START_TIMEOUT_S) as helper:  # fmt: skip
        print("| dir | limit | case | settled (s) | +-5% (s) | lowest | A / B (share of the limit, "
              "each 3 s window) | sum | load |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        for direction in directions:
            for rate in rates:
                for case in CASES:
                    shares, follow = measure(bus, (ns_a, ns_b), case, direction, rate, arguments.windows,
                                             next(ports), arguments.split)  # fmt: skip
                    text = ", ".join(f"{a:.2f} / {b:.2f}" for a, b in shares)
                    sums = [a + b for a, b in shares]
                    when = [_when(follow, band) for band in (FAIR, CLOSE)]
                    lowest = f"{min(min(w) for w in follow):.2f}" if follow else "-"
                    print(f"| {direction} | {fmt_rate(rate)} | {case} | {when[0]} | {when[1]} | {lowest} | {text} "
                          f"| {min(sums):.3f}-{max(sums):.3f} | {os.getloadavg()[0]:.1f} |", flush=True)  # fmt: skip
                    if arguments.trace:
                        print(
                            "  0.5 s windows:",
                            " ".join(f"{a:.2f}/{b:.2f}" for a, b in follow),
                            flush=True,
                        )
        if helper.returncode is not None:
            raise RuntimeError(f"the helper died:\n{helper.log_text()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
