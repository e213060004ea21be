"""Resume (and pause) is followed by a poll at once: the rows say what the
helper holds right after it confirmed, not at the next tick.

gui32 (Xvfb, the real helper, 1x): after Resume the banner went at the
helper's answer but Harbor Browser's limit read "not enforced" for 0.8 s
more, until the next poll: the listing before it, asked while paused, said
"limits are paused" of it. A poll sent after the answer says it is held (the
helper publishes its listing before it answers a change). The same for a block
chosen in the row menu or the tray, and a priority (its badge "High…" until a
poll asked after the answer: 0.9 s under Xvfb): shown at the next poll, up to
a refresh later.
Real controller and widgets; the helper scripted, its refresh 30 s so that only
a poll asked for at once can show it within the test's wait.
"""

from __future__ import annotations

import dataclasses

from chadthrottle.contract import PAUSED_PROBLEM, Direction
from chadthrottle.gui.models.columns import Column, Role

from tests.gui.quiet_helper import QuietHelper
from tests.gui.sample_data import sample_applications
from tests.gui.scripted_app import scripted_app

FIREFOX = "app:org.mozilla.firefox"  # its download limited to 5 MB/s in the samples
STEAM = "app:com.valvesoftware.Steam"


class PausingHelper(QuietHelper):
    """Lists Firefox's limit as the helper does: "limits are paused" while
    paused; blocks Steam's upload when asked."""

    def __init__(self) -> None:
        self.paused = False
        self.blocked_up = False
        self.listings = 0
        self.priority = ""

    async def list_applications(self) -> list[object]:
        self.listings += 1
        problem = PAUSED_PROBLEM if self.paused else ""
        apps = [dataclasses.replace(a, down_limit_problem=problem) if a.id == FIREFOX else a
                for a in sample_applications()]  # fmt: skip
        if self.blocked_up:
            apps = [dataclasses.replace(a, up_blocked=True) if a.id == STEAM else a for a in apps]
        if self.priority:
            apps = [dataclasses.replace(a, priority=self.priority, priority_owner=0)
                    if a.id == STEAM else a for a in apps]  # fmt: skip
        return apps

    async def set_priority(self, app_id: str, priority: str) -> str:
        self.priority = priority
        return app_id

    async def get_limits_paused(self) -> bool:
        return self.paused

    async def set_limits_paused(self, paused: bool) -> None:
        self.paused = paused

    async def set_blocked(self, app_id: str, direction: Direction, blocked: bool) -> str:
        self.blocked_up = blocked
        return app_id


def _enforced(controller, app_id: str, column: int) -> bool:  # type: ignore[no-untyped-def]
    index = controller.window.table.proxy_index(app_id, column)
    state = index.data(Role.LIMIT_STATE)
    return state is not None and state.enforced


def test_rows_say_held_at_once_after_resume_and_a_block_and_a_priority_at_once(
    qtbot, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    helper = PausingHelper()
    with scripted_app(helper, tmp_path, refresh_s=30.0) as controller:
        controller.start(show_window=True)
        qtbot.waitUntil(lambda: _enforced(controller, FIREFOX, Column.DOWN_LIMIT), timeout=5000)
        with qtbot.waitSignal(controller.connection.pauseFinished, timeout=5000):
            controller.request_pause(True)
        qtbot.waitUntil(lambda: not _enforced(controller, FIREFOX, Column.DOWN_LIMIT), timeout=2000)
        qtbot.waitUntil(lambda: helper.listings >= 2, timeout=2000)  # the paused listing is shown
        with qtbot.waitSignal(controller.connection.pauseFinished, timeout=5000):
            controller.request_pause(False)
        assert not controller.window.limits_paused
        # before: "not enforced" until the next poll, 30 s away here (0.8 s under Xvfb)
        qtbot.waitUntil(lambda: _enforced(controller, FIREFOX, Column.DOWN_LIMIT), timeout=3000)

        listed = helper.listings
        with qtbot.waitSignal(controller.connection.callFinished, timeout=5000):
            controller.request_block(STEAM, "up", True)
        qtbot.waitUntil(lambda: helper.listings > listed, timeout=3000)
        qtbot.waitUntil(
            lambda: controller.model.limit_state(STEAM, Direction.UP).blocked, timeout=3000
        )

        listed = helper.listings
        with qtbot.waitSignal(controller.connection.callFinished, timeout=5000):
            controller.priorities.request_priority(STEAM, "high")
        assert controller.model.priority_state(STEAM).pending  # "High…" until a poll tells
        qtbot.waitUntil(lambda: helper.listings > listed, timeout=3000)
        qtbot.waitUntil(lambda: not controller.model.priority_state(STEAM).pending, timeout=3000)
        assert controller.model.priority_state(STEAM).priority == "high"
