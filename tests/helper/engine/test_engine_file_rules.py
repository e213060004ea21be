"""An administrator's rule on a file ("exe:" or "script:") reaches every
process running that file, whatever identity names it (a system service, a
desktop app, a scope the user named, a faked /.flatpak-info): renaming a
process escapes an administrator's limit no more than copying its file does.
A user's own rule reaches only that user's processes by their identity, and
cannot shield a process from the administrator's rule on its file."""

from __future__ import annotations

import os
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.api import SetLimit
from chadthrottle.helper.identity.processes import ProcessInfo

from tests.helper.engine.test_engine_plan import World

CURL = "exe:/usr/bin/curl"
USER_SCOPE = (
    "/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-org.fake.Browser-1.scope"
)
SERVICE = "/system.slice/backup.service"


def _spawn(
    world: World, pid: int, uid: int, cgroup: str = "/", exe: str = "/usr/bin/curl", **facts: str
) -> None:
    world.processes[pid] = ProcessInfo(pid, 1, uid, exe, (exe,), "curl", cgroup, **facts)


def _limited_processes(world: World) -> dict[int, int]:
    return {pid: slot for pid, slot in world.datapath.process_slots.items() if slot}


def test_an_administrators_rule_on_a_file_reaches_it_under_every_name(world: World) -> None:
    _spawn(world, 10, 1000)  # exe:/usr/bin/curl
    _spawn(world, 11, 1000, USER_SCOPE)  # app:org.fake.Browser: a scope its user named
    _spawn(world, 12, 0, SERVICE)  # unit:backup.service
    _spawn(world, 13, 1000, exe="/usr/bin/curl", flatpak_info="[Application]\nname=org.fake.Flat\n")
    _spawn(world, 14, 1000, exe="/usr/bin/wget")
    world.engine.tick()
    assert {world.engine._index.identity_of(pid).app_id for pid in (11, 12, 13)} == {  # type: ignore[union-attr]
        "app:org.fake.Browser",
        "unit:backup.service",
        "app:org.fake.Flat",
    }
    world.engine.set_limit(CURL, Direction.DOWN, 1_000_000, 0)
    limited = _limited_processes(world)
    assert set(limited) == {10, 11, 12, 13} and len(set(limited.values())) == 1


def test_it_is_set_while_only_renamed_processes_run_the_file(world: World) -> None:
    _spawn(world, 12, 0, SERVICE)
    world.engine.tick()
    assert world.engine.set_limit(CURL, Direction.UP, 1_000_000, 0) == CURL
    assert set(_limited_processes(world)) == {12}


def test_a_users_own_rule_does_not_shield_a_process_from_it(world: World) -> None:
    _spawn(world, 11, 1000, USER_SCOPE)
    world.engine.tick()
    (own,) = world.engine.apply_changes(
        [SetLimit("app:org.fake.Browser", Direction.DOWN, 90_000_000, 0, owner=1000)]
    )
    assert own == "app:org.fake.Browser"
    user_slot = _limited_processes(world)[11]
    world.engine.set_limit(CURL, Direction.DOWN, 1_000_000, 0)
    assert _limited_processes(world)[11] != user_slot
    world.engine.tick()  # the user's class goes once no socket is tagged for it (classes come before tags)
    assert [spec.rate_bps for spec in world.shaper.wanted[Direction.DOWN].values()] == [1_000_000]
    world.engine.clear_limit(CURL, (Direction.DOWN,))
    slot = _limited_processes(world)[
        11
    ]  # the user's own again (a slot of its own, handed out anew)
    assert world.shaper.wanted[Direction.DOWN][slot].rate_bps == 90_000_000


def test_the_administrators_rule_on_the_application_comes_first(world: World) -> None:
    _spawn(world, 12, 0, SERVICE)
    _spawn(world, 10, 0)
    world.engine.tick()
    world.engine.set_limit("unit:backup.service", Direction.DOWN, 2_000_000, 0)
    world.engine.set_limit(CURL, Direction.DOWN, 1_000_000, 0)
    slots = _limited_processes(world)
    assert slots[12] != slots[10]
    rates = {slot: spec.rate_bps for slot, spec in world.shaper.wanted[Direction.DOWN].items()}
    assert (rates[slots[12]], rates[slots[10]]) == (2_000_000, 1_000_000)


def test_a_process_reached_by_its_file_brings_no_cgroup(world: World, tmp_path: Path) -> None:
    """Tagging the service's cgroup would limit everything else the service runs."""
    tagged: dict[int, int] = {}
    world.datapath.cgroup_root = tmp_path
    world.datapath.set_cgroup_slot = lambda cgroup, slot: tagged.__setitem__(cgroup, slot)  # type: ignore[method-assign]
    for path in (SERVICE, USER_SCOPE):
        (tmp_path / path.lstrip("/")).mkdir(parents=True)
    _spawn(world, 11, 1000, USER_SCOPE)
    _spawn(world, 12, 0, SERVICE)
    world.engine.tick()
    world.engine.set_limit(CURL, Direction.DOWN, 1_000_000, 0)
    assert set(_limited_processes(world)) == {11, 12} and not any(tagged.values())
    world.engine.set_limit("unit:backup.service", Direction.DOWN, 2_000_000, 0)
    assert {cgroup for cgroup, slot in tagged.items() if slot} == {
        os.stat(tmp_path / SERVICE.lstrip("/")).st_ino
    }


def test_a_new_process_under_another_name_is_limited_at_once(world: World) -> None:
    _spawn(world, 10, 0)
    world.engine.tick()
    world.engine.set_limit(CURL, Direction.DOWN, 1_000_000, 0)
    _spawn(world, 20, 0, SERVICE)
    world.engine.note_new_owner(20)  # its first socket, before the next tick
    assert world.datapath.process_slots[20] == world.datapath.process_slots[10] != 0
