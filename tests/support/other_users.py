"""Acting as other users in end-to-end tests: a helper client running as
another uid, a polkit rule that grants actions to one client process only,
an upload whose application runs as another uid, and many applications of one.

The polkit rule names the client's pid, so it grants nothing to any other
process (other test sessions share /etc/polkit-1/rules.d), and it is removed
when the block ends."""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chadthrottle.contract import Action, ErrorName

from tests.support import own_names
from tests.support.netns import TRAFFIC_SCRIPT, NetnsPair, Receiver, Stream, nsenter_argv
from tests.support.requirements import require_program

RULES_DIR = Path("/etc/polkit-1/rules.d")
# A client that runs as another uid and keeps one bus connection (so one pid for
# polkit): reads one JSON command per line, answers one JSON line.
CLIENT = r"""
import asyncio, json, sys
from chadthrottle.client import HelperClient, HelperClientError
from chadthrottle.contract import Direction, RuleScope
from chadthrottle.usage_contract import UsageResolution

async def at_once(calls):  # sent together (the helper batches them): each one's ok or error
    room = asyncio.Semaphore(64)  # a bus connection may wait for 128 replies at most (dbus-daemon)

    async def call(made):
        async with room:
            return await made

    answers = []
    for outcome in await asyncio.gather(*(call(made) for made in calls), return_exceptions=True):
        if isinstance(outcome, HelperClientError):
            answers.append({"error": outcome.name})
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            answers.append({"ok": outcome})
    return answers

async def main():
    async with HelperClient() as client:
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            name, *args = json.loads(line)
            said = name == "said"  # ["said", command...]: an error's text too
            if said:
                name, *args = args
            try:
                if name == "list":
                    result = [[a.id, list(a.uids)] for a in await client.list_applications()]
                elif name == "rows":
                    result = [[a.id, list(a.uids), list(a.pids), a.up_bps] for a in await client.list_applications()]
                elif name == "processes":  # app id: the pids ListProcesses gives this user
                    result = sorted(p.pid for p in await client.list_processes(args[0]))
                elif name == "connections":
                    result = sorted({c.pid for c in await client.list_connections(args[0])})
                elif name == "limits":
                    result = {a.id: [a.up_limit_bps, a.up_limit_owner] for a in await client.list_applications()}
                elif name == "usage":  # app id or "", since (unix), resolution
                    rows = await client.get_usage(args[0], args[1], 0, UsageResolution(args[2]))
                    result = [[r.app_id, r.down_bytes, r.up_bytes] for r in rows]
                elif name == "rules":
                    result = [[r.app_id, r.direction, r.rate_bps, r.owner, r.in_force] for r in await client.list_rules()]
                elif name == "schedule":  # app id, days, from, to, up bytes/s[, scope]
                    scope = RuleScope(args[5]) if len(args) > 5 else RuleScope.DEFAULT
                    result = await client.set_schedule(args[0], args[1], args[2], args[3], 0, args[4], scope=scope)
                elif name == "schedules":
                    result = [[s.app_id, s.name, s.owner] for s in await client.list_schedules()]
                elif name == "block":  # app id, direction, blocked[, scope]
                    scope = RuleScope(args[3]) if len(args) > 3 else RuleScope.DEFAULT
                    result = await client.set_blocked(args[0], Direction(args[1]), args[2], scope=scope)
                elif name == "quota":  # app id, direction, bytes a day[, scope]
                    scope = RuleScope(args[3]) if len(args) > 3 else RuleScope.DEFAULT
                    result = await client.set_quota(args[0], Direction(args[1]), args[2], "day", scope=scope)
                elif name == "clear-quota":  # app id[, scope]
                    scope = RuleScope(args[1]) if len(args) > 1 else RuleScope.DEFAULT
                    result = await client.clear_quota(args[0], scope=scope)
                elif name == "gates":  # what the listing says each application's directions hold
                    result = {a.id: [a.running, a.up_blocked, a.down_quota_bytes] for a in await client.list_applications()}
                elif name == "priority":  # app id, priority[, scope]
                    scope = RuleScope(args[2]) if len(args) > 2 else RuleScope.DEFAULT
                    result = await client.set_priority(args[0], args[1], scope=scope)
                elif name == "backends":  # each backend's name, availability and notes
                    result = [[b.name, b.available, b.notes] for b in await client.list_backends()]
                elif name == "capacity":  # down bytes/s, up bytes/s, estimate
                    result = await client.set_link_capacity(args[0], args[1], args[2])
                elif name == "set":
                    scope = RuleScope(args[3]) if len(args) > 3 else RuleScope.DEFAULT
                    result = await client.set_limit(args[0], Direction(args[1]), args[2], scope=scope)
                elif name == "set-many":  # [[app id, direction, bytes/s], ...] sent at once
                    result = await at_once(client.set_limit(a, Direction(d), r) for a, d, r in args[0])
                elif name == "clear-many":  # [app id, ...] sent at once
                    result = await at_once(client.clear_limit(a) for a in args[0])
                else:
                    scope = RuleScope(args[1]) if len(args) > 1 else RuleScope.DEFAULT
                    result = await client.clear_limit(args[0], scope=scope)
                print(json.dumps({"ok": result}), flush=True)
            except HelperClientError as error:
                print(json.dumps({"error": error.name, **({"text": error.message} if said else {})}), flush=True)

asyncio.run(main())
"""
DENIED = {"error": ErrorName.NOT_AUTHORIZED.value}
NO_SUCH = {"error": ErrorName.NO_SUCH_APPLICATION.value}


