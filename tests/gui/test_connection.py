"""HelperConnection: the worker thread polls, reports through signals, stops cleanly.

The client here is a stand-in for the thread mechanics only; the lead's e2e
tests run the same connection against the real helper on a real bus.
"""

from __future__ import annotations

import asyncio
import threading
import time

from chadthrottle.client import HelperClientError
from chadthrottle.contract import (
    ApplicationInfo,
    BackendInfo,
    ConnectionInfo,
    Direction,
    ProcessTraffic,
    RuleInfo,
)
from chadthrottle.gui.ipc.connection import HelperConnection
from chadthrottle.gui.ipc.state import HelperState
from chadthrottle.gui.models.connection_table import ConnectionTableModel

from tests.gui.sample_data import sample_applications


class ScriptedClient:
    """Answers like a helper would, from the calling (worker) thread."""

    def __init__(self, fail_with: str = "") -> None:
        self.fail_with = fail_with
        self.calls: list[tuple[object, ...]] = []
        self.threads: set[str] = set()
        self.closed = False
        self.paused = False
        self.connection_requests: list[str] = []

    async def connect(self) -> None:
        self.threads.add(threading.current_thread().name)
        if self.fail_with:
            raise HelperClientError(self.fail_with, "scripted")

    async def list_applications(self) -> list[ApplicationInfo]:
        return sample_applications()

    async def list_backends(self) -> list[BackendInfo]:
        return [BackendInfo("tc", True, "", ("down", "up"))]

    async def set_limit(
        self, app_id: str, direction: Direction, rate_bps: int, burst_bytes: int = 0
    ) -> str:
        self.calls.append(("set", app_id, direction, rate_bps))
        return app_id

    async def clear_limit(self, app_id: str, direction: Direction | None = None) -> str:
        self.calls.append(("clear", app_id, direction))
        return app_id

    async def list_connections(self, app_id: str) -> list[ConnectionInfo]:
        self.connection_requests.append(app_id)
        return [ConnectionInfo("tcp", "10.0.0.5:40000", "192.0.2.7:443", "ESTABLISHED", 100)]

    async def set_limits_paused(self, paused: bool) -> None:
        self.calls.append(("paused", paused))
        self.paused = paused

    async def get_limits_paused(self) -> bool:
        return self.paused

    async def list_rules(self) -> list[RuleInfo]:
        return [RuleInfo("exe:/usr/bin/curl", "down", 500_000, 0, 1000, True)]

    def close(self) -> None:
        self.closed = True


def test_polls_sets_limits_and_stops_cleanly(qtbot) -> None:
    client = ScriptedClient()
    connection = HelperConnection(lambda: client, refresh_interval_s=0.1)
    with qtbot.waitSignal(connection.applicationsUpdated, timeout=5000) as blocker:
        connection.start()
    assert len(blocker.args[0].applications) == len(sample_applications())
    assert [rule.owner for rule in blocker.args[0].rules] == [
        1000
    ]  # ListRules, polled with the applications
    qtbot.waitUntil(lambda: connection.status.state is HelperState.CONNECTED, timeout=5000)
    assert client.threads == {"chadthrottle-helper-ipc"}
    with qtbot.waitSignal(connection.limitFinished, timeout=5000) as done:
        connection.set_limit("exe:/usr/bin/curl", "down", 500_000)
    assert done.args[1] == ""
    with qtbot.waitSignal(connection.limitFinished, timeout=5000):
        connection.set_limit("exe:/usr/bin/curl", "both", None)
    assert client.calls == [
        ("set", "exe:/usr/bin/curl", Direction.DOWN, 500_000),
        ("clear", "exe:/usr/bin/curl", None),
    ]
    started = time.monotonic()
    connection.stop()
    assert time.monotonic() - started < 2.0
    assert client.closed
    assert not any(t.name == "chadthrottle-helper-ipc" for t in threading.enumerate())


def test_missing_helper_is_a_state_and_is_retried(qtbot) -> None:
    clients = [ScriptedClient("org.freedesktop.DBus.Error.ServiceUnknown")]
    connection = HelperConnection(lambda: clients[-1], refresh_interval_s=0.1)
    connection.start()
    try:
        qtbot.waitUntil(lambda: connection.status.state is HelperState.NOT_INSTALLED, timeout=5000)
        clients.append(ScriptedClient())  # the helper gets installed
        connection.retry()
        qtbot.waitUntil(lambda: connection.status.state is HelperState.CONNECTED, timeout=5000)
    finally:
        connection.stop()


