"""What the capacity estimator reads (helper/kernel/path_delay.py): the
sock_diag answer, the delay taken from it, link counters at L3. Against a
real modem, through the helper: tests/e2e/test_link_estimation.py."""

from __future__ import annotations

import socket
import struct

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.internet_route import internet_links
from chadthrottle.helper.kernel.path_delay import (
    BUSY_BYTES,
    PathSampler,
    TcpPath,
    l3_bytes,
    parse_path,
    queueing_delay_s,
    tcp_paths_here,
)
from chadthrottle.helper.kernel.socket_diag import INET_DIAG_INFO
from pyroute2 import IPRoute

from tests.support.netns import entered_netns, netns_pair
from tests.support.requirements import require_root

SO_COOKIE = 57  # socket(7): the id sock_diag reports

UP, DOWN = Direction.UP, Direction.DOWN


def _message(
    cookie: int, info: bytes, source: str = "192.0.2.1", destination: str = "198.51.100.7"
) -> bytes:
    header = bytearray(72)
    header[0] = socket.AF_INET
    header[8:12], header[24:28] = socket.inet_aton(source), socket.inet_aton(destination)
    struct.pack_into("=Q", header, 44, cookie)
    attribute = struct.pack("=HH", 4 + len(info), INET_DIAG_INFO) + info
    return bytes(header) + attribute + b"\0" * (-len(attribute) % 4)


def _tcp_info(acked: int, received: int, rtt: int, rcv_rtt: int, min_rtt: int) -> bytes:
    info = bytearray(232)
    struct.pack_into("=I", info, 68, rtt)
    struct.pack_into("=I", info, 92, rcv_rtt)
    struct.pack_into("=QQ", info, 120, acked, received)
    struct.pack_into("=I", info, 148, min_rtt)
    return bytes(info)


def test_a_diag_message_reads_as_the_sockets_path() -> None:
    cookie, path = parse_path(_message(77, _tcp_info(1000, 2000, 50_000, 60_000, 10_000)))  # type: ignore[misc]
    assert (cookie, path) == (77, TcpPath(1000, 2000, 50_000, 60_000, 10_000))
    assert (
        parse_path(_message(78, _tcp_info(1, 2, 3, 4, 5)[:140])) is None
    )  # tcp_info without min_rtt (old kernel)
    assert parse_path(b"\0" * 40) is None
    for source, destination in (
        ("192.0.2.1", "127.0.0.53"),
        ("192.0.2.1", "192.0.2.1"),
    ):  # loopback, own address
        assert parse_path(_message(79, _tcp_info(1, 2, 3, 4, 5), source, destination))[1].local  # type: ignore[index]


def test_the_delay_is_the_lowest_rise_of_the_busy_connections_less_our_own_queue() -> None:
    before = {
        1: TcpPath(0, 0, 0, 0, 10_000),
        2: TcpPath(0, 0, 0, 0, 20_000),
        3: TcpPath(0, 0, 0, 0, 1_000),
        5: TcpPath(0, 0, 0, 0, 100),
    }
    now = {
        1: TcpPath(BUSY_BYTES, 0, 90_000, 0, 10_000),  # sending: 80 ms over its minimum
        2: TcpPath(
            0, BUSY_BYTES, 0, 70_000, 20_000
        ),  # receiving: 50 ms, of which 30 wait in our download queue
        3: TcpPath(BUSY_BYTES - 1, 0, 900_000, 0, 1_000),  # not busy: left out
        4: TcpPath(10**9, 0, 10_000, 0, 10_000),  # new since the last dump: left out
        5: TcpPath(10**9, 0, 100, 0, 100, local=True),  # loopback, no queue: left out
    }
    delay = queueing_delay_s(before, now, {DOWN: 0.030})
    assert delay is not None and abs(delay - 0.020) < 1e-9
    assert (
        queueing_delay_s(before, {1: TcpPath(10, 0, 90_000, 0, 10_000)}, {}) is None
    )  # nothing busy
    assert queueing_delay_s(before, now, {UP: 1.0, DOWN: 1.0}) == 0.0  # never below nothing


def test_a_receiver_is_read_above_its_own_floor() -> None:
    """Four downloads whose minimum round trips hold our download queue's wait at their
    handshakes read -66, -44, -22 and 0 ms with the modem empty (bench/capacity_follow.py,
    est16b): the lowest, taken as the delay, showed the modem's queue only past 66 ms. Each
    receiver is now read above its own floor (the lowest of its last rises, never above
    zero): 30 ms at the modem reads 30 ms. A sender is read as before."""
    waits = {DOWN: 0.1, UP: 0.4}
    offsets_us = [-66_000, -44_000, -22_000, 0]

    def receivers(tick: int, queued_us: int) -> dict[int, TcpPath]:
        return {
            n: TcpPath(0, tick * BUSY_BYTES, 0, 10_000 + 100_000 + offset + queued_us, 10_000)
            for n, offset in enumerate(offsets_us)
        }

    dumps = iter([*(receivers(t, 0) for t in range(4)), receivers(4, 30_000)])
    sampler = PathSampler(lambda: {}, lambda: waits)
    sampler._dump = lambda: next(dumps)  # type: ignore[method-assign]
    sampler.sample()
    assert sampler.sample()[1] == 0.0  # no floor known yet: the lowest reads under
    for _ in range(2):
        sampler.sample()
    delay = sampler.sample()[1]
    assert delay is not None and abs(delay - 0.030) < 1e-6, delay
    # without floors, the lowest reading hides the modem's 30 ms
    assert queueing_delay_s(receivers(3, 0), receivers(4, 30_000), waits) == 0.0
    # a sender (its rise less our upload queue's wait) has no floor: read as it is
    senders = iter(
        [{1: TcpPath(0, 0, 0, 0, 10_000)}, {1: TcpPath(BUSY_BYTES, 0, 450_000, 0, 10_000)}]
    )
    sampler = PathSampler(lambda: {}, lambda: waits)
    sampler._dump = lambda: next(senders)  # type: ignore[method-assign]
    sampler.sample()
    delay = sampler.sample()[1]
    assert delay is not None and abs(delay - 0.040) < 1e-6, delay


