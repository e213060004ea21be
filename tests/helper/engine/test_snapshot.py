"""The read calls' snapshot (engine/snapshot.py): published after each tick
and each change, so a read after a write call's reply shows it; listings
made for the viewers who asked lately. Kernel ports are recording stand-ins
(engine unit tests); the real helper's reads while walks run are
tests/e2e/test_walks_bounded.py's."""

from __future__ import annotations

import threading

import pytest
from chadthrottle.contract import MAX_RULES_PER_USER, Direction
from chadthrottle.helper.adapter.service import HelperService
from chadthrottle.helper.engine.api import ADMIN_VIEWER, SetLimit, Viewer
from chadthrottle.helper.engine.engine import FIRST_CALLERS, FIRST_UID
from chadthrottle.helper.engine.rule_listing import RuleListing
from chadthrottle.helper.engine.snapshot import LOOKED_S, Looked, Lookers
from chadthrottle.helper.identity.processes import ProcessInfo

from tests.helper.engine.test_engine_plan import Traffic, World

NOBODY = Viewer(65534, sees_all=False)
CURL = "exe:/usr/bin/curl"


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


def test_a_viewers_listing_is_made_while_they_look_and_a_likely_first_callers_before(
    world: World,
) -> None:
    """Root's listing and that of each user running an application are made
    though they did not ask: their first call answers from the snapshot and
    waits for no walk (snap33; before, it went to the engine thread). A
    viewer running nothing is listed from its first look on."""
    world.spawn(10)  # uid 1000's curl
    world.engine.tick()
    snapshot = world.engine.published()
    assert snapshot is not None
    first = {ADMIN_VIEWER, Viewer(1000, sees_all=False)}
    assert set(snapshot.applications) == first and set(snapshot.backends) == first
    assert [
        a.id for a in snapshot.applications[Viewer(1000, sees_all=False)]
    ] == []  # no traffic yet
    world.engine.list_applications(NOBODY)  # a first look, answered on the engine thread
    world.engine.list_backends(NOBODY)
    world.engine.tick()
    snapshot = world.engine.published()
    assert snapshot is not None
    assert set(snapshot.applications) == first | {NOBODY} == set(snapshot.backends)
    assert set() in world.backends_viewers  # nobody's processes: none (uid 1000's curl)


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


def _two_users(world: World) -> dict[int, str]:
    """uid 1000's curl, uid 1001's wget, ssh run by both, all with traffic;
    and uid 1001's rule on a program that since exited. pid -> app id."""
    users = (
        (10, 1000, "curl"),
        (11, 1001, "wget"),
        (12, 1000, "ssh"),
        (13, 1001, "ssh"),
        (14, 1001, "gone"),
    )
    for pid, uid, name in users:
        exe = f"/usr/bin/{name}"
        world.processes[pid] = ProcessInfo(pid, 1, uid, exe, (exe,), name, "/")
    world.engine.tick()
    (outcome,) = world.engine.apply_changes(
        [SetLimit("pid:14", Direction.UP, 1_000_000, 0, owner=1001)]
    )
    assert outcome == "exe:/usr/bin/gone"
    del world.processes[14]
    for sent in (1_000, 2_000):
        world.datapath.traffic = [Traffic(pid, sent) for pid in (10, 11, 12, 13)]
        world.engine.tick()
    return {pid: f"exe:/usr/bin/{name}" for pid, _, name in users}


def test_a_users_listing_in_the_snapshot_holds_only_what_the_user_may_see(world: World) -> None:
    """Made over the user's own rows, not every application's then cut by
    the adapter: a looking user costs their rows, not the machine's (snap32b)."""
    apps = _two_users(world)
    user = Viewer(1001, sees_all=False)
    world.engine.looking(Looked.APPLICATIONS, user)
    world.engine.looking(Looked.APPLICATIONS, ADMIN_VIEWER)
    world.engine.tick()
    snapshot = world.engine.published()
    assert snapshot is not None
    listed = snapshot.applications[user]
    others = [app.id for app in listed if set(app.uids) - {1001}]
    assert others == [], f"other users' applications in uid 1001's snapshot listing: {others}"
    assert sorted(app.id for app in listed) == sorted([apps[11], apps[12], apps[14]])
    assert {app.id for app in snapshot.applications[ADMIN_VIEWER]} >= {apps[10], apps[11], apps[12]}
    # the engine thread's answer, cut by the adapter, lists the same rows
    thread = HelperService._visible(user, world.engine.list_applications(user))
    assert sorted(app.id for app in thread) == sorted(app.id for app in listed)


