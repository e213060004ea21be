"""What the listing and the tick's watches take a gate to hold is what the
kernel holds, not what the rule asks (recording stand-ins for the kernel;
the real datapath's refused write: tests/helper/kernel/test_gate_write_failure.py).

- A block whose gate the kernel refused is open (traffic fails open): the
  rate beneath it holds the direction, and is read from its class.
- A used-up quota that then limits is blocked until its gate is opened to
  its then-rate, a tick after the shaper is given it: listed as blocked
  meanwhile, not as limited.
- A quota whose count cannot be read stops nothing else in the tick, is
  logged once, and is listed as the kernel holds it: as last set, what is
  left of it not known (not holding from a new period on).
- A write that would open a gate (an unblock, a quota lifted, a quota's new
  period) and that the kernel refuses leaves the old setting in the gate,
  unrenewed, until its lease lapses: listed as that old setting (blocked)
  with a problem saying so until then, open after; a caller's change is
  refused with a KernelError."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from chadthrottle.contract import (
    ADMIN_OWNER,
    HELD_BEFORE,
    ApplicationInfo,
    BackendInfo,
    Direction,
    RuleInfo,
)
from chadthrottle.helper.engine.api import (
    AddSchedule,
    ClearQuota,
    LimitChange,
    SetBlocked,
    SetLimit,
    SetQuota,
)
from chadthrottle.helper.engine.gating import Gating
from chadthrottle.helper.engine.limits import Limit, LimitTable, default_burst_bytes
from chadthrottle.helper.engine.quotas import Period, Quota
from chadthrottle.helper.errors import KernelError
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.kernel.gates import LEASE_S, GateSetting

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
DOWN, UP = Direction.DOWN, Direction.UP
BUDGET, THEN_BPS, RATE_BPS = 300_000, 100_000, 50_000
SENT_BPS = (
    1_000_000  # what the application hands its sockets each second (UDP: the class drops most)
)


class RefusingGates(RecordingGates):
    """Writes of the directions in refuse_writes raise, and reads of the
    counts of those in refuse_reads: a kernel refusing that one gate. Unlike
    helper/kernel/gates.SlotGates, the count stays readable after a refused
    write: SlotGates forgets a gate's count once a write of it raised (None
    then), and its writes raise only once the map is closed, reads too."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse_writes: set[Direction] = set()
        self.refuse_gates: set[tuple[int, Direction]] = set()  # one slot's gate alone
        self.refuse_reads: set[Direction] = set()
        self.refused: list[GateSetting] = []  # the writes refused, in order

    def set(self, slot: int, direction: Direction, setting: GateSetting) -> None:
        if direction in self.refuse_writes or (slot, direction) in self.refuse_gates:
            self.refused.append(setting)
            raise OSError("refused by the test")
        super().set(slot, direction, setting)

    def used_since_set(self, slot: int, direction: Direction) -> tuple[int, int] | None:
        if direction in self.refuse_reads:
            raise OSError("count unreadable in the test")
        return super().used_since_set(slot, direction)


