"""The adapter over a real private system bus with a real polkitd.

Only the engine is fake (FakeEngineForAdapterTests): authorization, dispatch,
validation, error mapping and replies are the real code on a real bus.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest
from chadthrottle import contract
from chadthrottle.client import HelperClient, HelperClientError
from chadthrottle.contract import (
    ADMIN_OWNER,
    BUS_NAME,
    INTERFACE,
    METHODS,
    OBJECT_PATH,
    Direction,
    ErrorName,
    MethodSpec,
)
from chadthrottle.helper.adapter.introspection import introspection_xml as load_introspection_xml
from chadthrottle.helper.adapter.service import GENERIC_FAILURE_TEXT
from chadthrottle.helper.main import StartupError, run_helper
from dbus_fast import Message, MessageFlag, MessageType
from dbus_fast.aio import MessageBus

from tests.helper.adapter.conftest import (
    BROKEN_APP,
    CURL,
    CURL_PID,
    NOBODY_APP,
    NOBODY_UID,
    SECRET,
    SLOW_APP,
    WEIRD_APP,
    FakeEngineForAdapterTests,
    InProcessHelper,
)
from tests.support.requirements import require_program


async def _raw_call(address: str, member: str, signature: str = "", body: list[Any] | None = None,
                    interface: str = INTERFACE, flags: MessageFlag = MessageFlag.NONE) -> Message:  # fmt: skip
    bus = await MessageBus(bus_address=address).connect()
    try:
        message = Message(destination=BUS_NAME, path=OBJECT_PATH, interface=interface,
                          member=member, signature=signature, body=body or [], flags=flags)  # fmt: skip
        return await asyncio.wait_for(bus.call(message), 20)
    finally:
        bus.disconnect()


def raw_call(address: str, member: str, signature: str = "", body: list[Any] | None = None,
             interface: str = INTERFACE) -> Message:  # fmt: skip
    return asyncio.run(_raw_call(address, member, signature, body, interface))


def client_call(address: str, method: str, *args: Any) -> Any:
    async def run() -> Any:
        async with HelperClient(address) as client:
            return await getattr(client, method)(*args)

    return asyncio.run(run())


def ctl_as(uid: int | None, address: str, *args: str) -> subprocess.CompletedProcess[str]:
    """chadthrottle-ctl as root, or as another uid through setpriv."""
    command = [sys.executable, "-m", "chadthrottle.cli.ctl", *args]
    if uid is not None:
        command = [
            require_program("setpriv"),
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            *command,
        ]
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def _error(reply: Message) -> tuple[str | None, str]:
    assert reply.message_type is MessageType.ERROR, reply.body
    return reply.error_name, reply.body[0] if reply.body else ""


# -- root: authorized ----------------------------------------------------------


def test_root_sets_and_clears_limits(
    engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper
) -> None:
    address = adapter_helper.address
    assert client_call(address, "set_limit", CURL, Direction.DOWN, 1_000_000, 0) == CURL
    assert client_call(address, "clear_limit", CURL) == CURL
    assert client_call(address, "clear_limit", CURL, Direction.UP) == CURL
    assert engine.changes() == [
        ("set_limit", CURL, Direction.DOWN, 1_000_000, 0, ADMIN_OWNER),
        ("clear_limit", CURL, (Direction.DOWN, Direction.UP), ADMIN_OWNER),
        ("clear_limit", CURL, (Direction.UP,), ADMIN_OWNER),
    ]


def test_a_pid_is_resolved_before_the_engine_changes_anything(
    engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper
) -> None:
    resolved = client_call(
        adapter_helper.address, "set_limit", f"pid:{CURL_PID}", Direction.UP, 5000, 200_000
    )
    assert resolved == CURL
    assert engine.changes() == [("set_limit", CURL, Direction.UP, 5000, 200_000, ADMIN_OWNER)]


def test_root_lists_applications_and_backends(
    engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper
) -> None:
    assert client_call(adapter_helper.address, "list_applications") == engine.list_applications()
    assert client_call(adapter_helper.address, "list_backends") == engine.list_backends()
    assert client_call(adapter_helper.address, "get_api_version") == contract.API_VERSION


def test_unknown_application_for_root(
    engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper
) -> None:
    with pytest.raises(HelperClientError) as caught:
        client_call(adapter_helper.address, "set_limit", "exe:/nope", Direction.UP, 5000, 0)
    assert caught.value.error is ErrorName.NO_SUCH_APPLICATION
    assert engine.changes() == []


def test_ctl_as_root(engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper) -> None:
    listed = ctl_as(None, adapter_helper.address, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["id"] == CURL
    table = ctl_as(None, adapter_helper.address, "list")
    assert CURL in table.stdout and "250 KB/s" in table.stdout
    limited = ctl_as(
        None, adapter_helper.address, "limit", CURL, "--down", "1M", "--up", "unlimited"
    )
    assert limited.returncode == 0, limited.stderr
    assert engine.changes() == [
        ("set_limit", CURL, Direction.DOWN, 1_000_000, 0, ADMIN_OWNER),
        ("clear_limit", CURL, (Direction.UP,), ADMIN_OWNER),
    ]
    backends = ctl_as(None, adapter_helper.address, "backends")
    assert "no BTF" in backends.stdout


def test_root_pauses_and_resumes_every_limit(
    engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper
) -> None:
    address = adapter_helper.address
    assert client_call(address, "get_limits_paused") is False
    client_call(address, "set_limits_paused", True)
    assert client_call(address, "get_limits_paused") is True
    paused = ctl_as(None, address, "list")
    assert paused.returncode == 0 and "paused" in paused.stdout
    assert ctl_as(None, address, "resume").returncode == 0
    assert engine.changes() == [("set_limits_paused", True), ("set_limits_paused", False)]
    assert "paused" not in ctl_as(None, address, "list").stdout


# -- an unprivileged uid with no session: denied --------------------------------


@pytest.mark.parametrize("app_id", [CURL, NOBODY_APP, f"pid:{CURL_PID}"])
def test_nobody_may_not_limit(
    app_id: str, engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper
) -> None:
    """limit-any (another user's app) and limit-own (its own app, but no session)."""
    result = ctl_as(NOBODY_UID, adapter_helper.address, "limit", app_id, "--down", "1M")
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("chadthrottle-ctl: not authorized")
    assert engine.changes() == []


def test_nobody_may_not_clear_or_list(
    engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper
) -> None:
    assert ctl_as(NOBODY_UID, adapter_helper.address, "clear", CURL).returncode == 3
    assert ctl_as(NOBODY_UID, adapter_helper.address, "list").returncode == 3
    assert engine.changes() == []
    assert ("list_applications",) not in engine.calls


def test_nobody_may_not_pause_or_resume(
    engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper
) -> None:
    for command in ("pause", "resume"):
        result = ctl_as(NOBODY_UID, adapter_helper.address, command)
        assert result.returncode == 3, result.stderr
        assert result.stderr.startswith("chadthrottle-ctl: not authorized")
    assert engine.changes() == []
    assert engine.paused is False


def test_nobody_learns_nothing_about_unknown_applications(
    engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper
) -> None:
    result = ctl_as(NOBODY_UID, adapter_helper.address, "clear", "exe:/does/not/exist")
    assert result.returncode == 3, result.stderr


def test_a_method_without_a_known_action_is_denied(
    engine: FakeEngineForAdapterTests,
    adapter_helper: InProcessHelper,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(METHODS, "SetLimit", MethodSpec("SetLimit", "sstts", "s", "no-such-action"))  # type: ignore[arg-type]
    reply = raw_call(adapter_helper.address, "SetLimit", "sstts", [CURL, "down", 5000, 0, ""])
    assert _error(reply)[0] == ErrorName.NOT_AUTHORIZED.value
    assert engine.changes() == []


# -- malformed calls and unexpected failures --------------------------------------


@pytest.mark.parametrize(
    ("member", "signature", "body"),
    [
        ("SetLimit", "ss", [CURL, "down"]),
        ("SetLimit", "ssuu", [CURL, "down", 5000, 0]),
        ("ClearLimit", "s", [CURL]),
        ("GetApiVersion", "s", ["extra"]),
        ("SetLimit", "sstts", ["curl", "down", 5000, 0, ""]),
        ("SetLimit", "sstts", ["exe:/x\x07", "down", 5000, 0, ""]),
        ("SetLimit", "sstts", ["pid:0", "down", 5000, 0, ""]),
        ("SetLimit", "sstts", ["x" * 600, "down", 5000, 0, ""]),
        ("SetLimit", "sstts", [CURL, "both", 5000, 0, ""]),
        ("SetLimit", "sstts", [CURL, "down", 0, 0, ""]),
        ("SetLimit", "sstts", [CURL, "down", 2**64 - 1, 0, ""]),
        ("SetLimit", "sstts", [CURL, "down", 5000, 5, ""]),
        ("SetLimit", "sstt", [CURL, "down", 5000, 0]),  # the version-1 signature
        ("SetLimit", "sstts", [CURL, "down", 5000, 0, "everyone"]),
        ("SetLimit", "sstts", [CURL, "down", 5000, 0, "OWN"]),
        ("ClearLimit", "ss", [CURL, "down"]),
        ("ClearLimit", "sss", [CURL, "down", "mine"]),
        ("ClearLimit", "sss", [CURL, "sideways", ""]),
        ("ListRules", "s", ["x"]),
        ("SetLimitsPaused", "s", ["true"]),
        ("SetLimitsPaused", "u", [1]),
        ("SetLimitsPaused", "", []),
        ("GetLimitsPaused", "b", [True]),
    ],
)
def test_garbage_is_an_invalid_argument(
    member: str,
    signature: str,
    body: list[Any],
    engine: FakeEngineForAdapterTests,
    adapter_helper: InProcessHelper,
) -> None:
    name, text = _error(raw_call(adapter_helper.address, member, signature, body))
    assert name == ErrorName.INVALID_ARGUMENT.value
    assert text
    assert engine.calls == []  # refused before the engine (or polkit) was asked anything


def test_unexpected_engine_error_is_a_generic_failure(
    engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper
) -> None:
    name, text = _error(
        raw_call(adapter_helper.address, "SetLimit", "sstts", [BROKEN_APP, "up", 5000, 0, ""])
    )
    assert name == ErrorName.FAILED.value
    assert text == GENERIC_FAILURE_TEXT
    assert SECRET not in text and "Traceback" not in text and "RuntimeError" not in text
    # The helper still answers afterwards.
    assert client_call(adapter_helper.address, "get_api_version") == contract.API_VERSION


def test_a_reply_that_cannot_be_marshalled_is_still_answered(
    engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper
) -> None:
    name, text = _error(
        raw_call(adapter_helper.address, "SetLimit", "sstts", [WEIRD_APP, "up", 5000, 0, ""])
    )
    assert (name, text) == (ErrorName.FAILED.value, GENERIC_FAILURE_TEXT)


def test_a_pending_call_does_not_block_another(
    engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper
) -> None:
    async def run() -> None:
        async with HelperClient(adapter_helper.address) as client:
            slow = asyncio.ensure_future(client.set_limit(SLOW_APP, Direction.DOWN, 5000))
            await asyncio.sleep(0.2)
            started = time.monotonic()
            assert await client.get_api_version() == contract.API_VERSION
            assert time.monotonic() - started < 5
            assert not slow.done()
            engine.release_slow.set()
            assert await asyncio.wait_for(slow, 10) == SLOW_APP

    asyncio.run(run())


# -- standard interfaces --------------------------------------------------------


def test_introspection_serves_the_xml_file(adapter_helper: InProcessHelper) -> None:
    reply = raw_call(
        adapter_helper.address, "Introspect", interface="org.freedesktop.DBus.Introspectable"
    )
    assert reply.message_type is MessageType.METHOD_RETURN
    assert reply.body == [load_introspection_xml()]


def test_ping_and_unknown_members(adapter_helper: InProcessHelper) -> None:
    ping = raw_call(adapter_helper.address, "Ping", interface="org.freedesktop.DBus.Peer")
    assert ping.message_type is MessageType.METHOD_RETURN
    unknown = raw_call(adapter_helper.address, "Explode")
    assert _error(unknown)[0] == "org.freedesktop.DBus.Error.UnknownMethod"


# -- lifecycle ---------------------------------------------------------------------


def test_a_second_helper_is_refused_and_closes_its_engine(adapter_helper: InProcessHelper) -> None:
    second_engine = FakeEngineForAdapterTests()
    with pytest.raises(StartupError, match="is taken"):
        asyncio.run(run_helper(adapter_helper.address, lambda: second_engine, asyncio.Event()))
    assert second_engine.closed


def test_connections_are_listed_for_an_application(
    engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper
) -> None:
    (connection,) = client_call(adapter_helper.address, "list_connections", f"pid:{CURL_PID}")
    assert (connection.protocol, connection.remote, connection.pid) == (
        "tcp",
        "192.0.2.7:443",
        CURL_PID,
    )
    assert ("list_connections", CURL) in engine.calls


def test_connections_of_unknown_or_malformed_ids_are_named_errors(
    adapter_helper: InProcessHelper,
) -> None:
    with pytest.raises(HelperClientError) as unknown:
        client_call(adapter_helper.address, "list_connections", "exe:/no/such/app")
    assert unknown.value.error is ErrorName.NO_SUCH_APPLICATION
    with pytest.raises(HelperClientError) as malformed:
        client_call(adapter_helper.address, "list_connections", "exe:/bin/x\n")
    assert malformed.value.error is ErrorName.INVALID_ARGUMENT


def test_processes_are_listed_for_an_application_as_connections_are(
    engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper
) -> None:
    (process,) = client_call(adapter_helper.address, "list_processes", f"pid:{CURL_PID}")
    assert (process.pid, process.name, process.down_bps, process.rx_bytes) == (
        CURL_PID,
        "curl",
        1500.0,
        10,
    )
    assert ("list_processes", CURL) in engine.calls
    with pytest.raises(HelperClientError) as unknown:
        client_call(adapter_helper.address, "list_processes", "exe:/no/such/app")
    assert unknown.value.error is ErrorName.NO_SUCH_APPLICATION


def test_interfaces_are_listed(
    engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper
) -> None:
    (interface,) = client_call(adapter_helper.address, "list_interfaces")
    assert (interface.name, interface.ifindex, interface.rx_bytes) == ("eth0", 2, 1000)


def test_a_caller_that_keeps_failing_is_answered_more_slowly(
    engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper
) -> None:
    """Past FAILURES_BEFORE_DELAY failed calls a second, each failure waits
    FAILURE_DELAY_S: a client calling as fast as it is answered slows itself,
    instead of taking the machine (bench/helper_flood.py)."""
    from chadthrottle.helper.adapter.service import FAILURE_DELAY_S, FAILURES_BEFORE_DELAY

    calls = FAILURES_BEFORE_DELAY + 6

    async def run() -> tuple[float, list[str | None]]:
        bus = await MessageBus(bus_address=adapter_helper.address).connect()
        try:
            started = time.monotonic()
            names = []
            for _ in range(calls):  # one connection, one caller
                reply = await bus.call(Message(destination=contract.BUS_NAME, path=contract.OBJECT_PATH,
                                               interface=INTERFACE, member="SetLimit", signature="sstts",
                                               body=["curl", "down", 5000, 0, ""]))  # fmt: skip
                names.append(reply.error_name)
            return time.monotonic() - started, names
        finally:
            bus.disconnect()

    elapsed, names = asyncio.run(run())
    assert names == [ErrorName.INVALID_ARGUMENT.value] * calls
    assert elapsed >= (calls - FAILURES_BEFORE_DELAY) * FAILURE_DELAY_S
    assert engine.changes() == []


def test_a_users_rule_with_a_priority_alone_stays_listed_to_them_once_their_application_exited() -> (
    None
):
    """As a block or a quota alone: no rate, yet the user's rule is shown to them (and only to them)."""
    from chadthrottle.contract import ApplicationInfo
    from chadthrottle.helper.adapter.service import HelperService
    from chadthrottle.helper.engine.api import Viewer

    exited = ApplicationInfo("exe:/usr/bin/call", "call", "", (), (), 0.0, 0.0, 0, 0, 0, 0, running=False,
                             down_limit_owner=1000, up_limit_owner=1000, priority="low", priority_owner=1000)  # fmt: skip
    assert HelperService._visible(Viewer(1000, sees_all=False), [exited]) == [exited]
    assert HelperService._visible(Viewer(1001, sees_all=False), [exited]) == []
    normal = ApplicationInfo(**{**exited.__dict__, "priority": "normal"})
    assert HelperService._visible(Viewer(1000, sees_all=False), [normal]) == []
