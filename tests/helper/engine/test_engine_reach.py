"""ListApplications says how each limit holds in the namespaces of its
application (the shaper's limit_reach, by the rule's slot): only for a rated
limit that is in force, never for a paused one or a direction without one.
Kernel ports are recording stand-ins (engine unit tests); the real shapers'
texts: tests/e2e/test_limits_on_every_path.py, test_ebpf_backend.py."""

from __future__ import annotations

import dataclasses

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.api import Viewer

from tests.helper.engine.test_engine_plan import World

DIVIDED = "divided by demand between the helper's own namespace and namespace ctapp-1"


def test_the_listing_carries_the_shapers_reach_of_the_rules_slot(world: World) -> None:
    world.spawn(10)
    world.spawn(20, exe="/usr/bin/wget")
    world.engine.tick()
    curl = world.engine.set_limit("pid:10", Direction.UP, 1_000_000, 0)
    wget = world.engine.set_limit("pid:20", Direction.UP, 2_000_000, 0)
    slot = world.datapath.process_slots[10]
    assert slot and world.datapath.process_slots[20] not in (0, slot)
    world.shaper.reach = {Direction.UP: {slot: DIVIDED}, Direction.DOWN: {slot: "not limited"}}
    listed = {app.id: app for app in world.engine.list_applications()}
    assert (listed[curl].up_limit_reach, listed[curl].down_limit_reach) == (DIVIDED, "")
    assert listed[curl].limit_reach(Direction.UP) == DIVIDED
    assert listed[wget].up_limit_reach == ""  # another slot: nothing to say
    world.engine.set_limits_paused(True)
    assert {a.id: a.up_limit_reach for a in world.engine.list_applications()}[curl] == ""


def test_a_user_is_told_of_the_namespaces_of_their_own_processes_alone(world: World) -> None:
    """An administrator's limit spans every user's processes of the program;
    which namespaces another user's run in is not a user's to read (the shaper
    names only those of viewer_pids: limit_reach.seen_by)."""
    world.spawn(10)  # uid 1000's curl
    world.processes[30] = dataclasses.replace(world.processes[10], pid=30, uid=1001)
    world.spawn(20, exe="/usr/bin/wget")  # uid 1000's, not limited
    world.engine.tick()
    world.engine.set_limit("pid:10", Direction.UP, 1_000_000, 0)  # an administrator's
    world.engine.list_applications()
    assert world.shaper.reach_viewers[-1] is None  # root sees every namespace
    world.shaper.reach_viewers.clear()
    world.engine.list_applications(Viewer(1001, sees_all=False))
    assert world.shaper.reach_viewers == [{30}]  # one per rated direction (snap34)
    world.engine.list_applications(Viewer(1000, sees_all=False))
    assert world.shaper.reach_viewers[-1] == {10, 20}
    # why limits are not shaped somewhere (*_limit_problem, ListBackends' notes): the same rule
    assert world.shaper.gaps_viewers[-1] == {10, 20}
    world.engine.list_applications()
    assert world.shaper.gaps_viewers[-1] is None
    world.backends_viewers.clear()  # publishes made them for likely first callers too (snap33)
    world.engine.list_backends(Viewer(1001, sees_all=False))
    world.engine.list_backends()
    assert world.backends_viewers == [{30}, None]
