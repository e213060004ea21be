"""Stable identity end to end (issue 14): the real helper names a snap (by a
cgroup named as snapd names its scopes), an AppImage (an AppImage-like mount
directory and $APPIMAGE) and a program an installed .desktop file runs
(a .desktop file in the helper's XDG data dir) the same across two launches;
and rules and usage history stored under a snap's old revisioned path and a
desktop program's executable follow them to their new ids at start.

The programs are copies of bash holding a UDP socket on loopback; no rule
reaches them, so no qdisc is put on any interface. The one limited program
(the attack: a process that names its own scope after a snap, to escape an
administrator's limit on its file) runs in the project's network namespace,
from a copy of tests/support/traffic.py at a path of its own, so no other
test's traffic.py is reached."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from chadthrottle.contract import ADMIN_OWNER, Direction
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import PrivateSystemBus
from chadthrottle.helper.usage.buckets import Level, bucket_start
from chadthrottle.helper.usage.store import UsageEntry, UsageStore
from chadthrottle.usage_contract import UsageResolution

from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.helper_process import HelperProcess
from tests.support.netns import (
    TRAFFIC_SCRIPT,
    NetnsPair,
    Receiver,
    netns_pair,
    nsenter_argv,
    spawn,
    wait_for_line,
)
from tests.support.requirements import require_root
from tests.support.waiting import eventually

# Opens a UDP socket, sends one datagram to the discard port on loopback, and
# waits on stdin (no child left behind when it is killed).
HOLD_A_SOCKET = "exec 3<>/dev/udp/127.0.0.1/9; echo hi >&3; echo ready; read -r -t 120 _"


@dataclass
class World:
    tag: str
    tmp: Path
    helper: HelperProcess
    bus_address: str
    tool: Path  # runs from a terminal; an installed .desktop file runs it
    old_tool: Path  # not running: a rule and history were stored under its exe: id
    pair: NetnsPair


@contextlib.contextmanager
def _cgroup(path: Path) -> Iterator[Path]:
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)
        deadline = time.monotonic() + 5
        while (path / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        path.rmdir()


def _copy_of_bash(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy("/bin/bash", path)
    return path


def _seed_state(state_dir: Path, tag: str, old_tool: Path) -> None:
    """A rules file and a usage history from before: ids under a snap's
    revisioned path (two revisions) and the desktop program's executable."""
    state_dir.mkdir(mode=0o700)
    snap_old, snap_older = (
        f"exe:/snap/ctrule{tag}/12/bin/tool",
        f"exe:/snap/ctrule{tag}/13/bin/tool",
    )
    rules = {"version": 2, "rules": [
        {"app_id": snap_old, "owner": "all", "down": {"rate_bps": 1_000_000, "burst_bytes": 131_072}},
        {"app_id": f"exe:{old_tool}", "owner": 61_004, "up": {"rate_bps": 2_000_000, "burst_bytes": 131_072}},
    ]}  # fmt: skip
    (state_dir / "rules.json").write_text(json.dumps(rules))
    (state_dir / "rules.json").chmod(0o600)
    store = UsageStore(state_dir)
    assert store.open()
    minute = bucket_start(Level.MINUTE, int(time.time()) - 3 * 3600)
    store.add([UsageEntry(minute, snap_old, 0, (1_000, 100, 0, 0)), UsageEntry(minute, snap_older, 0, (2_000, 200, 0, 0)),
               UsageEntry(minute + 60, f"exe:{old_tool}", 0, (7_000, 700, 0, 0))])  # fmt: skip
    store.close()


