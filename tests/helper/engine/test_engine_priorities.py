"""Priorities and the link capacity in the engine (issue 16): nothing changes
without a capacity; under one, an application with a priority gets a slot,
tags and a class of its priority in each linked direction, a limit stays its
ceiling; what keeps a priority from being in force is said, never hidden.
Kernel ports are recording stand-ins (engine unit tests)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from chadthrottle.contract import ADMIN_OWNER, Direction
from chadthrottle.helper.engine.api import SetPriority
from chadthrottle.helper.engine.limits import default_burst_bytes
from chadthrottle.helper.engine.link_plan import ESTIMATING, PRIORITY_ESTIMATING
from chadthrottle.helper.engine.rule_codec import decode_rules, encode_rules
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.kernel.priority_classes import LinkShaping
from chadthrottle.priority import Priority

from tests.helper.engine.test_engine_plan import Traffic, World

CURL, WGET = "exe:/usr/bin/curl", "exe:/usr/bin/wget"


def _prioritize(world: World, app_id: str, priority: Priority) -> None:
    (outcome,) = world.engine.apply_changes([SetPriority(app_id, priority, ADMIN_OWNER)])
    assert outcome == app_id


def _running(world: World) -> None:
    world.spawn(10)
    world.spawn(20, exe="/usr/bin/wget")
    world.engine.tick()


def test_without_a_capacity_a_priority_changes_nothing_in_the_kernel_and_says_why(
    world: World,
) -> None:
    _running(world)
    world.engine.set_limit(WGET, Direction.DOWN, 2_000_000, 0)
    before = (world.shaper.wanted, dict(world.datapath.process_slots))
    _prioritize(world, CURL, Priority.CRITICAL)
    world.engine.tick()
    assert (
        world.shaper.wanted,
        world.datapath.process_slots,
    ) == before and world.shaper.links == {}
    curl = {app.id: app for app in world.engine.list_applications()}[CURL]
    assert (curl.priority, curl.priority_problem, curl.down_limit_bps, curl.down_limit_problem) == (
        "critical",
        "no link capacity is set: set it to your connection's download and upload speeds",
        0,
        "",
    )
    rules = [(r.app_id, r.direction, r.rate_bps, r.priority) for r in world.engine.list_rules()]
    assert (CURL, "down", 0, "critical") in rules and (CURL, "up", 0, "critical") in rules
    assert world.engine.link_shaping().problem == "no link capacity is set: priorities need it"


def test_under_a_capacity_each_priority_gets_its_class_and_a_limit_stays_its_ceiling(
    world: World,
) -> None:
    _running(world)
    _prioritize(world, CURL, Priority.CRITICAL)
    world.engine.set_limit(WGET, Direction.DOWN, 2_000_000, 0)
    _prioritize(world, WGET, Priority.LOW)
    world.engine.set_link_capacity(6_000_000, 1_000_000, False)
    assert world.shaper.links == {
        Direction.DOWN: LinkShaping(6_000_000),
        Direction.UP: LinkShaping(1_000_000),
    }
    curl_slot, wget_slot = world.datapath.process_slots[10], world.datapath.process_slots[20]
    assert 0 not in (curl_slot, wget_slot)
    assert world.shaper.wanted[Direction.DOWN] == {
        curl_slot: ClassSpec(0, 0, Priority.CRITICAL),
        wget_slot: ClassSpec(2_000_000, default_burst_bytes(2_000_000), Priority.LOW),
    }
    assert world.shaper.wanted[Direction.UP] == {curl_slot: ClassSpec(0, 0, Priority.CRITICAL),
                                                 wget_slot: ClassSpec(0, 0, Priority.LOW)}  # fmt: skip
    shaping = world.engine.link_shaping()
    assert (
        shaping.down_capacity_bps,
        shaping.up_set_bps,
        shaping.down_shaping,
        shaping.problem,
    ) == (6_000_000, 1_000_000, True, "")
    assert {app.id: app.priority_problem for app in world.engine.list_applications()}[CURL] == ""


def test_normal_and_link_off_restore_the_plan_exactly(world: World) -> None:
    _running(world)
    world.engine.set_limit(WGET, Direction.UP, 1_000_000, 0)
    before = (
        {d: dict(c) for d, c in world.shaper.wanted.items()},
        dict(world.datapath.process_slots),
    )
    world.engine.set_link_capacity(6_000_000, 1_000_000, False)
    _prioritize(world, CURL, Priority.HIGH)
    _prioritize(world, CURL, Priority.NORMAL)  # the rule had nothing else: it goes
    world.engine.set_link_capacity(0, 0, False)
    world.engine.tick()
    assert world.shaper.links == {Direction.DOWN: None, Direction.UP: None}
    assert (world.shaper.wanted, {p: s for p, s in world.datapath.process_slots.items() if s}) == (
        before[0],
        {p: s for p, s in before[1].items() if s},
    )
    assert (
        CURL not in {r.app_id for r in world.engine.list_rules()} and world.engine.has_limits()
    )  # wget's limit


def test_an_estimated_capacity_is_honest_until_known_and_then_followed(world: World) -> None:
    _running(world)
    _prioritize(world, CURL, Priority.CRITICAL)
    world.engine.set_link_capacity(0, 0, True)
    assert world.engine.link_shaping().problem == ESTIMATING and world.shaper.links == {}
    assert {app.id: app.priority_problem for app in world.engine.list_applications()}[
        CURL
    ] == PRIORITY_ESTIMATING
    world.engine.set_estimated_capacity(Direction.DOWN, 5_000_000)
    assert world.shaper.links == {Direction.DOWN: LinkShaping(5_000_000)}
    shaping = world.engine.link_shaping()
    assert (shaping.down_capacity_bps, shaping.down_set_bps, shaping.estimate) == (
        5_000_000,
        0,
        True,
    )
    assert shaping.problem == (
        "uploads are not prioritized yet: the upload capacity is still being estimated"
    )
    world.engine.set_estimated_capacity(
        Direction.DOWN, 10
    )  # below any rate a caller may set: the floor
    assert world.shaper.links == {Direction.DOWN: LinkShaping(1_000)}
    world.engine.set_link_capacity(
        4_000_000, 0, False
    )  # set by hand: the estimate no longer counts
    assert world.shaper.links[Direction.DOWN] == LinkShaping(4_000_000)


def test_a_direction_without_capacity_is_said_in_plain_words(world: World) -> None:
    """walk26: the window read "Not in force: up is not ordered: no capacity
    for it"; a user knows "no upload capacity is set" (or that it is being
    estimated)."""
    _running(world)
    _prioritize(world, CURL, Priority.CRITICAL)
    world.engine.set_link_capacity(6_000_000, 0, False)
    problems = {app.id: app.priority_problem for app in world.engine.list_applications()}
    assert problems[CURL] == (
        "uploads are not prioritized: no upload capacity is set (set it in the link capacity)"
    )
    world.engine.set_link_capacity(0, 0, True)
    world.engine.set_estimated_capacity(Direction.DOWN, 5_000_000)
    problems = {app.id: app.priority_problem for app in world.engine.list_applications()}
    assert problems[CURL] == (
        "uploads are not prioritized yet: the upload capacity is still being estimated"
    )


def test_the_ebpf_backend_cannot_order_and_says_so(world: World) -> None:
    world.shaper.backend = "ebpf"
    _running(world)
    _prioritize(world, CURL, Priority.CRITICAL)
    cannot = (
        "downloads cannot be prioritized: the ebpf backend limits them here, and priorities "
        "need the helper's tc backend; uploads cannot be prioritized: the ebpf backend limits "
        "them here, and priorities need the helper's tc backend"
    )
    problem = {app.id: app.priority_problem for app in world.engine.list_applications()}[CURL]
    # no capacity would help: not told to set one (it was, until review28)
    assert problem == cannot and world.engine.link_shaping().problem == cannot
    world.engine.set_link_capacity(6_000_000, 0, False)
    problem = {app.id: app.priority_problem for app in world.engine.list_applications()}[CURL]
    assert problem == cannot  # nor an upload capacity ("no upload capacity is set" until review28)
    assert world.engine.link_shaping().problem == (
        "downloads cannot be prioritized: the ebpf backend limits them here, "
        "and priorities need the helper's tc backend"
    )


def test_priorities_and_the_capacity_are_stored_with_the_rules(world: World) -> None:
    saved = []
    world.engine._save_rules = saved.append  # what the engine hands the store after each change
    _running(world)
    _prioritize(world, CURL, Priority.CRITICAL)
    world.engine.set_link_capacity(6_000_000, 1_000_000, True)
    loaded = decode_rules(encode_rules(saved[-1]))
    assert (loaded.link.down_bps, loaded.link.up_bps, loaded.link.estimate) == (
        6_000_000,
        1_000_000,
        True,
    )
    assert {d: limit.priority for d, limit in loaded.get((CURL, ADMIN_OWNER)).items()} == {
        Direction.DOWN: Priority.CRITICAL,
        Direction.UP: Priority.CRITICAL,
    }


def test_pausing_takes_the_link_away_and_says_so(world: World) -> None:
    _running(world)
    _prioritize(world, CURL, Priority.CRITICAL)
    world.engine.set_link_capacity(6_000_000, 1_000_000, False)
    world.engine.set_limits_paused(True)
    assert world.shaper.links == {Direction.DOWN: None, Direction.UP: None}
    assert (
        world.shaper.wanted == {Direction.DOWN: {}, Direction.UP: {}}
        and world.datapath.process_slots[10] == 0
    )
    assert world.engine.link_shaping().problem == "limits are paused"
    assert {app.id: app.priority_problem for app in world.engine.list_applications()}[
        CURL
    ] == "limits are paused"
    world.engine.set_limits_paused(False)
    assert (
        world.shaper.links[Direction.UP] == LinkShaping(1_000_000)
        and world.datapath.process_slots[10] != 0
    )


def test_an_uplink_the_link_tree_does_not_hold_keeps_a_priority_from_being_in_force(
    world: World,
) -> None:
    """A foreign filter ahead of ours, or an uplink we may not hook, lets that
    uplink's traffic pass unordered: the priority and the link say so."""
    _running(world)
    _prioritize(world, CURL, Priority.CRITICAL)
    world.engine.set_link_capacity(6_000_000, 1_000_000, False)
    # The policer guards tc's gaps (the limits hold: enforcement_gaps hides them); the order does not hold.
    world.shaper.tc_gaps = {
        Direction.UP: ["wlan0: a filter ChadThrottle did not create runs before its own"]
    }
    world.engine.tick()
    problem = {app.id: app.priority_problem for app in world.engine.list_applications()}[CURL]
    assert (
        problem
        == "some uploads are not prioritized: wlan0: a filter ChadThrottle did not create runs before its own"
    )
    assert world.engine.link_shaping().problem == problem
    world.shaper.tc_gaps = {}
    world.engine.tick()
    assert {app.id: app.priority_problem for app in world.engine.list_applications()}[CURL] == ""


