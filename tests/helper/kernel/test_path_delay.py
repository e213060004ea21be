"""What the capacity estimator reads (helper/kernel/path_delay.py), and the
estimate the helper's LinkEstimation hands its engine against a real
bottleneck: a modem in miniature (bench/bottleneck.py: tbf with a deep
buffer a namespace away) and a bulk TCP upload through it. Cheap: no
datapath, no helper process; a few seconds of traffic."""

from __future__ import annotations

import struct
import subprocess
import time

from pyroute2 import IPRoute

from bench.bottleneck import modem
from chadthrottle.contract import Direction, LinkShapingInfo
from chadthrottle.helper.engine.capacity_estimate import RISE_S
from chadthrottle.helper.engine.estimation import LinkEstimation
from chadthrottle.helper.kernel.path_delay import (
    BUSY_BYTES, TcpPath, PathSampler, l3_bytes, link_counters, parse_path, queueing_delay_s, shaper_wait_s,
)
from chadthrottle.helper.kernel.socket_diag import INET_DIAG_INFO
from tests.support.netns import NetnsPair, entered_netns, netns_pair, start_stream
from tests.support.requirements import require_root

UP, DOWN = Direction.UP, Direction.DOWN
MODEM_UP_BPS = 250_000  # 2 Mbit/s, L2 as tbf counts
BUFFER_MS = 300.0
CONVERGE_S = 10.0


def _message(cookie: int, info: bytes) -> bytes:
    header = bytearray(72)
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
    assert parse_path(_message(78, _tcp_info(1, 2, 3, 4, 5)[:140])) is None  # tcp_info without min_rtt (old kernel)
    assert parse_path(b"\0" * 40) is None


def test_the_delay_is_the_lowest_rise_of_the_busy_connections_less_our_own_queue() -> None:
    before = {1: TcpPath(0, 0, 0, 0, 10_000), 2: TcpPath(0, 0, 0, 0, 20_000), 3: TcpPath(0, 0, 0, 0, 1_000)}
    now = {
        1: TcpPath(BUSY_BYTES, 0, 90_000, 0, 10_000),  # sending: 80 ms over its minimum
        2: TcpPath(0, BUSY_BYTES, 0, 70_000, 20_000),  # receiving: 50 ms, of which 30 wait in our download queue
        3: TcpPath(BUSY_BYTES - 1, 0, 900_000, 0, 1_000),  # not busy: left out
        4: TcpPath(10**9, 0, 10_000, 0, 10_000),  # new since the last dump: left out
    }
    delay = queueing_delay_s(before, now, {DOWN: 0.030})
    assert delay is not None and abs(delay - 0.020) < 1e-9
    assert queueing_delay_s(before, {1: TcpPath(10, 0, 90_000, 0, 10_000)}, {}) is None  # nothing busy
    assert queueing_delay_s(before, now, {UP: 1.0, DOWN: 1.0}) == 0.0  # never below nothing


def test_link_counters_are_l3() -> None:
    counted = l3_bytes({"rx_bytes": 15_140, "rx_packets": 10, "tx_bytes": 1500, "tx_packets": 1}, ethernet=True)
    assert (counted.down, counted.up) == (15_000, 1486)
    assert l3_bytes({"rx_bytes": 5, "rx_packets": 1, "tx_bytes": 7, "tx_packets": 1}, ethernet=False).up == 7


class FakeEngine:
    """The engine's seam (link_shaping, set_estimated_capacity), recording the estimates handed over."""

    def __init__(self, shaping: LinkShapingInfo) -> None:
        self.shaping = shaping
        self.estimated: dict[Direction, int | None] = {}

    def link_shaping(self) -> LinkShapingInfo:
        return self.shaping

    def set_estimated_capacity(self, direction: Direction, bps: int | None) -> None:
        self.estimated[direction] = bps


def _estimate_through(pair: NetnsPair, seconds: float) -> tuple[list[FakeEngine], list[float]]:
    """Tick each second for up to `seconds`, as the helper does in its own
    namespace (here the host's): the helper's LinkEstimation, estimating from
    nothing and from 3x too high, and the bare sampler's delay beside it.
    The estimates are not applied: the modem stays the bottleneck."""
    engines = [FakeEngine(LinkShapingInfo(estimate=True)),
               FakeEngine(LinkShapingInfo(estimate=True, down_set_bps=3 * MODEM_UP_BPS, up_set_bps=3 * MODEM_UP_BPS))]
    delays: list[float] = []
    with entered_netns(pair.host_ns):
        estimations = [LinkEstimation() for _ in engines]
        ipr = IPRoute()
        try:
            sampler = PathSampler(lambda: link_counters(ipr), lambda: shaper_wait_s(ipr, {}))
            sampler.sample()
            for estimation, engine in zip(estimations, engines):
                estimation.tick(engine)  # the setting seen: starts
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                time.sleep(1.0)
                _, delay, _ = sampler.sample()
                delays.append(-1.0 if delay is None else delay)
                for estimation, engine in zip(estimations, engines):
                    estimation.tick(engine)
                if all(_in_band(engine.estimated.get(UP)) for engine in engines):
                    break
        finally:
            ipr.close()
            for estimation in estimations:
                estimation.close()
    return engines, delays


def _in_band(capacity: int | None) -> bool:
    true = MODEM_UP_BPS * 1500 / 1514
    return capacity is not None and 0.7 * true <= capacity <= 1.1 * true


def test_the_estimate_finds_a_real_modems_upload_rate_from_nothing_and_from_too_high() -> None:
    require_root()
    with netns_pair() as pair, modem(pair, 4 * MODEM_UP_BPS, MODEM_UP_BPS, BUFFER_MS) as internet:
        # the upload's server behind the modem: a pair whose peer is the internet's namespace
        far = NetnsPair(peer_ns=internet.netns, host_ns=pair.host_ns, peer_if="", host_if=pair.host_if,
                        peer_addr=internet.addr, host_addr=pair.host_addr, peer_addr6="", host_addr6="")  # fmt: skip
        streams = [start_stream(far, 7300 + i, "up", seconds=30) for i in range(2)]
        try:
            engines, delays = _estimate_through(pair, CONVERGE_S)
        finally:
            for stream in streams:
                stream.stop()
        capacities = [engine.estimated.get(UP) for engine in engines]
        assert max(delays) > RISE_S, f"no queue seen at the modem: {delays}"
        assert all(_in_band(c) for c in capacities), (capacities, delays)
        assert DOWN not in engines[0].estimated  # acknowledgements only: nothing learnt about the download
    leftover = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    assert not {pair.host_ns, pair.peer_ns, internet.netns} & set(leftover)
