"""What the capacity estimator reads each tick: bytes through the uplinks
and how far the busy TCP connections' round trips rose (issue 16).

The delay signal is the kernel's own per-connection round-trip state, read
with one sock_diag dump per tick (tcp_info, as socket_diag.py reads its
byte counters), not probes. Why:

- no reflector to choose: the contract has none, a public one would be a
  privacy and availability decision made for the user, and the router
  itself sits before the modem's queue;
- it measures the paths the traffic actually takes, at no extra packets;
- the kernel keeps each connection's minimum (tcpi_min_rtt, a windowed
  minimum over tcp_min_rtt_wlen, 300 s by default): a baseline per path,
  so a 10 ms and a 150 ms server can be read together.

Per busy connection (TCP payload moved this tick, BUSY_BYTES at least):
a sender's smoothed round trip (tcpi_rtt: data up, acknowledgement down),
a receiver's (tcpi_rcv_rtt, from timestamps: acknowledgement up, data down),
minus tcpi_min_rtt, minus the wait in our own shaper (the IFB's backlog at
the shaping rate: a receiver's data waits there after the modem), a
receiver's read above its own floor (PathSampler: its minimum, from its
handshake, may hold a queue that was there then, and it would read under
the others by that for as long as the kernel keeps it). The tick's delay is
the lowest of these: the modem's queue is in front of
every connection through it, while a local class's queue (an application
limited far below the link) is in front of its own only.

What it cannot see: connections to the local network (a NAS, another
computer) do not cross the modem either, read as no queue, and hide the
modem's while they are busy (and their bytes count as the link's); a
link carrying only UDP (no TCP round trips: the
estimate holds); a queue on the far side (a busy server) looks like the
modem's; a sending connection opened while the queue was already full has
that queue in its minimum and under-reads it (a receiver is read above its
own floor).
"""

from __future__ import annotations

import socket
import struct
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.interfaces import (
    ARPHRD_ETHER,
    ETHERNET_HEADER_BYTES,
    IFF_LOOPBACK,
    IFF_UP,
)
from chadthrottle.helper.kernel.namespaces import in_netns
from chadthrottle.helper.kernel.socket_diag import _MSG_SIZE, dump_tcp_sockets, tcp_info_offset
from chadthrottle.helper.kernel.tc_ownership import IFB_ALIASES

BUSY_BYTES = 16 * 1024  # payload a connection must move in a tick to be read
# a receiver's own lowest rise over this many ticks is its zero: its tcpi_min_rtt, from its
# handshake, holds the wait in our download queue then, so it reads under the others by that
# (bench/capacity_follow.py, est16b: four downloads read -66, -44, -22 and 0 ms with the
# modem empty, and the lowest, taken as the delay, showed the modem's queue only past 66 ms)
RECEIVER_FLOOR_TICKS = 30
_COOKIE = struct.Struct("=Q")
_COOKIE_OFFSET = 44  # inet_diag_msg: family, state, timer, retrans, then sockid: ports (4), addresses (32), ifindex
_SRC_OFFSET, _DST_OFFSET = (
    8,
    24,
)  # in inet_diag_msg: after family..retrans (4) and the two ports (4)
_RTT = struct.Struct("=I")
_RTT_OFFSET, _RCV_RTT_OFFSET, _MIN_RTT_OFFSET = 68, 92, 148  # in struct tcp_info
_BYTES = struct.Struct("=QQ")  # bytes_acked, bytes_received
_BYTES_OFFSET = 120
# snd_mss (16), then unacked, sacked, lost, retrans (24-36): the kernel's packets in flight
# (tcp_packets_in_flight: unacked - sacked - lost + retrans), in segments of snd_mss
_MSS_OFFSET, _IN_FLIGHT = 16, struct.Struct("=IIII")
_IN_FLIGHT_OFFSET = 24
FRAME_PER_PAYLOAD = 1514 / 1448  # an Ethernet frame per full TCP segment (timestamps on)
_INFO_NEEDED = _MIN_RTT_OFFSET + 4  # Linux 4.10 and later