def test_traffic_in_another_namespace_is_said_before_anyone_has_listed(world: World) -> None:
    """Where a prioritized application's sockets are is noted on every due tick,
    so the first listing (a one-shot chadthrottle-ctl list) already says its
    traffic there is not ordered; the round-trip dump waits for a viewer."""
    from chadthrottle.helper.engine.rtt import RttWatch

    class Watch(RttWatch):  # the kernel's side is tests/helper/kernel/test_socket_diag.py
        dumped: list[bool]

        def measure(self, apps: Mapping[str, list[int]], rtt: bool = True,
                    uids: Mapping[int, int] | None = None,
                    progress: Callable[[], None] = lambda: None) -> None:  # fmt: skip
            self.dumped.append(rtt)
            self._measured_at, self.measured = self._clock(), frozenset(apps)
            self.elsewhere = {app_id: "net:[4026532999]" for app_id in apps}

    world.engine._rtt = watch = Watch()
    watch.dumped = []  # measure's rtt argument at each call: the dump or not
    _running(world)
    _prioritize(world, CURL, Priority.CRITICAL)
    world.engine.set_link_capacity(6_000_000, 1_000_000, False)
    world.engine.tick()
    problem = {app.id: app.priority_problem for app in world.engine.list_applications()}[CURL]
    assert (
        problem == "its traffic in another network namespace (net:[4026532999]) is not prioritized"
        and watch.dumped == [False]
    )


