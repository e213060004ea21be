"""Does a shallower bulk leaf cost a fast local sender anything? (issue 16, leaf33)

    .venv/bin/python -m bench.leaf_depth [--leaves 134100,68564,40000]
        [--rates 1187500,250000] [--seconds 8] [--runs 2] [--cc cubic]
        [--flows 1] [--burst 0] [--link 0] [--directions up,down]

A shallower leaf would let a far download's slow-start overshoot leave the
modem sooner (docs/benchmarks/flakes.md, vpn32); the worry is the other
sender: a local one at a sub-millisecond round trip hands the tree 64 KB
GSO/GRO super-packets, and a bfifo shallower than one drops each whole.
Per case a veth pair between two fresh namespaces, --flows iperf3 TCP
streams for --seconds (--cc: cubic by default; this machine's default is
bbr), through an HTB class (rate = ceil = the rate, the tree's link burst
or --burst, its quantum; with --link, under a link class, its rate the
floor) with a bfifo leaf of the depth:

  up    on the sender's veth egress (a local app's GSO upload)
  down  on the receiver's IFB, the veth's ingress redirected to it (veth hands
        the sender's GSO packets on whole, as GRO would a LAN's)

Printed per run: goodput (after the first second) over the most the rate
carries (full frames' TCP payload), the sender's retransmitted segments,
and the bfifo leaf's drops and mean packet (bytes as the qdisc counts
them: a mean far over 1514 means GSO/GRO super-packets reached the leaf).
docs/benchmarks/priorities.md, "A shallower bulk leaf".
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import subprocess
import time

from chadthrottle.helper.kernel.priority_classes import (
    CLASS_QUANTUM_BYTES,
    FLOOR_BURST_BYTES,
    LINK_BURST_S,
)

PAYLOAD_PER_FRAME = 1448 / 1514  # TCP payload of a full frame with timestamps


def _sh(*args: str, check: bool = True) -> str:
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


def _ns(ns: str, *args: str, check: bool = True) -> str:
    return _sh("ip", "netns", "exec", ns, *args, check=check)


def _shape(ns: str, dev: str, rate: int, leaf: int, burst: int, link: int) -> None:
    """One class of `rate` (rate = ceil) under the root; or, with a link, the
    class's rate its floor (FLOOR_BURST_BYTES) and `rate` its ceil, under a
    link class, as the tree makes a limited application's."""
    burst = burst or max(3 * 1514, int(rate * LINK_BURST_S))
    _ns(ns, "tc", "qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb", "default", "10")
    parent, floor, floor_burst = "1:", rate, burst
    if link:
        link_burst = str(max(3 * 1514, int(link * LINK_BURST_S)))
        _ns(ns, "tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb",
            "rate", f"{link * 8}bit", "ceil", f"{link * 8}bit", "burst", link_burst, "cburst",
            link_burst, "quantum", str(CLASS_QUANTUM_BYTES))  # fmt: skip
        parent, floor, floor_burst = "1:1", max(1, link // 100), FLOOR_BURST_BYTES
    _ns(ns, "tc", "class", "add", "dev", dev, "parent", parent, "classid", "1:10", "htb",
        "rate", f"{floor * 8}bit", "ceil", f"{rate * 8}bit", "burst", str(floor_burst), "cburst",
        str(burst), "prio", "3", "quantum", str(CLASS_QUANTUM_BYTES))  # fmt: skip
    _ns(ns, "tc", "qdisc", "add", "dev", dev, "parent", "1:10", "handle", "10:", "bfifo",
        "limit", str(leaf))  # fmt: skip


def _leaf_counts(ns: str, dev: str) -> tuple[int, int]:
    """The bfifo's drops and mean packet (bytes as HTB counts them)."""
    block = _ns(ns, "tc", "-s", "qdisc", "show", "dev", dev).split("qdisc bfifo", 1)[1]
    sent = re.search(r"Sent (\d+) bytes (\d+) pkt \(dropped (\d+)", block)
    assert sent is not None, block
    return int(sent.group(3)), int(sent.group(1)) // max(1, int(sent.group(2)))


def one_run(
    direction: str, rate: int, leaf: int, seconds: float, flows: int, burst: int, link: int
) -> dict[str, float]:
    tag = secrets.token_hex(3)
    a, b = f"lf33a-{tag}", f"lf33b-{tag}"
    va, vb, ifb = f"lfa{tag}", f"lfb{tag}", f"lfi{tag}"
    try:
        _sh("ip", "netns", "add", a)
        _sh("ip", "netns", "add", b)
        _sh("ip", "link", "add", va, "netns", a, "type", "veth", "peer", "name", vb, "netns", b)
        _ns(a, "ip", "addr", "add", "10.233.3.1/24", "dev", va)
        _ns(b, "ip", "addr", "add", "10.233.3.2/24", "dev", vb)
        for ns, dev in ((a, va), (b, vb), (a, "lo"), (b, "lo")):
            _ns(ns, "ip", "link", "set", dev, "up")
        if direction == "up":
            dev, shaped = va, a
            _shape(a, va, rate, leaf, burst, link)
        else:
            dev, shaped = ifb, b
            _ns(b, "ip", "link", "add", ifb, "type", "ifb")
            _ns(b, "ip", "link", "set", ifb, "up")
            _ns(b, "tc", "qdisc", "add", "dev", vb, "handle", "ffff:", "ingress")
            _ns(b, "tc", "filter", "add", "dev", vb, "parent", "ffff:", "protocol", "all", "u32",
                "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", ifb)  # fmt: skip
            _shape(b, ifb, rate, leaf, burst, link)
        server = subprocess.Popen(["ip", "netns", "exec", b, "iperf3", "-s", "-1", "-B", "10.233.3.2"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            for _ in range(200):
                if ":5201" in _ns(b, "ss", "-ltn"):
                    break
                time.sleep(0.02)
            out = _ns(
                a,
                "iperf3",
                "-c",
                "10.233.3.2",
                "-J",
                "-t",
                str(seconds),
                "-O",
                "1",
                "-C",
                "cubic",
                "-P",
                str(flows),
            )
        finally:
            server.wait(timeout=10)
        sent = json.loads(out)["end"]["sum_sent"]
        received = json.loads(out)["end"]["sum_received"]
        drops, mean_packet = _leaf_counts(shaped, dev)
        return {
            "share": received["bits_per_second"] / 8 / rate / PAYLOAD_PER_FRAME,
            "retrans": sent.get("retransmits", -1),
            "drops": drops,
            "mean_packet": mean_packet,
        }
    finally:
        _sh("ip", "netns", "del", a, check=False)
        _sh("ip", "netns", "del", b, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.leaf_depth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--leaves", default="134100,68564,40000")
    parser.add_argument("--rates", default="1187500,250000", help="bytes/s (L2)")
    parser.add_argument("--directions", default="up,down")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--flows", type=int, default=1)
    parser.add_argument("--burst", type=int, default=0,
                        help="the class's burst and cburst (bytes); 0: the tree's link burst")  # fmt: skip
    parser.add_argument("--cc", default="cubic", help="the sender's congestion control")
    parser.add_argument("--link", type=int, default=0,
                        help="a link class above (bytes/s): the class's rate its floor (1%%), --rates its ceil")  # fmt: skip
    args = parser.parse_args()
    print("direction rate_Bps leaf_B run goodput/max retrans leaf_drops mean_pkt_B", flush=True)
    for direction in args.directions.split(","):
        for rate in (int(r) for r in args.rates.split(",")):
            for leaf in (int(x) for x in args.leaves.split(",")):
                for run in range(args.runs):
                    r = one_run(
                        direction, rate, leaf, args.seconds, args.flows, args.burst, args.link
                    )
                    print(f"{direction} {rate} {leaf} {run} {r['share']:.3f} {r['retrans']} "
                          f"{r['drops']} {r['mean_packet']}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
