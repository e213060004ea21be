"""An independent count of the bytes on the wire at L3, from a veth's own
kernel counters, to hold the helper's per-application numbers against.

Whether a veth's byte counters include the 14-byte Ethernet header depends on
its mode (with GRO on, it counts in its NAPI poll, after the header was
pulled: L3), so make_countable() measures it: one UDP datagram of known size
each way. Then bytes - overhead x packets is L3. That is the wire only if
every frame is one wire packet and every packet on the link is the generator's:
- segmentation offload is turned off on both ends (TSO, and UDP GSO), so the
  stack still builds 64 KB GSO super-packets (which the datapath sees and must
  count as segments) but splits them in software before the veth counts them;
  GRO is turned on, so the receiving side's programs see super-packets too;
- neighbours are permanent and router solicitation is off, so no ARP or
  neighbour discovery shares the link (checked: quiet() waits for silence);
- each end gets a queue (pfifo), as a real uplink has: a veth without one
  (noqueue) drops when its peer's ring is full, and TCP then sends again what
  the socket counters already counted once. Drops are counted all the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass

from tests.support.netns import NetnsPair, entered_netns

CALIBRATION_PAYLOAD_BYTES = 1000
UDP_IPV4_HEADERS_BYTES = 28
_SEGMENTATION_OFFLOADS = ("tx-tcp-segmentation", "tx-tcp6-segmentation", "tx-tcp-ecn-segmentation",
                          "tx-tcp-mangleid-segmentation", "tx-udp-segmentation")  # fmt: skip


@dataclass(frozen=True)
class WireCounters:
    """L3 bytes and packets through one device, both directions."""

    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int
    dropped: int = 0  # packets the device dropped, either way

    def __sub__(self, other: WireCounters) -> WireCounters:
        return WireCounters(self.rx_bytes - other.rx_bytes, self.tx_bytes - other.tx_bytes,
                            self.rx_packets - other.rx_packets, self.tx_packets - other.tx_packets,
                            self.dropped - other.dropped)  # fmt: skip


_frame_overhead: dict[
    tuple[str, str], tuple[int, int]
] = {}  # (netns, ifname) -> (rx, tx) bytes per frame


def _raw_counters(netns: str, ifname: str) -> WireCounters:
    out = subprocess.run(["ip", "-n", netns, "-j", "-s", "link", "show", "dev", ifname],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    stats = json.loads(out)[0]["stats64"]
    rx, tx = stats["rx"], stats["tx"]
    return WireCounters(
        rx["bytes"], tx["bytes"], rx["packets"], tx["packets"], rx["dropped"] + tx["dropped"]
    )


def wire_counters(netns: str, ifname: str) -> WireCounters:
    """L3 counters of a device that make_countable() prepared."""
    raw = _raw_counters(netns, ifname)
    rx_overhead, tx_overhead = _frame_overhead[(netns, ifname)]
    return WireCounters(raw.rx_bytes - rx_overhead * raw.rx_packets, raw.tx_bytes - tx_overhead * raw.tx_packets,
                        raw.rx_packets, raw.tx_packets, raw.dropped)  # fmt: skip


def _send_datagram(netns: str, address: str) -> None:
    code = f"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'c' * {CALIBRATION_PAYLOAD_BYTES}, ({address!r}, 9))"
    subprocess.run(["nsenter", f"--net=/run/netns/{netns}", sys.executable, "-c", code], check=True)


def _calibrate(pair: NetnsPair) -> None:
    """Bytes a frame adds to the host end's counters beyond L3, each direction.
    Each datagram goes to a closed port: the ICMP error comes back the other
    way, so only the sending direction's counters are read."""
    l3_bytes = UDP_IPV4_HEADERS_BYTES + CALIBRATION_PAYLOAD_BYTES
    overheads = []
    for sender, address, direction in (
        (pair.peer_ns, pair.host_addr, "rx"),
        (pair.host_ns, pair.peer_addr, "tx"),
    ):
        for _attempt in range(5):  # again if a multicast report crossed at the same time
            quiet(pair.host_ns, pair.host_if, window_s=0.5, raw=True)
            before = _raw_counters(pair.host_ns, pair.host_if)
            _send_datagram(sender, address)
            after = _raw_counters(pair.host_ns, pair.host_if)
            packets = getattr(after, f"{direction}_packets") - getattr(
                before, f"{direction}_packets"
            )
            extra = (
                getattr(after, f"{direction}_bytes")
                - getattr(before, f"{direction}_bytes")
                - l3_bytes
            )
            if packets == 1:
                break
        assert packets == 1 and extra in (0, 14), (
            f"calibration of {pair.host_if} {direction}: {packets} {extra}"
        )
        overheads.append(extra)
    _frame_overhead[(pair.host_ns, pair.host_if)] = (overheads[0], overheads[1])


def _set_offloads(netns: str, ifname: str) -> None:
    from pyroute2.ethtool import Ethtool

    with entered_netns(netns):
        ethtool = Ethtool()  # its ioctl socket works on the namespace it was opened in
    try:
        features = ethtool.get_features(ifname)
        for name in _SEGMENTATION_OFFLOADS:
            features.features[name].enable = False
        features.features["rx-gro"].enable = True
        ethtool.set_features(ifname, features)
        now = ethtool.get_features(ifname).features
        assert (
            not any(now[name].enable for name in _SEGMENTATION_OFFLOADS) and now["rx-gro"].enable
        ), ifname
    finally:
        ethtool.close()


def _mac(netns: str, ifname: str) -> str:
    out = subprocess.run(["ip", "-n", netns, "-j", "link", "show", "dev", ifname],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return str(json.loads(out)[0]["address"])


def make_countable(pair: NetnsPair) -> None:
    """Prepare both ends of a pair's veth so its counters are the wire (see above)."""
    ends = (
        (
            pair.host_ns,
            pair.host_if,
            pair.peer_addr,
            pair.peer_addr6,
            _mac(pair.peer_ns, pair.peer_if),
        ),
        (
            pair.peer_ns,
            pair.peer_if,
            pair.host_addr,
            pair.host_addr6,
            _mac(pair.host_ns, pair.host_if),
        ),
    )
    for netns, ifname, other_addr, other_addr6, other_mac in ends:
        _set_offloads(netns, ifname)
        subprocess.run(["tc", "-n", netns, "qdisc", "replace", "dev", ifname, "root", "pfifo", "limit", "1000"],
                       check=True)  # fmt: skip
        for key in ("accept_ra", "router_solicitations"):
            subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "sysctl", "-qw",
                            f"net.ipv6.conf.{ifname}.{key}=0"], check=True)  # fmt: skip
        for address in (other_addr, other_addr6):
            subprocess.run(["ip", "-n", netns, "neigh", "replace", address, "lladdr", other_mac, "dev", ifname,
                            "nud", "permanent"], check=True)  # fmt: skip
    _calibrate(pair)


def quiet(
    netns: str, ifname: str, window_s: float = 1.0, timeout_s: float = 15.0, raw: bool = False
) -> None:
    """Wait until nothing crosses the device for window_s (multicast listener
    reports after an address was added go on for a second or two)."""
    read = _raw_counters if raw else wire_counters
    deadline = time.monotonic() + timeout_s
    before = read(netns, ifname)
    while time.monotonic() < deadline:
        time.sleep(window_s)
        now = read(netns, ifname)
        if now == before:
            return
        before = now
    raise TimeoutError(f"{ifname} in {netns} never went quiet")