def test_connections_are_polled_only_for_watched_applications(qtbot) -> None:
    client = ScriptedClient()
    connection = HelperConnection(lambda: client, refresh_interval_s=0.1)
    seen: list[str] = []
    connection.connectionsUpdated.connect(lambda app_id, _connections, _at: seen.append(app_id))
    connection.start()
    try:
        qtbot.waitUntil(lambda: connection.status.state is HelperState.CONNECTED, timeout=5000)
        assert client.connection_requests == []  # nothing expanded or selected: never asked
        connection.watch_connections(["exe:/usr/bin/curl", "app:org.mozilla.firefox"])
        qtbot.waitUntil(
            lambda: {"exe:/usr/bin/curl", "app:org.mozilla.firefox"} <= set(seen), timeout=5000
        )
        polled = len(client.connection_requests)
        qtbot.waitUntil(
            lambda: len(client.connection_requests) >= polled + 2, timeout=5000
        )  # refreshed
        connection.watch_connections([])
        qtbot.wait(300)
        stopped_at = len(client.connection_requests)
        qtbot.wait(300)
        assert len(client.connection_requests) == stopped_at
        assert set(client.connection_requests) == {"exe:/usr/bin/curl", "app:org.mozilla.firefox"}
    finally:
        connection.stop()


class ProcessListingClient(ScriptedClient):
    """A helper of API 6 (ListProcesses), or an older one that answers UnknownMethod."""

    def __init__(self, unknown: bool = False) -> None:
        super().__init__()
        self.unknown = unknown
        self.process_requests: list[str] = []

    async def list_processes(self, app_id: str) -> list[ProcessTraffic]:
        self.process_requests.append(app_id)
        if self.unknown:
            raise HelperClientError("org.freedesktop.DBus.Error.UnknownMethod", "no such method")
        return [ProcessTraffic(100, "curl", 2000.0, 30.0, 9000, 70)]


class FlakyConnectionsClient(ScriptedClient):
    """ListConnections fails on the calls listed in ``failing`` (counted from 1):
    a busy or restarting helper, a call that timed out."""

    def __init__(self, failing: set[int]) -> None:
        super().__init__()
        self.failing = failing

    async def list_connections(self, app_id: str) -> list[ConnectionInfo]:
        answer = await super().list_connections(app_id)
        if len(self.connection_requests) in self.failing:
            raise HelperClientError("org.freedesktop.DBus.Error.NoReply", "scripted")
        return answer


def test_one_failed_connections_call_keeps_the_last_answer(qtbot) -> None:
    """A live connection's row does not vanish for a poll: a failed ListConnections
    is not an answer that it closed (before, it was sent on as "no connections").
    Failing again, the last answer is no longer shown as current."""
    client = FlakyConnectionsClient(failing={3, 6, 7})
    connection = HelperConnection(lambda: client, refresh_interval_s=0.1)
    answers: list[int] = []
    connection.connectionsUpdated.connect(lambda _app_id, found, _at: answers.append(len(found)))
    connection.start()
    try:
        qtbot.waitUntil(lambda: connection.status.state is HelperState.CONNECTED, timeout=5000)
        connection.watch_connections(["exe:/usr/bin/curl"])
        qtbot.waitUntil(lambda: len(answers) >= 6, timeout=5000)
        connection.watch_connections([])
        # calls 1, 2 answered; 3 failed (nothing sent on); 4, 5 answered; 6 failed
        # (nothing), 7 failed again (none known); 8 answered
        assert answers[:6] == [1, 1, 1, 1, 0, 1], answers
    finally:
        connection.stop()


def test_processes_are_fetched_with_the_watched_connections(qtbot) -> None:
    client = ProcessListingClient()
    connection = HelperConnection(lambda: client, refresh_interval_s=0.1)
    seen: list[tuple[str, object]] = []
    connection.processesUpdated.connect(lambda app_id, processes: seen.append((app_id, processes)))
    connection.start()
    try:
        qtbot.waitUntil(lambda: connection.status.state is HelperState.CONNECTED, timeout=5000)
        # Selected (connections for the detail pane), not expanded: no processes asked.
        connection.watch_connections(["app:org.mozilla.firefox"])
        qtbot.waitUntil(lambda: len(client.connection_requests) >= 3, timeout=5000)
        assert client.process_requests == []
        connection.watch_processes(["exe:/usr/bin/curl"])  # expanded: as the window does
        connection.watch_connections(["app:org.mozilla.firefox", "exe:/usr/bin/curl"])
        qtbot.waitUntil(lambda: len(seen) >= 3, timeout=5000)  # at once, then with the polls
        assert {app_id for app_id, _ in seen} == {"exe:/usr/bin/curl"}
        assert set(client.process_requests) == {"exe:/usr/bin/curl"}
        assert seen[0][1] == [ProcessTraffic(100, "curl", 2000.0, 30.0, 9000, 70)]
    finally:
        connection.stop()


