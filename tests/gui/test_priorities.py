"""Priorities and the link capacity in the GUI (issue 16), with real widgets:
the row's badge, the row menu, the tray's "Critical", the rules
dialog's chooser, the status line's link field and its dialog, the detail
pane's latency line, and an older helper that has none of it."""

from __future__ import annotations

import dataclasses

import pytest
from chadthrottle.client import HelperClientError
from chadthrottle.contract import ErrorName, LinkShapingInfo
from chadthrottle.gui.ipc.state import HelperState
from chadthrottle.gui.models.columns import Column, Role
from chadthrottle.gui.models.priority_view import (
    OLD_HELPER,
    PriorityState,
    describe_latency,
    link_summary,
    priority_state,
)
from chadthrottle.gui.priority_flow import REFUSED
from chadthrottle.gui.tray.tray import TrayController
from chadthrottle.gui.views.main_window import MainWindow
from chadthrottle.gui.views.priority_badge import COLOURS
from chadthrottle.gui.views.rules_dialog import AppRules, RulesDialog
from chadthrottle.units import UnitSystem
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QColor
from PySide6.QtWidgets import QMenu

from tests.gui.sample_data import MB, NO_CAPACITY, priority_applications, sample_applications
from tests.gui.scripted_app import scripted_app
from tests.gui.test_connection import ScriptedClient

FIREFOX, STEAM, DROPBOX = (
    "app:org.mozilla.firefox",
    "app:com.valvesoftware.Steam",
    "app:com.dropbox.Client",
)
UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"


def action(menu: QMenu, name: str) -> QAction:
    found = [a for a in menu.findChildren(QAction) if a.objectName() == name]
    assert found, f"no {name!r} in {[a.objectName() for a in menu.findChildren(QAction)]}"
    return found[0]


def test_a_priority_with_a_problem_is_never_shown_in_force() -> None:
    [firefox, steam, dropbox] = [
        a for a in priority_applications() if a.id in (FIREFOX, STEAM, DROPBOX)
    ]
    assert priority_state(firefox, 1000).in_force
    assert (
        not priority_state(steam, 1000).in_force
        and priority_state(steam, 1000).problem == NO_CAPACITY
    )
    away = priority_state(firefox, 1000, enforcement_problem="the helper is not running")
    assert not away.in_force and away.problem == "the helper is not running"
    assert priority_state(dropbox, 1000).read_only and not priority_state(dropbox, 0).read_only
    assert not priority_state(firefox, 1000, asked="high").in_force  # asked for: not confirmed
    half = link_summary(LinkShapingInfo(50 * MB, 10 * MB, 50 * MB, 10 * MB, False, True, False, ("eth0",),
                                        "upload: no IFB"), UnitSystem.BITS_DECIMAL)  # fmt: skip
    assert half.text == "Link capacity: ▼ 400 Mbit/s ▲ not in force" and half.warning
    assert (
        "Upload: capacity 80.0 Mbit/s, not in force now" in half.tooltip
        and "upload: no IFB" in half.tooltip
    )
    assert link_summary(LinkShapingInfo(), UnitSystem.BYTES_DECIMAL) == link_summary(
        LinkShapingInfo(), UnitSystem.BITS_DECIMAL
    )
    assert (
        link_summary(LinkShapingInfo(), UnitSystem.BYTES_DECIMAL).text == "Link capacity: not set"
    )
    waiting = link_summary(
        LinkShapingInfo(problem="priorities need a link capacity"), UnitSystem.BYTES_DECIMAL
    )
    assert waiting.warning and "priorities need a link capacity" in waiting.tooltip


