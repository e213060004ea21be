"""The engine's tick at a quota's turns (recording stand-ins for the kernel;
the real kernel path: tests/e2e/test_block_and_quota.py): what the classes
and the receive-window caps hold follows the gates' turn in the same tick."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from chadthrottle.contract import BackendInfo, Direction
from chadthrottle.helper.engine.api import SetQuota
from chadthrottle.helper.engine.quotas import Period, Quota
from chadthrottle.helper.kernel.gates import GateSetting

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import (
    RecordingDatapath,
    RecordingGates,
    RecordingShaper,
    SettableClock,
    curl_index,
)

BERLIN = ZoneInfo("Europe/Berlin")
CURL = "exe:/usr/bin/curl"
DOWN = Direction.DOWN
BUDGET, THEN_BPS = 5_000_000, 1_000_000


def _down_rates(shaper: RecordingShaper) -> list[int]:
    return [spec.rate_bps for spec in shaper.wanted.get(DOWN, {}).values()]


def test_a_throttled_quotas_new_period_lifts_its_then_rate_in_the_tick_that_begins_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Until 2026-12-06 the tick made classes and caps before the gates saw the
    new period: the then-rate's class and window clamp held one more tick (up
    to a second at the then-rate) while the listing already said the budget
    was whole and unlimited."""
    index = curl_index(monkeypatch)
    datapath, shaper, gates = RecordingDatapath(), RecordingShaper(), RecordingGates()
    datapath.gates = gates  # type: ignore[assignment]
    clock = SettableClock(1_799_236_800.0)  # 2027-01-06 13:00 in Berlin, a Wednesday
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
