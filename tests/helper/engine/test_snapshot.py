"""The read calls' snapshot (engine/snapshot.py): published after each tick
and each change, so a read after a write call's reply shows it; listings
made for the viewers who asked lately. Kernel ports are recording stand-ins
(engine unit tests); the real helper's reads while walks run are
tests/e2e/test_walks_bounded.py's."""

from __future__ import annotations

import threading

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.api import ADMIN_VIEWER, Viewer
from chadthrottle.helper.engine.snapshot import LOOKED_S, Looked, Lookers

from tests.helper.engine.test_engine_plan import World

NOBODY = Viewer(65534, sees_all=False)


def _limits(world: World, viewer: Viewer = ADMIN_VIEWER) -> dict[str, tuple[int, int]]:
    snapshot = world.engine.published()
    assert snapshot is not None
    return {app.id: (app.down_limit_bps, app.up_limit_bps) for app in snapshot.applications[viewer]}


def test_each_write_call_is_in_the_snapshot_once_it_returned(world: World) -> None:
    world.spawn(10)
    assert world.engine.published() is None  # before the first tick: reads go to the engine thread
    world.engine.looking(Looked.APPLICATIONS, ADMIN_VIEWER)
    world.engine.tick()
    curl = world.engine.set_limit("pid:10", Direction.UP, 1_000_000, 0)
    snapshot = world.engine.published()
    assert snapshot is not None
    assert [(r.app_id, r.direction, r.rate_bps) for r in snapshot.rules] == [
        (curl, "up", 1_000_000)
    ]
    assert _limits(world) == {curl: (0, 1_000_000)}
    world.engine.set_limit(curl, Direction.UP, 500_000, 0)
    assert _limits(world) == {curl: (0, 500_000)}
    world.engine.set_limits_paused(True)
    assert world.engine.published().paused  # type: ignore[union-attr]
    world.engine.set_limits_paused(False)
    world.engine.set_link_capacity(5_000_000, 1_000_000, False)
    shaping = world.engine.published().link_shaping  # type: ignore[union-attr]
    assert (shaping.down_set_bps, shaping.up_set_bps) == (5_000_000, 1_000_000)
    world.engine.clear_limit(curl, (Direction.UP,))
    assert world.engine.published().rules == ()  # type: ignore[union-attr]
    assert curl not in _limits(world)  # no traffic, no rule: not listed, as the engine says
    assert [app.id for app in world.engine.list_applications()] == []


def test_a_published_snapshot_is_never_changed_only_replaced(world: World) -> None:
    world.spawn(10)
    world.engine.looking(Looked.APPLICATIONS, ADMIN_VIEWER)
    world.engine.tick()
    before = world.engine.published()
    curl = world.engine.set_limit("pid:10", Direction.UP, 1_000_000, 0)
    after = world.engine.published()
    assert before is not None and after is not None and before is not after
    assert before.rules == ()
    assert not any(app.up_limit_bps for app in before.applications[ADMIN_VIEWER])
    assert [r.app_id for r in after.rules] == [curl]


def test_a_viewers_listing_is_made_while_they_look(world: World) -> None:
    world.spawn(10)
    world.engine.tick()
    snapshot = world.engine.published()
    assert snapshot is not None and not snapshot.applications  # nobody looked: no listing made
    world.engine.list_applications(NOBODY)  # a first look, answered on the engine thread
    world.engine.list_backends(NOBODY)
    world.engine.tick()
    snapshot = world.engine.published()
    assert snapshot is not None
    assert list(snapshot.applications) == [NOBODY] and list(snapshot.backends) == [NOBODY]
    assert world.backends_viewers[-1] == set()  # nobody's processes: none (uid 1000's curl)


def test_lookers_are_forgotten_after_they_stop_asking() -> None:
    now = [0.0]
    lookers = Lookers(lambda: now[0])
    lookers.note(Looked.APPLICATIONS, NOBODY)
    now[0] = LOOKED_S
    assert lookers.current(Looked.APPLICATIONS) == [NOBODY]
    assert lookers.current(Looked.BACKENDS) == []
    now[0] = LOOKED_S + 0.1
    assert lookers.current(Looked.APPLICATIONS) == []


def test_a_closed_engine_publishes_nothing(world: World) -> None:
    world.engine.tick()
    assert world.engine.published() is not None
    assert world.engine._lock.close(1.0)  # what close() does first
    world.engine._lock.release()
    assert world.engine.published() is None  # the calls hear the helper is stopping


def test_a_read_does_not_wait_for_the_engine_lock(world: World) -> None:
    """The adapter's read takes no engine lock: it answers while another
    thread holds it (a tick's walks, a change's own work)."""
    world.engine.tick()
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with world.engine._lock:
            held.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        world.engine.looking(Looked.APPLICATIONS, ADMIN_VIEWER)
        assert world.engine.published() is not None
    finally:
        done.set()
        holder.join(10)
