"""Per-application shares of a link (issue 16): under a link capacity every
application that moves data in the helper's namespace (not over loopback)
and has no rule gets a normal class of its own
(not one default class for all, where one with 8 connections took 8/9 of
what one with a single connection was left); none without a capacity; an
application idle for FAIR_IDLE_S gives its class back. Kernel ports are
recording stand-ins (engine unit tests)."""

from __future__ import annotations

from chadthrottle.contract import ADMIN_OWNER, Direction
from chadthrottle.helper.engine.api import SetPriority
from chadthrottle.helper.engine.plan import FAIR_IDLE_S
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.priority import Priority

from tests.helper.engine.test_engine_plan import Traffic, World

CURL, WGET, RSYNC = "exe:/usr/bin/curl", "exe:/usr/bin/wget", "exe:/usr/bin/rsync"


class Clocked(World):
    def __init__(self) -> None:
        self.now = 100.0
        super().__init__(clock=lambda: self.now)
        self.spawn(10)
        self.spawn(11)  # curl twice: one application
        self.spawn(20, exe="/usr/bin/wget")
        self.spawn(30, exe="/usr/bin/rsync")  # never sends here: elsewhere or over loopback
        self.sent = 0
        self.elsewhere: tuple[int, ...] = ()  # pids sending in another namespace
        self.local: tuple[int, ...] = ()  # pids sending over loopback

    def seconds_of_traffic(self, seconds: int, pids: tuple[int, ...] = (10, 11, 20)) -> None:
        for _ in range(seconds):
            self.now += 1.0
            self.sent += 100_000
            here = self.engine._namespaces.own_cookie  # the helper's namespace: the link tree's
            self.datapath.traffic = [Traffic(pid, self.sent, netns_cookie=here) for pid in pids]
            self.datapath.traffic += [
                Traffic(pid, self.sent, netns_cookie=here + 1) for pid in self.elsewhere
            ]
            self.datapath.traffic += [
                Traffic(pid, self.sent, ifindex=1, netns_cookie=here) for pid in self.local
            ]
            self.engine.tick()


def test_without_a_capacity_busy_applications_get_no_class_nor_tag() -> None:
    world = Clocked()
    world.seconds_of_traffic(3)
    assert world.shaper.wanted == {Direction.UP: {}, Direction.DOWN: {}}
    assert not any(world.datapath.process_slots.values())


def test_under_a_capacity_each_busy_application_gets_a_normal_class_of_its_own() -> None:
    world = Clocked()
    world.elsewhere, world.local = (30,), (30,)  # rsync's bytes pass no link tree of this helper
    world.engine.set_link_capacity(6_000_000, 1_000_000, False)
    world.seconds_of_traffic(3)
    slots = world.datapath.process_slots
    curl, wget = slots[10], slots[20]
    assert slots[11] == curl and 0 not in (curl, wget) and curl != wget
    assert not slots.get(30)  # busy elsewhere or over loopback only: no class, no tag
    for direction in Direction:
        assert world.shaper.wanted[direction] == {curl: ClassSpec(0, 0, Priority.NORMAL),
                                                  wget: ClassSpec(0, 0, Priority.NORMAL)}  # fmt: skip
    # a rule takes its application's processes over: its own slot and class, no second one
    (outcome,) = world.engine.apply_changes([SetPriority(WGET, Priority.LOW, ADMIN_OWNER)])
    assert outcome == WGET
    world.engine.set_limit(CURL, Direction.DOWN, 50_000_000, 0)  # above the link: still its class
    world.seconds_of_traffic(1)
    assert {slots[10], slots[20]}.isdisjoint({curl, wget}) and slots[11] == slots[10]
    assert world.shaper.wanted[Direction.UP] == {slots[10]: ClassSpec(0, 0, Priority.NORMAL),
                                                 slots[20]: ClassSpec(0, 0, Priority.LOW)}  # fmt: skip
    assert world.shaper.wanted[Direction.DOWN][slots[10]].rate_bps == 50_000_000
    assert [app.id for app in world.engine.list_applications() if app.priority != "normal"] == [
        WGET
    ]  # a fair share is no rule: nothing listed for curl's but its own limit
    assert {(r.app_id, r.direction) for r in world.engine.list_rules()} == {
        (WGET, "down"), (WGET, "up"), (CURL, "down")}  # fmt: skip


def test_an_application_that_only_keeps_its_connections_alive_gets_no_class() -> None:
    """A keepalive (200 B/s here) is not use of the link: no slot, no tag, no
    class for it (review L6: any byte made it active); a transfer is."""
    world = Clocked()
    world.engine.set_link_capacity(6_000_000, 1_000_000, False)
    here = world.engine._namespaces.own_cookie
    for second in range(1, 11):
        world.now += 1.0
        world.datapath.traffic = [Traffic(20, 200 * second, netns_cookie=here)]  # wget: keepalives
        world.engine.tick()
    assert not any(world.datapath.process_slots.values())
    assert world.shaper.wanted == {Direction.UP: {}, Direction.DOWN: {}}
    world.seconds_of_traffic(2, pids=(20,))  # now it transfers: its class at the next tick
    assert world.datapath.process_slots.get(20, 0) != 0


def test_an_idle_application_gives_its_class_back_and_link_off_restores_everything() -> None:
    world = Clocked()
    world.engine.set_link_capacity(6_000_000, 1_000_000, False)
    world.seconds_of_traffic(2)
    curl, wget = world.datapath.process_slots[10], world.datapath.process_slots[20]
    world.seconds_of_traffic(int(FAIR_IDLE_S) - 3, pids=(10, 11))  # wget quiet, not yet idle long
    assert wget in world.shaper.wanted[Direction.UP]
    world.seconds_of_traffic(5, pids=(10, 11))
    assert world.shaper.wanted[Direction.UP] == {curl: ClassSpec(0, 0, Priority.NORMAL)}
    assert world.datapath.process_slots[20] == 0  # untagged
    world.engine.set_link_capacity(0, 0, False)
    world.seconds_of_traffic(1)
    assert world.shaper.wanted == {Direction.UP: {}, Direction.DOWN: {}}
    assert not any(world.datapath.process_slots.values()) and not world.engine.has_limits()
