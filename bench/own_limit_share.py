"""Does a user's own limit buy a bigger share of a contended link? (REVIEW16
finding 3, issue 16.)

Three users upload at once through a link capacity: "nobody" (an ordinary
user), "other" and root. Only nobody sets limits, on their own applications,
at normal priority (what limit-own allows); a limit at or above the link
limits nothing. The tree is the helper's own plan
(priority_classes.plan_tree through HtbHierarchy) on the host's veth; u32
filters on the destination port put each upload into its application's
class, as the helper's programs would: since per-application shares (fair16,
2026-12-04) every active application under a link has a class of its own,
with a rule or without. Prints each user's share of the link (its rate over
the link's shaped rate) per case, fair being the same as with no limit, and
the medians of nobody's share. (Before, only limited applications had a
class and everything else shared the default class: a limit bought its
application a share of its own, nobody 0.41-0.43 at 0.9 of the link; the
runs are in docs/benchmarks.md, "Own limits and a contended link".)

    sudo .venv/bin/python -m bench.own_limit_share --rounds 2
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import time
from collections.abc import Iterator

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.htb import ROOT_HANDLE, ClassSpec, HtbHierarchy
from chadthrottle.helper.kernel.priority_classes import SHAPE_SHARE, LinkShaping
from chadthrottle.priority import Priority
from pyroute2 import IPRoute

from tests.support.netns import NetnsPair, entered_netns, netns_pair, rates_together, start_stream

CAPACITY = 2_000_000  # L3 bytes/s, as in the review
ETHERNET_L3_TO_L2 = 1514 / 1500
PORTS = {"nobody": 5890, "other": 5891, "root": 5892, "nobody 2nd": 5893}
ABOVE = 50_000_000  # a limit far above the link: limits nothing
# case -> (nobody's limited uploads: user -> limit), the uploads that run
CASES: dict[str, tuple[dict[str, int], list[str]]] = {
    "no limit": ({}, ["nobody", "other", "root"]),
    "own limit above the link": ({"nobody": ABOVE}, ["nobody", "other", "root"]),
    "own limit 0.9 of the link": ({"nobody": int(CAPACITY * 0.9)}, ["nobody", "other", "root"]),
    "two own apps, no limit": ({}, ["nobody", "nobody 2nd", "other", "root"]),
    "two own apps, limits above": (
        {"nobody": ABOVE, "nobody 2nd": ABOVE},
        ["nobody", "nobody 2nd", "other", "root"],
    ),
    "two own apps, limits 0.9": (  # still k shares: each app a class
        {"nobody": int(CAPACITY * 0.9), "nobody 2nd": int(CAPACITY * 0.9)},
        ["nobody", "nobody 2nd", "other", "root"],
    ),
}


def _tc(*argv: str) -> None:
    done = subprocess.run(["tc", *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"tc {' '.join(argv)}: {done.stderr.strip()}")


@contextlib.contextmanager
def shaped(pair: NetnsPair, limits: dict[str, int], running: list[str]) -> Iterator[None]:
    """The link tree on the host veth's root, every upload in its application's class."""
    slots = {name: slot for slot, name in enumerate(sorted(running), start=1)}
    wanted = {slots[name]: ClassSpec(limits.get(name, 0), 65536 if name in limits else 0, Priority.NORMAL)
              for name in running}  # fmt: skip
    with entered_netns(pair.host_ns):
        ipr = IPRoute()
    tree = HtbHierarchy(ipr, ipr.link_lookup(ifname=pair.host_if)[0], Direction.UP,
                        l3_to_l2=ETHERNET_L3_TO_L2, link=LinkShaping(CAPACITY))  # fmt: skip
    try:
        tree.create()
        tree.sync(wanted)
        for name, slot in slots.items():
            _tc("-n", pair.host_ns, "filter", "add", "dev", pair.host_if, "parent", f"{ROOT_HANDLE >> 16:x}:",
                "protocol", "ip", "prio", "1", "u32", "match", "ip", "protocol", "6", "0xff", "match", "ip",
                "dport", str(PORTS[name]), "0xffff", "flowid", f"{ROOT_HANDLE >> 16:x}:{slot:x}")  # fmt: skip
        yield
    finally:
        tree.delete()
        ipr.close()


def shares(
    pair: NetnsPair, limits: dict[str, int], running: list[str], seconds: float
) -> dict[str, float]:
    """Each user's share of the link's shaped rate (nobody's uploads summed)."""
    streams = {
        name: start_stream(pair, PORTS[name], "up", seconds=seconds + 30) for name in running
    }
    try:
        with shaped(pair, limits, running):
            time.sleep(1.5)  # past slow start
            rates = rates_together([streams[name].receiver for name in running], seconds)
    finally:
        for stream in streams.values():
            stream.stop()
    link = CAPACITY * SHAPE_SHARE
    users: dict[str, float] = {}
    for name, rate in zip(running, rates, strict=True):
        user = name.split()[0]
        users[user] = users.get(user, 0.0) + rate / link
    return users


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    print(f"load {os.getloadavg()[0]:.1f}; capacity {CAPACITY} B/s, shaped at {SHAPE_SHARE}")
    nobody: dict[str, list[float]] = {}
    with netns_pair() as pair:
        for round_ in range(1, args.rounds + 1):
            for case, (limits, running) in CASES.items():
                got = shares(pair, limits, running, args.seconds)
                nobody.setdefault(case, []).append(got["nobody"])
                print(f"round {round_} {case:28s} " + "  ".join(f"{u} {s:.2f}" for u, s in got.items())
                      + f"  (load {os.getloadavg()[0]:.1f})")  # fmt: skip
    print("median share of nobody:")
    for case, values in nobody.items():
        print(
            f"  {case:28s} {statistics.median(values):.2f}  ({', '.join(f'{v:.2f}' for v in values)})"
        )


if __name__ == "__main__":
    main()
