"""The adapter's integration fixtures: the real service on a real private bus
with a real polkitd, in front of FakeEngineForAdapterTests (the only fake)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from chadthrottle.contract import (
    ADMIN_OWNER,
    BUS_NAME,
    ApplicationInfo,
    BackendInfo,
    ConnectionInfo,
    Direction,
    InterfaceInfo,
    ProcessTraffic,
    RuleInfo,
)
from chadthrottle.helper.adapter.service import HelperService
from chadthrottle.helper.busname import wait_for_bus_name
from chadthrottle.helper.engine.api import (
    ADMIN_VIEWER,
    ChangeOutcome,
    LimitChange,
    ResolvedApplication,
    SetLimit,
    Viewer,
)
from chadthrottle.helper.engine.snapshot import Looked, Snapshot
from chadthrottle.helper.errors import HelperError, NoSuchApplication
from chadthrottle.helper.main import StartupError, run_helper
from chadthrottle.helper.run_state import RunRecord
from chadthrottle.helper.standalone import PrivateSystemBus

NOBODY_UID = 65534
CURL = "exe:/usr/bin/curl"  # owned by uid 1000
NOBODY_APP = "exe:/usr/bin/nobody-app"  # owned by uid 65534
ROOT_APP = "exe:/usr/sbin/rootd"  # owned by uid 0
SLOW_APP = "exe:/usr/bin/slow"  # resolve_application waits for release_slow
BROKEN_APP = "exe:/usr/bin/broken"  # set_limit raises an unexpected error
WEIRD_APP = "exe:/usr/bin/weird"  # set_limit returns something that is not a str
SECRET = "SECRET-internal-detail-/usr/lib/python3/site.py-line-42"
CURL_PID = 4242


class FakeEngineForAdapterTests:
    """Stands in for the engine, for the adapter's tests only: records calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.release_slow = threading.Event()
        self.closed = False
        self.paused = False
        self.viewers: list[Viewer] = []
        self.snapshot: Snapshot | None = None
        self.lookers: list[tuple[Looked, Viewer]] = []
        self.rules = [RuleInfo(CURL, "up", 250_000, 131_072, 1000, True),
                      RuleInfo(ROOT_APP, "down", 9_000, 131_072, ADMIN_OWNER, True),
                      RuleInfo(ROOT_APP, "down", 7_000, 131_072, NOBODY_UID, False)]  # fmt: skip
        self._owners = {CURL: {1000}, NOBODY_APP: {NOBODY_UID}, ROOT_APP: {0},
                        SLOW_APP: {0}, BROKEN_APP: {0}, WEIRD_APP: {0}}  # fmt: skip

    def reset(self) -> None:
        self.calls.clear()
        self.release_slow.clear()
        self.paused = False
        self.snapshot = None
        self.lookers.clear()

    def changes(self) -> list[tuple[Any, ...]]:
        return [
            call
            for call in self.calls
            if call[0] in ("set_limit", "clear_limit", "set_limits_paused")
        ]

    def published(self) -> Snapshot | None:
        """No snapshot unless a test sets one: reads go to the engine thread."""
        return self.snapshot

    def looking(self, kind: Looked, viewer: Viewer) -> None:
        self.lookers.append((kind, viewer))

    def list_applications(self, viewer: Viewer = ADMIN_VIEWER) -> list[ApplicationInfo]:
        self.calls.append(("list_applications",))
        self.viewers.append(viewer)
        return [
            ApplicationInfo(id=CURL, name="curl", icon="", uids=(1000,), pids=(CURL_PID,),
                            down_bps=1500.0, up_bps=20.0, rx_bytes=10, tx_bytes=20,
                            down_limit_bps=0, up_limit_bps=250_000)
        ]  # fmt: skip

    def list_rules(self) -> list[RuleInfo]:
        self.calls.append(("list_rules",))
        return list(self.rules)

    def list_connections(self, app_id: str, uid: int | None = None) -> list[ConnectionInfo]:
        self.calls.append(
            ("list_connections", app_id) if uid is None else ("list_connections", app_id, uid)
        )
        return [ConnectionInfo("tcp", "10.0.0.5:51234", "192.0.2.7:443", "ESTABLISHED", CURL_PID)]

    def list_processes(self, app_id: str, uid: int | None = None) -> list[ProcessTraffic]:
        self.calls.append(
            ("list_processes", app_id) if uid is None else ("list_processes", app_id, uid)
        )
        return [ProcessTraffic(CURL_PID, "curl", 1500.0, 20.0, 10, 20)]

    def list_interfaces(self) -> list[InterfaceInfo]:
        self.calls.append(("list_interfaces",))
        return [InterfaceInfo("eth0", 2, False, 1000, 2000, 10.0, 20.0)]

    def list_backends(self, viewer: Viewer = ADMIN_VIEWER) -> list[BackendInfo]:
        self.calls.append(("list_backends",))
        return [
            BackendInfo(name="tc", available=True, reason="", active_directions=("down",)),
            BackendInfo(name="ebpf", available=False, reason="no BTF", active_directions=()),
        ]

    def resolve_application(self, app_id: str) -> ResolvedApplication:
        self.calls.append(("resolve_application", app_id))
        if app_id == SLOW_APP:
            self.release_slow.wait(30)
        if app_id == f"pid:{CURL_PID}":
            app_id = CURL
        if app_id not in self._owners:
            raise NoSuchApplication(f"no application {app_id}")
        pid_uid = 1000 if app_id.startswith("pid:") else None
        return ResolvedApplication(app_id, frozenset(self._owners[app_id]), frozenset(), pid_uid)

    def set_limit(self, app_id: str, direction: Direction, rate_bps: int, burst_bytes: int,
                  owner: int = ADMIN_OWNER) -> str:  # fmt: skip
        self.calls.append(("set_limit", app_id, direction, rate_bps, burst_bytes, owner))
        if app_id == BROKEN_APP:
            raise RuntimeError(SECRET)
        if app_id == WEIRD_APP:
            return 42  # type: ignore[return-value]
        return app_id

    def clear_limit(
        self, app_id: str, directions: tuple[Direction, ...], owner: int = ADMIN_OWNER
    ) -> str:
        self.calls.append(("clear_limit", app_id, directions, owner))
        return app_id

    def apply_changes(self, changes: Sequence[LimitChange]) -> list[ChangeOutcome]:
        """One at a time, as the real engine reports them: a HelperError is that
        change's outcome; anything unexpected fails the whole batch."""
        outcomes: list[ChangeOutcome] = []
        for change in changes:
            try:
                if isinstance(change, SetLimit):
                    outcomes.append(self.set_limit(change.app_id, change.direction, change.rate_bps,
                                                   change.burst_bytes, change.owner))  # fmt: skip
                else:
                    outcomes.append(
                        self.clear_limit(change.app_id, change.directions, change.owner)
                    )
            except HelperError as error:
                outcomes.append(error)
        return outcomes

    def set_limits_paused(self, paused: bool) -> None:
        self.calls.append(("set_limits_paused", paused))
        self.paused = paused

    def limits_paused(self) -> bool:
        self.calls.append(("limits_paused",))
        return self.paused

    def close(self) -> None:
        self.closed = True


