"""Rules a tick puts in force after its counter read (the stored ones the
start restores, at its first tick; a schedule switching) are measured from a
read after the tick wrote them, as a caller's change is, not from the tick's
own read: the bytes between that read and the write passed before the rules
held (recording stand-ins for the kernel; the real path:
tests/e2e/test_rates_after_restart_under_block.py, restart36).

Before, the start's first tick took its read as the restored rules' start:
a blocked download that ran while the helper was down (a clean stop lifts
its block, a killed helper's gates lapse) was listed at the bytes between
that read and the gate's write for the two listings after (gui36: 186, and
371 then 188 KB/s, after a clean and a killed restart)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from chadthrottle.contract import ADMIN_OWNER, ApplicationInfo, BackendInfo, Direction
from chadthrottle.helper.engine.api import AddSchedule
from chadthrottle.helper.engine.limits import Limit, LimitTable
from chadthrottle.helper.kernel.gates import GateSetting

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import (
    RecordingDatapath,
    RecordingGates,
    RecordingShaper,
    SettableClock,
    Traffic,
    curl_index,
)

BERLIN = ZoneInfo("Europe/Berlin")
CURL = "exe:/usr/bin/curl"
DOWN = Direction.DOWN
DOWNLOAD_BPS = 2_000_000  # while nothing blocks it
LEAK = 300_000  # counted between a tick's read and the block it then wrote
LEAK_S = 0.1  # how long after the read the block was written


class LeakingGates(RecordingGates):
    """A block's first write comes LEAK_S after the tick's counter read, and
    LEAK more download was counted meanwhile. Nothing after."""

    def __init__(self, datapath: RecordingDatapath, stage: Stage) -> None:
        super().__init__()
        self.datapath, self.stage = datapath, stage
        self.rx = 0

    def set(self, slot: int, direction: Direction, setting: GateSetting) -> None:
        if setting.blocked and direction is DOWN and (slot, direction) not in self.settings:
            self.rx += LEAK
            self.stage.now += LEAK_S
            self.datapath.traffic = [Traffic(10, rx_bytes=self.rx)]
        super().set(slot, direction, setting)

    def blocked(self) -> bool:
        return any(s.blocked for (_, d), s in self.settings.items() if d is DOWN)


class Stage:
    """The engine over recording ports, from its first tick; second() moves
    one second on: the download counted while no block holds it, the tick run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, rules: LimitTable | None = None) -> None:
        self.datapath, self.shaper = RecordingDatapath(), RecordingShaper()
        self.gates = LeakingGates(self.datapath, self)
        self.datapath.gates = self.gates  # type: ignore[assignment]
        self.now = 0.0
        self.wall_clock = SettableClock(1_799_236_800.0)  # Wednesday 2027-01-06, 13:00 in Berlin
        self.engine = AdminEngine(
            self.datapath, self.shaper, curl_index(monkeypatch),
            lambda active, viewer_pids=None: [BackendInfo("tc", True, "", ())],
            clock=lambda: self.now,
            wall_clock=self.wall_clock, zone=BERLIN, rules=rules,
        )  # fmt: skip
        self.datapath.traffic = [Traffic(10, rx_bytes=0)]

    def second(self) -> ApplicationInfo:
        self.now = float(int(self.now) + 1)  # ticks a second apart
        self.wall_clock.now += 1.0
        if not self.gates.blocked():
            self.gates.rx += DOWNLOAD_BPS
        self.datapath.traffic = [Traffic(10, rx_bytes=self.gates.rx)]
        self.engine.tick()
        (listed,) = self.engine.list_applications()
        return listed


def test_a_restored_block_lists_no_bytes_from_before_its_gate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The start's first tick: measuring (no earlier read), then 0 B/s."""
    table = LimitTable()
    table.set((CURL, ADMIN_OWNER), DOWN, Limit(0, 0, blocked=True))
    stage = Stage(monkeypatch, table)
    listed = [stage.second() for _ in range(4)]
    assert all(app.down_blocked for app in listed)
    assert listed[0].down_measuring
    rates = [app.down_bps for app in listed[1:]]
    assert rates == [0.0] * 3, f"bytes from before the block listed under it: {rates}"
    assert listed[-1].rx_bytes == DOWNLOAD_BPS + LEAK  # in the totals: they passed


def test_a_schedules_block_lists_no_bytes_from_before_its_gate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A schedule switching to a block at a tick: measuring, then 0 B/s."""
    stage = Stage(monkeypatch)
    stage.second()
    stage.engine.apply_changes(
        [AddSchedule(CURL, frozenset({2}), 13 * 60 + 2, 13 * 60 + 5, 0, 0, blocked=(DOWN,))]
    )
    assert stage.second().down_bps == DOWNLOAD_BPS
    stage.wall_clock.now += 120  # into the schedule
    listed = [stage.second() for _ in range(3)]
    assert all(app.down_blocked for app in listed)
    assert listed[0].down_measuring
    rates = [app.down_bps for app in listed[1:]]
    assert rates == [0.0] * 2, f"bytes from before the block listed under it: {rates}"