def test_a_helper_without_list_processes_is_asked_once(qtbot) -> None:
    client = ProcessListingClient(unknown=True)
    connection = HelperConnection(lambda: client, refresh_interval_s=0.1)
    connection.start()
    try:
        qtbot.waitUntil(lambda: connection.status.state is HelperState.CONNECTED, timeout=5000)
        connection.watch_processes(["exe:/usr/bin/curl"])
        connection.watch_connections(["exe:/usr/bin/curl"])
        polled = len(client.connection_requests)
        qtbot.waitUntil(lambda: len(client.connection_requests) >= polled + 2, timeout=5000)
        asked = len(client.process_requests)  # the calls sent before the first answer
        assert 1 <= asked <= 2
        polled = len(client.connection_requests)
        qtbot.waitUntil(lambda: len(client.connection_requests) >= polled + 3, timeout=5000)
        assert len(client.process_requests) == asked  # connections go on alone
    finally:
        connection.stop()


def test_pausing_goes_to_the_helper_and_its_state_comes_back(qtbot) -> None:
    client = ScriptedClient()
    connection = HelperConnection(lambda: client, refresh_interval_s=0.1)
    connection.start()
    try:
        qtbot.waitUntil(lambda: connection.limits_paused is False, timeout=5000)
        with qtbot.waitSignal(connection.pauseFinished, timeout=5000) as done:
            connection.set_limits_paused(True)
        assert done.args == [True, "", ""]
        assert connection.limits_paused is True and ("paused", True) in client.calls
        client.paused = False  # resumed elsewhere (chadthrottle-ctl resume)
        with qtbot.waitSignal(connection.pausedChanged, timeout=5000) as changed:
            pass
        assert changed.args == [False]
    finally:
        connection.stop()


class SlowPausedClient(ScriptedClient):
    """Answers GetLimitsPaused with the state when the call came in, 0.3 s
    later: a poll in flight while limits are paused."""

    async def get_limits_paused(self) -> bool:
        seen = self.paused
        await asyncio.sleep(0.3)
        return seen


def test_a_poll_sent_before_pausing_does_not_show_limits_resumed(qtbot) -> None:  # type: ignore[no-untyped-def]
    client = SlowPausedClient()
    connection = HelperConnection(lambda: client, refresh_interval_s=0.1)
    connection.start()
    try:
        qtbot.waitUntil(lambda: connection.limits_paused is False, timeout=5000)
        shown: list[object] = []
        connection.pausedChanged.connect(shown.append)
        qtbot.wait(150)  # a poll is in flight now
        with qtbot.waitSignal(connection.pauseFinished, timeout=5000):
            connection.set_limits_paused(True)
        qtbot.waitUntil(
            lambda: client.calls.count(("paused", True)) == 1 and len(shown) >= 1, timeout=2000
        )
        qtbot.wait(800)  # the poll in flight answers, then polls sent after the pause
        assert shown == [True], shown
    finally:
        connection.stop()


class SteadySenderClient(ScriptedClient):
    """One connection sending SENDS_BPS bytes a second of real time, its
    counter read as the call is answered (as the helper reads tcp_info)."""

    SENDS_BPS = 1_000_000

    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()

    async def list_connections(self, app_id: str) -> list[ConnectionInfo]:
        self.connection_requests.append(app_id)
        sent = int(self.SENDS_BPS * (time.monotonic() - self.started))
        return [
            ConnectionInfo("tcp", "10.0.0.5:40000", "192.0.2.7:443", "ESTABLISHED", 100, 0, sent)
        ]


def test_a_connections_rate_is_timed_by_when_its_answers_came(qtbot) -> None:
    """gui6's walk: a connection read 1.32 MB/s under its application's 1 MB/s
    limit, just after its row was selected. Selecting a row builds the detail
    pane while the connections asked for at once come back: that answer waited
    behind the GUI thread's work, and timed by when the GUI thread got to it,
    the next interval was that much short. Here the GUI thread is busy for
    BUSY_S as the first answer comes; the rate must be the sender's."""
    busy_s = 0.4
    client = SteadySenderClient()
    connection = HelperConnection(lambda: client, refresh_interval_s=1.0)
    model = ConnectionTableModel()
    connection.connectionsUpdated.connect(model.set_connections)
    connection.start()
    try:
        qtbot.waitUntil(lambda: connection.status.state is HelperState.CONNECTED, timeout=5000)
        asked = len(client.connection_requests)
        connection.watch_connections(["exe:/usr/bin/curl"])  # fetched at once
        time.sleep(busy_s)  # the window's own work: no event handled meanwhile
        assert len(client.connection_requests) > asked  # answered while the thread was busy
        qtbot.waitUntil(lambda: model.rowCount() == 1 and model.row(0).up_bps is not None,
                        timeout=5000)  # fmt: skip
        up_bps = model.row(0).up_bps
        assert up_bps is not None
        assert abs(up_bps - client.SENDS_BPS) <= 0.05 * client.SENDS_BPS, (
            f"read {up_bps / 1e6:.2f} MB/s of a {client.SENDS_BPS / 1e6:.2f} MB/s sender"
        )
    finally:
        connection.watch_connections([])
        connection.stop()
