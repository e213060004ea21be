"""A blocked direction's listed rate is what its gate let through: the bare TCP
acknowledgements of the application's transfer the other way, counted in its
socket counters (recording stand-ins for the kernel; the real path:
tests/e2e/test_gui_blocked_upload_rate.py).

A limited direction's rate is taken from its tc class (RateMeter.use_shaped),
which the gate's refusals never reach and its acknowledgements bypass: under
a block that class passes nothing. Until 2026-12-06 a blocked upload beneath
a rate (its own, or a used-up quota's then-rate) was listed at 0 B/s from it
while its counters grew by the acknowledgements of its 2 MB/s download
(gui17's measurement: 3.06-3.21 KB/s listed with a block alone, 0 with the
quota beneath)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

import pytest
from chadthrottle.contract import (
    ADMIN_OWNER,
    MIN_RATE_BPS,
    NOT_MET_PREFIX,
    ApplicationInfo,
    BackendInfo,
    Direction,
)
from chadthrottle.helper.engine.api import LimitChange, SetBlocked, SetLimit, SetQuota
from chadthrottle.helper.engine.overshoot import OVERSHOOT_TICKS
from chadthrottle.helper.engine.quotas import Period, Quota

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
CURL, USER = "exe:/usr/bin/curl", 1000  # curl_index's process runs as uid 1000
UP = Direction.UP
BUDGET, THEN_BPS, RATE_BPS = 300_000, 100_000, 50_000
DOWNLOAD_BPS, ACK_BPS = 2_000_000, 3_200  # the download, and its acknowledgements' bytes/s


class Stage:
    """The engine over recording ports; second() moves one second on: the
    download and its acknowledgements counted, the tick run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.datapath, self.shaper, self.gates = (
            RecordingDatapath(),
            RecordingShaper(),
            RecordingGates(),
        )
        self.datapath.gates = self.gates  # type: ignore[assignment]
        self.now = 0.0
        self.engine = AdminEngine(
            self.datapath, self.shaper, curl_index(monkeypatch),
            lambda active: [BackendInfo("tc", True, "", ())], clock=lambda: self.now,
            wall_clock=SettableClock(1_799_236_800.0), zone=BERLIN,
        )  # fmt: skip
        self.tx = 0
        self.second()

    def second(self) -> ApplicationInfo:
        self.now += 1.0
        self.tx += ACK_BPS
        self.datapath.traffic = [
            Traffic(10, rx_bytes=int(DOWNLOAD_BPS * self.now), tx_bytes=self.tx)
        ]
        self.engine.tick()
        (listed,) = self.engine.list_applications()
        return listed

    def change(self, *changes: LimitChange) -> None:
        assert self.engine.apply_changes(list(changes)) == [CURL] * len(changes)

    def spend_quota(self) -> None:
        """The kernel counted past the budget; the ticks follow it (a then-rate's gate opens)."""
        ((slot, _),) = [k for k, s in self.gates.settings.items() if s.budget_bytes is not None]
        self.gates.counted[(slot, UP)] = BUDGET + 100
        for _ in range(3):
            self.second()


def _own_block_over_a_spent_throttling_quota(stage: Stage) -> None:
    stage.change(SetQuota(CURL, (UP,), Quota(BUDGET, Period.DAY, 0, THEN_BPS)))
    stage.spend_quota()
    stage.change(SetBlocked(CURL, (UP,), True))


def _admin_block_over_a_users_spent_throttling_quota(stage: Stage) -> None:
    stage.change(SetQuota(CURL, (UP,), Quota(BUDGET, Period.DAY, 0, THEN_BPS), owner=USER))
    stage.spend_quota()
    stage.change(SetBlocked(CURL, (UP,), True, owner=ADMIN_OWNER))


def _a_spent_quota_that_blocks_over_ones_own_rate(stage: Stage) -> None:
    stage.change(SetLimit(CURL, UP, RATE_BPS, 0), SetQuota(CURL, (UP,), Quota(BUDGET, Period.DAY)))
    stage.spend_quota()


def _own_block_over_ones_own_rate(stage: Stage) -> None:
    stage.change(SetLimit(CURL, UP, RATE_BPS, 0), SetBlocked(CURL, (UP,), True))


@pytest.mark.parametrize(
    "block",
    [
        _own_block_over_a_spent_throttling_quota,
        _admin_block_over_a_users_spent_throttling_quota,
        _a_spent_quota_that_blocks_over_ones_own_rate,
        _own_block_over_ones_own_rate,
    ],
)
def test_a_blocked_direction_beneath_a_rate_is_listed_at_what_its_gate_let_through(
    monkeypatch: pytest.MonkeyPatch, block: Callable[[Stage], None]
) -> None:
    stage = Stage(monkeypatch)
    block(stage)
    # the rate's class, which the gate's refusals never reach, passes nothing
    stage.shaper.sent = {slot: 123_456 for slot in set(stage.datapath.process_slots.values())}
    listed: Sequence[ApplicationInfo] = [stage.second() for _ in range(5)]
    assert all(app.up_blocked for app in listed)
    rates = [app.up_bps for app in listed if not app.up_measuring]
    assert len(rates) >= 4, listed
    assert rates == [pytest.approx(ACK_BPS)] * len(rates), "not what the gate let through"


def test_a_blocks_acknowledgements_are_not_a_rate_beneath_it_not_met(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The acknowledgements a block lets through are not held to the rate
    beneath it (they bypass its class and policer even unblocked): 3.2 KB/s
    of them under a block over 1 KB/s is no limit measured above, during the
    block nor once it is lifted."""
    stage = Stage(monkeypatch)
    stage.change(SetLimit(CURL, UP, MIN_RATE_BPS, 0), SetBlocked(CURL, (UP,), True))
    listed = [stage.second() for _ in range(OVERSHOOT_TICKS + 2)]
    assert listed[-1].up_bps == pytest.approx(ACK_BPS) and listed[-1].up_blocked
    stage.change(SetBlocked(CURL, (UP,), False))
    (unblocked,) = stage.engine.list_applications()
    assert not unblocked.up_blocked and unblocked.up_limit_bps == MIN_RATE_BPS
    assert NOT_MET_PREFIX not in unblocked.up_limit_problem, unblocked.up_limit_problem
