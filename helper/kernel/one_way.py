"""The helper's look at the upload's one-way reading (issue 16): how much the
queue beyond our upload shaper (the modem's) holds, from the upload's own TCP
connections' ACKs (one_way_reading.py says what it reads, bpf/one_way.h how).

The datapath's tc programs take the readings: the uplink's egress notes when
each data segment the upload IFB sends on left (its HTB let it go), the
uplink's ingress reads a far end's pure ACK of such a segment's end: its TSval
(the far clock, ms) less that time, per connection the least and a count since
the last look. Here each connection's least is taken over its floor: its
least so far, risen by at most FLOOR_RISE_NS_PER_S since (the clocks' offset
cancels; two clocks' drift, NTP's slew of at most 500 ppm each, never
outruns the rise). Until 2026-12-07 the floor was its least of the last 10 s:
a queue standing longer read 0 (review32). The reading is the least over the
connections as old as the oldest read, up to MATURE_S: a connection opened
while the modem held a queue has that queue in its floor and reads 0 above
it, and the least over all was 0 for as long as the queue stood.

The programs are always attached with the link tree's hooks; while nobody
reads, one array lookup a packet and return (on == 0). A killed helper's
programs run on until the next start gives its hooks the new programs
(tc_shaper._finish_takeover); they stop reading LEASE_S after its last look.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from chadthrottle.helper.kernel import bpf_maps
from chadthrottle.helper.kernel.bpf_maps import TypedMap
from chadthrottle.helper.kernel.layout import OneWayConn, OneWayControl, OneWayReading
from chadthrottle.helper.kernel.one_way_reading import UploadQueueReading

# The programs read until this long after the last look (the lease: one_way_control.until_ns):
# a killed helper's programs, which run on until the next start takes its hooks over, stop
# reading then. Past the engine's tick (a second) and a late one.
LEASE_S = 5.0
# a connection's floor rises at most this fast (1.5 ms a second: above two clocks each slewed
# 500 ppm the other way, NTP's most; a queue standing at the modem reads 1.5 ms less a second)
FLOOR_RISE_NS_PER_S = 1_500_000
FORGET_S = 10.0  # a connection not read this long is forgotten (its floor, or its declining)
MATURE_S = 30.0  # a connection this old counts over younger ones (module doc)
BUSY_ACKS = 2  # a connection of this many ACKs a look is busy (MATURE_S: look())
# a floor falling faster than this share of the time over FORGET_S is no queue draining but a
# far TS clock slower than 1 kHz (Linux before 4.13 stamped jiffies: 100-300 Hz), which reads 0
# at every look: declined
FALL_SHARE = 0.5
WRAP_NS = (1 << 31) * 1_000_000  # a fall of half the TSval's range (ms ticks): its wrap
# A reading this far over its floor is no modem's queue: a far TS clock other than 1 kHz
# (microseconds, RFC 7323 allows 1 ms to 1 s a tick); the connection is not read after it.
IMPLAUSIBLE_NS = 5_000_000_000
NS_PER_MS = 1_000_000
_MAX_CONNECTIONS = 4096  # ONE_WAY_CONNECTIONS in bpf/one_way.h
# a connection: (our address, theirs: 16 bytes each, IPv4 as ::ffff:a.b.c.d; our port, theirs)
_Conn = tuple[bytes, bytes, int, int]


class OneWayMaps(Protocol):
    one_way_off: str  # why the programs were built without the reading ("": with it)

    def one_way_maps(self) -> tuple[TypedMap, TypedMap] | None: ...


def one_way_notes(maps: OneWayMaps) -> list[str]:
    """ListBackends' note (the tc backend's, whose programs read it) while the datapath
    was loaded without the reading: an estimated upload is then judged by its round
    trips alone (capacity_estimate.py, no reading)."""
    if not maps.one_way_off:
        return []
    return [f"no one-way reading of the upload (an estimated upload capacity is judged by "
            f"round trips alone): {maps.one_way_off}"]  # fmt: skip


class UploadQueueReader:
    """start(ifb_ifindex) when estimation reads, look() at each glance and tick,
    stop() when it does not; one thread. Where the datapath was loaded without
    the reading (a kernel or compiler refused it: Datapath.one_way_off), start()
    reads nothing and look() gives None, as stopped: the estimator's rules without
    a reading."""

    def __init__(self, maps: OneWayMaps, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._maps = maps
        self._opened: tuple[TypedMap, TypedMap] | None = (
            None  # (control, readings), at the first start
        )
        self._monotonic = monotonic
        self._ifb: int | None = None
        self._floors: dict[_Conn, _Floor] = {}
        # connections not read (a far clock not of 1 kHz) -> when last seen
        self._declined: dict[_Conn, float] = {}
        self._buffers: tuple[Any, Any] | None = (
            None  # the batch read's, at the first start (208 KB)
        )

    @property
    def off(self) -> str:
        """Why the datapath has no reading ("" when it has one)."""
        return self._maps.one_way_off

    @property
    def reading_from(self) -> int | None:
        """The upload IFB's ifindex while reading; None when stopped."""
        return self._ifb

    def start(self, ifb_ifindex: int) -> None:
        """Read the upload past this IFB (the link tree's upload IFB in this namespace)."""
        if self._ifb == ifb_ifindex:
            return
        if self._opened is None:
            self._opened = self._maps.one_way_maps()
            if self._opened is None:  # built without it: said once, at the datapath's open
                return
            self._buffers = (
                (OneWayConn * _MAX_CONNECTIONS)(),
                (OneWayReading * _MAX_CONNECTIONS)(),
            )
        self._ifb = ifb_ifindex
        self._renew()

    def _renew(self) -> None:
        assert self._opened is not None and self._ifb is not None
        until = time.monotonic_ns() + int(LEASE_S * 1e9)  # CLOCK_MONOTONIC: bpf_ktime_get_ns's
        self._opened[0].set(0, OneWayControl(on=1, ifb_ifindex=self._ifb, until_ns=until))

    def stop(self) -> None:
        """The programs back to one lookup a packet; the floors forgotten."""
        if self._ifb is None or self._opened is None:
            return
        self._opened[0].set(0, OneWayControl())
        self._ifb = None
        self._floors.clear()
        self._declined.clear()
        self._take()  # what was read so far, forgotten

    def look(self) -> UploadQueueReading | None:
        """Each connection's least since the last look over its floor; the least of
        those of the connections as old as the oldest read of BUSY_ACKS ACKs or more
        (up to MATURE_S; the oldest read when none is), in ms, and
        the most ACKs one of them gave (the least is no higher than that one's); None
        while stopped."""
        if self._ifb is None:
            return None
        self._renew()
        now = self._monotonic()
        read: list[tuple[float, float, int]] = []  # (first look, ms above its floor, ACKs)
        for conn, (raw, count) in self._take().items():
            if conn in self._declined:
                self._declined[conn] = now
                continue
            floor = self._floors.get(conn)
            if floor is None:  # its first look: no floor yet, no information
                self._floors[conn] = _Floor(raw, now, now, now, raw, now)
                continue
            above = floor.above(raw, now)
            if above > IMPLAUSIBLE_NS or floor.falls(now):
                self._declined[conn] = now
                del self._floors[conn]
                continue
            read.append((floor.first, above / NS_PER_MS, count))
        self._forget_before(now - FORGET_S)
        if not read:
            return UploadQueueReading(None, 0)
        # the oldest of those that gave BUSY_ACKS sets the age counted (an old light one, a
        # chat's single delayed ACK a look, is counted beside a younger busy one, not alone)
        busy = [first for first, _, count in read if count >= BUSY_ACKS]
        oldest = min(busy or [first for first, _, _ in read])
        counted = [(ms, count) for first, ms, count in read
                   if now - first >= min(MATURE_S, now - oldest)]  # fmt: skip
        return UploadQueueReading(min(ms for ms, _ in counted), max(n for _, n in counted))

    def _forget_before(self, since: float) -> None:
        for conn in [conn for conn, floor in self._floors.items() if floor.seen < since]:
            del self._floors[conn]
        for conn in [conn for conn, seen in self._declined.items() if seen < since]:
            del self._declined[conn]

    def _take(self) -> dict[_Conn, tuple[int, int]]:
        """Each connection's (least, count) since the last take, out of the map: the
        keys by one batch read, each entry then taken out at once (an ACK read between
        the two goes with it, or into a new entry for the next look)."""
        assert self._opened is not None and self._buffers is not None
        readings, (keys, values) = self._opened[1], self._buffers
        found = bpf_maps.lookup_batch(readings.fd, keys, values,
                                      ctypes.sizeof(OneWayConn), ctypes.sizeof(OneWayReading))  # fmt: skip
        taken = {}
        value = OneWayReading()
        for index in range(found):
            key = keys[index]
            if bpf_maps.lookup_and_delete(readings.fd, key, value) and value.count:
                conn = (bytes(key.ours), bytes(key.theirs), key.our_port, key.their_port)
                taken[conn] = (int(value.least_ns), int(value.count))
        return taken


