"""Quotas, blocks and their storage: pure logic (periods in local time, the
book of what a period used, the table edits, the rules file)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from chadthrottle.contract import ADMIN_OWNER, Direction
from chadthrottle.helper.engine.api import ClearLimit, ClearQuota, SetBlocked, SetLimit, SetQuota
from chadthrottle.helper.engine.limits import Limit, LimitTable
from chadthrottle.helper.engine.quota_book import QuotaBook
from chadthrottle.helper.engine.quotas import Period, Quota, period_start
from chadthrottle.helper.engine.rule_codec import decode_rules, encode_rules
from chadthrottle.helper.engine.rule_edits import direction_edit
from chadthrottle.helper.errors import InvalidArgument

from tests.helper.engine.recording_ports import RecordingGates

KEY = ("app:org.example.Player", ADMIN_OWNER)
DOWN, UP = Direction.DOWN, Direction.UP


@pytest.fixture
def berlin() -> Iterator[None]:
    """Local time with daylight saving (2027-03-28: 02:00 -> 03:00)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def _local(*fields: int) -> datetime:
    return datetime(*fields).astimezone()  # type: ignore[arg-type]


def test_periods_begin_at_the_reset_minute_of_the_local_day_monday_and_first(berlin: None) -> None:
    now = _local(2027, 1, 6, 8, 0)  # a Wednesday
    assert period_start(Quota(10**6, Period.DAY, 9 * 60), now) == _local(2027, 1, 5, 9, 0)
    assert period_start(Quota(10**6, Period.DAY, 0), now) == _local(2027, 1, 6, 0, 0)
    assert period_start(Quota(10**6, Period.WEEK, 0), now) == _local(2027, 1, 4, 0, 0)
    assert period_start(Quota(10**6, Period.MONTH, 0), now) == _local(2027, 1, 1, 0, 0)
    assert period_start(Quota(10**6, Period.MONTH, 9 * 60), _local(2027, 1, 1, 8, 0)) == _local(
        2026, 12, 1, 9, 0
    )
    # a reset minute the clocks skip (02:30) begins the period at the end of the gap
    skipped = period_start(Quota(10**6, Period.DAY, 2 * 60 + 30), _local(2027, 3, 28, 12, 0))
    assert skipped.astimezone(UTC) == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)  # 03:00 CEST


def test_bad_quotas_are_refused_by_name() -> None:
    for fields, says in (((0, "day", 0, 0), "a quota must be"), ((10**6, "fortnight", 0, 0), "unknown quota period"),
                         ((10**6, "day", 1440, 0), "minute of the day"), ((10**6, "day", 0, 5), "after the quota"),
                         ((True, "day", 0, 0), "a quota must be")):  # fmt: skip
        with pytest.raises(InvalidArgument, match=says):
            Quota.checked(*fields)


def test_the_book_adds_the_kernels_count_and_starts_each_period_from_zero(berlin: None) -> None:
    quota, book = Quota(5_000_000, Period.DAY), QuotaBook()
    counts: dict[int, tuple[int, int]] = {}
    monday = _local(2027, 1, 4, 12, 0)
    state = book.follow(KEY, DOWN, quota, 3, monday, lambda slot, _d: counts.get(slot))
    assert (state.used, state.budget_at_set) == (0, 5_000_000)
    counts[3] = (1_200_000, 5_000_000)
    state = book.follow(KEY, DOWN, quota, 3, monday, lambda slot, _d: counts.get(slot))
    assert (state.used, state.left, state.budget_at_set) == (1_200_000, 3_800_000, 5_000_000)
    moved = book.follow(
        KEY, DOWN, quota, 4, monday, lambda slot, _d: counts.get(slot)
    )  # another slot: carried
    assert (moved.used, moved.budget_at_set) == (1_200_000, 3_800_000)
    tuesday = book.follow(KEY, DOWN, quota, 4, _local(2027, 1, 5, 0, 0), lambda _s, _d: None)
    assert (tuesday.used, tuesday.budget_at_set) == (0, 5_000_000)


def test_a_restart_goes_on_from_the_stored_use_of_the_same_period_only(berlin: None) -> None:
    quota, monday = Quota(5_000_000, Period.DAY), _local(2027, 1, 4, 12, 0)
    start = period_start(quota, monday).timestamp()
    same = QuotaBook().follow(KEY, DOWN, quota, 1, monday, lambda _s, _d: None, (start, 4_000_000))
    assert (same.used, same.budget_at_set) == (4_000_000, 1_000_000)
    older = QuotaBook().follow(
        KEY, DOWN, quota, 1, monday, lambda _s, _d: None, (start - 86_400, 4_000_000)
    )
    assert older.used == 0