def test_a_refusal_while_the_link_tree_stands_keeps_a_priority_from_being_in_force(
    world: World,
) -> None:
    """The tree is on the kernel but the last plan was refused (the class of
    a new priority, say): said on the priority, as on a limit."""
    _running(world)
    _prioritize(world, CURL, Priority.CRITICAL)
    world.engine.set_link_capacity(6_000_000, 1_000_000, False)
    world.shaper.refuse = True
    world.engine.tick()
    problem = {app.id: app.priority_problem for app in world.engine.list_applications()}[CURL]
    assert problem == "the kernel refused the last change: eth0 has a foreign root qdisc"
    assert world.engine.link_shaping().problem == problem
    world.shaper.refuse = False
    world.engine.tick()
    assert {app.id: app.priority_problem for app in world.engine.list_applications()}[CURL] == ""


def test_an_application_just_given_a_priority_is_said_elsewhere_at_once(
    world: World, monkeypatch
) -> None:
    """The first listing after SetPriority (chadthrottle-ctl priority reads it
    at once) comes before the next 2-s measure: the namespaces of the
    application's processes are read there and then."""
    monkeypatch.setattr("chadthrottle.helper.engine.engine.elsewhere_of",
                        lambda pids: "net:[4026532999]" if 10 in pids else "", raising=False)  # fmt: skip
    _running(world)
    world.engine.set_link_capacity(6_000_000, 1_000_000, False)
    _prioritize(world, CURL, Priority.CRITICAL)
    problem = {app.id: app.priority_problem for app in world.engine.list_applications()}[CURL]
    assert (
        problem == "its traffic in another network namespace (net:[4026532999]) is not prioritized"
    )