@dataclass(frozen=True)
class TcpPath:
    """One TCP socket's counters and round trips (microseconds; 0: none yet)."""

    acked: int
    received: int
    rtt_us: int
    rcv_rtt_us: int
    min_rtt_us: int
    local: bool = False  # to this machine (loopback, or its own address): never through the modem
    in_flight: int = 0  # payload bytes sent and not yet acknowledged, lost nor SACKed (about)


def _is_local(family: int, source: bytes, destination: bytes) -> bool:
    if family not in (socket.AF_INET, socket.AF_INET6):
        return False
    size = 4 if family == socket.AF_INET else 16
    src, dst = source[:size], destination[:size]
    if family == socket.AF_INET:
        return dst[0] == 127 or src == dst
    mapped_loopback = dst[:12] == b"\0" * 10 + b"\xff\xff" and dst[12] == 127
    return dst == b"\0" * 15 + b"\1" or mapped_loopback or src == dst


def parse_path(payload: bytes) -> tuple[int, TcpPath] | None:
    """One inet_diag_msg with its attributes -> (socket cookie, TcpPath), or None."""
    if len(payload) < _MSG_SIZE:
        return None
    (cookie,) = _COOKIE.unpack_from(payload, _COOKIE_OFFSET)
    local = _is_local(
        payload[0], payload[_SRC_OFFSET : _SRC_OFFSET + 16], payload[_DST_OFFSET : _DST_OFFSET + 16]
    )
    info = tcp_info_offset(payload, _INFO_NEEDED)
    if info is None:
        return None
    acked, received = _BYTES.unpack_from(payload, info + _BYTES_OFFSET)
    rtt, rcv_rtt, min_rtt = (
        _RTT.unpack_from(payload, info + at)[0]
        for at in (_RTT_OFFSET, _RCV_RTT_OFFSET, _MIN_RTT_OFFSET)
    )
    (mss,) = _RTT.unpack_from(payload, info + _MSS_OFFSET)
    unacked, sacked, lost, retrans = _IN_FLIGHT.unpack_from(payload, info + _IN_FLIGHT_OFFSET)
    in_flight = max(0, unacked - sacked - lost + retrans) * mss
    return cookie, TcpPath(acked, received, rtt, rcv_rtt, min_rtt, local=local, in_flight=in_flight)


def tcp_paths_here() -> dict[int, TcpPath]:
    """Every TCP socket of the calling thread's namespace, by cookie; OSError on a malformed answer."""
    return dump_tcp_sockets(lambda payload: parse_path(payload) or (None, None))


def path_rises(before: Mapping[int, TcpPath], now: Mapping[int, TcpPath],
               local_wait_s: Mapping[Direction, float]) -> list[tuple[int, Direction, float]]:  # fmt: skip
    """Per connection busy between two dumps, as a sender (UP) and as a receiver
    (DOWN): (cookie, direction, its round trip's rise over its minimum less the
    wait in our own queue that way, s)."""
    rises: list[tuple[int, Direction, float]] = []
    for cookie, path in now.items():
        old = before.get(cookie)
        if old is None or path.min_rtt_us == 0 or path.local:
            continue
        if path.acked - old.acked >= BUSY_BYTES and path.rtt_us:
            rise = (path.rtt_us - path.min_rtt_us) / 1e6 - local_wait_s.get(Direction.UP, 0.0)
            rises.append((cookie, Direction.UP, rise))
        if path.received - old.received >= BUSY_BYTES and path.rcv_rtt_us:
            rise = (path.rcv_rtt_us - path.min_rtt_us) / 1e6 - local_wait_s.get(Direction.DOWN, 0.0)
            rises.append((cookie, Direction.DOWN, rise))
    return rises


def queueing_delay_s(before: Mapping[int, TcpPath], now: Mapping[int, TcpPath],
                     local_wait_s: Mapping[Direction, float],
                     floors: Mapping[int, float] | None = None) -> float | None:  # fmt: skip
    """The lowest rise over its minimum of the connections busy between two
    dumps (module docstring), a receiver's less its floor (PathSampler); None
    when none was busy."""
    return _lowest(path_rises(before, now, local_wait_s), floors or {})