class ClientAs:
    """The CLIENT script (or another that prints {"ready": true} and answers a
    JSON line per command) as another uid."""

    CLOSE_WAIT_S = 10.0

    def __init__(self, bus_address: str, uid: int, script: str = CLIENT) -> None:
        argv = [require_program("setpriv"), f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                sys.executable, "-c", script]  # fmt: skip
        env = {
            "DBUS_SYSTEM_BUS_ADDRESS": bus_address,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PATH": "/usr/bin:/bin",
        }
        self.bus_address = bus_address
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert json.loads(self._line()) == {"ready": True}

    @property
    def pid(self) -> int:
        return self.process.pid

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, "the client died"
        return line

    def _send(self, *command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def ask(self, *command: Any) -> dict[str, Any]:
        self._send(*command)
        answer: dict[str, Any] = json.loads(self._line())
        return answer

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(self.CLOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextlib.contextmanager
def client_as(bus_address: str, uid: int) -> Iterator[ClientAs]:
    client = ClientAs(bus_address, uid)
    try:
        yield client
    finally:
        client.close()


def grant_rule_text(pid: int, actions: list[Action]) -> str:
    ids = json.dumps([action.value for action in actions])
    return (
        "// Written by ChadThrottle's tests; removed when the test ends.\n"
        "polkit.addRule(function(action, subject) {\n"
        f"    if (subject.pid == {pid} && {ids}.indexOf(action.id) >= 0) {{ return polkit.Result.YES; }}\n"
        "});\n"
    )


def polkit_allows(client: ClientAs, action: Action) -> bool:
    """polkitd's own answer for the client's process (pkcheck on its bus).
    Not through the helper: it remembers a "yes" for a caller 2 s
    (adapter/polkit.CachingAuthority), which a removed rule's wait sat out."""
    checked = subprocess.run(
        [require_program("pkcheck"), "--action-id", action.value, "--process", str(client.pid)],
        env={"DBUS_SYSTEM_BUS_ADDRESS": client.bus_address, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if checked.returncode not in (0, 1, 2):  # 2: a challenge (a password), not given here
        raise RuntimeError(f"pkcheck failed ({checked.returncode}): {checked.stderr.strip()}")
    return checked.returncode == 0


@contextlib.contextmanager
def granted(
    client: ClientAs, actions: tuple[Action, ...] = (Action.MONITOR, Action.LIMIT_OWN)
) -> Iterator[Path]:
    """A rule granting actions (monitor among them) to the client's process
    only; enters once polkitd has picked it up (it watches the directory) and
    waits after the block until polkitd has dropped it (asked directly: the
    client's own calls may still be honoured for the helper's 2 s cache, but
    the client is closed after the block by every test using it)."""
    path = RULES_DIR / f"10-{own_names.TEST_NAME_PREFIX}{secrets.token_hex(4)}.rules"
    path.write_text(grant_rule_text(client.pid, list(actions)))
    path.chmod(0o644)
    try:
        deadline = time.monotonic() + 15
        while "error" in client.ask("list") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "ok" in client.ask("list"), "polkitd did not pick up the rule"
        yield path
    finally:
        path.unlink(missing_ok=True)
    deadline = time.monotonic() + 15
    while any(polkit_allows(client, a) for a in actions) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(polkit_allows(client, a) for a in actions), "polkitd kept the removed rule"


def stream_as(uid: int, pair: NetnsPair, port: int, scope: Path | None = None) -> Stream:
    """An upload whose application runs as uid, in scope if one is given
    (joined as root, before the uid is dropped, as a launcher would)."""
    script = [sys.executable, str(TRAFFIC_SCRIPT)]
    common = ["--port", str(port), "--role"]
    server = subprocess.Popen(nsenter_argv(pair.peer_ns, [*script, "serve", *common, "sink", "--seconds", "60"]),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert server.stdout is not None and "listening" in server.stdout.readline()
    setpriv = [require_program("setpriv"), f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    app_argv = nsenter_argv(pair.host_ns, [*setpriv, *script, "connect", "--host", pair.peer_addr,
                                           *common, "source", "--seconds", "60"])  # fmt: skip
    join = f'echo $$ > "{scope}/cgroup.procs" && ' if scope is not None else ""
    app = subprocess.Popen(["sh", "-c", f'{join}exec "$@"', "sh", *app_argv],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert app.stdout is not None and "connected" in app.stdout.readline()
    return Stream(app=app, server=server, receiver=Receiver(server))


@contextlib.contextmanager
def programs_as(
    uid: int, count: int, seconds: int, netns: str, prefix: str = "ct-programs-"
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """count sleeping programs run by uid, each a copy of sleep at its own path
    (argv [..., path, seconds]): each an application of its own to the helper
    (a copy, not a link: one inode is one executable to the kernel). One
    user's many applications, as the per-user rule bound's test
    (tests/e2e/test_rule_bounds.py) and bench/rules_write_cost.py's levels
    need them: one spawner, so both grow their rules over the same kind of
    application. In the network namespace netns (a test's): limited, their
    helper shapes the namespaces they run in, and in the machine's own it
    hooked the machine's eth0 (clsact34). Killed, and their folder removed,
    at the end."""
    sleep = shutil.which("sleep") or "/bin/sleep"
    setpriv = [require_program("setpriv"), f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)  # uid must reach the copies
    running: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(count):
            path = folder / f"app{n}"
            shutil.copy(sleep, path)
            path.chmod(0o755)
            running.append(
                subprocess.Popen(nsenter_argv(netns, [*setpriv, str(path), str(seconds)]))
            )
        yield running
    finally:
        for process in running:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)
