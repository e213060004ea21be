"""Who may do what, decided by the real polkitd: root, an unprivileged uid with
no session (denied), and that uid granted limit-own (and monitor) by a polkit
rule written during the test. Own versus other users' applications, and what
ListApplications discloses to whom.

The rule names the client's pid, so it grants nothing to any other process
(other test sessions share /etc/polkit-1/rules.d), and it is removed after."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chadthrottle.contract import Action, Direction, ErrorName
from tests.e2e.conftest import MiB, Stack
from tests.support.helper_calls import call_helper
from tests.support.netns import NetnsPair, Receiver, Stream, app_scope, nsenter_argv, start_stream
from tests.support.requirements import require_program

NOBODY = 65534
RULES_DIR = Path("/etc/polkit-1/rules.d")
TRAFFIC_SCRIPT = Path(__file__).parents[1] / "support" / "traffic.py"
# A client that runs as NOBODY and keeps one bus connection (so one pid for
# polkit): reads one JSON command per line, answers one JSON line.
CLIENT = r"""
import asyncio, json, sys
from chadthrottle.client import HelperClient, HelperClientError
from chadthrottle.contract import Direction

async def main():
    async with HelperClient() as client:
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            name, *args = json.loads(line)
            try:
                if name == "list":
                    result = [[a.id, list(a.uids)] for a in await client.list_applications()]
                elif name == "set":
                    result = await client.set_limit(args[0], Direction(args[1]), args[2])
                else:
                    result = await client.clear_limit(args[0])
                print(json.dumps({"ok": result}), flush=True)
            except HelperClientError as error:
                print(json.dumps({"error": error.name}), flush=True)