def test_a_containers_priority_not_carried_by_its_device_is_said_with_why(
    world: World, monkeypatch
) -> None:
    """A device whose ingress hook cannot be trusted to carry a container's
    slot (a filter of someone else's there can set skb->tc_index:
    TcShaper.carrying_gaps) leaves the container's priority unordered: the
    listing says so, and why, and the local applications' problems do not."""
    monkeypatch.setattr("chadthrottle.helper.engine.engine.elsewhere_of",
                        lambda pids: "net:[4026532999]" if 10 in pids else "", raising=False)  # fmt: skip
    why = "veth1: a u32 filter ChadThrottle did not create (prio 1) runs before its own on ingress"
    world.shaper.uncarried = [why]
    _running(world)
    world.engine.set_link_capacity(6_000_000, 1_000_000, False)
    _prioritize(world, CURL, Priority.CRITICAL)
    problem = {app.id: app.priority_problem for app in world.engine.list_applications()}[CURL]
    assert (
        problem
        == f"its traffic in another network namespace (net:[4026532999]) is not prioritized ({why})"
    )
    assert world.engine.link_shaping().problem == ""


def test_a_user_is_shown_the_round_trip_and_namespace_of_their_own_processes_only(
    world: World,
) -> None:
    """An administrator's priority reaches every user's processes of the
    application; a user who lists it sees what their own sockets say, as
    with rates (root sees the whole)."""
    from chadthrottle.helper.engine.api import ADMIN_VIEWER, Viewer
    from chadthrottle.helper.engine.rtt import RttWatch
    from chadthrottle.helper.identity.processes import ProcessInfo

    class Watch(RttWatch):  # the kernel's side is tests/helper/kernel/test_socket_diag.py
        given: dict[int, int]

        def measure(self, apps: Mapping[str, list[int]], rtt: bool = True,
                    uids: Mapping[int, int] | None = None,
                    progress: Callable[[], None] = lambda: None) -> None:  # fmt: skip
            self._measured_at, self.measured, self.given = (
                self._clock(),
                frozenset(apps),
                dict(uids or {}),
            )

        def seen_by(self, app_id: str, uid: int | None) -> tuple[int, str]:
            return {None: (222, "net:[4026532999]"), 1000: (111, "")}.get(uid, (0, ""))

    world.engine._rtt = watch = Watch()
    _running(world)
    world.processes[11] = ProcessInfo(
        11, 1, 2000, "/usr/bin/curl", ("/usr/bin/curl",), "curl", "/"
    )  # another user's
    world.engine.tick()
    _prioritize(world, CURL, Priority.CRITICAL)
    world.engine.set_link_capacity(6_000_000, 1_000_000, False)
    world.engine.list_applications()  # someone looks: the next measure reads round trips
    world.engine.tick()
    assert {pid: watch.given[pid] for pid in (10, 11)} == {10: 1000, 11: 2000}
    mine = {a.id: a for a in world.engine.list_applications(Viewer(1000, sees_all=False))}[CURL]
    everyone = {a.id: a for a in world.engine.list_applications(ADMIN_VIEWER)}[CURL]
    assert (mine.rtt_us, mine.priority_problem) == (111, "")
    assert (everyone.rtt_us, everyone.priority_problem) == (
        222,
        "its traffic in another network namespace (net:[4026532999]) is not prioritized",
    )


def test_a_class_without_a_rate_in_its_direction_does_not_replace_the_counted_rate() -> None:
    """Under a link a priority alone and a download limit have an upload class
    too; what such a class passes (nothing of the application's pure ACKs or of
    its traffic in another namespace) is not its rate: the counters are (seen on
    screen, 0 B/s listed up for a 2 MB/s sender). A rated direction keeps what
    its limit let through."""
    clock = [100.0]
    world = World(clock=lambda: clock[0])
    _running(world)
    world.engine.set_link_capacity(6_000_000, 1_000_000, False)
    world.engine.set_limit(CURL, Direction.DOWN, 2_000_000, 0)
    _prioritize(world, WGET, Priority.CRITICAL)
    here = world.engine._namespaces.own_cookie
    for second in range(1, 5):
        clock[0] += 1.0
        world.datapath.traffic = [
            Traffic(10, rx_bytes=2_100_000 * second, tx_bytes=36_000 * second, netns_cookie=here),
            Traffic(
                20, rx_bytes=40_000 * second, tx_bytes=2_400_000 * second, netns_cookie=here + 1
            ),
        ]
        slots = world.datapath.process_slots
        world.shaper.sent = {slots[10]: 0, slots[20]: 0}  # their upload classes pass nothing
        world.shaper.sent_down = {slots[10]: 2_000_000 * second, slots[20]: 0}
        world.engine.tick()
    apps = {app.id: app for app in world.engine.list_applications()}
    assert (apps[CURL].down_bps, apps[CURL].up_bps) == (2_000_000, 36_000)
    assert (apps[WGET].down_bps, apps[WGET].up_bps) == (40_000, 2_400_000)
