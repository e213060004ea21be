"""The engine's tick at a quota's turns (recording stand-ins for the kernel;
the real kernel path: tests/e2e/test_block_and_quota.py): what the classes
and the receive-window caps hold follows the gates' turn in the same tick."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from chadthrottle.contract import BackendInfo, Direction
from chadthrottle.helper.engine.api import SetQuota
from chadthrottle.helper.engine.quotas import Period, Quota
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.processes import ProcessInfo
from chadthrottle.helper.kernel.gates import OPEN, GateSetting

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import RecordingDatapath, RecordingShaper

BERLIN = ZoneInfo("Europe/Berlin")
CURL = "exe:/usr/bin/curl"
DOWN = Direction.DOWN
BUDGET, THEN_BPS = 5_000_000, 1_000_000


class _Gates:
    """helper/kernel/gates.py as the engine sees it: settings, and what the
    "kernel" counted since each was set (a test sets counted)."""

    def __init__(self) -> None:
        self.settings: dict[tuple[int, Direction], GateSetting] = {}
        self.counted: dict[tuple[int, Direction], int] = {}

    def set(self, slot: int, direction: Direction, setting: GateSetting) -> None:
        self.counted[(slot, direction)] = 0
        if setting == OPEN:
            self.settings.pop((slot, direction), None)
        else:
            self.settings[(slot, direction)] = setting

    def used_since_set(self, slot: int, direction: Direction) -> tuple[int, int] | None:
        setting = self.settings.get((slot, direction))
        if setting is None or setting.blocked:
            return None
        return self.counted[(slot, direction)], setting.budget_bytes

    def renew(self) -> None:
        pass


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _down_rates(shaper: RecordingShaper) -> list[int]:
    return [spec.rate_bps for spec in shaper.wanted.get(DOWN, {}).values()]


def test_a_throttled_quotas_new_period_lifts_its_then_rate_in_the_tick_that_begins_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Until 2026-12-06 the tick made classes and caps before the gates saw the
    new period: the then-rate's class and window clamp held one more tick (up
    to a second at the then-rate) while the listing already said the budget
    was whole and unlimited."""
    processes = {10: ProcessInfo(10, 1, 1000, "/usr/bin/curl", ("curl",), "curl", "/")}
    monkeypatch.setattr("chadthrottle.helper.engine.tracking.read_process", processes.get)
    monkeypatch.setattr(
        "chadthrottle.helper.engine.tracking.process_exists", processes.__contains__
    )
    index = ApplicationIndex(
        list_pids=lambda: list(processes), read=processes.get, read_exe=lambda pid: "/usr/bin/curl"
    )
    datapath, shaper, gates = RecordingDatapath(), RecordingShaper(), _Gates()
    datapath.gates = gates  # type: ignore[assignment]
    clock = _Clock(1_799_236_800.0)  # 2027-01-06 13:00 in Berlin, a Wednesday
    engine = AdminEngine(datapath, shaper, index, lambda active: [BackendInfo("tc", True, "", ())],
                         wall_clock=clock, zone=BERLIN)  # fmt: skip
    engine.tick()
    quota = Quota(BUDGET, Period.DAY, 0, THEN_BPS)
    assert engine.apply_changes([SetQuota(CURL, (DOWN,), quota)]) == [CURL]
    ((slot, _),) = gates.settings
    assert gates.settings[(slot, DOWN)] == GateSetting(budget_bytes=BUDGET)
    assert _down_rates(shaper) == [] and slot not in datapath.caps  # a budget left: unlimited

    gates.counted[(slot, DOWN)] = BUDGET + 100  # the kernel passed the budget: it refuses now
    engine.tick()  # spent: the gate stays shut until the shaper has the then-rate
    assert (slot, DOWN) in gates.settings
    engine.tick()  # the then-rate in place, the gate opens to it
    assert (slot, DOWN) not in gates.settings
    assert _down_rates(shaper) == [THEN_BPS] and datapath.caps[slot].window_bps > 0
    assert engine.list_applications()[0].down_limit_bps == THEN_BPS

    clock.now += 86_400  # the next day: a new period
    engine.tick()
    assert gates.settings[(slot, DOWN)] == GateSetting(budget_bytes=BUDGET)
    listed = engine.list_applications()[0]
    assert listed.down_limit_bps == 0 and listed.down_quota_left_bytes == BUDGET
    assert _down_rates(shaper) == [], "the then-rate's class held into the new period"
    assert slot not in datapath.caps, "the then-rate's window clamp held into the new period"
