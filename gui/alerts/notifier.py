"""Sends alerts to the desktop's notification service
(org.freedesktop.Notifications on the session bus), off the GUI thread.

The GUI is the process of the desktop session, so it, not the root helper,
talks to the session bus. Calls go through chadthrottle.dbus_wire (the CLI's
small blocking client) on a thread of their own: a slow or missing
notification server never holds up the window. Each kind of alert replaces
its previous notification (replaces_id) instead of stacking another. A bus
or server that is missing is logged once and the alert dropped: alerts are
a convenience, never a reason to fail.
"""

from __future__ import annotations

import logging
import os
import queue
import threading

from chadthrottle.dbus_wire import Connection, Variant, WireError
from chadthrottle.gui.alerts.policy import Alert, AlertKind

log = logging.getLogger(__name__)

NOTIFICATIONS_NAME = "org.freedesktop.Notifications"
NOTIFICATIONS_PATH = "/org/freedesktop/Notifications"
APP_NAME = "ChadThrottle"
APP_ICON = "io.github.chadthrottle"
CALL_TIMEOUT_S = 5.0
EXPIRE_MS = -1  # the server's default
URGENCY_NORMAL, URGENCY_CRITICAL = 1, 2


class DesktopNotifier:
    """A queue of alerts and the thread that sends them."""

    def __init__(self, bus_address: str | None = None) -> None:
        """bus_address None: $DBUS_SESSION_BUS_ADDRESS, read when the first alert is sent."""
        self._address = bus_address
        self._queue: queue.Queue[Alert | None] = queue.Queue()
        self._connection: Connection | None = None
        self._replaces: dict[AlertKind, int] = {}  # kind -> id of its last notification
        self._complained = False
        self.sent = 0  # notifications the server accepted (for tests and the log)
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
        self._thread.start()

    def notify(self, alert: Alert) -> None:
        """Queue one alert; never blocks."""
        self._queue.put(alert)

    def close(self, timeout_s: float = 1.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued alert was tried (tests); False on timeout."""
        finished = threading.Event()

        def wait_for_the_queue() -> None:
            self._queue.join()
            finished.set()

        threading.Thread(target=wait_for_the_queue, daemon=True).start()
        return finished.wait(timeout_s)

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            try:
                if alert is None:
                    break
                self._send(alert)
            finally:
                self._queue.task_done()
        if self._connection is not None:
            self._connection.close()

    def _send(self, alert: Alert) -> None:
        address = self._address or os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
        try:
            if self._connection is None or not self._connection.connected:
                if not address:
                    raise WireError(
                        "NoSessionBus", "no session bus ($DBUS_SESSION_BUS_ADDRESS is not set)"
                    )
                self._connection = Connection(address, CALL_TIMEOUT_S)
            hints = {"category": Variant("s", "network"), "desktop-entry": Variant("s", APP_ICON),
                     "urgency": Variant("y", URGENCY_CRITICAL if alert.kind is AlertKind.HELPER_STOPPED else URGENCY_NORMAL)}  # fmt: skip
            reply = self._connection.call(
                NOTIFICATIONS_NAME, NOTIFICATIONS_PATH, NOTIFICATIONS_NAME, "Notify", "susssasa{sv}i",
                [APP_NAME, self._replaces.get(alert.kind, 0), APP_ICON, alert.summary, alert.body, [], hints, EXPIRE_MS],
                timeout_s=CALL_TIMEOUT_S,
            )  # fmt: skip
        except (WireError, OSError) as error:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            if not self._complained:
                self._complained = True
                log.warning("could not show a desktop notification (%s); alerts are dropped while this lasts",
                            getattr(error, "message", None) or error)  # fmt: skip
            return
        if reply.error_name:
            log.warning(
                "the notification server refused an alert: %s %s", reply.error_name, reply.body
            )
            return
        if reply.signature == "u" and reply.body:
            self._replaces[alert.kind] = int(reply.body[0])
        self._complained = False
        self.sent += 1