@dataclass
class _Floor:
    """A connection's floor (ns): its least raw reading, risen by at most
    FLOOR_RISE_NS_PER_S since it was last lowered or read."""

    floor: int
    at: float  # when the floor was last set (monotonic s)
    first: float  # the connection's first look
    seen: float  # its last look with a reading
    mark: int  # the floor FORGET_S ago at most (falls)
    mark_at: float

    def above(self, raw: int, now: float) -> int:
        """raw (this look's least) over the floor risen to now; the floor lowered to it."""
        risen = self.floor + int(FLOOR_RISE_NS_PER_S * max(0.0, now - self.at))
        if raw < self.floor - WRAP_NS:  # the far TSval wrapped (2^32 ticks): a floor anew
            risen = self.mark = raw
        self.floor, self.at, self.seen = min(risen, raw), now, now
        return max(0, raw - risen)

    def falls(self, now: float) -> bool:
        """The floor fell by over FALL_SHARE of the time since the mark (checked once
        FORGET_S has passed): a far clock slower than 1 kHz, no queue draining."""
        if now - self.mark_at < FORGET_S:
            return False
        fell = self.mark - self.floor
        too_fast = fell > FALL_SHARE * (now - self.mark_at) * 1e9
        self.mark, self.mark_at = self.floor, now
        return too_fast
