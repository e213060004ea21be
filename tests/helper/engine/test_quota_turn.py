"""The engine's tick at a quota's turns (recording stand-ins for the kernel;
the real kernel path: tests/e2e/test_block_and_quota.py): what the classes
and the receive-window caps hold follows the gates' turn in the same tick."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from chadthrottle.contract import ApplicationInfo, BackendInfo, Direction
from chadthrottle.helper.engine.api import SetQuota
from chadthrottle.helper.engine.quotas import Period, Quota
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.processes import ProcessInfo
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


@pytest.mark.parametrize("between", ["a new process", "an estimated link"])
def test_a_quota_spent_when_a_new_process_is_seen_is_measuring_from_then(
    monkeypatch: pytest.MonkeyPatch, between: str
) -> None:
    """A new socket owner of a limited application makes the engine write its
    gates then (note_new_owner), and a quota found spent there turns then. Its
    rate restarted only at the next tick: until it, the blocked download was
    listed at the 1 MB/s of the seconds before, then measuring through the
    tick, whose rate it could have read from the turn on. So did a new
    estimate of the link's capacity (set_estimated_capacity writes the gates)."""
    processes = {
        pid: ProcessInfo(pid, 1, 1000, "/usr/bin/curl", ("curl",), "curl", "/") for pid in (10, 11)
    }
    monkeypatch.setattr("chadthrottle.helper.engine.tracking.read_process", processes.get)
    monkeypatch.setattr(
        "chadthrottle.helper.engine.tracking.process_exists", processes.__contains__
    )
    index = ApplicationIndex(list_pids=lambda: [10], read=processes.get,
                             read_exe=lambda pid: "/usr/bin/curl")  # fmt: skip
    datapath, gates, now = RecordingDatapath(), RecordingGates(), [0.0]
    datapath.gates = gates  # type: ignore[assignment]
    engine = AdminEngine(datapath, RecordingShaper(), index,
                         lambda active: [BackendInfo("tc", True, "", ())], clock=lambda: now[0],
                         wall_clock=SettableClock(1_799_236_800.0), zone=BERLIN)  # fmt: skip
    engine.apply_changes([SetQuota(CURL, (DOWN,), Quota(BUDGET, Period.DAY))])
    engine.set_link_capacity(0, 0, True)  # estimated: none yet
    ((slot, _),) = gates.settings

    def at(second: float, rx: int) -> ApplicationInfo:
        now[0] = second
        datapath.traffic = [Traffic(10, rx)]
        if second.is_integer():
            engine.tick()
        return engine.list_applications()[0]

    for second in range(3):
        assert at(float(second), second * 1_000_000).down_bps == (1_000_000 if second else 0)
    gates.counted[(slot, DOWN)] = BUDGET + 100  # spent: the kernel refuses since
    at(2.5, 2_500_000)
    if between == "a new process":  # curl's new child: its gates written now, the quota spent
        engine.note_new_owner(11)
    else:
        engine.set_estimated_capacity(DOWN, 5_000_000)
    listed = engine.list_applications()[0]
    assert listed.down_blocked
    assert (listed.down_measuring, listed.down_bps) == (True, 0), "the rate from before the turn"
    listed = at(3.0, 2_600_000)
    assert (listed.down_measuring, listed.down_bps) == (False, pytest.approx(100_000 / 0.5))
