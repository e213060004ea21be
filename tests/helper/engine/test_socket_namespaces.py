"""The engine tells the shaper, each tick, the network namespaces each limited
slot's sockets move bytes in (plan.socket_namespaces): a socket in a namespace
where none of its processes is keeps a divided upload's guard at the limit
(NamespaceShapers; the traffic: tests/e2e/test_borrowed_socket_limit.py).
Kernel ports are recording stand-ins (engine unit tests)."""

from __future__ import annotations

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.plan import socket_namespaces

from tests.helper.engine.test_engine_plan import Traffic, World


def test_each_slots_namespaces_from_the_counters_loopback_and_unlimited_aside() -> None:
    samples = [Traffic(10, 5, netns_cookie=1), Traffic(10, 0, 7, netns_cookie=9),
               Traffic(10, 3, ifindex=1, netns_cookie=4),  # loopback: passes no uplink
               Traffic(10, 0, 0, netns_cookie=5),  # a socket that moved nothing
               Traffic(20, 8, netns_cookie=6)]  # fmt: skip  # not limited
    assert socket_namespaces(samples, {10: 3}.get) == {3: {1, 9}}


def test_the_engine_passes_them_to_the_shaper_each_tick(world: World) -> None:
    world.spawn(10)
    world.engine.tick()
    world.engine.set_limit("pid:10", Direction.UP, 1_000_000, 0)
    slot = world.datapath.process_slots[10]
    world.datapath.traffic = [
        Traffic(10, 100, 50, netns_cookie=1),
        Traffic(10, 0, 900, netns_cookie=2),
    ]
    world.engine.tick()
    assert world.shaper.socket_cookies == {slot: {1, 2}}