def test_a_write_call_makes_anew_only_its_callers_and_the_administrators_listings(
    world: World,
) -> None:
    """A user's change is in their own listing and in those who see all once
    the call returned; another user's listing is not made again for it (each
    costs a listing's work under the lock) but at the next tick."""
    apps = _two_users(world)
    caller, other = Viewer(1001, sees_all=False), Viewer(1000, sees_all=False)
    for viewer in (caller, other, ADMIN_VIEWER):
        world.engine.looking(Looked.APPLICATIONS, viewer)
    world.engine.tick()
    before = world.engine.published()
    assert before is not None
    (outcome,) = world.engine.apply_changes(
        [SetLimit(apps[11], Direction.DOWN, 500_000, 0, owner=1001)]
    )
    assert outcome == apps[11]
    after = world.engine.published()
    assert after is not None and after is not before
    assert [rule.app_id for rule in after.rules if rule.rate_bps == 500_000] == [apps[11]]
    for viewer in (caller, ADMIN_VIEWER):
        limits = {app.id: app.down_limit_bps for app in after.applications[viewer]}
        assert limits[apps[11]] == 500_000, viewer
    assert after.applications[other] is before.applications[other]  # kept, not made again
    world.engine.tick()
    ticked = world.engine.published()
    assert ticked is not None and ticked.applications[other] is not before.applications[other]


def test_the_detail_reads_do_not_wait_for_the_engine_lock(world: World) -> None:
    """ListProcesses, ListConnections and ListInterfaces work from the last
    publish, off the lock (snap33): they answer while another thread holds
    it (a tick's walks). Before, each took the lock (ListProcesses on the
    engine thread too)."""
    world.spawn(10)
    world.datapath.traffic = [Traffic(10, 1_000)]
    world.engine.tick()
    held, done = threading.Event(), threading.Event()
    answers: dict[str, object] = {}

    def hold() -> None:
        with world.engine._lock:
            held.set()
            done.wait(10)

    def read() -> None:
        answers["processes"] = [p.pid for p in world.engine.list_processes(CURL)]
        answers["connections"] = world.engine.list_connections(CURL, 4242)  # no process of 4242's
        answers["interfaces"] = [(i.ifindex, i.rx_bytes) for i in world.engine.list_interfaces()]

    holder, reader = threading.Thread(target=hold), threading.Thread(target=read)
    holder.start()
    try:
        assert held.wait(10)
        reader.start()
        reader.join(5)
        assert not reader.is_alive(), "a detail read waited for the engine lock"
    finally:
        done.set()
        holder.join(10)
        reader.join(10)
    assert answers == {"processes": [10], "connections": [], "interfaces": [(2, 1_000)]}


