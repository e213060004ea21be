"""Two kernel facts a GSO-cutting TBF leaf under an upload class depends on
(issue 13, docs/backends.md "A TBF leaf for small uploads: not built"):

    sudo .venv/bin/python -m bench.tbf_leaf [--rates 1MB,6MB,50MB] [--buckets 1514,1530,1578]

1. Which bucket passes a full-MTU frame that is not GSO (TBF drops what is
   larger than its bucket and cannot be cut), when the TBF is made with `tc`
   (which sends the bucket in bytes, TCA_TBF_BURST) and with pyroute2 (the
   helper's netlink library, which sends only a buffer time in ticks).
2. Whether a leaf keeps its backlog when a bfifo leaf is replaced by a TBF
   (what a class crossing a rate threshold would need) and when a TBF is
   changed in place (a new bucket and limit).

Each case: an HTB class (300 KiB/s for 1., 10 KB/s for 2.) on a veth in a
fresh namespace, with the leaf under it; frames are UDP datagrams of 1472
bytes with DF set (1514-byte frames).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from chadthrottle.units import parse_rate

FRAME_PAYLOAD = 1472  # + 8 UDP + 20 IP + 14 Ethernet = 1514
SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER: IP_PMTUDISC_DO, no fragments
s.sendto(b"x", ("10.213.9.2", 9)); time.sleep(0.3)  # the neighbour is resolved first
for _ in range(int(sys.argv[1])):
    s.sendto(b"x" * 1472, ("10.213.9.2", 9))
"""


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


class Pair:
    """A veth from namespace a to b, an HTB root on a's end with one class 1:1."""

    def __init__(self, class_rate_bps: int) -> None:
        suffix = os.getpid() % 100000
        self.a, self.b = f"ctbfA{suffix}", f"ctbfB{suffix}"
        _run("ip", "netns", "add", self.a)
        _run("ip", "netns", "add", self.b)
        _run("ip", "-n", self.a, "link", "add", "a0", "type", "veth", "peer", "b0", "netns", self.b)
        for ns, dev, addr in ((self.a, "a0", "10.213.9.1"), (self.b, "b0", "10.213.9.2")):
            _run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
        _run(
            "tc",
            "-n",
            self.a,
            "qdisc",
            "add",
            "dev",
            "a0",
            "root",
            "handle",
            "1:",
            "htb",
            "default",
            "1",
        )
        _run("tc", "-n", self.a, "class", "add", "dev", "a0", "parent", "1:", "classid", "1:1", "htb",
             "rate", f"{class_rate_bps * 8}bit", "burst", "3028", "cburst", "3028")  # fmt: skip

    def send(self, frames: int) -> None:
        _run("ip", "netns", "exec", self.a, sys.executable, "-c", SENDER, str(frames))

    def leaf(self) -> str:
        """The leaf's line and its counters, on one line."""
        lines = _run("tc", "-n", self.a, "-s", "qdisc", "show", "dev", "a0").splitlines()
        at = next(i for i, line in enumerate(lines) if "parent 1:1" in line)
        return " ".join(" ".join(lines[at : at + 3]).split())

    def close(self) -> None:
        for ns in (self.a, self.b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def bucket_case(rate_bps: int, bucket: int, tool: str) -> str:
    pair = Pair(300 * 1024)
    try:
        if tool == "tc":
            _run("tc", "-n", pair.a, "qdisc", "add", "dev", "a0", "parent", "1:1", "handle", "10:", "tbf",
                 "rate", f"{rate_bps * 8}bit", "burst", str(bucket), "limit", "1000000")  # fmt: skip
        else:
            from pyroute2 import NetNS

            with NetNS(pair.a) as ns:
                index = ns.link_lookup(ifname="a0")[0]
                ns.tc("add", "tbf", index, 0x100000, parent=0x10001, rate=rate_bps, burst=bucket,
                      limit=1_000_000)  # fmt: skip
        pair.send(5)
        time.sleep(0.1)
        return pair.leaf()
    finally:
        pair.close()


def swap_case(change: str) -> tuple[str, str]:
    """A backlog of 40 frames in the leaf, then the leaf replaced or changed."""
    pair = Pair(10_000)
    first = (
        "bfifo limit 1000000"
        if change == "replace"
        else "tbf rate 800kbit burst 1578 limit 1000000"
    )
    try:
        _run(
            "tc",
            "-n",
            pair.a,
            "qdisc",
            "add",
            "dev",
            "a0",
            "parent",
            "1:1",
            "handle",
            "10:",
            *first.split(),
        )
        pair.send(40)
        before = pair.leaf()
        if change == "replace":
            _run("tc", "-n", pair.a, "qdisc", "replace", "dev", "a0", "parent", "1:1", "handle", "20:", "tbf",
                 "rate", "800kbit", "burst", "1578", "limit", "1000000")  # fmt: skip
        else:
            _run("tc", "-n", pair.a, "qdisc", "change", "dev", "a0", "parent", "1:1", "handle", "10:", "tbf",
                 "rate", "800kbit", "burst", "262144", "limit", "2000000")  # fmt: skip
        return before, pair.leaf()
    finally:
        pair.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="1MB,6MB,50MB", help="the TBF's own rates (bytes/s)")
    parser.add_argument("--buckets", default="1514,1530,1578")
    args = parser.parse_args()
    print(f"tbf leaf facts, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(
        "1. five 1514-byte frames (not GSO) through a TBF leaf: tool, TBF rate, bucket -> the leaf's counters"
    )
    for rate in args.rates.split(","):
        for bucket in args.buckets.split(","):
            for tool in ("tc", "pyroute2"):
                rate_bps = int(parse_rate(rate) or 0)
                print(
                    f"  {tool:8s} {rate:>5s}/s {bucket:>5s} B: {bucket_case(rate_bps, int(bucket), tool)}"
                )
    print("2. a backlog of 40 frames, then the leaf replaced by a TBF / a TBF changed in place")
    for change in ("replace", "change"):
        before, after = swap_case(change)
        print(f"  {change}:\n    before: {before}\n    after:  {after}")


if __name__ == "__main__":
    main()
