"""Schedules: parsing, overlap, daylight saving, storage, and the engine's
tick switching a scheduled limit on and off at the minute (recording stand-ins
for the kernel; the real kernel path: tests/e2e/test_schedules.py)."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from chadthrottle.contract import ADMIN_OWNER, MIN_BURST_BYTES, BackendInfo, Direction
from chadthrottle.helper.engine.api import AddSchedule, RemoveSchedules, SetLimit
from chadthrottle.helper.engine.limits import Limit, LimitTable
from chadthrottle.helper.engine.quotas import Quota
from chadthrottle.helper.engine.rule_codec import decode_rules, encode_rules
from chadthrottle.helper.engine.rule_store import RuleStore
from chadthrottle.helper.engine.schedules import (
    NonexistentLocalTime,
    check_exists_locally,
    check_fits,
    format_days,
    make_schedule,
    parse_days,
    parse_schedule_name,
)
from chadthrottle.helper.errors import HelperError, InvalidArgument

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import (
    RecordingDatapath,
    RecordingShaper,
    SettableClock,
    curl_index,
)

BERLIN = ZoneInfo("Europe/Berlin")
CURL = "exe:/usr/bin/curl"
MEGA = Limit(1_000_000, MIN_BURST_BYTES)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def test_days_parse_and_print_canonically() -> None:
    assert parse_days("mon-fri") == frozenset(range(5))
    assert parse_days("Sat, sun") == parse_days("weekend") == frozenset({5, 6})
    assert parse_days("fri-mon") == frozenset({4, 5, 6, 0})  # a range may wrap
    assert format_days(parse_days("mon,wed-fri")) == "mon,wed-fri"
    assert format_days(parse_days("weekdays")) == "mon-fri" and format_days(range(7)) == "daily"
    for bad in ("", "fry", "mon-xyz", "mon;tue", 3):
        with pytest.raises(InvalidArgument):
            parse_days(bad)
    assert parse_schedule_name("Mon-Fri 09:00-17:00") == "mon-fri 09:00-17:00"
    for bad in ("mon-fri", "mon-fri 9-17", "09:00-17:00"):
        with pytest.raises(InvalidArgument):
            parse_schedule_name(bad)


def test_bad_schedules_are_refused_by_name() -> None:
    with pytest.raises(InvalidArgument, match="same time"):
        make_schedule("mon", "09:00", "09:00", {Direction.DOWN: MEGA})
    for bad in ("9:00", "24:00", "12:60", " 09:00"):
        with pytest.raises(InvalidArgument, match="HH:MM"):
            make_schedule("mon", bad, "10:00", {Direction.DOWN: MEGA})
    with pytest.raises(InvalidArgument, match="at least one direction"):
        make_schedule("mon", "09:00", "10:00", {})


def test_overlaps_within_a_rule_are_refused_overnight_included() -> None:
    work = make_schedule("mon-fri", "09:00", "17:00", {Direction.DOWN: MEGA})
    night = make_schedule("sun", "22:00", "06:00", {Direction.DOWN: MEGA})  # ends Monday 06:00
    check_fits(night, [work])  # touching nothing
    check_fits(
        make_schedule("mon", "17:00", "18:00", {Direction.UP: MEGA}), [work]
    )  # end is exclusive
    with pytest.raises(InvalidArgument, match="overlaps the schedule mon-fri 09:00-17:00"):
        check_fits(make_schedule("sat-mon", "08:00", "09:30", {Direction.UP: MEGA}), [work, night])
    with pytest.raises(InvalidArgument, match="overlaps the schedule sun 22:00-06:00"):
        check_fits(make_schedule("mon", "05:00", "07:00", {Direction.UP: MEGA}), [night])


def test_activity_follows_the_wall_clock_and_overnight_runs_into_the_next_day() -> None:
    night = make_schedule("fri", "22:00", "06:00", {Direction.DOWN: MEGA})
    assert night.is_active(_at("2027-01-08T22:00"))  # a Friday
    assert night.is_active(_at("2027-01-09T05:59"))  # Saturday morning
    assert not night.is_active(_at("2027-01-09T06:00"))
    assert not night.is_active(_at("2027-01-09T23:00"))  # Saturday night is not listed
    assert not night.is_active(_at("2027-01-08T05:00"))  # Friday morning belongs to Thursday


def test_times_the_clocks_skip_are_refused_and_repeated_ones_run_twice() -> None:
    spring = date(2027, 1, 1)  # Berlin skips 02:00-03:00 on Sunday 2027-03-28
    skipped = make_schedule("sun", "02:30", "04:00", {Direction.DOWN: MEGA})
    with pytest.raises(
        NonexistentLocalTime, match="02:30 does not exist on 2027-03-28 in Europe/Berlin"
    ):
        check_exists_locally(skipped, BERLIN, spring)
    check_exists_locally(
        make_schedule("mon-sat", "02:30", "04:00", {Direction.DOWN: MEGA}), BERLIN, spring
    )
    # An overnight end falls on the next day: Saturday 23:00 to 02:30 ends on a Sunday.
    with pytest.raises(NonexistentLocalTime, match="to 02:30"):
        check_exists_locally(
            make_schedule("sat", "23:00", "02:30", {Direction.DOWN: MEGA}), BERLIN, spring
        )
    assert issubclass(
        NonexistentLocalTime, InvalidArgument
    )  # the bus's InvalidArgument, with its own text
    # Clocks go back on 2027-10-31: 02:00-03:00 runs twice, and so does a schedule in it.
    # (In Berlin both changes are on Sundays 02:00-03:00: such a schedule is refused for March.)
    repeated = make_schedule("sun", "02:15", "02:45", {Direction.DOWN: MEGA})
    with pytest.raises(NonexistentLocalTime):
        check_exists_locally(repeated, BERLIN, spring)
    first = datetime(2027, 10, 31, 2, 20, tzinfo=BERLIN, fold=0)
    second = datetime(2027, 10, 31, 2, 20, tzinfo=BERLIN, fold=1)
    assert first.utcoffset() != second.utcoffset()
    assert repeated.is_active(first) and repeated.is_active(second)


def test_the_table_overlays_active_schedules_on_plain_limits() -> None:
    table = LimitTable()
    key = (CURL, ADMIN_OWNER)
    table.set(key, Direction.DOWN, Limit(5_000_000, MIN_BURST_BYTES))
    table.add_schedule(
        key, make_schedule("mon-fri", "09:00", "17:00", {Direction.DOWN: MEGA, Direction.UP: MEGA})
    )
    assert table.activate(_at("2027-01-04T09:00"))  # Monday, on the minute
    assert table.get(key) == {Direction.DOWN: MEGA, Direction.UP: MEGA}
    assert not table.activate(_at("2027-01-04T12:00"))  # nothing changed
    assert table.activate(_at("2027-01-04T17:00"))
    assert table.get(key) == {Direction.DOWN: Limit(5_000_000, MIN_BURST_BYTES)}
    assert table.plain_items() == [(key, {Direction.DOWN: Limit(5_000_000, MIN_BURST_BYTES)})]
    table.clear(key, (Direction.DOWN,))
    assert (
        key not in table and len(table) == 1 and table.has_app(CURL)
    )  # the schedule keeps the rule
    assert table.remove_schedules(key) == 1 and len(table) == 0


def test_a_schedule_blocks_or_sets_the_rate_and_keeps_the_plain_block_and_quota() -> None:
    table, key = LimitTable(), (CURL, 1000)
    quota = Quota.checked(5_000_000, "day", 0, 0)
    table.set(key, Direction.DOWN, Limit(5_000_000, MIN_BURST_BYTES, quota=quota))
    table.set(key, Direction.UP, Limit(0, 0, blocked=True))
    table.add_schedule(
        key, make_schedule("mon", "09:00", "10:00", {Direction.DOWN: MEGA, Direction.UP: MEGA})
    )
    table.add_schedule(
        key, make_schedule("tue", "09:00", "10:00", {Direction.DOWN: Limit(0, 0, blocked=True)})
    )
    table.activate(
        _at("2027-01-04T09:30")
    )  # Monday: the rate is the schedule's, the quota and the block stay
    assert table.get(key) == {Direction.DOWN: Limit(1_000_000, MIN_BURST_BYTES, quota=quota),
                              Direction.UP: Limit(1_000_000, MIN_BURST_BYTES, blocked=True)}  # fmt: skip
    table.activate(_at("2027-01-05T09:30"))  # Tuesday: download blocked, its rate and quota beneath
    assert table.get(key)[Direction.DOWN] == Limit(
        5_000_000, MIN_BURST_BYTES, blocked=True, quota=quota
    )
    stored = decode_rules(encode_rules(table))
    assert [s.limits for s in stored.schedules_of(key)] == [
        s.limits for s in table.schedules_of(key)
    ]


def test_schedules_are_stored_and_a_version_2_file_still_loads(tmp_path: Path) -> None:
    table = LimitTable()
    table.add_schedule(
        (CURL, 1000), make_schedule("sat,sun", "22:00", "06:00", {Direction.UP: MEGA})
    )
    table.set((CURL, ADMIN_OWNER), Direction.DOWN, MEGA)
    document = json.loads(encode_rules(table))
    assert document["version"] == 3  # schedules since 3; 4 only with a priority or a link
    assert document["rules"][1] == {"app_id": CURL, "owner": 1000, "schedules": [
        {"days": "sat,sun", "from": "22:00", "to": "06:00", "up": {"rate_bps": 1_000_000, "burst_bytes": MIN_BURST_BYTES}}
    ]}  # fmt: skip
    loaded = decode_rules(encode_rules(table))
    assert (
        loaded.schedules_of((CURL, 1000))[0].name == "sat,sun 22:00-06:00"
        and loaded.plain_items() == table.plain_items()
    )
    skipped: list[str] = []
    overlapping = dict(document, rules=[{"app_id": CURL, "owner": 1000, "schedules": [
        {"days": "sat", "from": "22:00", "to": "23:00", "up": {"rate_bps": 1_000_000, "burst_bytes": MIN_BURST_BYTES}},
        {"days": "sat", "from": "22:30", "to": "23:30", "up": {"rate_bps": 1_000_000, "burst_bytes": MIN_BURST_BYTES}},
    ]}])  # fmt: skip
    assert (
        len(decode_rules(json.dumps(overlapping).encode(), skipped)) == 0
        and "overlaps" in skipped[0]
    )
    store = RuleStore(tmp_path)
    store.path.write_text(json.dumps({"version": 2, "rules": [
        {"app_id": CURL, "owner": "all", "down": {"rate_bps": 2_000, "burst_bytes": MIN_BURST_BYTES}}]}))  # fmt: skip
    assert store.load().plain_items() == [
        ((CURL, ADMIN_OWNER), {Direction.DOWN: Limit(2_000, MIN_BURST_BYTES)})
    ]


def test_the_tick_switches_a_schedule_on_and_off_at_the_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index = curl_index(monkeypatch)
    shaper, clock = (
        RecordingShaper(),
        SettableClock(_at("2027-01-04T08:59:30").timestamp()),
    )  # a Monday
    engine = AdminEngine(RecordingDatapath(), shaper, index, lambda active: [BackendInfo("tc", True, "", ())],
                         wall_clock=clock, zone=BERLIN)  # fmt: skip
    engine.tick()
    days = parse_days("mon-fri")
    assert engine.apply_changes([AddSchedule(CURL, days, 9 * 60, 9 * 60 + 1, 1_000_000, 0)]) == [
        CURL
    ]
    assert shaper.wanted[Direction.DOWN] == {} and not engine.list_schedules()[0].active
    clock.now += 29.9
    engine.tick()
    assert shaper.wanted[Direction.DOWN] == {}  # 08:59:59.9
    clock.now += 0.1
    engine.tick()  # 09:00:00
    assert [spec.rate_bps for spec in shaper.wanted[Direction.DOWN].values()] == [1_000_000]
    assert (
        engine.list_schedules()[0].active and engine.list_rules() == []
    )  # a schedule is no plain rule
    listed = engine.list_applications()[0]
    assert (listed.down_limit_bps, listed.down_schedule, listed.up_schedule) == (
        1_000_000,
        "mon-fri 09:00-09:01",
        "",
    )
    clock.now += 60
    engine.tick()  # 09:01: over
    assert shaper.wanted[Direction.DOWN] == {}
    assert engine.next_tick_in(1.0) == 1.0  # 09:01:00: the next minute is a minute away
    clock.now -= 0.3
    assert engine.next_tick_in(1.0) == pytest.approx(
        0.305, abs=1e-6
    )  # 09:00:59.7: lands just after 09:01
    clock.now += 0.3
    # Bad input changes nothing: an overlap (also within one batch), a skipped time, an unknown schedule.
    outcomes = engine.apply_changes([
        AddSchedule(CURL, days, 8 * 60, 9 * 60 + 30, 2_000, 0),
        AddSchedule(CURL, frozenset({6}), 2 * 60 + 30, 4 * 60, 2_000, 0),
        RemoveSchedules(CURL, "sun 01:00-02:00"),
        AddSchedule(CURL, frozenset({5}), 60, 120, 2_000, 0),
        AddSchedule(CURL, frozenset({5}), 90, 100, 2_000, 0),
    ])  # fmt: skip
    assert [type(o).__name__ for o in outcomes] == [
        "InvalidArgument",
        "NonexistentLocalTime",
        "InvalidArgument",
        "str",
        "InvalidArgument",
    ]
    assert [s.name for s in engine.list_schedules()] == ["mon-fri 09:00-09:01", "sat 01:00-02:00"]
    assert engine.apply_changes(
        [AddSchedule(CURL, frozenset({0}), 10 * 60, 11 * 60, 0, 0, blocked=(Direction.UP,))]
    ) == [CURL]
    assert [(s.name, s.up_blocked, s.up_bps) for s in engine.list_schedules()][-1] == (
        "mon 10:00-11:00",
        True,
        0,
    )
    assert (
        engine.apply_changes([RemoveSchedules(CURL, "")]) == [CURL]
        and engine.list_schedules() == []
    )
    assert engine.next_tick_in(1.0) == 1.0  # no schedule: the plain once a second
    assert isinstance(engine.apply_changes([SetLimit(CURL, Direction.UP, 5_000, 0)])[0], str)
    assert not isinstance(engine.apply_changes([RemoveSchedules(CURL, "")])[0], str)
    assert isinstance(outcomes[0], HelperError)