@pytest.fixture(scope="module")
def world(
    private_bus: PrivateSystemBus, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    require_root()
    tag = secrets.token_hex(3)
    tmp = tmp_path_factory.mktemp("stable-identity")
    tool, old_tool = (
        _copy_of_bash(tmp / "bin" / f"cttool-{tag}"),
        _copy_of_bash(tmp / "bin" / f"ctold-{tag}"),
    )
    applications = tmp / "share" / "applications"
    applications.mkdir(parents=True)
    (applications / f"org.cttest{tag}.Tool.desktop").write_text(
        f"[Desktop Entry]\nType=Application\nName=CT Tool {tag}\nIcon=ct-tool\nExec={tool} --new-window %U\n"
    )
    (applications / f"org.cttest{tag}.Old.desktop").write_text(
        f"[Desktop Entry]\nType=Application\nName=CT Old {tag}\nExec=env LANG=C {old_tool}\n"
    )
    _seed_state(tmp / "state", tag, old_tool)
    with pytest.MonkeyPatch.context() as patch, netns_pair() as pair:
        patch.setenv(
            "XDG_DATA_DIRS", f"{tmp / 'share'}:/usr/local/share:/usr/share"
        )  # the helper inherits it
        helper = HelperProcess(private_bus.address, netns=pair.host_ns, state_dir=tmp / "state")
        with helper:
            yield World(tag, tmp, helper, private_bus.address, tool, old_tool, pair)
            if helper.returncode is not None:
                pytest.fail(f"the helper died during the tests:\n{helper.log_text()}")


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        child.kill()
        child.wait()


def _start(children: list[subprocess.Popen[str]], argv: list[str], cgroup: Path | None = None,
           env: dict[str, str] | None = None) -> int:  # fmt: skip
    if cgroup is not None:  # enter the cgroup before exec, as a launcher would
        argv = ["sh", "-c", f'echo $$ > "{cgroup}/cgroup.procs" && exec "$@"', "sh", *argv]
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={"PATH": "/usr/bin:/bin", **(env or {})})  # fmt: skip
    children.append(child)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child.pid


def _application_of(world: World, pid: int) -> tuple[str, str, str]:
    """(id, name, icon) of the listed application that has pid."""
    found: list[tuple[str, str, str]] = []

    def listed() -> bool:
        apps = call_helper(world.bus_address, lambda client: client.list_applications())
        found[:] = [(app.id, app.name, app.icon) for app in apps if pid in app.pids]
        return bool(found)

    assert eventually(listed, 10), f"pid {pid} not listed:\n{world.helper.log_text()}"
    return found[0]


def test_a_snap_scope_is_one_application_across_two_launches(
    world: World, children: list[subprocess.Popen[str]]
) -> None:
    parent = cgroup2_mount() / f"{own_names.TEST_NAME_PREFIX}{world.tag}.slice"
    snap = f"ctsnap{world.tag}"
    with _cgroup(parent), _cgroup(parent / f"snap.{snap}.tool-{uuid.uuid4()}.scope") as first, \
            _cgroup(parent / f"snap.{snap}.tool-{uuid.uuid4()}.scope") as second:  # fmt: skip
        ids = {_application_of(world, _start(children, ["/bin/bash", "-c", HOLD_A_SOCKET], scope))[0]
               for scope in (first, second)}  # fmt: skip
    assert ids == {f"snap:{snap}"}


def test_a_system_service_is_its_unit_across_two_launches(
    world: World, children: list[subprocess.Popen[str]]
) -> None:
    """A cgroup named as systemd names a system service's (the machine may have
    no systemd: /system.slice is made for the test if it is not there, and
    removed again)."""
    system_slice = cgroup2_mount() / "system.slice"
    made_slice = not system_slice.exists()
    unit = f"ctunit{world.tag}.service"
    try:
        with _cgroup(system_slice / unit) as service:
            found = {_application_of(world, _start(children, [str(world.tool), "-c", HOLD_A_SOCKET], service))
                     for _ in range(2)}  # fmt: skip
    finally:
        if made_slice:
            with contextlib.suppress(OSError):  # another test's service may be in it now
                system_slice.rmdir()
    # the program is one a .desktop file runs: the service comes first
    assert found == {(f"unit:{unit}", unit, "")}


def test_an_appimage_is_one_application_across_two_launches(
    world: World, children: list[subprocess.Popen[str]]
) -> None:
    image = world.tmp / f"CtTest{world.tag}-1.0.AppImage"
    found = set()
    for launch in ("Ab12Cd", "Zy98Xw"):
        mount = world.tmp / f".mount_CtTes{launch}"
        program = _copy_of_bash(mount / "AppRun")
        pid = _start(
            children,
            [str(program), "-c", HOLD_A_SOCKET],
            env={"APPIMAGE": str(image), "APPDIR": str(mount)},
        )
        found.add(_application_of(world, pid)[:2])
    assert found == {(f"appimage:{image}", f"CtTest{world.tag}-1.0")}


def test_a_program_a_desktop_file_runs_is_that_desktop_app(
    world: World, children: list[subprocess.Popen[str]]
) -> None:
    """Started from a terminal (no app scope), twice: the desktop app, with its name and icon."""
    found = {
        _application_of(world, _start(children, [str(world.tool), "-c", HOLD_A_SOCKET]))
        for _ in range(2)
    }
    assert found == {(f"app:org.cttest{world.tag}.Tool", f"CT Tool {world.tag}", "ct-tool")}


