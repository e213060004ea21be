"""The upload's bytes past our shaper (path_delay.sent_beyond_us): each connection's
bytes in flight from the kernel's tcp_info, less our upload queue. A reading for issue
16's upload raise (docs/benchmarks/priorities.md, est25)."""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
import time

from chadthrottle.helper.kernel.path_delay import (
    FRAME_PER_PAYLOAD,
    TcpPath,
    parse_path,
    sent_beyond_us,
    tcp_paths_here,
)
from chadthrottle.helper.kernel.socket_diag import INET_DIAG_INFO
from pyroute2 import IPRoute

from tests.support.netns import entered_netns, netns_pair
from tests.support.requirements import require_root

SO_COOKIE = 57  # socket(7): the id sock_diag reports
# the host side's queue (bytes): seconds of it, so that nothing is dropped while it is read (a
# segment dropped there that its sender was not told of counts as in flight: path_delay says so)
TBF_LIMIT = 2_000_000
WAIT_S = 60.0  # for the sender's window to fill the queue: generous, a condition ends it


def _message(cookie: int, info: bytes) -> bytes:
    header = bytearray(72)
    header[0] = socket.AF_INET
    header[8:12], header[24:28] = socket.inet_aton("192.0.2.1"), socket.inet_aton("198.51.100.7")
    struct.pack_into("=Q", header, 44, cookie)
    attribute = struct.pack("=HH", 4 + len(info), INET_DIAG_INFO) + info
    return bytes(header) + attribute + b"\0" * (-len(attribute) % 4)


def test_in_flight_is_the_kernels_packets_in_flight_in_segments() -> None:
    info = bytearray(232)
    struct.pack_into("=I", info, 16, 1448)  # snd_mss
    struct.pack_into("=IIII", info, 24, 40, 6, 3, 2)  # unacked, sacked, lost, retrans
    struct.pack_into("=I", info, 148, 10_000)  # min_rtt: a kernel that has it
    parsed = parse_path(_message(5, bytes(info)))
    assert parsed is not None and parsed[1].in_flight == (40 - 6 - 3 + 2) * 1448, parsed


def test_what_is_beyond_us_leaves_out_local_connections_and_our_queue() -> None:
    paths = {1: TcpPath(0, 0, 0, 0, 1, in_flight=144_800),
             2: TcpPath(0, 0, 0, 0, 1, in_flight=14_480),
             3: TcpPath(0, 0, 0, 0, 1, local=True, in_flight=1_000_000)}  # fmt: skip
    frames = round(159_280 * FRAME_PER_PAYLOAD)
    assert sent_beyond_us(paths, 120_000) == frames - 120_000
    assert sent_beyond_us({}, 0) == 0


def _queue(ipr: IPRoute, index: int) -> tuple[int, int]:
    """The device's root qdisc's backlog (bytes) and drops, read in-process: a millisecond
    after the dump."""
    for qdisc in ipr.get_qdiscs(index=index):
        if qdisc["parent"] == 0xFFFFFFFF:
            queue = qdisc.get_attr("TCA_STATS2").get_attr("TCA_STATS_QUEUE")
            return int(queue["backlog"]), int(queue["drops"])
    raise AssertionError("no root qdisc")


def test_a_real_uploads_bytes_in_flight_are_those_queued_on_its_way() -> None:
    """A bulk upload through a slow queue on the host's side of a veth (tbf, 2 Mbit/s):
    its bytes in flight are the queue's (the veth's round trip is microseconds), so what
    is beyond that queue reads about nothing, and without the queue subtracted about all
    of it. Read with 30 KB queued at least, three times (the two reads are a millisecond
    apart: the queue moves by a packet or two)."""
    require_root()
    with netns_pair() as pair:
        subprocess.run(["tc", "-n", pair.host_ns, "qdisc", "add", "dev", pair.host_if, "root",
                        "tbf", "rate", "2mbit", "burst", "4k", "limit", str(TBF_LIMIT)], check=True)  # fmt: skip
        with entered_netns(pair.peer_ns):
            server = socket.create_server((pair.peer_addr, 0))
        stop = threading.Event()
        with server, entered_netns(pair.host_ns):
            client = socket.create_connection(server.getsockname())
            client.settimeout(0.5)  # a blocked send sees the stop within this
            accepted, _ = server.accept()

            def drain() -> None:
                try:
                    while accepted.recv(1 << 16):
                        pass
                except OSError:
                    pass  # the test's end

            def send() -> None:
                chunk = b"x" * (1 << 16)
                try:
                    while not stop.is_set():
                        client.sendall(chunk)
                except OSError:
                    pass

            threads = [threading.Thread(target=drain), threading.Thread(target=send)]
            for thread in threads:
                thread.start()
            ipr = IPRoute()
            try:
                index = ipr.link_lookup(ifname=pair.host_if)[0]
                (cookie,) = struct.unpack("=Q", client.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))
                readings: list[tuple[int, int, int]] = []
                deadline = time.monotonic() + WAIT_S
                while len(readings) < 3 and time.monotonic() < deadline:
                    paths = tcp_paths_here()
                    queued, dropped = _queue(ipr, index)
                    assert dropped == 0, dropped  # TBF_LIMIT says why
                    if queued >= 30_000 and cookie in paths:
                        mine = {cookie: paths[cookie]}
                        readings.append(
                            (queued, sent_beyond_us(mine, queued), sent_beyond_us(mine, 0))
                        )
                    time.sleep(0.05)
            finally:
                ipr.close()
                stop.set()
                accepted.shutdown(socket.SHUT_RDWR)  # the drain's recv ends now
                for thread in threads:
                    thread.join(timeout=30)
                client.close()
                accepted.close()
    assert len(readings) == 3, readings
    for queued, beyond, all_of_it in readings:
        assert abs(beyond) <= 12 * 1514, readings  # a few packets moved between the reads
        assert all_of_it >= queued - 12 * 1514, readings
