"""The one-way reader's floors and its least over connections (helper/kernel/one_way.py
UploadQueueReader.look), fed what the kernel's map would hold: pure logic, the programs'
side is test_one_way_upload.py's. Each case is a way a reading misled the estimator
(review32's K1, K2, K3, K5): a queue standing past the floor's window, a connection opened
while the modem held a queue, a far clock slower than 1 kHz, one delayed ACK a connection."""

from __future__ import annotations

from chadthrottle.helper.kernel.one_way import UploadQueueReader
from chadthrottle.helper.kernel.one_way_reading import UploadQueueReading

MS = 1_000_000
LOOK_S = 0.1
Conn = tuple[int, int, int, int]
A, B, C = (1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 6, 4)


class FedReader(UploadQueueReader):
    """The product's look() over a fed map: each connection's (least ns, ACKs) a look."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(maps=None, monotonic=lambda: self.now)  # type: ignore[arg-type]
        self._ifb = 7  # started: look() reads
        self.fed: dict[Conn, tuple[int, int]] = {}

    def _renew(self) -> None:
        pass

    def _take(self) -> dict[Conn, tuple[int, int]]:
        return dict(self.fed)

    def looks(self, seconds: float, fed: dict[Conn, tuple[int, int]]) -> list[UploadQueueReading]:
        """Looks every LOOK_S for `seconds`, each fed the same (the queue standing)."""
        out = []
        for _ in range(round(seconds / LOOK_S)):
            self.now += LOOK_S
            self.fed = fed
            reading = self.look()
            assert reading is not None
            out.append(reading)
        return out


def test_a_queue_that_stands_past_ten_seconds_is_still_read() -> None:
    """A 200 ms queue at the modem for 30 s: read as such to its end (it was read 0 from 10 s
    on: each connection's floor was its least of the last 10 s, the queue itself)."""
    reader = FedReader()
    reader.looks(3.0, {A: (1_000 * MS, 8)})
    standing = reader.looks(30.0, {A: (1_200 * MS, 8)})
    assert all(r.queue_ms is not None and r.queue_ms >= 150.0 for r in standing), [
        r.queue_ms for r in standing[::10]
    ]


def test_a_connection_opened_while_the_modem_holds_a_queue_does_not_hide_it() -> None:
    """B opens while A reads a 200 ms queue: B's floor is that queue, so B reads 0 above it,
    and the least over connections was 0 from B's second look on, for as long as it stood."""
    reader = FedReader()
    reader.looks(3.0, {A: (1_000 * MS, 8)})
    reader.looks(1.0, {A: (1_200 * MS, 8)})
    both = reader.looks(5.0, {A: (1_200 * MS, 8), B: (7_200 * MS, 8)})
    assert all(r.queue_ms is not None and r.queue_ms >= 150.0 for r in both), [
        r.queue_ms for r in both
    ]


def test_a_far_clock_slower_than_a_millisecond_tick_is_declined() -> None:
    """C's far end stamps at 250 Hz (Linux before 4.13 with HZ=250): its raw falls 0.75 ms a ms,
    so it read 0 at every look, the least over connections with it (C the oldest here).
    Declined once its fall is no queue's draining, A's 200 ms is read again."""
    reader = FedReader()

    def c_raw() -> int:  # its ticks, 4 ms apart, against our ns
        return int(5_000 * MS - 0.75 * reader.now * 1_000 * MS)

    for _ in range(30):  # C alone for 3 s
        reader.now += LOOK_S
        reader.fed = {C: (c_raw(), 8)}
        reader.look()
    out = []
    for _ in range(250):  # 25 s with A, whose far clock is of 1 kHz, a 200 ms queue from 1 s on
        reader.now += LOOK_S
        reader.fed = {A: (1_000 * MS if reader.now < 4.0 else 1_200 * MS, 8), C: (c_raw(), 8)}
        reading = reader.look()
        assert reading is not None
        out.append(reading.queue_ms)
    assert all(ms is not None and ms >= 150.0 for ms in out[-50:]), out[-50:]


def test_a_looks_acks_are_counted_per_connection() -> None:
    """Three light connections, one ACK each (a far end's delayed ACK, 40 ms high): no look of
    SURE_ACKS ACKs (they were summed over connections: 3), so the estimator does not take
    one delayed ACK's 40 ms for a queue; one connection of 3 ACKs is one."""
    reader = FedReader()
    reader.looks(1.0, {A: (1_000 * MS, 1), B: (2_000 * MS, 1), C: (3_000 * MS, 1)})
    (light,) = reader.looks(LOOK_S, {A: (1_040 * MS, 1), B: (2_040 * MS, 1), C: (3_040 * MS, 1)})
    assert light.queue_ms is not None and 39.0 <= light.queue_ms <= 40.0, light
    assert light.readings == 1, light
    (busy,) = reader.looks(LOOK_S, {A: (1_000 * MS, 3), B: (2_040 * MS, 1)})
    assert busy.readings == 3, busy


def test_declined_connections_are_forgotten_once_gone() -> None:
    """Connections declined (a far clock of microseconds) and gone leave nothing behind: the
    reader ran for days with every one it ever declined kept."""
    reader = FedReader()
    for port in range(500):
        conn = (1, 2, port, 4)
        reader.looks(0.2, {conn: (1_000 * MS, 3)})
        reader.looks(LOOK_S, {conn: (90_000 * MS, 3)})  # 89 s over its floor: declined
    reader.looks(30.0, {})
    assert len(reader._declined) + len(reader._floors) <= 1, (
        len(reader._declined),
        len(reader._floors),
    )


def test_a_far_tsval_that_wraps_keeps_its_connection_read() -> None:
    """A's far TSval wraps (2^32 ms: Linux's offset is random, so any connection may see it):
    its raw falls by 2^32 ms at once, which is no slow clock's fall: A is read on."""
    reader = FedReader()
    reader.looks(3.0, {A: ((1 << 32) * MS - 1_000 * MS, 8)})
    after = reader.looks(15.0, {A: (2_000 * MS, 8)})  # 3 s on, past the wrap
    assert all(r.queue_ms is not None and r.queue_ms < 1.0 for r in after), after[-3:]


def test_an_old_light_connection_does_not_take_the_reading_from_a_busy_younger_one() -> None:
    """A chat's connection, minutes old, one delayed ACK a look (its least 30 ms over its floor
    now and then), beside a bulk upload 10 s old reading the modem empty: the reading is the
    bulk's (the older one alone was counted: 30 ms of a delayed ACK read as a queue)."""
    reader = FedReader()
    reader.looks(60.0, {A: (1_000 * MS, 1)})
    reader.looks(10.0, {A: (1_000 * MS, 1), B: (2_000 * MS, 12)})
    (look,) = reader.looks(LOOK_S, {A: (1_030 * MS, 1), B: (2_000 * MS, 12)})
    assert look.queue_ms is not None and look.queue_ms < 1.0 and look.readings == 12, look
