"""The helper's look at the upload's one-way reading (issue 16): how much the
queue beyond our upload shaper (the modem's) holds, from the upload's own TCP
connections' ACKs (one_way_reading.py says what it reads, bpf/one_way.h how).

The datapath's tc programs take the readings: the uplink's egress notes when
each data segment the upload IFB sends on left (its HTB let it go), the
uplink's ingress reads a far end's pure ACK of such a segment's end: its TSval
(the far clock, ms) less that time, per connection the least and a count since
the last look. Here each connection's least is taken over its floor, its
least over the last FLOOR_S (the clocks' offset cancels; a far clock's drift
of 100 ppm errs 1 ms over 10 s: docs/benchmarks/priorities.md, owd28).

The programs are always attached with the link tree's hooks; while nobody
reads, one array lookup a packet and return (on == 0). A killed helper's
programs run on until the next start gives its hooks the new programs
(tc_shaper._finish_takeover); they stop reading LEASE_S after its last look.
"""

from __future__ import annotations

import ctypes
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from chadthrottle.helper.kernel import bpf_maps
from chadthrottle.helper.kernel.bpf_maps import TypedMap
from chadthrottle.helper.kernel.layout import OneWayConn, OneWayControl, OneWayReading
from chadthrottle.helper.kernel.one_way_reading import UploadQueueReading

# The programs read until this long after the last look (the lease: one_way_control.until_ns):
# a killed helper's programs, which run on until the next start takes its hooks over, stop
# reading then. Past the engine's tick (a second) and a late one.
LEASE_S = 5.0
FLOOR_S = 10.0  # a connection's floor: its least over this long (owd28's drift table)
# A reading this far over its floor is no modem's queue: a far TS clock other than 1 kHz
# (microseconds, RFC 7323 allows 1 ms to 1 s a tick); the connection is not read after it.
IMPLAUSIBLE_NS = 5_000_000_000
NS_PER_MS = 1_000_000
_MAX_CONNECTIONS = 4096  # ONE_WAY_CONNECTIONS in bpf/one_way.h


class OneWayMaps(Protocol):
    def one_way_maps(self) -> tuple[TypedMap, TypedMap]: ...


class UploadQueueReader:
    """start(ifb_ifindex) when estimation reads, look() at each glance and tick,
    stop() when it does not; one thread."""

    def __init__(self, maps: OneWayMaps, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._maps = maps
        self._opened: tuple[TypedMap, TypedMap] | None = (
            None  # (control, readings), at the first start
        )
        self._monotonic = monotonic
        self._ifb: int | None = None
        # per connection: (when, its least then, ns) of the looks within FLOOR_S
        self._floors: dict[tuple[int, int, int, int], deque[tuple[float, int]]] = {}
        self._declined: set[tuple[int, int, int, int]] = set()
        self._buffers: tuple[Any, Any] | None = (
            None  # the batch read's, at the first start (112 KB)
        )

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
        """Each connection's least since the last look over its floor, the least of
        those (ms); None while stopped."""
        if self._ifb is None:
            return None
        self._renew()
        now = self._monotonic()
        least: float | None = None
        count = 0
        for conn, (raw, read) in self._take().items():
            if conn in self._declined:
                continue
            window = self._floors.setdefault(conn, deque())
            floor = min((value for _, value in window), default=None)
            window.append((now, raw))
            if floor is None:
                continue  # its first look: no floor yet, no information
            above = max(0, raw - floor)
            if above > IMPLAUSIBLE_NS:
                self._declined.add(conn)
                del self._floors[conn]
                continue
            count += read
            least = above / NS_PER_MS if least is None else min(least, above / NS_PER_MS)
        self._forget_before(now - FLOOR_S)
        return UploadQueueReading(least, count)

    def _forget_before(self, since: float) -> None:
        for conn in list(self._floors):
            window = self._floors[conn]
            while window and window[0][0] < since:
                window.popleft()
            if not window:
                del self._floors[conn]

    def _take(self) -> dict[tuple[int, int, int, int], tuple[int, int]]:
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
                conn = (key.ours, key.theirs, key.our_port, key.their_port)
                taken[conn] = (int(value.least_ns), int(value.count))
        return taken