def test_process_rows_from_the_snapshot_are_the_engines_under_its_lock(world: World) -> None:
    """The snapshot's processes and rates' inputs give ListProcesses the same
    rows as the engine's own state under its lock: rates over the window,
    a restarted direction measuring, a user's processes alone."""
    world.spawn(10)
    world.spawn(11)
    world.processes[12] = ProcessInfo(12, 1, 1001, "/usr/bin/curl", ("/usr/bin/curl",), "curl", "/")
    for sent in (1_000, 5_000, 9_000):
        world.datapath.traffic = [Traffic(pid, sent, sent // 2) for pid in (10, 11, 12)]
        world.engine.tick()
    world.engine.set_limit(CURL, Direction.UP, 1_000_000, 0)  # the upload restarts: measuring

    def rows(uid: int | None) -> list[tuple[object, ...]]:
        return [(p.pid, p.down_bps, p.up_bps, p.rx_bytes, p.up_measuring)
                for p in world.engine.list_processes(CURL, uid)]  # fmt: skip

    published = {uid: rows(uid) for uid in (None, 1001)}
    assert published[None][0][1] > 0 and published[None][0][4]  # a rate, and the upload measuring
    assert [row[0] for row in published[1001]] == [12]
    engine = world.engine
    engine.published = lambda: None  # type: ignore[method-assign]
    assert {uid: rows(uid) for uid in (None, 1001)} == published


def test_an_administrators_change_is_in_every_listing_once_it_returned(world: World) -> None:
    """An administrator's rule outranks users' rules, and its caller may be
    one whom polkit lets see all only on asking: every listing is made anew
    (before snap33 a user's kept the last tick's until the next)."""
    apps = _two_users(world)
    user = Viewer(1000, sees_all=False)
    world.engine.looking(Looked.APPLICATIONS, user)
    world.engine.tick()
    (outcome,) = world.engine.apply_changes([SetLimit(apps[10], Direction.DOWN, 400_000, 0)])
    assert outcome == apps[10]
    assert _limits(world, user)[apps[10]] == (400_000, 0)
    world.engine.set_limits_paused(True)
    snapshot = world.engine.published()
    assert snapshot is not None
    (row,) = [app for app in snapshot.applications[user] if app.id == apps[10]]
    assert row.down_limit_problem, "the user's listing does not say limits are paused"


def test_the_first_callers_made_before_they_ask_are_root_and_a_few_login_users(
    world: World,
) -> None:
    """Each costs its listing every tick: root and at most FIRST_CALLERS
    users from FIRST_UID up (at 1,000 applications of 50 users, making all
    50 tripled a publish); a system user's first call goes to the engine
    thread once."""
    uids = [100, *range(FIRST_UID, FIRST_UID + FIRST_CALLERS + 2)]
    for pid, uid in enumerate(uids, start=10):
        exe = f"/usr/bin/app{uid}"
        world.processes[pid] = ProcessInfo(pid, 1, uid, exe, (exe,), "app", "/")
    world.engine.tick()
    snapshot = world.engine.published()
    assert snapshot is not None
    made = [ADMIN_VIEWER, *(Viewer(uid, sees_all=False) for uid in uids[1 : FIRST_CALLERS + 1])]
    assert list(snapshot.applications) == made


def test_an_application_started_since_the_publish_has_its_processes_read_under_the_lock(
    world: World,
) -> None:
    """An id the adapter resolved on the engine thread (not in the snapshot:
    started since its publish) lists its processes as the engine knows them,
    not the snapshot's none."""
    world.spawn(10)
    world.engine.tick()
    world.spawn(20, exe="/usr/bin/wget")
    resolved = world.engine.resolve_application("exe:/usr/bin/wget")  # the lookup reads it
    assert [p.pid for p in world.engine.list_processes(resolved.app_id)] == [20]


def test_process_rows_are_worked_out_from_one_snapshot_across_a_swap(world: World) -> None:
    """ListProcesses reads the published snapshot once: a publish swapping in
    between (a tick on the engine thread while the read runs on its own) must
    not pair one snapshot's processes with the other's rates (a process new in
    the later one read 0 B/s though that snapshot had its rate; review36b)."""
    world.spawn(10)
    for sent in (1_000, 5_000):
        world.datapath.traffic = [Traffic(10, sent, sent // 2)]
        world.engine.tick()
    engine = world.engine
    before = engine.published()
    world.spawn(13)
    for sent in (9_000, 13_000, 17_000):
        world.datapath.traffic = [Traffic(pid, sent, sent // 2) for pid in (10, 13)]
        engine.tick()
    after = engine.published()
    assert before is not None and after is not None and before is not after

    def rows() -> list[tuple[object, ...]]:
        return [(p.pid, p.down_bps, p.up_bps) for p in engine.list_processes(CURL)]

    engine.published = lambda: before  # type: ignore[method-assign]
    of_before = rows()
    engine.published = lambda: after  # type: ignore[method-assign]
    of_after = rows()
    assert [row[0] for row in of_after] == [10, 13] and of_after[1][1] > 0
    seen = iter([before, after, after, after])
    engine.published = lambda: next(seen)  # type: ignore[method-assign]
    assert rows() in (of_before, of_after)


def test_a_users_write_makes_only_its_applications_rows_anew(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 256 rules of one user, one more SetLimit makes the rows of the
    application it changed, in its caller's listing and root's, not every
    row of both (snap34: every row's gates, reach and problems per write,
    a user's SetLimit at 256 rules ~0.1-0.5 s in the real helper); the
    listings it publishes are those a whole listing would make now."""
    user = 65534
    for n in range(MAX_RULES_PER_USER + 1):
        exe = f"/opt/app{n}"
        world.processes[100 + n] = ProcessInfo(100 + n, 1, user, exe, (exe,), f"app{n}", "/")
    world.engine.tick()
    for n in range(MAX_RULES_PER_USER - 1):
        (done,) = world.engine.apply_changes(
            [SetLimit(f"pid:{100 + n}", Direction.UP, 50_000, 0, user)]
        )
        assert isinstance(done, str), done
    made: list[tuple[str, int]] = []
    held = RuleListing.held

    def counted(self: RuleListing, key: tuple[str, int], limits: object) -> object:
        made.append(key)
        return held(self, key, limits)  # type: ignore[arg-type]

    monkeypatch.setattr(RuleListing, "held", counted)
    last = f"pid:{100 + MAX_RULES_PER_USER - 1}"
    (app_id,) = world.engine.apply_changes([SetLimit(last, Direction.UP, 60_000, 0, user)])
    assert made and {key[0] for key in made} == {app_id}, f"{len(made)} rows' gates read"
    snapshot = world.engine.published()
    assert snapshot is not None
    for viewer in (ADMIN_VIEWER, Viewer(user, sees_all=False)):
        whole = tuple(world.engine._listing(viewer, True))
        assert snapshot.applications[viewer] == whole
        assert next(a.up_limit_bps for a in whole if a.id == app_id) == 60_000