class InProcessHelper:
    """run_helper() on its own thread and event loop, so tests can block freely."""

    def __init__(self, address: str, engine: FakeEngineForAdapterTests) -> None:
        self.address = address
        self.engine = engine
        self.error: BaseException | None = None
        self.service: HelperService | None = None  # once run_helper built it
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="in-process-helper", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported by start() and the tests
            self.error = error

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await run_helper(self.address, lambda: self.engine, self._stop,
                         make_service=self._make_service)  # fmt: skip

    def _make_service(self, *parts: Any) -> HelperService:
        self.service = HelperService(*parts)
        return self.service

    def start(self) -> None:
        self._thread.start()
        exited = lambda: None if self._thread.is_alive() else 1  # noqa: E731
        if not wait_for_bus_name(self.address, BUS_NAME, 15.0, exited):
            self.stop()
            raise RuntimeError(f"in-process helper did not start: {self.error!r}")

    def stop(self) -> None:
        self.engine.release_slow.set()
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def fake_engine() -> FakeEngineForAdapterTests:
    return FakeEngineForAdapterTests()


@pytest.fixture(scope="module")
def adapter_helper(
    private_bus: PrivateSystemBus, fake_engine: FakeEngineForAdapterTests
) -> Iterator[InProcessHelper]:
    helper = InProcessHelper(private_bus.address, fake_engine)
    helper.start()
    try:
        yield helper
    finally:
        helper.stop()
    assert not helper._thread.is_alive(), "the in-process helper did not stop"
    assert fake_engine.closed, "run_helper did not close the engine"


@pytest.fixture
def engine(
    adapter_helper: InProcessHelper, fake_engine: FakeEngineForAdapterTests
) -> FakeEngineForAdapterTests:
    """The running helper's fake engine, with its call record cleared."""
    fake_engine.reset()
    return fake_engine


def run_refused_second_helper(address: str, record: RunRecord) -> None:
    """A second helper started by hand on a bus whose name another serves, run
    until it is refused the name (what it then leaves in its run record is
    the caller's to judge)."""

    async def second() -> None:
        await run_helper(address, FakeEngineForAdapterTests, asyncio.Event(), run_record=record)

    with pytest.raises(StartupError, match="is taken"):
        asyncio.run(second())
