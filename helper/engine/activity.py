"""Which applications are active, for per-application shares of a link
(issue 16; docs/backends.md, "Per-application shares").

Under a link capacity an active application without a rule gets an HTB class
of its own, its processes tagged and their sockets walked (plan.fair_shares).
Until 2026-12-04 any byte made an application active: a chat client's
keepalive or a clock's NTP query every minute took a slot, a class per
direction and a walk of its sockets, then gave them back after FAIR_IDLE_S,
for traffic that queues nowhere. Now an application is active once it moved
at least ACTIVE_BPS over the last ACTIVE_WINDOW_S (loopback and other
namespaces aside: plan.bytes_moved_here); it stays so for FAIR_IDLE_S after.
A transfer crosses that in its first tick, so a busy application's class
still comes one to two ticks after its first bytes. Pure: fed each tick.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

ACTIVE_BPS = 2_000  # bytes/s on the wire (a keepalive or NTP is far below; a call far above)
ACTIVE_WINDOW_S = 3.0


class ActivityWatch:
    """Each application's bytes moved per tick over the last window, and
    when it was last active."""

    def __init__(
        self, idle_s: float, min_bps: float = ACTIVE_BPS, window_s: float = ACTIVE_WINDOW_S
    ) -> None:
        self._idle_s, self._min_bytes, self._window_s = idle_s, min_bps * window_s, window_s
        self._totals: dict[str, int] = {}  # app id -> bytes moved since the helper started
        self._recent: dict[str, deque[tuple[float, int]]] = {}  # app id -> (when, bytes) a tick
        self.active_at: dict[str, float] = {}  # app id -> when it was last active

    def note(self, moved: Mapping[str, int], now: float) -> None:
        """Each application's bytes moved so far (a total that can fall when
        one of its processes exits): the rise since the last tick is what
        it moved in this one."""
        recent: dict[str, deque[tuple[float, int]]] = {}
        for app_id, total in moved.items():
            ticks = self._recent.get(app_id, deque())
            if (rise := total - self._totals.get(app_id, 0)) > 0:
                ticks.append((now, rise))
            while ticks and ticks[0][0] <= now - self._window_s:
                ticks.popleft()
            if ticks:
                recent[app_id] = ticks
            if sum(bytes_moved for _, bytes_moved in ticks) >= self._min_bytes:
                self.active_at[app_id] = now
        self._totals, self._recent = dict(moved), recent
        # made anew, not deleted from: a dict keeps the size it once grew to
        self.active_at = {a: at for a, at in self.active_at.items() if now - at <= self._idle_s}
