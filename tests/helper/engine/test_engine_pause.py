"""Pausing every limit: the table is kept and listed, the kernel gets no classes
and no tags, resuming puts both back; the flag is stored with the limits.
Kernel ports are recording stand-ins (engine unit tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from chadthrottle.contract import ADMIN_OWNER, Direction
from chadthrottle.helper.engine.limits import Limit, LimitTable
from chadthrottle.helper.engine.rule_store import RuleStore, StateFileError
from chadthrottle.helper.errors import BackendUnavailable
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.processes import ProcessInfo

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import RecordingDatapath, RecordingShaper
from tests.helper.engine.test_engine_plan import World

NO_CLASSES = {Direction.UP: {}, Direction.DOWN: {}}


def _limit_two_apps(world: World) -> tuple[str, str]:
    world.spawn(10)
    world.spawn(11)
    world.spawn(20, exe="/usr/bin/wget")
    world.engine.tick()  # the helper has seen them (a "pid:" lookup reads that one process only)
    curl = world.engine.set_limit("pid:10", Direction.UP, 1_000_000, 0)
    wget = world.engine.set_limit("pid:20", Direction.DOWN, 2_000_000, 0)
    return curl, wget


def test_pausing_removes_classes_and_tags_but_keeps_and_lists_the_limits(world: World) -> None:
    curl, wget = _limit_two_apps(world)
    world.engine.set_limits_paused(True)
    assert world.engine.limits_paused()
    assert world.shaper.wanted == NO_CLASSES
    assert world.datapath.process_slots == {10: 0, 11: 0, 20: 0}  # open sockets untagged
    listed = {
        app.id: (app.down_limit_bps, app.up_limit_bps) for app in world.engine.list_applications()
    }
    assert listed == {curl: (0, 1_000_000), wget: (2_000_000, 0)}
    assert world.engine.has_limits()  # stored limits still count (idle exit waits)


def test_resuming_applies_the_same_limits_again(world: World) -> None:
    _limit_two_apps(world)
    before = sorted(
        spec.rate_bps for classes in world.shaper.wanted.values() for spec in classes.values()
    )
    world.engine.set_limits_paused(True)
    world.engine.set_limits_paused(False)
    assert not world.engine.limits_paused()
    after = sorted(
        spec.rate_bps for classes in world.shaper.wanted.values() for spec in classes.values()
    )
    assert after == before == [1_000_000, 2_000_000]
    slots = world.datapath.process_slots
    assert slots[10] == slots[11] != 0 and slots[20] not in (0, slots[10])
    (up_slot,) = world.shaper.wanted[Direction.UP]
    assert up_slot == slots[10]  # tags and classes agree after resuming


def test_while_paused_nothing_new_is_enforced(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    curl, _wget = _limit_two_apps(world)
    world.engine.set_limits_paused(True)
    world.engine.set_limit(curl, Direction.DOWN, 500_000, 0)  # changes the table only
    world.spawn(12)  # a new process of a limited application
    world.engine.tick()
    world.engine.note_new_owner(12)
    assert world.shaper.wanted == NO_CLASSES
    assert world.datapath.process_slots.get(12, 0) == 0
    world.engine.set_limits_paused(False)
    assert sorted(s.rate_bps for s in world.shaper.wanted[Direction.DOWN].values()) == [
        500_000,
        2_000_000,
    ]
    assert world.datapath.process_slots[12] == world.datapath.process_slots[10] != 0


def test_pausing_twice_changes_nothing_and_stores_nothing(world: World) -> None:
    _limit_two_apps(world)
    saved: list[bool] = []
    world.engine._save_rules = lambda table: saved.append(table.paused)
    world.engine.set_limits_paused(False)
    assert saved == []
    world.engine.set_limits_paused(True)
    world.engine.set_limits_paused(True)
    assert saved == [True]


def test_a_resume_the_kernel_refuses_stays_paused(world: World) -> None:
    _limit_two_apps(world)
    world.engine.set_limits_paused(True)
    world.shaper.refuse = True
    with pytest.raises(BackendUnavailable):
        world.engine.set_limits_paused(False)
    world.shaper.refuse = False
    assert world.engine.limits_paused()
    assert world.shaper.wanted == NO_CLASSES


def _stored_engine(store: RuleStore, shaper: RecordingShaper) -> AdminEngine:
    """An engine restarted with the stored rules, its application (/opt/app) running:
    a rule gets classes only while a process it reaches runs."""
    running = ProcessInfo(10, 1, 1000, "/opt/app", ("/opt/app",), "app", "/")
    index = ApplicationIndex(
        list_pids=lambda: [10], read={10: running}.get, read_exe=lambda pid: "/opt/app"
    )
    engine = AdminEngine(
        RecordingDatapath(),
        shaper,
        index,  # type: ignore[arg-type]
        lambda active: [],
        rules=store.load(),
        save_rules=store.save,
    )
    engine.tick()
    return engine


def test_the_paused_flag_survives_a_restart(tmp_path: Path) -> None:
    stored = LimitTable()
    stored.set(("exe:/opt/app", ADMIN_OWNER), Direction.DOWN, Limit(50_000, 200_000))
    RuleStore(tmp_path).save(stored)
    _stored_engine(RuleStore(tmp_path), RecordingShaper()).set_limits_paused(True)

    shaper = RecordingShaper()
    restarted = _stored_engine(RuleStore(tmp_path), shaper)  # as after a helper restart
    assert restarted.limits_paused()
    assert shaper.wanted == NO_CLASSES
    assert restarted.list_applications()[0].down_limit_bps == 50_000
    restarted.set_limits_paused(False)
    assert [spec.rate_bps for spec in shaper.wanted[Direction.DOWN].values()] == [50_000]
    assert not RuleStore(tmp_path).load().paused


def test_a_pause_that_cannot_be_stored_is_undone(tmp_path: Path) -> None:
    stored = LimitTable()
    stored.set(("exe:/opt/app", ADMIN_OWNER), Direction.DOWN, Limit(50_000, 200_000))
    store = RuleStore(tmp_path)
    store.save(stored)
    shaper = RecordingShaper()
    engine = _stored_engine(store, shaper)

    def refuse(table: LimitTable) -> None:
        raise StateFileError("disk full")

    engine._save_rules = refuse
    with pytest.raises(StateFileError):
        engine.set_limits_paused(True)
    assert not engine.limits_paused()
    assert [spec.rate_bps for spec in shaper.wanted[Direction.DOWN].values()] == [50_000]
