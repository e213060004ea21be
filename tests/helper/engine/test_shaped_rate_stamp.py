"""A limited application's listed rate, from what its limit let through, is
timed by when that count was read (recording stand-ins for the kernel; the
real path: tests/e2e/test_upload_limit_keeps_downloads.py).

The tick read the shaper's counts at its end, after the classes, caps and
tags, but stamped them with the time it read the socket counters at its
start. A tick slow in between (the machine loaded: netlink, namespaces) put
more bytes over the same seconds: a CI run listed a 100 KiB/s download limit
at 135.9 kB/s while the sink read it held."""

from __future__ import annotations

import pytest
from chadthrottle.contract import BackendInfo, Direction

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import (
    Classes,
    RecordingDatapath,
    RecordingShaper,
    SettableClock,
    Traffic,
    curl_index,
)

CURL = "exe:/usr/bin/curl"
LIMIT_BPS = 100 * 1024


class SlowShaper(RecordingShaper):
    """Its classes let LIMIT_BPS through by the clock; a reconcile (part of
    each tick's work before the counts are read) takes `slow_s` of it."""

    def __init__(self, clock: SettableClock) -> None:
        super().__init__()
        self.clock = clock
        self.slow_s = 0.0

    def reconcile(self, wanted: dict[Direction, Classes]) -> None:
        self.clock.now += self.slow_s
        super().reconcile(wanted)

    def sent_bytes(self, direction: Direction) -> dict[int, int]:
        return {slot: int(LIMIT_BPS * self.clock.now) for slot in self.wanted.get(direction, {})}


def test_a_slow_tick_does_not_list_a_limited_rate_over_what_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index = curl_index(monkeypatch)
    clock = SettableClock(1000.0)
    datapath, shaper = RecordingDatapath(), SlowShaper(clock)
    datapath.traffic = [Traffic(owner_tgid=10, rx_bytes=0)]
    engine = AdminEngine(datapath, shaper, index, lambda active: [BackendInfo("tc", True, "", ())],
                         clock=clock)  # fmt: skip
    engine.tick()
    engine.set_limit(CURL, Direction.DOWN, LIMIT_BPS, 0)
    for _ in range(2):  # the class's first counts: no rate from them yet
        clock.now += 1.0
        engine.tick()
    listed: list[float] = []
    for slow_s in (0.0, 0.0, 0.6, 0.0, 0.0, 0.6, 0.3, 0.0, 0.0):
        clock.now += 1.0
        shaper.slow_s = slow_s
        engine.tick()
        (app,) = [a for a in engine.list_applications() if a.id == CURL]
        if not app.down_measuring:
            listed.append(app.down_bps)
    assert len(listed) >= 6
    assert all(rate == pytest.approx(LIMIT_BPS, rel=0.01) for rate in listed), listed