class Stage:
    """The engine over recording ports; second() moves one second on: the
    application's sockets count SENT_BPS up, its class passed shaped_bps."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, rules: LimitTable | None = None,
                 refuse_writes: set[Direction] | None = None,
                 index: ApplicationIndex | None = None) -> None:  # fmt: skip
        """index: the processes (default: curl_index's one curl of uid 1000)."""
        self.datapath, self.shaper, self.gates = (
            RecordingDatapath(),
            RecordingShaper(),
            RefusingGates(),
        )
        self.gates.refuse_writes = refuse_writes or set()
        self.datapath.gates = self.gates  # type: ignore[assignment]
        self.now, self.shaped = 0.0, 0
        self.wall_clock = SettableClock(1_799_236_800.0)
        self.engine = AdminEngine(
            self.datapath, self.shaper, index or curl_index(monkeypatch),
            lambda active: [BackendInfo("tc", True, "", ())], clock=lambda: self.now,
            wall_clock=self.wall_clock, zone=BERLIN, rules=rules,
        )  # fmt: skip
        self.second()

    def second(self, shaped_bps: int = 0) -> ApplicationInfo:
        self.now += 1.0
        self.wall_clock.now += 1.0
        self.shaped += shaped_bps
        self.shaper.sent = {slot: self.shaped for slot in set(self.datapath.process_slots.values())}
        self.datapath.traffic = [Traffic(10, rx_bytes=0, tx_bytes=int(SENT_BPS * self.now))]
        self.engine.tick()
        return self.listed()

    def listed(self) -> ApplicationInfo:
        (listed,) = self.engine.list_applications()
        return listed

    def change(self, *changes: LimitChange) -> None:
        assert self.engine.apply_changes(list(changes)) == [CURL] * len(changes)

    def quota_slot(self, direction: Direction) -> int:
        (slot,) = [
            s for (s, d), g in self.gates.settings.items() if d is direction and g.budget_bytes
        ]
        return slot


def kept_live(stage: Stage) -> Stage:
    """curl's download limited: its rule stays live (its process tagged)
    whatever becomes of its upload's block or quota. Without it, lifting the
    upload's block or quota drops the rule, its process is untagged, and its
    gate, refused or not, holds none of its sockets: the change is taken
    (tests/helper/engine/test_refusals_by_owner.py)."""
    stage.change(SetLimit(CURL, DOWN, RATE_BPS, 0))
    return stage


def up_rule(stage: Stage) -> RuleInfo:
    """ListRules' upload row of curl."""
    (rule,) = [rule for rule in stage.engine.list_rules() if rule.direction == UP.value]
    return rule


def held_at_then_rate(monkeypatch: pytest.MonkeyPatch) -> Stage:
    """curl's upload quota (BUDGET a day, then THEN_BPS) used up and held at
    its then-rate: its gate open (no setting left), the shaper's class at the
    then-rate, as the ticks after the quota ran out leave it."""
    stage = Stage(monkeypatch)
    stage.change(SetQuota(CURL, (UP,), Quota(BUDGET, Period.DAY, 0, THEN_BPS)))
    stage.second()
    stage.gates.counted[(stage.quota_slot(UP), UP)] = BUDGET + 100
    for _ in range(3):
        held = stage.second()
    assert (held.up_blocked, held.up_limit_bps, stage.gates.settings) == (False, THEN_BPS, {})
    return stage


def test_a_refused_blocks_direction_is_read_from_the_rate_that_holds_it() -> None:
    """Pure: a block whose write was refused is not closed; one written is."""
    key = (CURL, ADMIN_OWNER)
    limits = {UP: Limit(RATE_BPS, 10_000, blocked=True), DOWN: Limit(0, 0, blocked=True)}
    gates, gating = RefusingGates(), Gating()
    gates.refuse_writes = {UP}
    gating.apply([(key, 1, limits)], datetime(2027, 1, 6, 12, 0, tzinfo=BERLIN), gates, {})
    assert (key, UP) in gating.failed
    assert gating.closed(key, limits) == {DOWN}, "the refused block is not held: it fails open"


def test_a_refused_block_over_a_rate_lists_what_the_rates_class_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before, the refused block's direction counted as closed: its rate was
    read from the sockets' counters (1 MB/s the application handed them)
    while the kernel passed 50 KB/s through the rate's class."""
    table = LimitTable()
    table.set((CURL, ADMIN_OWNER), UP, Limit(RATE_BPS, default_burst_bytes(RATE_BPS), blocked=True))
    stage = Stage(monkeypatch, table, refuse_writes={UP})
    stage.second(RATE_BPS)  # its class's first count: its rate is read from the next
    listed = [stage.second(RATE_BPS) for _ in range(5)]
    assert all("did not take its block" in app.up_limit_problem for app in listed)
    rates = [app.up_bps for app in listed if not app.up_measuring]
    assert len(rates) >= 3, listed
    assert rates == [pytest.approx(RATE_BPS)] * len(rates), "not what the kernel passed"


def test_a_used_up_quota_is_listed_blocked_until_its_gate_opens_to_its_then_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before, in the tick the quota was seen used up (the shaper given its
    then-rate, the gate still held to the spent budget) and between that
    tick and the count read now, it was listed as limited to its then-rate."""
    stage = Stage(monkeypatch)
    stage.change(SetQuota(CURL, (UP,), Quota(BUDGET, Period.DAY, 0, THEN_BPS)))
    stage.second()
    slot = stage.quota_slot(UP)
    stage.gates.counted[(slot, UP)] = BUDGET + 100  # the kernel refuses from here
    between = stage.listed()  # no tick yet: the count is read now
    assert (between.up_blocked, between.up_limit_bps) == (True, 0)
    seen = stage.second()  # the shaper is given the then-rate; the gate still refuses
    assert stage.gates.settings[(slot, UP)].budget_bytes is not None, "gate not closed"
    assert (seen.up_blocked, seen.up_limit_bps) == (True, 0)
    opened = stage.second()
    assert (slot, UP) not in stage.gates.settings, "gate not opened to the then-rate"
    assert (opened.up_blocked, opened.up_limit_bps) == (False, THEN_BPS)


def test_a_quota_count_that_cannot_be_read_stops_nothing_else(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Before, the read raised out of the tick at the gates: the other
    direction's quota and everything after the gates (classes, tags, counts)
    were not done, every tick while it kept failing."""
    caplog.set_level(logging.INFO, logger="chadthrottle.engine.gating")
    stage = Stage(monkeypatch)
    stage.change(SetQuota(CURL, (DOWN, UP), Quota(BUDGET, Period.DAY, 0, THEN_BPS)))
    stage.second()
    down, up = stage.quota_slot(DOWN), stage.quota_slot(UP)
    stage.gates.refuse_reads = {UP}
    stage.gates.counted[(down, DOWN)] = BUDGET + 100  # the other quota used up meanwhile
    listed = [stage.second() for _ in range(3)]
    assert stage.shaper.wanted[DOWN], "the other quota's then-rate not given to the shaper"
    assert (down, DOWN) not in stage.gates.settings, "the other quota's gate not opened"
    assert listed[-1].down_limit_bps == THEN_BPS and not listed[-1].down_limit_problem
    assert stage.gates.settings[(up, UP)].budget_bytes == BUDGET, "the unread gate was changed"
    assert all("could not be read" in app.up_limit_problem for app in listed)
    assert caplog.text.count("could not read its quota's count") == 1, "logged once"
    (rule,) = [r for r in stage.engine.list_rules() if r.direction == UP.value]
    assert rule.in_force, "the kernel holds the quota as last set, renewed"

    stage.gates.refuse_reads = set()
    again = stage.second()
    assert again.up_limit_problem == ""
    assert "its quota's count read again" in caplog.text


def test_a_quota_whose_count_cannot_be_read_is_listed_as_the_kernel_holds_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its gate is renewed as last set: the kernel holds that quota, only
    what is left of it is unknown. Before, it was listed "it does not hold",
    the rule not in force. A new period needs the count (the gate set
    again): from then it is not the rule's, and not in force."""
    stage = Stage(monkeypatch)
    stage.change(SetQuota(CURL, (UP,), Quota(BUDGET, Period.DAY, 0, 0)))
    stage.second()
    stage.gates.refuse_reads = {UP}
    problem = stage.second().up_limit_problem
    assert problem == (
        "its quota's count could not be read (count unreadable in the test):"
        " the kernel holds it as last set, what is left of it is not known"
    )
    assert stage.engine.list_rules()[0].in_force
    stage.wall_clock.now += 86_400  # the next day: a new period
    turned = stage.second().up_limit_problem
    assert turned.endswith("the kernel holds what was last set, not this quota or period")
    assert not stage.engine.list_rules()[0].in_force


NOT_HELD = "it does not hold"  # the problem once it lapsed


def _held_until_lapsed(stage: Stage, first: ApplicationInfo, renewed_s_ago: int = 0
                       ) -> list[ApplicationInfo]:  # fmt: skip
    """The listing now (first) and at each second after, up to the second
    the gate's lease lapses: LEASE_S after its last renewal, renewed_s_ago."""
    return [first] + [stage.second() for _ in range(int(LEASE_S) - 1 - renewed_s_ago)]


def _spent_quota(monkeypatch: pytest.MonkeyPatch,
                 first: Callable[[Stage], Stage] = lambda stage: stage) -> Stage:  # fmt: skip
    """curl's upload quota (BUDGET a day, then blocked) used up and listed
    blocked (first: done to the stage before, as kept_live)."""
    stage = first(Stage(monkeypatch))
    stage.change(SetQuota(CURL, (UP,), Quota(BUDGET, Period.DAY, 0, 0)))
    stage.second()
    stage.gates.counted[(stage.quota_slot(UP), UP)] = BUDGET + 100
    assert stage.second().up_blocked
    return stage


def _blocked_until_lapsed_then_open(stage: Stage, held: list[ApplicationInfo]) -> None:
    """Each listing in held blocked with the held-before problem; the next
    second's, its lease lapsed, open with the not-held one."""
    assert [app.up_blocked for app in held] == [True] * len(held)
    assert all(HELD_BEFORE in app.up_limit_problem for app in held), held
    lapsed = stage.second()
    assert not lapsed.up_blocked and NOT_HELD in lapsed.up_limit_problem


def test_an_unblock_the_kernel_refuses_is_refused_and_listed_blocked_until_its_lease_lapses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before, the unblock was taken (the call succeeded, ListRules showed no
    block) and the application was listed open while the kernel kept the
    block, unrenewed, for up to LEASE_S."""
    stage = kept_live(Stage(monkeypatch))
    stage.change(SetBlocked(CURL, (UP,), True))
    stage.second()
    slot = next(s for (s, d) in stage.gates.settings if d is UP)
    stage.gates.refuse_writes = {UP}
    (outcome,) = stage.engine.apply_changes([SetBlocked(CURL, (UP,), False)])
    assert isinstance(outcome, KernelError) and "refused by the test" in str(outcome)
    assert stage.gates.settings[(slot, UP)].blocked, "the kernel's gate (the test's)"
    rule = up_rule(stage)
    # the rule (its block, the unblock undone) is what the kernel holds, until
    # the lease lapses; before 2026-12-06 listed not in force all along
    assert (rule.blocked, rule.in_force) == (True, True), "ListRules"
    held = _held_until_lapsed(stage, stage.listed())
    assert [(app.up_blocked, app.up_limit_bps) for app in held] == [(True, 0)] * len(held)
    assert all(HELD_BEFORE in app.up_limit_problem for app in held), held
    assert up_rule(stage).in_force
    lapsed = stage.second()
    assert (lapsed.up_blocked, lapsed.up_limit_bps) == (False, 0), "its lease lapsed: open"
    assert NOT_HELD in lapsed.up_limit_problem
    assert not up_rule(stage).in_force, "lapsed: the block does not hold"

    stage.gates.refuse_writes = set()  # the kernel takes it again: the block written again
    again = stage.second()
    assert (again.up_blocked, again.up_limit_problem) == (True, "")
    assert stage.gates.settings[(slot, UP)].blocked


def test_a_quota_lift_the_kernel_refuses_is_refused_and_its_spent_quota_listed_until_it_lapses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A used-up quota that blocks: lifting it needs its gate opened. Before,
    the refused change was refused but listed after the lease lapsed as
    blocked still, with traffic passing."""
    stage = _spent_quota(monkeypatch, kept_live)
    stage.gates.refuse_writes = {UP}
    (outcome,) = stage.engine.apply_changes([ClearQuota(CURL, (UP,))])
    assert isinstance(outcome, KernelError)
    held = _held_until_lapsed(stage, stage.listed())
    _blocked_until_lapsed_then_open(stage, held)


def test_a_new_period_the_kernel_refuses_is_listed_as_the_spent_quota_until_it_lapses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before, from the tick the new period began the quota was listed whole
    and open while the kernel kept the spent quota's gate shut, unrenewed."""
    stage = _spent_quota(monkeypatch)
    stage.gates.refuse_writes = {UP}
    stage.wall_clock.now += 86_400  # the next day: a new period
    held = _held_until_lapsed(stage, stage.second(), renewed_s_ago=1)  # the tick before
    assert [app.up_quota_left_bytes for app in held] == [0] * len(held)
    _blocked_until_lapsed_then_open(stage, held)


def test_a_change_refused_for_a_gate_says_what_failed_and_that_nothing_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before, both read "could not write the up gate of exe:/usr/bin/curl:
    its quota's count could not be read: ...": a write named for a read that
    failed, and no word of what became of the change."""
    stage = Stage(monkeypatch)
    stage.change(SetQuota(CURL, (UP,), Quota(BUDGET, Period.DAY, 0, 0)))
    stage.second()
    stage.gates.refuse_reads = {UP}
    (unread,) = stage.engine.apply_changes(
        [SetQuota(CURL, (UP,), Quota(2 * BUDGET, Period.DAY, 0, 0))]
    )
    assert str(unread) == (
        f"could not read how much of {CURL}'s up quota is used (count unreadable in the test):"
        " the change was not made, nothing changed"
    )
    stage.gates.refuse_reads, stage.gates.refuse_writes = set(), {UP}
    (unwritten,) = stage.engine.apply_changes([SetBlocked(CURL, (UP,), True)])
    assert str(unwritten) == (  # the quota's gate no longer renewed: test_refusal_says_what_lapses
        f"could not write {CURL}'s up block or quota to the kernel (refused by the test):"
        f" the change was not made; {HELD_BEFORE} for {int(LEASE_S)} s more at most,"
        " then lets all traffic through"
    )
    (rule,) = stage.engine.list_rules()
    assert (rule.blocked, rule.quota_bytes) == (False, BUDGET), "the rule was changed"


def test_a_block_held_after_a_refused_unblock_leaves_its_quotas_count_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A block over a quota with budget left: while the refused unblock's old
    block holds, the quota is listed with what is left of it, not as used up."""
    stage = Stage(monkeypatch)
    stage.change(SetQuota(CURL, (UP,), Quota(BUDGET, Period.DAY, 0, 0)))
    stage.change(SetBlocked(CURL, (UP,), True))
    stage.second()
    stage.gates.refuse_writes = {UP}
    (outcome,) = stage.engine.apply_changes([SetBlocked(CURL, (UP,), False)])
    assert isinstance(outcome, KernelError)
    held = stage.listed()
    assert held.up_blocked and HELD_BEFORE in held.up_limit_problem
    assert held.up_quota_left_bytes == BUDGET


def test_a_schedules_block_the_kernel_keeps_past_its_end_is_listed_until_it_lapses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A schedule's end opens its gate at a tick, no caller to refuse. Before,
    with that write refused, the application was listed with no block (its
    rule had none left) while the kernel kept blocking until the lease lapsed.
    The rule stays live (a download limit): with nothing else, its process
    is untagged at the end, and the old block holds none of its sockets
    (tests/helper/engine/test_refused_gate_holding_nothing.py)."""
    stage = kept_live(Stage(monkeypatch))  # Wednesday 2027-01-06, 13:00 in Berlin
    stage.change(AddSchedule(CURL, frozenset({2}), 13 * 60, 13 * 60 + 2, 0, 0, blocked=(UP,)))
    assert stage.second().up_blocked
    stage.gates.refuse_writes = {UP}
    stage.wall_clock.now += 120  # past the schedule's end
    held = _held_until_lapsed(stage, stage.second(), renewed_s_ago=1)
    assert [app.up_blocked for app in held] == [True] * len(held)
    assert all(HELD_BEFORE in app.up_limit_problem for app in held), held
    lapsed = stage.second()
    assert (lapsed.up_blocked, lapsed.up_limit_problem) == (False, "")


def test_a_quota_spent_since_the_last_tick_and_held_on_after_a_refused_write_is_listed_blocked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kernel counted a quota past its budget after the last tick (its gate
    shut since), then a change of it was refused: the gate keeps the spent
    quota until its lease lapses. Before, whether it was shut was taken from
    the last tick alone: listed open (nothing left, "keeps what it held
    before") while the kernel blocked it."""
    stage = Stage(monkeypatch)
    stage.change(SetQuota(CURL, (UP,), Quota(BUDGET, Period.DAY, 0, 0)))
    assert not stage.second().up_blocked
    stage.gates.counted[(stage.quota_slot(UP), UP)] = BUDGET + 100  # spent, between two ticks
    stage.gates.refuse_writes = {UP}
    (outcome,) = stage.engine.apply_changes(
        [SetQuota(CURL, (UP,), Quota(2 * BUDGET, Period.DAY, 0, 0))]
    )
    assert isinstance(outcome, KernelError)
    held = _held_until_lapsed(stage, stage.listed())
    _blocked_until_lapsed_then_open(stage, held)


def test_a_change_refused_for_its_gate_is_not_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new quota is stored at once (its period began), and the tick's store
    took the table as the change had edited it, before its gate was refused.
    Before, the refused quota was in the rules stored (in force after a
    restart) while ListRules, as the change was undone, had none."""
    stored: list[LimitTable] = []
    datapath, gates = RecordingDatapath(), RefusingGates()
    datapath.gates = gates  # type: ignore[assignment]
    engine = AdminEngine(
        datapath, RecordingShaper(), curl_index(monkeypatch),
        lambda active: [BackendInfo("tc", True, "", ())], clock=lambda: 1.0,
        wall_clock=SettableClock(1_799_236_800.0), zone=BERLIN,
        save_rules=lambda table: stored.append(table.copy()),
    )  # fmt: skip
    engine.tick()
    gates.refuse_writes = {UP}
    (outcome,) = engine.apply_changes([SetQuota(CURL, (UP,), Quota(BUDGET, Period.DAY, 0, 0))])
    assert isinstance(outcome, KernelError) and engine.list_rules() == []
    assert all(not list(table.items()) for table in stored), "the refused quota was stored"
