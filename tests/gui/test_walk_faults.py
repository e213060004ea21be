"""Faults a walk of the real app on a screen found (Xvfb, openbox and trayer,
the real helper, 1366x768 at 1x and 2x: gui8 and gui9), each with the real
widgets: a blocked row's rate from before its block, the link field after
Resume, the rules dialog growing as its tabs are opened, a cut note's ".…"."""

from __future__ import annotations

import dataclasses

import pytest
from chadthrottle.contract import PAUSED_PROBLEM, BackendInfo, Direction, LinkShapingInfo
from chadthrottle.gui.ipc.state import HelperState
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.tray.tray import TrayController
from chadthrottle.gui.views.main_window import MainWindow
from chadthrottle.gui.views.rules_dialog import AppRules, RulesDialog
from chadthrottle.units import UnitSystem
from PySide6.QtCore import QCoreApplication, QEvent

from tests.gui.sample_data import MB, sample_applications
from tests.gui.scripted_app import scripted_app
from tests.gui.test_connection import ScriptedClient

FIREFOX = "app:org.mozilla.firefox"


def _with(app_id: str, **changes: object) -> list:  # type: ignore[type-arg]
    return [
        dataclasses.replace(a, **changes) if a.id == app_id else a  # type: ignore[arg-type]
        for a in sample_applications()
    ]


def test_a_row_just_blocked_does_not_show_the_rate_from_before_the_block(
    qtbot, window: MainWindow
) -> None:  # type: ignore[no-untyped-def]
    """Until its first tick after a rule changed the helper listed the rates it
    measured last: a poll in between showed Harbor Browser's "2.80 MB/s" in
    Down beside "Blocked" (gui9, 2x). The helper now lists that direction as
    measuring (API 7, helper/engine/rates.py RateMeter.restart), and the row,
    the detail pane's rates line and the tray say "…" from that word
    (tests/gui/test_measuring_rates.py: what the totals leave out)."""
    model = window._model
    down = window.table.proxy_index(FIREFOX, Column.DOWN)
    assert down.data() == "4.98 MB/s"
    model.apply_snapshot(_with(FIREFOX, down_blocked=True, down_bps=0.0, down_measuring=True))
    down = window.table.proxy_index(FIREFOX, Column.DOWN)
    assert down.data() == "…", down.data()
    assert "measuring" in down.data(0x03)  # the tooltip (ToolTipRole) says why
    up = window.table.proxy_index(FIREFOX, Column.UP)
    assert up.data() == "210 KB/s"  # the other direction's rules did not change: as measured
    assert window.select_application(FIREFOX)  # the detail pane's rates line says the same
    assert window.detail.summary.text().startswith("Firefox: down … (limit 5.00 MB/s, avg")
    tray = TrayController(model)  # and the tray menu's entry
    tray.set_status(window.status)
    tray.rebuild_menu()
    (entry,) = [a.text() for a in tray.menu.actions() if a.text().startswith("Firefox")]
    assert entry.endswith("\t▼ …  ▲ 210 KB/s"), entry
    tray.shutdown()
    model.apply_snapshot(_with(FIREFOX, down_blocked=True, down_bps=1_700.0))  # the tick after
    assert window.table.proxy_index(FIREFOX, Column.DOWN).data() == "1.70 KB/s"
    assert window.detail.summary.text().startswith("Firefox: down 1.70 KB/s")
    model.apply_snapshot(_with(FIREFOX))  # unblocked, measured
    assert window.table.proxy_index(FIREFOX, Column.DOWN).data() == "4.98 MB/s"


class PausingClient(ScriptedClient):
    """Answers as a helper with a link capacity does: paused, nothing is shaped
    and no backend holds a limit (the status line names those available);
    resumed, tc shapes the link and holds the limits."""

    SHAPED = LinkShapingInfo(12 * MB, 5 * MB, 12 * MB, 5 * MB, False, True, True, ("eth0",))

    async def get_link_shaping(self) -> LinkShapingInfo:
        # paused, as the helper answers (link_plan.shaping_info): the capacity set is
        # kept, none is in force, and the problem says why
        paused = LinkShapingInfo(0, 0, 12 * MB, 5 * MB, problem=PAUSED_PROBLEM)
        return paused if self.paused else self.SHAPED

    async def list_backends(self) -> list[BackendInfo]:
        if self.paused:
            return [BackendInfo("tc", True, "", ()), BackendInfo("ebpf", True, "", ())]
        return [BackendInfo("tc", True, "", ("down", "up"))]


