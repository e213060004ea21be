"""Do applications of one priority share a contended link per application,
whatever their number of connections? (issue 16: "lower ones share the rest
fairly per application".)

Three normal applications upload at once through a link capacity, with 1, 4
and 8 TCP connections. The tree is the helper's own plan
(priority_classes.plan_tree through HtbHierarchy) on the host's veth; u32
filters on the destination ports put each application's connections into its
class, as the helper's programs do by skb->priority. Cases:

- "one default class": no class per application, every connection in the
  default class (the catch-all's, where applications without a rule all
  went before the engine's fair shares);
- "a class per app, quantum Q": each application a normal class of its own
  (as the helper gives every active application under a link now), HTB's
  deficit round robin with quantum Q bytes between them (the plan's
  CLASS_QUANTUM_BYTES now; 3028 before).

Prints each application's share of the link's shaped rate over its fair
share (1.00: exactly fair) and the link's use, per round, then medians.

    sudo .venv/bin/python -m bench.app_fairness --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from unittest import mock

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.htb import ROOT_HANDLE, ClassSpec, HtbHierarchy
from chadthrottle.helper.kernel.priority_classes import SHAPE_SHARE, LinkShaping
from chadthrottle.priority import Priority
from pyroute2 import IPRoute

from tests.support.netns import (
    NetnsPair,
    entered_netns,
    netns_pair,
    nsenter_argv,
    rates_together,
    spawn,
    start_stream,
    wait_for_line,
)

ETHERNET_L3_TO_L2 = 1514 / 1500
FLOWS = {"one": 1, "four": 4, "eight": 8}  # application -> its TCP connections
BASE_PORT = 5900


CALL_PORT = 5990  # --call: a normal application's small UDP packets (bench/call_probe.py)


def ports_of(app: str) -> list[int]:
    first = BASE_PORT + 20 * list(FLOWS).index(app)
    return list(range(first, first + FLOWS[app]))


def _tc(*argv: str) -> None:
    done = subprocess.run(["tc", *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"tc {' '.join(argv)}: {done.stderr.strip()}")


@contextlib.contextmanager
def shaped(pair: NetnsPair, capacity: int, per_app: bool, quantum: int | None) -> Iterator[None]:
    """The link tree on the host veth's root; with per_app, each application's ports in its class."""
    slots = {app: slot for slot, app in enumerate([*FLOWS, "call"], start=1)} if per_app else {}
    wanted = {slot: ClassSpec(0, 0, Priority.NORMAL) for slot in slots.values()}
    link = LinkShaping(capacity)
    plan = link.plan

    def plan_with_quantum(self: LinkShaping, *args: object) -> object:
        plans = plan(*args)  # type: ignore[arg-type]
        return [dataclasses.replace(p, quantum_bytes=quantum) for p in plans] if quantum else plans

    with entered_netns(pair.host_ns):
        ipr = IPRoute()
    tree = HtbHierarchy(ipr, ipr.link_lookup(ifname=pair.host_if)[0], Direction.UP,
                        l3_to_l2=ETHERNET_L3_TO_L2, link=link)  # fmt: skip
    try:
        with mock.patch.object(LinkShaping, "plan", plan_with_quantum):
            tree.create()
            tree.sync(wanted)
        for app, slot in slots.items():
            for port in ports_of(app) if app != "call" else [CALL_PORT]:
                protocol = "6" if app != "call" else "17"
                _tc("-n", pair.host_ns, "filter", "add", "dev", pair.host_if, "parent", f"{ROOT_HANDLE >> 16:x}:",
                    "protocol", "ip", "prio", "1", "u32", "match", "ip", "protocol", protocol, "0xff", "match", "ip",
                    "dport", str(port), "0xffff", "flowid", f"{ROOT_HANDLE >> 16:x}:{slot:x}")  # fmt: skip
        yield
    finally:
        tree.delete()
        ipr.close()


def shares(pair: NetnsPair, capacity: int, per_app: bool, quantum: int | None,
           seconds: float, call: bool) -> tuple[dict[str, float], float, list[float]]:  # fmt: skip
    """Each application's share over its fair share, the link's use, and
    (call) the call's upload halves of its round trips, ms."""
    streams = {(app, port): start_stream(pair, port, "up", seconds=seconds + 30)
               for app in FLOWS for port in ports_of(app)}  # fmt: skip
    echo = spawn(nsenter_argv(pair.peer_ns, [sys.executable, "-m", "bench.call_probe", "echo",
                                             "--port", str(CALL_PORT)]), None) if call else None  # fmt: skip
    try:
        with shaped(pair, capacity, per_app, quantum):
            time.sleep(2.0)  # past slow start
            keys = list(streams)
            caller = None
            if echo is not None:
                wait_for_line(echo, "listening")
                caller = spawn(nsenter_argv(pair.host_ns, [sys.executable, "-m", "bench.call_probe", "call",
                                                           "--host", pair.peer_addr, "--port", str(CALL_PORT),
                                                           "--seconds", str(seconds)]), None)  # fmt: skip
            rates = rates_together([streams[key].receiver for key in keys], seconds)
            ups: list[float] = []
            if caller is not None:
                out, _ = caller.communicate(timeout=seconds + 30)
                ups = sorted(json.loads(out.strip().splitlines()[-1])["up_ms"])
    finally:
        for stream in streams.values():
            stream.stop()
        if echo is not None:
            echo.kill()
            echo.wait(10)
    link = capacity * SHAPE_SHARE
    per: dict[str, float] = {}
    for (app, _port), rate in zip(keys, rates, strict=True):
        per[app] = per.get(app, 0.0) + rate / link
    used = sum(per.values())
    return {app: share * len(FLOWS) for app, share in per.items()}, used, ups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--capacity", type=int, default=2_000_000, help="L3 bytes/s")
    parser.add_argument("--quanta", default="3028,70000", help="per-app cases' quanta, bytes")
    parser.add_argument("--call", action="store_true",
                        help="a normal call (small UDP packets, 50/s) beside the uploads, in a class of its own")  # fmt: skip
    args = parser.parse_args()
    cases: list[tuple[str, bool, int | None]] = [("one default class", False, None)]
    cases += [(f"a class per app, quantum {q}", True, int(q)) for q in args.quanta.split(",")]
    print(f"load {os.getloadavg()[0]:.1f}; capacity {args.capacity} B/s, shaped at {SHAPE_SHARE}; "
          f"flows {FLOWS}; share / fair share:")  # fmt: skip
    got: dict[str, list[dict[str, float]]] = {}
    with netns_pair() as pair:
        for round_ in range(1, args.rounds + 1):
            for name, per_app, quantum in cases:
                fair, used, ups = shares(
                    pair, args.capacity, per_app, quantum, args.seconds, args.call
                )
                got.setdefault(name, []).append(fair)
                call = (f"  call up median {ups[len(ups) // 2]:.1f} ms p99 {ups[int(len(ups) * 0.99)]:.1f} ms"
                        if ups else "")  # fmt: skip
                print(f"round {round_} {name:30s} " + "  ".join(f"{a} {s:.2f}" for a, s in fair.items())
                      + f"  link {used:.2f}{call}  (load {os.getloadavg()[0]:.1f})")  # fmt: skip
    print("medians:")
    for name, runs in got.items():
        print(f"  {name:30s} " + "  ".join(
            f"{app} {statistics.median(run[app] for run in runs):.2f}" for app in FLOWS))  # fmt: skip


if __name__ == "__main__":
    main()