def _lowest(rises: list[tuple[int, Direction, float]], floors: Mapping[int, float]) -> float | None:
    values = [rise - floors.get(cookie, 0.0) if direction is Direction.DOWN else rise
              for cookie, direction, rise in rises]  # fmt: skip
    return max(0.0, min(values)) if values else None


@dataclass(frozen=True)
class LinkCounters:
    """L3 bytes a link received (down) and sent (up)."""

    down: int
    up: int


def l3_bytes(stats: Mapping[str, int], ethernet: bool) -> LinkCounters:
    """A link's IFLA_STATS64 as L3 bytes (an Ethernet frame's 14-byte header taken off)."""
    header = ETHERNET_HEADER_BYTES if ethernet else 0
    return LinkCounters(stats["rx_bytes"] - header * stats["rx_packets"],
                        stats["tx_bytes"] - header * stats["tx_packets"])  # fmt: skip


def link_counters(ipr: Any, indexes: Iterable[int] | None = None) -> dict[int, LinkCounters]:
    """L3 counters by link index: of `indexes`, or of every uplink (up, not
    loopback, not an IFB) of the IPRoute's namespace. One dump."""
    wanted = None if indexes is None else set(indexes)
    found: dict[int, LinkCounters] = {}
    for link in ipr.get_links():
        info = link.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info is not None else ""
        if wanted is not None and link["index"] not in wanted:
            continue
        if wanted is None and (
            not link["flags"] & IFF_UP or link["flags"] & IFF_LOOPBACK or kind == "ifb"
        ):
            continue
        stats = link.get_attr("IFLA_STATS64")
        if stats is not None:
            found[link["index"]] = l3_bytes(stats, link["ifi_type"] == ARPHRD_ETHER)
    return found


@dataclass(frozen=True)
class ShaperQueue:
    """One direction's IFB root qdisc now: bytes queued, packets dropped so far."""

    backlog: int
    drops: int


def shaper_queues(ipr: Any) -> dict[Direction, ShaperQueue]:
    """Our IFBs' root qdiscs, per direction (absent: no IFB of ours that way)."""
    found: dict[Direction, ShaperQueue] = {}
    for link in ipr.get_links():
        info = link.get_attr("IFLA_LINKINFO")
        if info is None or info.get_attr("IFLA_INFO_KIND") != "ifb":
            continue
        for direction, alias in IFB_ALIASES.items():
            if link.get_attr("IFLA_IFALIAS") != alias:
                continue
            for qdisc in ipr.get_qdiscs(index=link["index"]):
                stats = qdisc.get_attr("TCA_STATS2")
                queue = stats.get_attr("TCA_STATS_QUEUE") if stats is not None else None
                if qdisc["parent"] == 0xFFFFFFFF and queue is not None:
                    old = found.get(direction, ShaperQueue(0, 0))
                    found[direction] = ShaperQueue(old.backlog + queue["backlog"],
                                                   old.drops + queue["drops"])  # fmt: skip
    return found


def shaper_wait_s(
    ipr: Any, shaping_bps: Mapping[Direction, float | None]
) -> dict[Direction, float]:
    """How long a packet waits in our IFBs now, per direction: their root
    qdiscs' backlog at the shaping rate (0 where nothing is shaped)."""
    waits = {direction: 0.0 for direction in Direction}
    for direction, queue in shaper_queues(ipr).items():
        if rate := shaping_bps.get(direction):
            waits[direction] = queue.backlog / rate
    return waits


def sent_beyond_us(paths: Mapping[int, TcpPath], queued_up: int) -> int:
    """The upload's bytes past our shaper (frames, as our queue counts them): what the
    connections through the modem have in flight, less what waits in our upload queue.
    Shaped under the link that is the path's round trip at the upload's rate; past it,
    the modem's upload queue grows it at once, where the round trips show it 2-4 s
    late (smoothed, and with our own queue's wait in them). Also in it: the modem's
    download queue (the acknowledgements wait there), and for about a round trip the
    packets our upload queue dropped, as read: the sender is not told of them (it seems
    the redirect to the IFB reports no drop), so they count as in flight until it marks
    them lost (docs/benchmarks/priorities.md, est25)."""
    payload = sum(path.in_flight for path in paths.values() if not path.local)
    return round(payload * FRAME_PER_PAYLOAD) - queued_up


