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
from chadthrottle.gui.alerts.notifier import DesktopNotifier
from chadthrottle.gui.alerts.policy import AlertPolicy, AlertSwitches
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.helper_run_state import LastStop
from PySide6.QtCore import QObject, QSettings, QTimer

KNOWN_KEY = "alerts/known_applications"
CHECK_EVERY_MS = 2000
# The helper is "stopped" when it was answering and now is not running (not
# merely refusing one call, or a polkit change).
STOPPED_STATES = frozenset({HelperState.NOT_RUNNING, HelperState.NOT_INSTALLED})


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
        self.notifier = notifier or DesktopNotifier()
        connection.applicationsUpdated.connect(self._on_snapshot)  # type: ignore[attr-defined]
        connection.statusChanged.connect(self._on_status)  # type: ignore[attr-defined]
        self._timer = QTimer(self)
        self._timer.setInterval(CHECK_EVERY_MS)
        self._timer.timeout.connect(self.send_due)
        self._timer.start()

    def _on_snapshot(self, snapshot: object) -> None:
        self.policy.observe_applications(
            getattr(snapshot, "applications", ()), getattr(snapshot, "rules", None)
        )
        if self.policy.known_changed:
            self.policy.known_changed = False
            self._store.setValue(KNOWN_KEY, self.policy.known)
        self.send_due()

    def _on_status(self, status: HelperStatus) -> None:
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
        self.notifier.close()
