"""A cable modem in miniature: the real bottleneck, with a deep buffer, on the
far side of the veth.

A user's link is slowest at the modem, and the modem's queues are long:
hundreds of milliseconds of traffic. A bulk transfer fills them, and every
other packet, a call's included, waits behind it (bufferbloat). The helper
sits in the "host" namespace of a NetnsPair and sees a fast veth; the pair's
peer namespace becomes the modem, and a namespace behind it the internet:

  host --veth-- modem --veth-- internet (the servers)

The modem forwards between its two veths; each of its egresses is a tbf at
the link rate with `buffer_ms` of queue: towards the host, the download queue;
towards the internet, the upload queue. The queues are a namespace away from
every sender: a queue in the sender's own namespace would be held short by
TCP small queues (its packets still belong to the socket there), which a
modem's never are.

This kernel has no netem, fq_codel nor cake (docs/benchmarks.md); tbf is the
drop-tail queue of a modem. Rates are bytes/s counted as tbf counts them,
from the Ethernet header (a full frame is 1514 bytes).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from tests.support.netns import NetnsPair, extra_link, nsenter_argv

BURST_BYTES = 16 * 1024  # a few frames: the modem sends at its rate, not in bursts


@dataclass(frozen=True)
class Internet:
    """Where the servers run (netns, addr; addr6 its IPv6 address), behind the
    modem (its namespace and the devices of its download and upload queues)."""

    netns: str
    addr: str
    modem_ns: str
    down_dev: str
    up_dev: str
    buffer_ms: float
    addr6: str = ""

    def set_rates(self, down_bps: int, up_bps: int) -> None:
        """The link's rate changes (a DSL resync, a busy cable segment, a
        mobile link): its queues keep their depth in time."""
        _tbf(self.modem_ns, self.down_dev, down_bps, self.buffer_ms, "change")
        _tbf(self.modem_ns, self.up_dev, up_bps, self.buffer_ms, "change")

    def sent_bytes(self) -> tuple[int, int]:
        """Bytes the modem has sent (L2, its tbf's count): (down, up)."""
        down, up = self._queues()
        return int(down["bytes"]), int(up["bytes"])

    def backlog_bytes(self) -> tuple[int, int]:
        """Bytes waiting in the modem's queues now: (down, up)."""
        down, up = self._queues()
        return int(down["backlog"]), int(up["backlog"])

    def _queues(self) -> tuple[dict[str, int], dict[str, int]]:
        shown = []
        for device in (self.down_dev, self.up_dev):
            text = subprocess.run(["tc", "-n", self.modem_ns, "-j", "-s", "qdisc", "show", "dev", device, "root"],
                                  capture_output=True, text=True, check=True).stdout  # fmt: skip
            shown.append(json.loads(text)[0])
        return shown[0], shown[1]


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


def _tbf(netns: str, device: str, rate_bps: int, buffer_ms: float, command: str = "add") -> None:
    limit = max(int(rate_bps * buffer_ms / 1000), 4 * 1514)
    _run("tc", "-n", netns, "qdisc", command, "dev", device, "root", "tbf",
         "rate", f"{rate_bps * 8}bit", "burst", str(BURST_BYTES), "limit", str(limit))  # fmt: skip


@contextlib.contextmanager
def modem(pair: NetnsPair, down_bps: int, up_bps: int, buffer_ms: float) -> Iterator[Internet]:
    """Make the pair's peer namespace a modem, with the internet behind it, for
    the block; what this made is removed on exit."""
    with extra_link(pair.peer_ns) as outside:
        # outside: host side = the modem's outer veth, peer side = a new namespace (the internet)
        _run(*nsenter_argv(pair.peer_ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]))
        _run(*nsenter_argv(pair.peer_ns, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]))
        for netns, to, via in (
            (pair.host_ns, outside.peer_addr6, pair.peer_addr6),
            (outside.peer_ns, pair.host_addr6, outside.host_addr6),
        ):
            _run("ip", "-n", netns, "route", "add", f"{to}/128", "via", via)
        _run(
            "ip",
            "-n",
            pair.host_ns,
            "route",
            "add",
            f"{outside.peer_addr}/32",
            "via",
            pair.peer_addr,
        )
        _run(
            "ip",
            "-n",
            outside.peer_ns,
            "route",
            "add",
            f"{pair.host_addr}/32",
            "via",
            outside.host_addr,
        )
        try:
            _tbf(pair.peer_ns, pair.peer_if, down_bps, buffer_ms)
            _tbf(pair.peer_ns, outside.host_if, up_bps, buffer_ms)
            yield Internet(outside.peer_ns, outside.peer_addr, pair.peer_ns, pair.peer_if, outside.host_if,
                           buffer_ms, outside.peer_addr6)  # fmt: skip
        finally:
            subprocess.run(
                ["tc", "-n", pair.peer_ns, "qdisc", "del", "dev", pair.peer_if, "root"],
                capture_output=True,
            )
            for route in (f"{outside.peer_addr}/32", f"{outside.peer_addr6}/128"):
                subprocess.run(
                    ["ip", "-n", pair.host_ns, "route", "del", route], capture_output=True
                )