class PathSampler:
    """Each call: the bytes through the uplinks since the last call and the
    path's queueing delay now, read in one network namespace.

    read_links() -> the uplinks' L3 counters by index (link_counters; a
    link that comes or goes between two calls counts from its second);
    read_wait() -> the local shaper's wait per direction (s); netns: a
    /proc/PID/ns/net path (None: the calling thread's)."""

    def __init__(self, read_links: Callable[[], Mapping[int, LinkCounters]],
                 read_wait: Callable[[], Mapping[Direction, float]], netns: str | None = None,
                 floor_samples: int = RECEIVER_FLOOR_TICKS) -> None:  # fmt: skip
        self._read_links, self._read_wait, self._netns = read_links, read_wait, netns
        self._floor_samples = floor_samples  # RECEIVER_FLOOR_TICKS' seconds, at a shorter sample
        self._links: Mapping[int, LinkCounters] = {}
        self._paths: dict[int, TcpPath] = {}
        # a receiver's last rises (RECEIVER_FLOOR_TICKS), by cookie
        self._received: dict[int, deque[float]] = {}
        # the median tcpi_min_rtt of the connections busy receiving at the last read, each less
        # its floor (s; None: none): how long a raise of the download drains our queue before
        # its senders follow
        self.base_rtt_s: float | None = None

    def _dump(self) -> dict[int, TcpPath]:
        try:
            if self._netns is None:
                return tcp_paths_here()
            return in_netns(self._netns, tcp_paths_here) or {}
        except OSError:
            return {}

    def glance(self) -> tuple[float | None, dict[Direction, float]]:
        """Between two samples: the path's queueing delay now (as sample() reads it) and
        the wait in our shaper per direction, without the uplinks' counters (the next
        sample counts from the last): the sock_diag dump and our queues' waits only,
        about half a sample's CPU."""
        waits = dict(self._read_wait())
        return self._delay(self._dump(), waits), waits

    def sample(self) -> tuple[dict[Direction, int], float | None, dict[Direction, float]]:
        """(L3 bytes per direction since the last call, delay_s or None, the
        wait in our shaper per direction); the first call: zero bytes. A
        receiver's rise is read above its own floor, the lowest of its last
        RECEIVER_FLOOR_TICKS rises (never above zero: only one that reads
        under the others is corrected)."""
        links, paths = self._read_links(), self._dump()
        before, self._links = self._links, links
        moved = {Direction.DOWN: 0, Direction.UP: 0}
        for (
            index,
            now,
        ) in links.items():  # a counter that went back (a link replaced) reads as nothing moved
            if (old := before.get(index)) is not None:
                moved[Direction.DOWN] += max(0, now.down - old.down)
                moved[Direction.UP] += max(0, now.up - old.up)
        waits = dict(self._read_wait())
        return moved, self._delay(paths, waits), waits

    def _delay(self, paths: dict[int, TcpPath], waits: Mapping[Direction, float]) -> float | None:
        floors = {cookie: min(0.0, *past) for cookie, past in self._received.items() if past}
        rises = path_rises(self._paths, paths, waits)
        delay = _lowest(rises, floors)
        for cookie, direction, rise in rises:
            if direction is Direction.DOWN:
                self._received.setdefault(cookie, deque(maxlen=self._floor_samples)).append(rise)
        # a receiver's tcpi_min_rtt is its handshake's, with whatever queue was there then (42 ms
        # in the bench's helper, whose downloads start beside a busy upload: est16i); its floor,
        # the lowest rise lately (never above zero), is that queue, so the path's own round trip
        # is the minimum less it
        receiving = sorted(
            max(0.0, paths[cookie].min_rtt_us / 1e6 + min(0.0, *self._received[cookie]))
            for cookie, direction, _ in rises
            if direction is Direction.DOWN
        )
        self.base_rtt_s = receiving[len(receiving) // 2] if receiving else None
        self._received = {
            cookie: past for cookie, past in self._received.items() if cookie in paths
        }
        self._paths = paths
        return delay