asyncio.run(main())
"""


class ClientAs:
    """The CLIENT script as another uid."""

    def __init__(self, bus_address: str, uid: int) -> None:
        argv = [require_program("setpriv"), f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                sys.executable, "-c", CLIENT]  # fmt: skip
        env = {"DBUS_SYSTEM_BUS_ADDRESS": bus_address, "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"}
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert json.loads(self._line()) == {"ready": True}

    @property
    def pid(self) -> int:
        return self.process.pid

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, "the client died"
        return line

    def ask(self, *command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self._line())
        return answer

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _stream_as(uid: int, pair: NetnsPair, port: int, scope: Path) -> Stream:
    """An upload whose application runs as uid, in scope (joined as root, before
    the uid is dropped, as a launcher would)."""
    script = [sys.executable, str(TRAFFIC_SCRIPT)]
    common = ["--port", str(port), "--role"]
    server = subprocess.Popen(nsenter_argv(pair.peer_ns, [*script, "serve", *common, "sink", "--seconds", "60"]),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert server.stdout is not None and "listening" in server.stdout.readline()
    setpriv = [require_program("setpriv"), f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    app_argv = nsenter_argv(pair.host_ns, [*setpriv, *script, "connect", "--host", pair.peer_addr,
                                           *common, "source", "--seconds", "60"])  # fmt: skip
    app = subprocess.Popen(["sh", "-c", f'echo $$ > "{scope}/cgroup.procs" && exec "$@"', "sh", *app_argv],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert app.stdout is not None and "connected" in app.stdout.readline()
    return Stream(app=app, server=server, receiver=Receiver(server))


@pytest.fixture
def nobody(stack: Stack) -> Iterator[ClientAs]:
    client = ClientAs(stack.bus_address, NOBODY)
    yield client
    client.close()


def _grant_rule(pid: int, actions: list[Action]) -> str:
    ids = json.dumps([action.value for action in actions])
    return (
        "// Written by ChadThrottle's tests; removed when the test ends.\n"
        "polkit.addRule(function(action, subject) {\n"
        f"    if (subject.pid == {pid} && {ids}.indexOf(action.id) >= 0) {{ return polkit.Result.YES; }}\n"
        "});\n"
    )


@pytest.fixture
def grant(nobody: ClientAs) -> Iterator[Path]:
    """A rule granting monitor + limit-own to the nobody client's process only;
    returns once polkitd has picked it up (it watches the directory)."""
    path = RULES_DIR / f"10-chadthrottle-test-{secrets.token_hex(4)}.rules"
    path.write_text(_grant_rule(nobody.pid, [Action.MONITOR, Action.LIMIT_OWN]))
    path.chmod(0o644)
    try:
        deadline = time.monotonic() + 15
        while "error" in nobody.ask("list") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "ok" in nobody.ask("list"), "polkitd did not pick up the rule"
        yield path
    finally:
        path.unlink(missing_ok=True)
    deadline = time.monotonic() + 15
    while "ok" in nobody.ask("list") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert nobody.ask("list") == {"error": ErrorName.NOT_AUTHORIZED.value}, "polkitd kept the removed rule"


@pytest.fixture
def two_users_apps(stack: Stack) -> Iterator[tuple[Stream, Stream]]:
    """An upload by NOBODY's application and one by root's, both running."""
    with app_scope(stack.cgroup_root, "org.chadthrottle.TestNobodyApp") as nobody_scope, \
            app_scope(stack.cgroup_root, "org.chadthrottle.TestRootApp") as root_scope:  # fmt: skip
        streams: list[Stream] = []
        try:
            streams.append(_stream_as(NOBODY, stack.pair, 5700, nobody_scope))
            streams.append(start_stream(stack.pair, 5701, "up", app_cgroup=root_scope))
            time.sleep(1.5)  # a tick, so both show in ListApplications with traffic
            yield streams[0], streams[1]
        finally:
            for stream in streams:
                stream.stop()


NOBODY_APP = "app:org.chadthrottle.TestNobodyApp"
ROOT_APP = "app:org.chadthrottle.TestRootApp"


def test_root_sees_and_limits_every_users_applications(stack: Stack, two_users_apps: tuple[Stream, Stream]) -> None:
    apps = {a.id: a for a in call_helper(stack.bus_address, lambda c: c.list_applications())}
    assert apps[NOBODY_APP].uids == (NOBODY,) and apps[ROOT_APP].uids == (0,)
    assert call_helper(stack.bus_address, lambda c: c.set_limit(NOBODY_APP, Direction.UP, MiB)) == NOBODY_APP
    assert call_helper(stack.bus_address, lambda c: c.clear_limit(NOBODY_APP)) == NOBODY_APP


def test_without_a_session_nobody_may_do_nothing(
    stack: Stack, nobody: ClientAs, two_users_apps: tuple[Stream, Stream]
) -> None:
    before = stack.idle_tc_state()
    denied = {"error": ErrorName.NOT_AUTHORIZED.value}
    assert nobody.ask("list") == denied
    assert nobody.ask("set", NOBODY_APP, "up", MiB) == denied  # its own: limit-own, no session
    assert nobody.ask("set", ROOT_APP, "up", MiB) == denied
    assert nobody.ask("set", "exe:/no/such/app", "up", MiB) == denied  # learns nothing
    assert stack.tc_state() == before


def test_granted_limit_own_limits_its_own_application_only(
    stack: Stack, nobody: ClientAs, grant: Path, two_users_apps: tuple[Stream, Stream]
) -> None:
    own, others = two_users_apps
    assert nobody.ask("set", f"pid:{own.app_pid}", "up", MiB) == {"ok": NOBODY_APP}
    time.sleep(2.0)
    assert 0.85 * MiB <= own.receiver.rate_bps(2.0) / (1448 / 1500) <= 1.15 * MiB
    assert f"uid {NOBODY} set up limit of {NOBODY_APP} to {MiB} B/s" in stack.helper.log_text()

    limited = stack.tc_state()
    denied = {"error": ErrorName.NOT_AUTHORIZED.value}
    assert nobody.ask("set", ROOT_APP, "up", MiB) == denied
    assert nobody.ask("set", f"pid:{others.app_pid}", "up", MiB) == denied
    assert nobody.ask("clear", ROOT_APP) == denied
    assert stack.tc_state() == limited
    assert others.receiver.rate_bps(1.0) > 20 * MiB

    assert nobody.ask("clear", NOBODY_APP) == {"ok": NOBODY_APP}


def test_list_applications_shows_a_user_only_its_own(
    stack: Stack, nobody: ClientAs, grant: Path, two_users_apps: tuple[Stream, Stream]
) -> None:
    listed = nobody.ask("list")["ok"]
    assert [NOBODY_APP, [NOBODY]] in listed
    assert all(uids == [NOBODY] for _, uids in listed), listed  # nothing of root's, nor anyone else's
    everything = {a.id for a in call_helper(stack.bus_address, lambda c: c.list_applications())}
    assert {NOBODY_APP, ROOT_APP} <= everything