@pytest.fixture
def pausing(qtbot, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    # The link and the backends are read every few polls: here only at the start,
    # so what shows after a pause or a resume is what that change asked for.
    monkeypatch.setattr("chadthrottle.gui.priority_flow.SHAPING_EVERY_N_POLLS", 10**9)
    monkeypatch.setattr("chadthrottle.gui.ipc.worker.BACKENDS_EVERY_N_POLLS", 10**9)
    client = PausingClient()
    with scripted_app(client, tmp_path) as app:
        qtbot.addWidget(app.window)
        app.start(show_window=True)
        qtbot.waitUntil(
            lambda: app.connection.status.state is HelperState.CONNECTED, timeout=10_000
        )
        yield app


def test_the_status_line_follows_a_pause_and_a_resume_at_once(qtbot, pausing) -> None:  # type: ignore[no-untyped-def]
    """After Resume the status line read "Link: not shaped" and "Backend: tc,
    ebpf" for several seconds (gui8, gui9 under Xvfb): both were read every few
    polls only, and kept what the paused helper had said."""
    link, backend = pausing.window.status_line.link, pausing.window.status_line.backend
    qtbot.waitUntil(lambda: link.text().startswith("Link capacity: ▼"), timeout=10_000)
    qtbot.waitUntil(lambda: backend.text() == "Enforcing ▼ ▲", timeout=10_000)
    pausing.window.pauseRequested.emit(True)
    qtbot.waitUntil(lambda: pausing.window.limits_paused, timeout=10_000)
    qtbot.waitUntil(lambda: link.text() == "Link capacity: not in force", timeout=10_000)
    qtbot.waitUntil(lambda: backend.text() == "Enforcing paused", timeout=10_000)  # none holds
    pausing.window.pauseRequested.emit(False)
    qtbot.waitUntil(lambda: not pausing.window.limits_paused, timeout=10_000)
    qtbot.waitUntil(lambda: link.text().startswith("Link capacity: ▼"), timeout=10_000)
    qtbot.waitUntil(lambda: backend.text() == "Enforcing ▼ ▲", timeout=10_000)


def test_the_rules_dialog_keeps_its_height_from_tab_to_tab(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Its height followed the tab shown at the next poll: 334 px on Limits, 442
    on Schedules (1x), 320 then 371 on Block and quota (2x), the window manager
    moving it up to keep it on the screen. It is as tall as its tallest tab
    from the start, and every tab's lines have their room."""
    quotas = {Direction.DOWN: (5_000_000_000, 4_990_000_000, "day"),
              Direction.UP: (1_000_000, 0, "day")}  # fmt: skip
    dialog = RulesDialog(AppRules(FIREFOX, "Firefox", quotas=quotas), UnitSystem.BYTES_DECIMAL)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    first = dialog.height()
    for tab in (*range(dialog.tabs.count()), 0):
        dialog.tabs.setCurrentIndex(tab)
        dialog.show_rules(dialog.rules)  # a poll: it fits the dialog's height to its lines
        QCoreApplication.processEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
        QCoreApplication.processEvents()
        assert dialog.height() == first, (tab, first, dialog.height())
        page = dialog.tabs.currentWidget()
        layout = page.layout()
        assert layout is not None
        wanted = layout.totalHeightForWidth(page.width()) if layout.hasHeightForWidth() else -1
        assert page.height() >= max(wanted, layout.totalMinimumSize().height()), tab


def test_compact_notes_are_whole(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    """Compact (the graph's least room, 2x on 1366x768) the notes were cut to a
    line: two quotas' sentences read "...counted since it was set or the day
    began.…", then "...began…". Both are read whole now (gui18)."""
    window.resize(1100, 720)
    qtbot.waitUntil(lambda: window.width() == 1100)
    window._model.apply_snapshot(_with(
        FIREFOX, down_quota_bytes=5_000_000_000, down_quota_left_bytes=4_990_000_000,
        down_quota_period="day", up_quota_bytes=2_000_000_000, up_quota_left_bytes=1_500_000_000,
        up_quota_period="day"))  # fmt: skip
    assert window.select_application(FIREFOX)
    window.detail.set_compact(True)
    notes = window.detail.limit_notes
    qtbot.waitUntil(notes.isVisible)
    assert notes.text().count("quota") == 2 and not notes.text().endswith("…"), notes.text()
    assert notes.text().startswith("Download quota: 4.99 GB of 5.00 GB left today")
    box = window.detail.notes_box
    qtbot.waitUntil(lambda: box.viewport().height() >= notes.heightForWidth(notes.width()))


def test_the_row_menus_quick_limits_are_one_of_several_and_wait_out_a_block(
    window: MainWindow,
) -> None:
    """Under Xvfb the row menu drew its quick limits as check boxes beside the
    tray's radio items for the same choice, and offered them, "Unlimited"
    checked, for a blocked download (the tray greys them, the row's field is
    read-only then)."""
    from PySide6.QtGui import QAction

    def actions(direction: str) -> list[QAction]:
        menu = window.row_menu(FIREFOX)
        return [
            a
            for a in menu.findChildren(QAction)
            if a.objectName().startswith(f"limit:{direction}:")
        ]

    down = actions("down")
    assert down and all(a.actionGroup() is not None and a.actionGroup().isExclusive() for a in down)
    assert [a.objectName() for a in down if a.isChecked()] == ["limit:down:5 MB/s"]
    window._model.apply_snapshot(_with(FIREFOX, down_blocked=True, down_limit_bps=0))
    down = actions("down")
    assert not any(a.isChecked() or a.isEnabled() for a in down)
    assert all("blocked" in a.toolTip().casefold() for a in down), down[0].toolTip()
    assert all(a.isEnabled() for a in actions("up"))  # the upload is not blocked
