"""The engine with stored rules: it starts from them, stores every change, and
undoes a change it could not store. Kernel ports are fakes (engine unit tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from chadthrottle.contract import ADMIN_OWNER, Direction
from chadthrottle.helper.engine.limits import Limit, LimitTable
from chadthrottle.helper.engine.rule_store import RuleStore, StateFileError
from chadthrottle.helper.errors import NoSuchApplication
from chadthrottle.helper.identity.index import ApplicationIndex

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import RecordingDatapath, RecordingShaper

STORED_APP = "exe:/opt/not-running/app"


def _engine(store: RuleStore, shaper: RecordingShaper | None = None) -> AdminEngine:
    engine = AdminEngine(
        RecordingDatapath(), shaper or RecordingShaper(), ApplicationIndex(list_pids=lambda: []),  # type: ignore[arg-type]
        lambda active: [], rules=store.load(), save_rules=store.save,
    )  # fmt: skip
    engine.tick()
    return engine


def test_stored_rules_of_absent_apps_are_kept_and_listed_but_cost_no_classes(
    tmp_path: Path,
) -> None:
    """A rule waits for its application; until it runs the kernel holds nothing
    for it (a user may keep hundreds of such rules)."""
    stored = LimitTable()
    stored.set((STORED_APP, ADMIN_OWNER), Direction.DOWN, Limit(50_000, 200_000))
    RuleStore(tmp_path).save(stored)
    shaper = RecordingShaper()
    engine = _engine(RuleStore(tmp_path), shaper)
    assert engine.has_limits()
    assert shaper.wanted == {Direction.UP: {}, Direction.DOWN: {}}
    (listed,) = engine.list_applications()
    assert (listed.id, listed.down_limit_bps, listed.pids) == (STORED_APP, 50_000, ())


def test_a_stored_rule_makes_its_application_known(tmp_path: Path) -> None:
    store = RuleStore(tmp_path)
    engine = _engine(store)
    with pytest.raises(NoSuchApplication):
        engine.set_limit(STORED_APP, Direction.UP, 5_000, 0)
    stored = LimitTable()
    stored.set((STORED_APP, ADMIN_OWNER), Direction.DOWN, Limit(50_000, 200_000))
    store.save(stored)
    engine = _engine(store)
    assert engine.resolve_application(STORED_APP).owner_uids == frozenset()
    engine.set_limit(STORED_APP, Direction.UP, 5_000, 0)
    assert {d for d in RuleStore(tmp_path).load().get((STORED_APP, ADMIN_OWNER))} == {
        Direction.DOWN,
        Direction.UP,
    }


def test_every_change_is_stored(tmp_path: Path) -> None:
    stored = LimitTable()
    stored.set((STORED_APP, ADMIN_OWNER), Direction.DOWN, Limit(50_000, 200_000))
    RuleStore(tmp_path).save(stored)
    engine = _engine(RuleStore(tmp_path))
    engine.set_limit(STORED_APP, Direction.DOWN, 70_000, 300_000)
    assert RuleStore(tmp_path).load().get((STORED_APP, ADMIN_OWNER)) == {
        Direction.DOWN: Limit(70_000, 300_000)
    }
    engine.clear_limit(STORED_APP, (Direction.DOWN, Direction.UP))
    assert RuleStore(tmp_path).load().items() == []
    assert not engine.has_limits()


def test_a_change_that_cannot_be_stored_is_undone(tmp_path: Path) -> None:
    stored = LimitTable()
    stored.set((STORED_APP, ADMIN_OWNER), Direction.DOWN, Limit(50_000, 200_000))
    store = RuleStore(tmp_path)
    store.save(stored)
    shaper = RecordingShaper()
    engine = _engine(store, shaper)

    def refuse(table: LimitTable) -> None:
        raise StateFileError("disk full")

    engine._save_rules = refuse  # the disk fills up
    with pytest.raises(StateFileError):
        engine.set_limit(STORED_APP, Direction.DOWN, 90_000, 0)
    assert engine.list_applications()[0].down_limit_bps == 50_000
    assert shaper.wanted[Direction.DOWN] == {}  # not running: no class, before or after
    assert RuleStore(tmp_path).load().items() == stored.items()