def test_block_limit_and_quota_change_each_alone_and_an_empty_direction_goes() -> None:
    table, quota = LimitTable(), Quota(10**9, Period.MONTH, 0, 100_000)
    for change in (SetLimit(KEY[0], DOWN, 500_000, 0), SetBlocked(KEY[0], (DOWN, UP), True),
                   SetQuota(KEY[0], (UP,), quota)):  # fmt: skip
        direction_edit(change, KEY)(table)
    down, up = table.get(KEY)[DOWN], table.get(KEY)[UP]
    assert (down.rate_bps, down.blocked, down.quota) == (500_000, True, None)
    assert (up.rate_bps, up.blocked, up.quota) == (0, True, quota)
    direction_edit(SetBlocked(KEY[0], (DOWN, UP), False), KEY)(table)
    assert table.get(KEY)[DOWN] == Limit.with_default_burst(
        500_000, 0
    )  # the limit beneath applies again
    direction_edit(ClearLimit(KEY[0], (DOWN, UP)), KEY)(table)
    assert set(table.get(KEY)) == {UP}
    direction_edit(ClearQuota(KEY[0], (UP,)), KEY)(table)
    assert not table.is_stored(KEY)


def test_blocks_quotas_and_their_use_survive_the_rules_file() -> None:
    table, quota = LimitTable(), Quota(5_000_000, Period.WEEK, 90, 0)
    direction_edit(SetBlocked(KEY[0], (UP,), True), KEY)(table)
    direction_edit(SetQuota(KEY[0], (DOWN,), quota), KEY)(table)
    table.quota_use[(KEY, DOWN)] = (1_798_000_000.0, 1234)
    loaded = decode_rules(encode_rules(table))
    assert loaded.get(KEY) == {UP: Limit(0, 0, blocked=True), DOWN: Limit(0, 0, quota=quota)}
    assert loaded.quota_use == {(KEY, DOWN): (1_798_000_000.0, 1234)}
    skipped: list[str] = []
    bad = encode_rules(table).replace(b'"blocked": true', b'"blocked": "yes"')
    assert not decode_rules(bad, skipped).is_stored(KEY) and "blocked" in skipped[0]


def test_a_block_is_listed_as_blocked_with_no_rate_and_only_pausing_keeps_it_from_force() -> None:
    from chadthrottle.helper.engine.api import ADMIN_VIEWER
    from chadthrottle.helper.engine.listing import DirectionHeld, build_listing

    limits = {UP: Limit(500_000, 131_072, blocked=True)}
    gap = {UP: "uploads in namespace ctapp-1 are policed, not shaped: no IFB"}

    def held(_key: object, shown: object) -> dict[Direction, DirectionHeld]:
        return {UP: DirectionHeld(rate_bps=0, blocked=True)}

    rules = {KEY[0]: {ADMIN_OWNER: limits}}
    (app,) = build_listing({}, {}, rules, 0.0, ADMIN_VIEWER, problems=gap, gates=held)
    assert (
        app.up_blocked and app.up_limit_bps == 0 and app.up_limit_problem == ""
    )  # the gates hold it on every path
    (paused,) = build_listing({}, {}, rules, 0.0, ADMIN_VIEWER, problems=gap, gates=held,
                              paused_problem="limits are paused")  # fmt: skip
    assert paused.up_limit_problem == "limits are paused"


def test_a_spent_quota_that_throttles_opens_its_gate_only_once_the_shaper_has_its_rate(
    berlin: None,
) -> None:
    from chadthrottle.helper.engine.gating import Gating
    from chadthrottle.helper.kernel.gates import GateSetting

    gating, gates, use = Gating(), RecordingGates(), {}
    quota = Quota(5_000_000, Period.DAY, 0, 100_000)
    limits = {DOWN: Limit(0, 0, quota=quota), UP: Limit(0, 0, blocked=True)}
    now = _local(2027, 1, 4, 12, 0)
    assert gating.apply([(KEY, 3, limits)], now, gates, use) == (True, set())  # a new quota
    assert gates.settings == {
        (3, DOWN): GateSetting(budget_bytes=5_000_000),
        (3, UP): GateSetting(blocked=True),
    }
    assert gating.rated(KEY, limits) == {} and gates.renewed == 1
    assert gating.apply([(KEY, 3, limits)], now, gates, use) == (False, set())  # nothing turned
    gates.counted[(3, DOWN)] = 5_000_100  # the kernel passed the budget (and one packet)
    # spent: worth storing at once, and the application's rate held otherwise (its rates restart)
    assert gating.apply([(KEY, 3, limits)], now, gates, use) == (True, {(KEY[0], DOWN)})
    assert (3, DOWN) in gates.settings, "opened before the shaper had the then-rate"
    assert gating.rated(KEY, limits) == {
        DOWN: Limit.with_default_burst(100_000, 0)
    }  # the classes, this tick
    assert gating.apply([(KEY, 3, limits)], now, gates, use)[1] == {
        (KEY[0], DOWN)
    }  # at the then-rate
    assert (3, DOWN) not in gates.settings and use[(KEY, DOWN)][1] == 5_000_100
    assert gating.apply([(KEY, 3, limits)], now, gates, use)[1] == set()  # still at it
    tomorrow = _local(2027, 1, 5, 0, 0)
    # a new period: the whole budget again, the application's rate held otherwise again
    assert gating.apply([(KEY, 3, limits)], tomorrow, gates, use) == (True, {(KEY[0], DOWN)})
    assert gates.settings[(3, DOWN)] == GateSetting(budget_bytes=5_000_000)
    gating.apply([], tomorrow, gates, use)  # the rule is gone: every gate open
    assert gates.settings == {}