def test_the_latency_line_is_in_a_desktop_users_words() -> None:
    """Until gui28 it read "round trip 23.4 ms (median smoothed RTT of its TCP
    connections)": the same fact (the helper's rtt_us, docs/helper.md) without
    the network engineer's words."""
    firefox = next(a for a in priority_applications() if a.id == FIREFOX)
    line = describe_latency(firefox, priority_state(firefox, 1000))
    assert line.endswith(
        " Latency: 23.4 ms (typical round trip of its TCP connections, there and back)."
    )
    quiet = dataclasses.replace(firefox, rtt_us=0)  # a call over UDP: nothing to time
    assert describe_latency(quiet, priority_state(quiet, 1000)).endswith(
        " Latency: not measured yet (only TCP connections can be timed, and it has none open)."
    )
    normal = next(a for a in sample_applications() if a.id == FIREFOX)
    assert describe_latency(normal, priority_state(normal, 1000)) == ""  # protected ones only
    for text in (line, describe_latency(quiet, priority_state(quiet, 1000))):
        assert not {"RTT", "median", "smoothed", "established"} & set(
            text.replace(".", " ").split()
        )


def test_rows_show_a_badge_and_say_why_one_is_not_in_force(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    model = window.table.model().sourceModel()
    model.set_viewer_uid(1000)
    model.apply_snapshot(priority_applications())
    badge = model.index_of(FIREFOX).data(Role.PRIORITY)
    assert isinstance(badge, PriorityState) and badge.in_force and badge.label == "Critical"
    assert model.index_of("exe:/usr/bin/curl").data(Role.PRIORITY) is None  # normal: nothing
    tip = model.index_of(STEAM).data(Qt.ItemDataRole.ToolTipRole)
    assert (
        f"Priority: Low: gets what the others leave (backups, updates). Not in force: {NO_CAPACITY}."
        in tip
    )
    assert "set by administrator" in model.index_of(DROPBOX).data(Qt.ItemDataRole.ToolTipRole)
    # Painted: Firefox's row carries the critical colour (filled: in force); Steam's none (outlined in amber).
    window.resize(1100, 720)
    qtbot.waitUntil(lambda: window.table.columnWidth(Column.NAME) > 200)
    image = window.table.viewport().grab().toImage()
    ratio = image.devicePixelRatio()

    def has_colour(app_id: str, colour: str) -> bool:
        rect = window.table.visualRect(window.table.proxy_index(app_id))
        wanted = QColor(colour)
        y = int((rect.center().y() - 3) * ratio)  # above the badge text
        return any(
            QColor(image.pixel(x, y)) == wanted
            for x in range(int(rect.left() * ratio), int(rect.right() * ratio))
        )

    assert has_colour(FIREFOX, COLOURS["critical"]) and not has_colour(STEAM, COLOURS["low"])


def test_row_menu_priority_submenu(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    model = window.table.model().sourceModel()
    model.set_viewer_uid(1000)
    model.apply_snapshot(priority_applications())
    menu = window.row_menu(FIREFOX)
    assert (
        action(menu, "priority:critical").isChecked()
        and not action(menu, "priority:normal").isChecked()
    )
    with qtbot.waitSignal(window.priorityRequested) as asked:
        action(menu, "priority:low").trigger()
    assert asked.args == [FIREFOX, "low"]
    admin = action(
        window.row_menu(DROPBOX), "priority:normal"
    )  # the administrator's: not the viewer's to change
    assert not admin.isEnabled() and "Only an administrator can change it" in admin.toolTip()
    model.priority_unavailable = OLD_HELPER
    old = action(window.row_menu(FIREFOX), "priority:high")
    assert not old.isEnabled() and old.toolTip() == OLD_HELPER


def test_the_tray_menu_says_which_applications_are_protected() -> None:
    """Only the Protect item inside an application's submenu said it; the list a
    user scans named nothing. Never in force for a priority not in force; in the
    row badge's word (gui36: it said "protected", and nothing of High)."""
    from tests.gui.test_tray import make_tray, menu_titles

    model, tray = make_tray()
    model.set_viewer_uid(1000)
    apps = priority_applications()
    model.apply_snapshot(apps)
    titles = menu_titles(tray)
    assert "Firefox (limited, Critical)" in titles, titles
    unprotected = [dataclasses.replace(a, priority_problem=NO_CAPACITY) for a in apps]
    model.apply_snapshot(unprotected)
    titles = menu_titles(tray)
    assert "Firefox (limited, Critical not in force)" in titles, titles
    assert not any(title.endswith("Critical)") for title in titles), titles
    assert "Dropbox (limited, High not in force)" in titles, titles  # the badge says High too


def test_tray_protects_and_unprotects(qtbot) -> None:  # type: ignore[no-untyped-def]
    from tests.gui.test_tray import make_tray

    model, tray = make_tray()
    model.set_viewer_uid(1000)
    model.apply_snapshot(sample_applications())
    tray.rebuild_menu()
    protect = action(tray.menu, f"quick:{FIREFOX}:critical")
    assert protect.text() == "Critical" and not protect.isChecked() and protect.isEnabled()
    with qtbot.waitSignal(tray.priorityRequested) as asked:
        protect.trigger()
    assert asked.args == [FIREFOX, "critical"]
    model.apply_snapshot(priority_applications())
    tray.rebuild_menu()
    protected = action(tray.menu, f"quick:{FIREFOX}:critical")
    assert protected.isChecked() and protected.text() == "Critical"
    assert protected.toolTip().endswith("Choose again for Normal priority."), protected.toolTip()
    with qtbot.waitSignal(tray.priorityRequested) as asked:
        protected.trigger()
    assert asked.args == [FIREFOX, "normal"]
    assert isinstance(tray, TrayController)


def test_the_tray_says_a_priority_other_than_critical(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb Fetcher, given High in the row menu, read a plain "Protect
    this app" in the tray: nothing there said High, nor that protecting it
    replaces High (walk26, shots/31-tray-fetcher.png)."""
    from tests.gui.test_tray import make_tray

    model, tray = make_tray()
    model.set_viewer_uid(1000)
    high = [dataclasses.replace(a, priority="high", priority_owner=1000) if a.id == FIREFOX else a
            for a in sample_applications()]  # fmt: skip
    model.apply_snapshot(high)
    tray.rebuild_menu()
    protect = action(tray.menu, f"quick:{FIREFOX}:critical")
    assert protect.text() == "Critical (now High)" and not protect.isChecked()
    assert protect.toolTip().startswith("Priority: High: ")
    assert "Choosing Critical replaces it." in protect.toolTip()
    with qtbot.waitSignal(tray.priorityRequested) as asked:
        protect.trigger()
    assert asked.args == [FIREFOX, "critical"]


def test_rules_dialog_priority_chooser(qtbot) -> None:  # type: ignore[no-untyped-def]
    dialog = RulesDialog(AppRules(STEAM, "Steam", priority="low", priority_note=f"Not in force: {NO_CAPACITY}."),
                         UnitSystem.BYTES_DECIMAL)  # fmt: skip
    qtbot.addWidget(dialog)
    assert dialog.priority.currentData() == "low" and NO_CAPACITY in dialog.priority_note.text()
    with qtbot.waitSignal(dialog.priorityRequested) as asked:
        dialog.priority.activated.emit(dialog.priority.findData("critical"))
    assert asked.args == [STEAM, "critical"]
    dialog.show_rules(AppRules(STEAM, "Steam", priority_disabled=OLD_HELPER))
    assert not dialog.priority.isEnabled() and dialog.priority_note.text() == OLD_HELPER


class PriorityClient(ScriptedClient):
    """The scripted client with API 5's calls, answering like a helper; refuse:
    SetLinkCapacity answers NotAuthorized (polkit said no)."""

    def __init__(self, refuse: bool = False) -> None:
        super().__init__()
        self.refuse = refuse
        self.shaping = LinkShapingInfo()
        self.priorities: dict[str, str] = {}

    async def list_applications(self) -> list:  # type: ignore[type-arg]
        problem = (
            "" if self.shaping.down_capacity_bps or self.shaping.up_capacity_bps else NO_CAPACITY
        )
        return [dataclasses.replace(a, priority=self.priorities.get(a.id, "normal"), priority_owner=1000, rtt_us=23_400,
                                    priority_problem=problem if a.id in self.priorities else "")
                for a in sample_applications()]  # fmt: skip

    async def set_priority(self, app_id: str, priority: str) -> str:
        self.calls.append(("priority", app_id, priority))
        self.priorities[app_id] = priority
        return app_id

    async def set_link_capacity(self, down_bps: int, up_bps: int, estimate: bool) -> None:
        self.calls.append(("capacity", down_bps, up_bps, estimate))
        if self.refuse:
            raise HelperClientError(ErrorName.NOT_AUTHORIZED.value, "polkit refused")
        self.shaping = LinkShapingInfo(
            down_bps, up_bps, down_bps, up_bps, estimate, bool(down_bps), bool(up_bps)
        )

    async def get_link_shaping(self) -> LinkShapingInfo:
        return self.shaping


class OldClient(ScriptedClient):
    async def get_link_shaping(self) -> LinkShapingInfo:
        raise HelperClientError(UNKNOWN_METHOD, "No such method 'GetLinkShaping'")


@pytest.fixture
def controller(qtbot, tmp_path, request):  # type: ignore[no-untyped-def]
    client = request.param()
    with scripted_app(client, tmp_path) as app:
        app.model.set_viewer_uid(1000)
        qtbot.addWidget(app.window)
        app.start(show_window=True)
        qtbot.waitUntil(lambda: app.connection.status.state is HelperState.CONNECTED, timeout=5000)
        yield app, client


@pytest.mark.parametrize("controller", [PriorityClient], indirect=True)
def test_priority_and_capacity_through_the_controller(qtbot, controller) -> None:  # type: ignore[no-untyped-def]
    app, client = controller
    link = app.window.status_line.link
    qtbot.waitUntil(
        lambda: link.isVisible() and link.text() == "Link capacity: not set", timeout=3000
    )
    action(app.window.row_menu(FIREFOX), "priority:critical").trigger()
    assert app.model.priority_state(FIREFOX).pending  # shown at once, as asked
    qtbot.waitUntil(
        lambda: app.model.priority_state(FIREFOX).problem == NO_CAPACITY, timeout=3000
    )  # never in force
    message = app.window.status_line.message
    qtbot.waitUntil(lambda: message.text() == f"Firefox: Critical priority set, not in force: {NO_CAPACITY}.",
                    timeout=3000)  # fmt: skip
    rules = app.rules.open(STEAM)  # the rules dialog's chooser takes the same way
    rules.priority.activated.emit(rules.priority.findData("low"))
    tray = TrayController(app.model, app.window, app)
    app.attach_tray(tray)  # and the tray's Protect (offscreen has no tray area)
    tray.rebuild_menu()
    action(tray.menu, f"quick:{DROPBOX}:critical").trigger()
    qtbot.waitUntil(lambda: {("priority", STEAM, "low"), ("priority", DROPBOX, "critical")} <= set(client.calls),
                    timeout=3000)  # fmt: skip
    rules.close()
    app.window.select_application(FIREFOX)
    notes = app.window.detail.limit_notes
    qtbot.waitUntil(lambda: "Latency: 23.4 ms" in notes.text() and notes.isVisible(), timeout=3000)
    # in a desktop user's words: "median smoothed RTT" until gui28
    assert "Latency: 23.4 ms (typical round trip of its TCP connections, there and back)." in (
        notes.text()
    )
    assert "RTT" not in notes.text() and "median" not in notes.text()
    app.window.header.open_link.trigger()  # the ☰ menu's entry, as clicking the link field
    dialog = app.priorities.dialog
    assert dialog is not None and dialog.isVisible()
    link.click()
    assert app.priorities.dialog is dialog  # one at a time
    dialog.edits[next(iter(dialog.edits))].setText("nonsense")
    dialog.apply.click()
    assert "Download capacity" in dialog.message.text() and not any(
        c[0] == "capacity" for c in client.calls
    )
    dialog.edits[next(iter(dialog.edits))].setText("50M")
    dialog.apply.click()
    qtbot.waitUntil(lambda: link.text() == "Link capacity: ▼ 50.0 MB/s ▲ —", timeout=3000)
    assert ("capacity", 50 * MB, 0, False) in client.calls and dialog.message.text() == "Done."
    qtbot.waitUntil(
        lambda: app.model.priority_state(FIREFOX).in_force, timeout=3000
    )  # the helper says so now
    client.refuse = True
    dialog.off.click()
    qtbot.waitUntil(lambda: dialog.message.text() == REFUSED, timeout=3000)
    assert client.shaping.down_capacity_bps == 50 * MB  # refused: nothing changed


@pytest.mark.parametrize("controller", [OldClient], indirect=True)
def test_an_older_helper_disables_priorities_and_nothing_breaks(qtbot, controller) -> None:  # type: ignore[no-untyped-def]
    app, _client = controller
    qtbot.waitUntil(lambda: app.model.priority_unavailable == OLD_HELPER, timeout=3000)
    assert (
        not app.window.status_line.link.isVisible() and not app.window.header.open_link.isEnabled()
    )
    menu = app.window.row_menu("exe:/usr/bin/curl")  # the viewer's to limit
    assert (
        not action(menu, "priority:critical").isEnabled()
        and action(menu, "limit:down:1 MB/s").isEnabled()
    )
    app.window.priorityRequested.emit(
        FIREFOX, "critical"
    )  # e.g. the tray's, built before the answer
    assert OLD_HELPER in app.window.status_line.message.text()
    assert app.connection.status.state is HelperState.CONNECTED


def test_the_badge_follows_the_name_in_a_wide_column(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    """Maximized, the name column is wide: the badge sits a small gap after
    the name ("Firefox [Critical]"), not at the column's far end where it
    read as belonging to the Down column."""
    model = window.table.model().sourceModel()
    model.set_viewer_uid(1000)
    model.apply_snapshot(priority_applications())
    window.resize(1900, 720)  # as maximized on a wide screen
    qtbot.waitUntil(lambda: window.table.columnWidth(Column.NAME) > 500)
    rect = window.table.visualRect(window.table.proxy_index(FIREFOX))
    image = window.table.viewport().grab(rect).toImage()
    wanted = QColor(COLOURS["critical"])
    y = image.height() // 2 - 3  # above the badge text
    badge = [x for x in range(image.width()) if QColor(image.pixel(x, y)) == wanted]
    assert badge, "no badge painted"
    name = window.table.fontMetrics().horizontalAdvance("Firefox")
    icon = window.table.iconSize().width() + 8
    assert name < badge[0] < icon + name + 30, (badge[0], icon, name, image.width())
    # a narrow column: the badge still after the name, inside the cell
    window.resize(900, 720)
    qtbot.waitUntil(lambda: window.table.columnWidth(Column.NAME) < 250)
    image = (
        window.table.viewport()
        .grab(window.table.visualRect(window.table.proxy_index(FIREFOX)))
        .toImage()
    )
    badge = [x for x in range(image.width()) if QColor(image.pixel(x, y)) == wanted]
    assert badge and icon + name < badge[0] and badge[-1] < image.width() - 2, (
        badge,
        image.width(),
    )


def test_a_narrow_name_column_keeps_the_badge_a_word(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    """gui31b (G2): at 2x on 1366x768 (the window 683x384 in Qt's pixels) the
    Critical badge read "C", a letter that says nothing, though the word fit
    after the name: it is whole where it fits, "Crit" where only that does."""
    model = window.table.model().sourceModel()
    model.set_viewer_uid(1000)
    model.apply_snapshot(priority_applications())
    window.resize(683, 384)
    qtbot.waitUntil(lambda: window.table.columnWidth(Column.NAME) < 200)
    rect = window.table.visualRect(window.table.proxy_index(FIREFOX))
    image = window.table.viewport().grab().toImage()
    ratio = image.devicePixelRatio()
    y = int((rect.center().y() - 3) * ratio)
    filled = [x for x in range(int(rect.left() * ratio), int(rect.right() * ratio))
              if QColor(image.pixel(x, y)) == QColor(COLOURS["critical"])]  # fmt: skip
    assert filled, "no Critical badge"
    assert (max(filled) - min(filled)) / ratio > rect.height(), "a one-letter pill"
    from chadthrottle.gui.views.priority_badge import badge_text

    assert badge_text(PriorityState("critical"), short=True) == "Crit"