def test_the_base_round_trip_is_the_busy_receivers_median_minimum() -> None:
    """How long a download raise drains our queue before its senders follow is one of their
    round trips without queues (capacity_estimate.GLANCE_FALL_S): the median tcpi_min_rtt of
    the connections busy receiving; a sender's is left out, and none busy reads None."""
    dumps = iter(
        [
            {1: TcpPath(0, 0, 0, 0, 30_000), 2: TcpPath(0, 0, 0, 0, 300_000),
             3: TcpPath(0, 0, 0, 0, 310_000), 4: TcpPath(0, 0, 0, 0, 5_000)},
            {1: TcpPath(0, BUSY_BYTES, 0, 40_000, 30_000), 2: TcpPath(0, BUSY_BYTES, 0, 320_000, 300_000),
             3: TcpPath(0, BUSY_BYTES, 0, 330_000, 310_000), 4: TcpPath(BUSY_BYTES, 0, 9_000, 0, 5_000)},
            {},
        ]
    )  # fmt: skip
    sampler = PathSampler(lambda: {}, lambda: {DOWN: 0.0, UP: 0.0})
    sampler._dump = lambda: next(dumps)  # type: ignore[method-assign]
    sampler.sample()
    assert sampler.base_rtt_s is None
    sampler.sample()
    assert sampler.base_rtt_s == 0.3
    sampler.sample()
    assert sampler.base_rtt_s is None


def test_a_receivers_base_round_trip_leaves_out_the_queue_its_handshake_met() -> None:
    """The bench's helper read base_rtt_s 41.9 ms at every tick on a path of well under a
    millisecond (est16i): its downloads' handshakes met a queue, which their tcpi_min_rtt
    keeps, and the glances' rule (capacity_estimate.GLANCE_FALL_S) waited for a fall larger by
    the step times that. A receiver whose rises read 40 ms under its minimum with no queue
    anywhere has a round trip of its minimum less those 40 ms; one whose rises never read
    under it keeps its minimum."""
    waits = {DOWN: 0.1, UP: 0.0}

    def receivers(
        tick: int,
    ) -> dict[int, TcpPath]:  # min 42 ms and 300 ms; round trips now 2 and 300 ms
        return {1: TcpPath(0, tick * BUSY_BYTES, 0, 2_000 + 100_000, 42_000),
                2: TcpPath(0, tick * BUSY_BYTES, 0, 300_000 + 100_000, 300_000)}  # fmt: skip

    for cookie, base_s in ((1, 0.002), (2, 0.300)):
        dumps = iter([{cookie: receivers(t)[cookie]} for t in range(2)])
        sampler = PathSampler(lambda: {}, lambda: waits)
        sampler._dump = dumps.__next__  # type: ignore[method-assign]
        sampler.sample()
        sampler.sample()
        assert sampler.base_rtt_s is not None and abs(sampler.base_rtt_s - base_s) < 1e-9, (
            sampler.base_rtt_s
        )


def test_link_counters_are_l3() -> None:
    counted = l3_bytes(
        {"rx_bytes": 15_140, "rx_packets": 10, "tx_bytes": 1500, "tx_packets": 1}, ethernet=True
    )
    assert (counted.down, counted.up) == (15_000, 1486)
    assert (
        l3_bytes(
            {"rx_bytes": 5, "rx_packets": 1, "tx_bytes": 7, "tx_packets": 1}, ethernet=False
        ).up
        == 7
    )


def test_the_kernels_answer_reads_a_real_connections_bytes_and_round_trips() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname()) as client:  # fmt: skip
        accepted, _ = server.accept()
        with accepted:
            client.sendall(b"x" * 100_000)
            received = 0
            while received < 100_000:
                received += len(accepted.recv(65536))
            accepted.sendall(b"y")
            client.recv(1)  # the acknowledgements are back by now
            (cookie,) = struct.unpack("=Q", client.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))
            (peer_cookie,) = struct.unpack(
                "=Q", accepted.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8)
            )
            paths = tcp_paths_here()
    sent, got = paths[cookie], paths[peer_cookie]
    assert sent.acked >= 100_000 and got.received >= 100_000, (sent, got)
    assert 0 < sent.min_rtt_us <= sent.rtt_us < 1_000_000, sent
    assert sent.local and got.local  # loopback: never through the modem, left out of the delay


def test_the_internet_links_are_those_default_routes_leave_by() -> None:
    require_root()
    with netns_pair() as pair, entered_netns(pair.host_ns):
        ipr = IPRoute()
        try:
            index = ipr.link_lookup(ifname=pair.host_if)[0]
            assert (
                internet_links(ipr) == set()
            )  # the pair has no default route: the estimate counts every uplink
            ipr.route("add", dst="0.0.0.0/0", gateway=pair.peer_addr)
            assert internet_links(ipr) == {index}
        finally:
            ipr.close()