def test_a_cleared_quota_forgets_its_periods_use_and_one_set_again_counts_from_zero(
    berlin: None,
) -> None:
    """ClearQuota then SetQuota in the same period starts the budget whole, as
    after a restart (the file keeps no use without a quota); SetQuota again
    without clearing keeps the use (docs/helper.md, Block and quotas)."""
    from chadthrottle.helper.engine.gating import Gating
    from chadthrottle.helper.engine.rule_codec import rename_rules

    table, quota, now = LimitTable(), Quota(5_000_000, Period.DAY), _local(2027, 1, 4, 12, 0)
    gating, gates = Gating(), RecordingGates()
    direction_edit(SetQuota(KEY[0], (DOWN, UP), quota), KEY)(table)
    gating.apply([(KEY, 3, table.get(KEY))], now, gates, table.quota_use)
    gates.counted[(3, DOWN)] = gates.counted[(3, UP)] = 4_000_000
    gating.apply([(KEY, 3, table.get(KEY))], now, gates, table.quota_use)
    direction_edit(SetQuota(KEY[0], (DOWN,), Quota(6_000_000, Period.DAY)), KEY)(
        table
    )  # an edit: use kept
    assert table.quota_use[(KEY, DOWN)][1] == 4_000_000
    direction_edit(ClearQuota(KEY[0], (UP,)), KEY)(table)
    assert (KEY, UP) not in table.quota_use and (KEY, DOWN) in table.quota_use
    moved = rename_rules(
        table, lambda app_id, _owner: "app:org.example.Renamed"
    )  # the use moves with the rule
    renamed = ("app:org.example.Renamed", KEY[1])
    assert moved and table.quota_use == {
        (renamed, DOWN): (period_start(quota, now).timestamp(), 4_000_000)
    }
    direction_edit(SetQuota(renamed[0], (UP,), quota), renamed)(table)  # set again, same period
    gates.counted.clear()
    gating.apply([(renamed, 3, table.get(renamed))], now, gates, table.quota_use)
    assert (
        table.quota_use[(renamed, UP)][1] == 0 and gating.quota_state(renamed, UP).left == 5_000_000
    )
    assert gating.quota_state(renamed, DOWN).left == 2_000_000
    table.drop(renamed)
    assert table.quota_use == {}


def test_a_spent_quota_that_blocks_opens_at_its_next_period(berlin: None) -> None:
    """A quota set at the start of its period gave the kernel its whole
    budget; its next period's budget is the same setting. Before, that gate
    was not written again (the setting unchanged), so the kernel went on
    counting from the spent period: blocked in every period after."""
    from chadthrottle.helper.engine.gating import Gating

    gating, gates, use = Gating(), RecordingGates(), {}
    limits = {DOWN: Limit(0, 0, quota=Quota(5_000_000, Period.DAY, 0, 0))}
    today, tomorrow = _local(2027, 1, 4, 12, 0), _local(2027, 1, 5, 0, 0)
    gating.apply([(KEY, 3, limits)], today, gates, use)
    gates.counted[(3, DOWN)] = 5_000_100  # the kernel passed the budget (and one packet)
    gating.apply([(KEY, 3, limits)], today, gates, use)
    assert gating.closed(KEY, limits) == {DOWN}
    for _ in range(2):  # the new period's first tick, and one after it
        gating.apply([(KEY, 3, limits)], tomorrow, gates, use)
        state = gating.quota_state(KEY, DOWN, gates)
        assert state is not None and state.left == 5_000_000, "the budget not set again"
        assert gating.closed(KEY, limits) == set()
