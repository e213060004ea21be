"""A used-up quota is told once per period: the period the helper counts it in
(its local midnight, helper/engine/quotas.py), not the GUI's. Until gui30 the
GUI counted it on its own clock: in a session whose TZ was not the helper's,
a quota used up again after the helper's reset was the "same period" (not
told), and one not reset was a "new period" at the GUI's midnight (told
again). The helper's midnight comes from the contract: GetUsage's day rows
begin at it. The real HelperConnection and AlertsFlow, a scripted helper
whose day rows begin at UTC+5's midnight while the GUI's zone is UTC, and a
real notification server on a private bus."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime

import pytest
from chadthrottle.contract import ApplicationInfo, RuleInfo
from chadthrottle.gui.alerts.flow import AlertsFlow
from chadthrottle.gui.alerts.helper_zone import zone_of_day_rows
from chadthrottle.gui.alerts.notifier import DesktopNotifier
from chadthrottle.gui.alerts.policy import AlertSwitches
from chadthrottle.gui.ipc.connection import HelperConnection
from chadthrottle.usage_contract import UsageResolution, UsageRow
from PySide6.QtCore import QSettings

from tests.gui.sample_data import app
from tests.gui.test_connection import ScriptedClient
from tests.gui.usage_rows import over_the_wire
from tests.support.notification_server import notification_server
from tests.support.requirements import require_program

APP = "exe:/usr/bin/fetcher"
HELPER_OFFSET_S = 5 * 3600  # the helper's zone: UTC+5; the GUI's: UTC


@pytest.fixture
def gui_in_utc(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


class HelperInAnotherZone(ScriptedClient):
    """Lists APP's daily quota used up; its day rows begin at UTC+5's midnight."""

    def __init__(self, wall: list[datetime]) -> None:
        super().__init__()
        self.wall = wall
        self.usage_asked = 0

    async def list_applications(self) -> list[ApplicationInfo]:
        return [dataclasses.replace(app(APP, "fetcher"), rx_bytes=1, down_quota_bytes=5_000_000, down_quota_left_bytes=0,
                                    down_quota_period="day")]  # fmt: skip

    async def list_rules(self) -> list[RuleInfo]:
        return [RuleInfo(APP, "down", 0, 0, 1000, True, quota_bytes=5_000_000, quota_period="day")]

    async def get_usage(
        self, app_id: str, since: int, until: int, resolution: UsageResolution
    ) -> list[UsageRow]:
        assert resolution is UsageResolution.DAY
        self.usage_asked += 1
        now = int(self.wall[0].timestamp())
        midnight = (now + HELPER_OFFSET_S) // 86400 * 86400 - HELPER_OFFSET_S
        return over_the_wire([UsageRow(APP, midnight, midnight + 86400, 10**6, 0)])


def test_day_rows_give_the_helpers_offset(gui_in_utc) -> None:  # type: ignore[no-untyped-def]
    at_utc5 = int(datetime(2027, 1, 6, tzinfo=UTC).timestamp()) - HELPER_OFFSET_S
    zone = zone_of_day_rows([UsageRow(APP, at_utc5, at_utc5 + 86400, 1, 0)])
    assert zone is not None and zone.utcoffset(None).total_seconds() == HELPER_OFFSET_S
    west = int(datetime(2027, 1, 6, tzinfo=UTC).timestamp()) + 10 * 3600  # UTC-10
    zone = zone_of_day_rows([UsageRow(APP, west, west + 86400, 1, 0)])
    assert zone is not None and zone.utcoffset(None).total_seconds() == -10 * 3600
    own = int(datetime(2027, 1, 6, tzinfo=UTC).timestamp())
    assert zone_of_day_rows([UsageRow(APP, own, own + 86400, 1, 0)]) is None  # the GUI's own
    assert zone_of_day_rows([]) is None and zone_of_day_rows(None) is None


def test_a_used_up_quota_is_told_in_the_helpers_period(qtbot, tmp_path, gui_in_utc) -> None:  # type: ignore[no-untyped-def]
    require_program("dbus-daemon")
    at = [datetime(2027, 1, 6, 18, 30, tzinfo=UTC)]  # 23:30 on the 6th at the helper
    client = HelperInAnotherZone(at)
    connection = HelperConnection(lambda: client, refresh_interval_s=0.1)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    with notification_server(tmp_path) as server:
        mono = [1000.0]  # the once-a-minute rule's clock, moved on with the wall's
        flow = AlertsFlow(connection, settings, AlertSwitches, DesktopNotifier(server.address),
                          lambda: mono[0], wall=lambda: at[0])  # fmt: skip
        connection.start()
        try:

            def polls(count: int) -> None:
                """count more polls seen by the flow (each a snapshot it observed)."""
                seen = [0]
                connection.applicationsUpdated.connect(lambda _s: seen.__setitem__(0, seen[0] + 1))
                qtbot.waitUntil(lambda: seen[0] >= count, timeout=5000)
                flow.send_due()

            polls(3)
            qtbot.waitUntil(lambda: len(server.received) == 1, timeout=5000)
            at[0] = datetime(2027, 1, 6, 19, 30, tzinfo=UTC)  # 00:30 on the 7th: reset, spent again
            mono[0] += 3600
            polls(3)
            qtbot.waitUntil(lambda: len(server.received) == 2, timeout=5000)
            at[0] = datetime(2027, 1, 7, 0, 30, tzinfo=UTC)  # the GUI's new day, not the helper's
            mono[0] += 5 * 3600
            polls(5)
            assert [n.summary for n in server.received] == ["fetcher used up its data quota"] * 2
            assert client.usage_asked >= 1
        finally:
            connection.stop()
            flow.close()


class HelperIdleSince(HelperInAnotherZone):
    """The same helper with its machine idle in the span asked: no day row
    (a quota used up that then blocks moves no bytes)."""

    async def get_usage(
        self, app_id: str, since: int, until: int, resolution: UsageResolution
    ) -> list[UsageRow]:
        self.usage_asked += 1
        return []


def _told_in_a_session(qtbot, tmp_path, client: HelperInAnotherZone, server) -> int:  # type: ignore[no-untyped-def]
    """A start of the window (its AlertsFlow and connection, the settings in
    tmp_path) until the helper was asked its zone and polled 3 times: how
    many alerts it sent."""
    connection = HelperConnection(lambda: client, refresh_interval_s=0.1)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    before = len(server.received)
    flow = AlertsFlow(connection, settings, AlertSwitches, DesktopNotifier(server.address),
                      lambda: 1000.0, wall=lambda: client.wall[0])  # fmt: skip
    connection.start()
    try:
        seen = [0]
        connection.applicationsUpdated.connect(lambda _s: seen.__setitem__(0, seen[0] + 1))
        qtbot.waitUntil(lambda: seen[0] >= 3 and client.usage_asked >= 1, timeout=5000)
        flow.send_due()
        qtbot.wait(300)  # a notification on its way arrives
        settings.sync()
        return len(server.received) - before
    finally:
        connection.stop()
        flow.close()


def test_a_start_that_reads_no_day_rows_keeps_the_helpers_zone(qtbot, tmp_path, gui_in_utc) -> None:  # type: ignore[no-untyped-def]
    """review33b (G1): the helper's zone was read from day rows only, and an
    answer with none (the machine idle in the two days asked: a used-up
    quota that blocks moves no bytes) set the GUI's own zone: at the next
    start the quota's period began at the GUI's midnight, not the one kept
    with the quota told, and it was told again. The zone last read is kept
    with the settings, and an answer with no rows changes nothing."""
    require_program("dbus-daemon")
    at = [datetime(2027, 1, 6, 18, 30, tzinfo=UTC)]  # 23:30 on the 6th at the helper
    with notification_server(tmp_path) as server:
        assert _told_in_a_session(qtbot, tmp_path, HelperInAnotherZone(at), server) == 1
        assert _told_in_a_session(qtbot, tmp_path, HelperIdleSince(at), server) == 0


def test_the_zone_kept_reads_back() -> None:
    from datetime import timedelta, timezone

    from chadthrottle.gui.alerts.helper_zone import OWN, stored_zone, zone_of_stored

    for seconds in (5 * 3600, -10 * 3600, 0, 5 * 3600 + 45 * 60):
        zone = timezone(timedelta(seconds=seconds))
        assert zone_of_stored(stored_zone(zone)) == zone
    assert stored_zone(None) == OWN and zone_of_stored(OWN) is None
    for unread in (None, "", "x", "--5", "86400", "-90000", "1.5"):
        assert zone_of_stored(unread) is None, unread


class HelperOfApi8(HelperInAnotherZone):
    """The same helper at API 8: ListRules says the quota's period, and its
    GetUsage is slow (a busy helper: the answer takes longer than the test)."""

    async def list_rules(self) -> list[RuleInfo]:
        began = int(self.wall[0].timestamp()) // 86400 * 86400 - HELPER_OFFSET_S
        return [RuleInfo(APP, "down", 0, 0, 1000, True, quota_bytes=5_000_000, quota_period="day",
                         quota_period_start=began, quota_period_end=began + 86400)]  # fmt: skip

    async def get_usage(
        self, app_id: str, since: int, until: int, resolution: UsageResolution
    ) -> list[UsageRow]:
        self.usage_asked += 1
        await asyncio.sleep(30)
        return []


def test_a_helper_that_says_its_periods_is_not_asked_its_zone(qtbot, tmp_path, gui_in_utc) -> None:  # type: ignore[no-untyped-def]
    """gui31b (G1): with an API 8 helper (ListRules quota_period_start) the
    window still asked GetUsage for the helper's zone at start and held every
    alert until it answered; it asks an older helper only."""
    require_program("dbus-daemon")
    at = [datetime(2027, 1, 6, 18, 30, tzinfo=UTC)]
    client = HelperOfApi8(at)
    connection = HelperConnection(lambda: client, refresh_interval_s=0.1)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    with notification_server(tmp_path) as server:
        flow = AlertsFlow(connection, settings, AlertSwitches, DesktopNotifier(server.address),
                          lambda: 1000.0, wall=lambda: at[0])  # fmt: skip
        connection.start()
        try:
            qtbot.waitUntil(lambda: len(server.received) == 1, timeout=5000)
            assert server.received[0].summary == "fetcher used up its data quota"
            assert client.usage_asked == 0
        finally:
            connection.stop()
            flow.close()
