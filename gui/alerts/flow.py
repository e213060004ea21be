"""Feeds the alert policy from the helper connection and sends what is due.

Lives in the GUI thread: snapshots and status changes come as the
connection's signals; a timer asks the policy what is due (an alert held back
by the once-a-minute rule goes out when its minute is over, grouped). The
applications seen before are kept in QSettings, so "first time" means first
time on this account, across restarts; the used-up quotas told are kept beside
that file (told.py), so a start of the window does not tell them again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from chadthrottle.gui.alerts import told
from chadthrottle.gui.alerts.helper_zone import (
    ASK_SPAN_S,
    STORE_KEY,
    ZONE_KEY,
    stored_zone,
    zone_of_day_rows,
    zone_of_stored,
)
from chadthrottle.gui.alerts.notifier import DesktopNotifier
from chadthrottle.gui.alerts.policy import AlertPolicy, AlertSwitches
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.helper_run_state import LastStop
from chadthrottle.usage_contract import UsageResolution, UsageRow
from PySide6.QtCore import QObject, QSettings, QTimer

KNOWN_KEY = "alerts/known_applications"
CHECK_EVERY_MS = 2000
ZONE_EVERY_MS = 3600_000  # the helper's zone asked again: its clock changes
# The helper is "stopped" when it was answering and now is not running (not
# merely refusing one call, or a polkit change).
STOPPED_STATES = frozenset({HelperState.NOT_RUNNING, HelperState.NOT_INSTALLED})


def _needs_zone(snapshot: object) -> bool:
    """Whether a quota's period must be counted on the helper's zone as guessed:
    a quota rule listed without its period (an older helper than API 8), or no
    rules listed at all (then every quota's period is guessed)."""
    rules = getattr(snapshot, "rules", None)
    if rules is None:
        apps = getattr(snapshot, "applications", ())
        return any(app.down_quota_bytes or app.up_quota_bytes for app in apps)
    return any(rule.quota_bytes > 0 and not rule.quota_period_start for rule in rules)


class AlertsFlow(QObject):
    def __init__(self, connection: QObject, store: QSettings, switches: Callable[[], AlertSwitches],
                 notifier: DesktopNotifier | None = None, clock: Callable[[], float] = time.monotonic,
                 parent: QObject | None = None,
                 wall: Callable[[], datetime] = lambda: datetime.now().astimezone()) -> None:  # fmt: skip
        super().__init__(parent)
        self._store = store
        self._switches = switches
        self._wall = wall
        self._told_path = Path(store.fileName()).with_name(told.FILE_NAME)
        stored = store.value(KNOWN_KEY, None)
        known = (
            [str(item) for item in stored]
            if isinstance(stored, list)
            else ([str(stored)] if stored else None)
        )
        self.policy = AlertPolicy(
            known, clock, told=told.load(self._told_path, wall().timestamp()), wall=wall
        )
        self.policy.period_zone = zone_of_stored(store.value(STORE_KEY, None))  # as last read
        self.notifier = notifier or DesktopNotifier()
        connection.applicationsUpdated.connect(self._on_snapshot)  # type: ignore[attr-defined]
        connection.statusChanged.connect(self._on_status)  # type: ignore[attr-defined]
        self._timer = QTimer(self)
        self._timer.setInterval(CHECK_EVERY_MS)
        self._timer.timeout.connect(self.send_due)
        self._timer.start()
        # The helper's zone (helper_zone.py), asked of an older helper only (a quota
        # rule listed with no quota_period_start: an API 8 helper says each period,
        # gui31b G1), at its first such snapshot, when the helper comes back and
        # hourly; snapshots wait for its answer (one call), so that a quota's period
        # is never first counted on the GUI's clock, then the helper's.
        self._fetch_usage = getattr(connection, "fetch_usage", None)
        self._zone_asked = False
        self._zone_fresh = False  # read from this helper within the hour
        self._held: object | None = None
        self._state: HelperState | None = None
        self._zone_timer = QTimer(self)
        if self._fetch_usage is not None:
            connection.usageFetched.connect(self._on_usage)  # type: ignore[attr-defined]
            self._zone_timer.setInterval(ZONE_EVERY_MS)
            self._zone_timer.timeout.connect(self._zone_stale)
            self._zone_timer.start()

    def _zone_stale(self) -> None:
        self._zone_fresh = False  # asked again at the next snapshot that needs it

    def _ask_zone(self) -> None:
        if self._fetch_usage is None or self._zone_asked:
            return
        self._zone_asked = True
        since = int(self._wall().timestamp()) - ASK_SPAN_S
        self._fetch_usage(ZONE_KEY, "", since, 0, UsageResolution.DAY)

    def _on_usage(self, key: str, rows: list[UsageRow] | None, error_name: str) -> None:
        if key != ZONE_KEY:
            return  # the usage view's
        self._zone_asked = False
        self._zone_fresh = True  # even failed (the helper away): asked again in an hour
        if not error_name and rows:  # failed (the helper away), or no row: as last known
            self.policy.period_zone = zone_of_day_rows(rows)
            self._store.setValue(STORE_KEY, stored_zone(self.policy.period_zone))
        held, self._held = self._held, None
        if held is not None:
            self._on_snapshot(held)

    def _on_snapshot(self, snapshot: object) -> None:
        if not self._zone_asked and not self._zone_fresh and _needs_zone(snapshot):
            self._ask_zone()
        if self._zone_asked:
            self._held = snapshot  # the latest: told once the zone is known
            return
        self.policy.observe_applications(
            getattr(snapshot, "applications", ()), getattr(snapshot, "rules", None)
        )
        if self.policy.known_changed:
            self.policy.known_changed = False
            self._store.setValue(KNOWN_KEY, self.policy.known)
        self.send_due()

    def _on_status(self, status: HelperStatus) -> None:
        came_back = (
            status.state is HelperState.CONNECTED and self._state is not HelperState.CONNECTED
        )
        self._state = status.state
        if came_back:
            self._zone_fresh = False  # another helper: its zone may be another
        # While its run record says its process still runs (a stop removing what it
        # made, a second or so), the alert waits to say how it ended: "its limits
        # are off" (the status said only "The helper stopped." at the first failed poll).
        if status.state in STOPPED_STATES and status.last_stop is not LastStop.RUNNING:
            self.policy.observe_helper(False, status.detail)
            self.send_due()

    def send_due(self) -> None:
        for alert in self.policy.due(self._switches()):
            self.notifier.notify(alert)
        if self.policy.told_changed:
            self.policy.told_changed = False
            told.save(self._told_path, self.policy.told, self._wall().timestamp())

    def close(self) -> None:
        self._timer.stop()
        self._zone_timer.stop()
        self.notifier.close()