def test_rules_and_history_followed_the_identity_rules_at_start(world: World) -> None:
    rules = {(rule.app_id, rule.owner, rule.direction, rule.rate_bps)
             for rule in call_helper(world.bus_address, lambda client: client.list_rules())}  # fmt: skip
    assert (f"snap:ctrule{world.tag}", ADMIN_OWNER, "down", 1_000_000) in rules
    assert (f"app:org.cttest{world.tag}.Old", 61_004, "up", 2_000_000) in rules
    assert not any("/snap/" in rule[0] or str(world.old_tool) in rule[0] for rule in rules)
    stored = json.loads((world.tmp / "state" / "rules.json").read_text())
    assert {rule["app_id"] for rule in stored["rules"]} == {
        f"snap:ctrule{world.tag}",
        f"app:org.cttest{world.tag}.Old",
    }
    since = int(time.time()) - 86_400
    snap = call_helper(
        world.bus_address,
        lambda c: c.get_usage(f"snap:ctrule{world.tag}", since, 0, UsageResolution.HOUR),
    )
    assert (sum(row.down_bytes for row in snap), sum(row.up_bytes for row in snap)) == (3_000, 300)
    tool = call_helper(
        world.bus_address,
        lambda c: c.get_usage(f"app:org.cttest{world.tag}.Old", since, 0, UsageResolution.HOUR),
    )
    assert sum(row.down_bytes for row in tool) == 7_000
    old = call_helper(
        world.bus_address,
        lambda c: c.get_usage(f"exe:{world.old_tool}", since, 0, UsageResolution.HOUR),
    )
    assert sum(row.down_bytes for row in old) == 0


LIMIT_BPS = 1_000_000
WIRE = 1448 / 1500  # payload per wire byte of a full TCP segment


def test_a_process_renamed_by_its_scope_is_still_held_by_the_administrators_rule_on_its_file(
    world: World, tmp_path: Path
) -> None:
    """Its user named the scope (snap.<x>.<y>-<uuid>.scope, any name would do):
    it is listed as that snap, and the administrator's limit on the script it
    runs holds it all the same, as before on its own id."""
    script = tmp_path / f"ct-traffic-{world.tag}.py"
    shutil.copy(TRAFFIC_SCRIPT, script)
    port = 5900 + secrets.randbelow(90)
    common = ["--port", str(port), "--seconds", "60"]
    parent = cgroup2_mount() / f"{own_names.TEST_NAME_PREFIX}{world.tag}-renamed.slice"
    processes: list[subprocess.Popen[str]] = []
    try:
        with (
            _cgroup(parent),
            _cgroup(parent / f"snap.ctfake{world.tag}.app-{uuid.uuid4()}.scope") as scope,
        ):
            sink = spawn(nsenter_argv(world.pair.peer_ns, [sys.executable, str(TRAFFIC_SCRIPT), "serve", "--role", "sink",
                                                           *common]), None)  # fmt: skip
            processes.append(sink)
            wait_for_line(sink, "listening")
            receiver = Receiver(sink)
            app = spawn(nsenter_argv(world.pair.host_ns, [sys.executable, str(script), "connect", "--host",
                                                          world.pair.peer_addr, "--role", "source", *common]), scope)  # fmt: skip
            processes.append(app)
            wait_for_line(app, "connected")
            assert _application_of(world, app.pid)[0] == f"snap:ctfake{world.tag}"
            assert receiver.rate_bps(1.0) > 5 * LIMIT_BPS  # fast before
            file_id = f"script:{script}"
            assert (
                call_helper(
                    world.bus_address, lambda c: c.set_limit(file_id, Direction.UP, LIMIT_BPS)
                )
                == file_id
            )
            try:
                # The judged 2 s window starts once a 0.5 s probe reads the limit
                # (within 10%; at most 10 s, as the 2 s windows read until one was
                # in the band took up to 12 s): the first window, not any one.
                eventually(
                    lambda: abs(receiver.rate_bps(0.5) / WIRE - LIMIT_BPS) <= 0.1 * LIMIT_BPS,
                    10.0,
                    interval_s=0.0,
                )
                rate = receiver.rate_bps(2.0) / WIRE
                assert 0.85 * LIMIT_BPS <= rate <= 1.15 * LIMIT_BPS, rate
            finally:
                call_helper(world.bus_address, lambda c: c.clear_limit(file_id))
    finally:
        for process in processes:
            process.kill()
            process.wait()
