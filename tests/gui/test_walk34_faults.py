"""What gui34's walk (a new user under Xvfb at 1366x768, 2x and 1x, openbox and
trayer, the real helper and polkitd) found, each on real widgets (offscreen)."""

from __future__ import annotations

import dataclasses

from chadthrottle.contract import BackendInfo, Direction
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.models.icons import IconProvider
from chadthrottle.gui.tray.menu_width import MENU_NAME_LEAST_CHARS, name_room
from chadthrottle.gui.tray.tray import MENU_NAME_CHARS, TrayController
from chadthrottle.gui.views.main_window import MainWindow
from chadthrottle.gui.views.priority_badge import NameDelegate
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from tests.gui.sample_data import KB, MB, NO_CAPACITY, app, sample_applications
from tests.gui.scripted_app import scripted_app
from tests.gui.test_connection import ScriptedClient
from tests.gui.test_priorities import FIREFOX, PriorityClient
from tests.gui.test_walk33_faults import FIRST_SIZE_2X, RELAY, shown_badge

CONNECTED = HelperStatus(HelperState.CONNECTED, "", True, True)


def name_ink_top(window: MainWindow, app_id: str) -> int:
    """The first pixel row, from the cell's top, of the name's dark text (after the icon)."""
    table = window.table
    index = table.proxy_index(app_id)
    rect = table.visualRect(index)
    delegate = table.itemDelegateForColumn(Column.NAME)
    assert isinstance(delegate, NameDelegate)
    from PySide6.QtWidgets import QStyleOptionViewItem

    option = QStyleOptionViewItem()
    table.initViewItemOption(option)
    option.rect = rect
    ratio = table.viewport().devicePixelRatioF()
    left = round((delegate._text_left(option, index) - rect.left()) * ratio)
    image = table.viewport().grab(rect).toImage()
    for y in range(image.height()):
        if any(QColor(image.pixel(x, y)).lightness() < 110 for x in range(left, image.width())):
            return round(y / ratio)
    raise AssertionError(f"no dark text in {app_id}'s name cell")


def critical_row_at_2x(qtbot, window: MainWindow, name: str):  # type: ignore[no-untyped-def]
    """The sample rows and RELAY, named `name`, the viewer's own Critical, in
    the window at its first size at 2x: the badge RELAY's row shows."""
    model = window.table.model().sourceModel()
    model.set_viewer_uid(1000)
    relay = dataclasses.replace(
        app(RELAY, name, 45 * KB, 12 * KB), priority="critical", priority_owner=1000
    )
    model.apply_snapshot([*sample_applications(), relay])
    window.resize(*FIRST_SIZE_2X)
    qtbot.waitUntil(lambda: window.table.visualRect(window.table.proxy_index(RELAY)).isValid())
    qtbot.wait(50)
    return shown_badge(window, RELAY)


def test_a_name_with_its_badge_under_stays_in_line_with_the_other_names(
    qtbot, window: MainWindow
) -> None:  # type: ignore[no-untyped-def]
    """gui33, seen again in gui34's walk (Xvfb, 2x): a row whose Critical word sat
    under its name drew the name (and icon) in the cell's upper part, 6.5 px above
    the other rows' names and its own row's rates. Now raised only as far as the
    word under it needs."""
    # a name the word does not fit after even with no pill (gui36)
    badge = critical_row_at_2x(qtbot, window, "Nimbus Sync")
    assert badge is not None and badge.under, badge
    others = [name_ink_top(window, info.id) for info in sample_applications()[:3]]
    relay_top = name_ink_top(window, RELAY)
    assert min(others) - relay_top <= 4, (relay_top, others)  # it was 7-8 px


def test_a_tray_entry_is_not_cut_where_the_menu_has_room_for_it(qtbot) -> None:  # type: ignore[no-untyped-def]
    """gui34's walk (Xvfb, 2x, trayer): *Parcel Upd… (download blocked)* under the
    wider *Relay Chat (protection not in force)*: a name was cut to its own share
    of the menu's width though another entry had already made the menu wide
    enough for it whole. A name is cut only where its line would widen the menu."""
    model = ApplicationsModel(IconProvider())
    model.set_viewer_uid(1000)
    tray = TrayController(model)
    tray.set_status(CONNECTED)
    metrics = tray.menu.fontMetrics()
    protected = dataclasses.replace(
        app(RELAY, "Relay Chat", 45 * KB, 12 * KB, down_limit_bps=MB, up_limit_bps=MB),
        priority="critical",
        priority_owner=1000,
        priority_problem=NO_CAPACITY,
    )
    model.apply_snapshot([protected])
    tray.rebuild_menu()
    relay_line = tray.menu.actions()[0].text().split("\t")[0]
    assert relay_line == "Relay Chat (limited, Critical not in force)", relay_line
    # the longest name whose line is no wider than the protected entry's
    said = " (download blocked)"
    words = "Parcel Updates Service Daemon For Everything"
    long_name = next(words[:n] for n in range(len(words), 0, -1)
                     if metrics.horizontalAdvance(words[:n] + said) <= metrics.horizontalAdvance(relay_line))  # fmt: skip
    long_name = long_name.rstrip()
    # its own share of the menu (what it was cut to) is narrower than it
    room = name_room(metrics, tray.menu.screen().availableGeometry().width(),
                     metrics.horizontalAdvance("▼ 2.00 MB/s  ▲ 0 B/s"), MENU_NAME_CHARS)  # fmt: skip
    least = metrics.averageCharWidth() * MENU_NAME_LEAST_CHARS
    assert metrics.horizontalAdvance(long_name) > max(least, room - metrics.horizontalAdvance(said)), (
        "the test's name would not have been cut")  # fmt: skip
    parcel = dataclasses.replace(app("app:parcel", long_name, 2 * MB), down_blocked=True)
    model.apply_snapshot([protected, parcel])
    tray.rebuild_menu()
    labels = {a.menu().objectName(): a.text().split("\t")[0]
              for a in tray.menu.actions() if a.menu() is not None}  # fmt: skip
    assert labels[f"quick:{RELAY}"] == relay_line
    parcel_line = labels["quick:app:parcel"]
    assert parcel_line == f"{long_name} (download blocked)", (parcel_line, relay_line)
    tray.shutdown()


def test_a_not_in_force_message_goes_once_the_priority_is_in_force(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """gui34's walk (Xvfb, 2x, the real helper): Critical chosen with no link
    capacity said *Nimbus Sync: Critical priority not in force*; the capacity set,
    the row read *Critical* in force at once while that message stood for the
    rest of its 8 s beside it. It goes when the priority it named is in force."""
    client = PriorityClient()
    with scripted_app(client, tmp_path) as running:
        running.model.set_viewer_uid(1000)
        running.start(show_window=True)
        qtbot.waitUntil(lambda: running.model.app_ids() != [], timeout=5000)
        line = running.window.status_line
        with qtbot.waitSignal(running.connection.callFinished, timeout=5000):
            running.priorities.request_priority(FIREFOX, "critical")
        whole = f"Firefox: Critical priority set, not in force: {NO_CAPACITY}."
        qtbot.waitUntil(lambda: line.message.text() == whole, timeout=3000)
        dialog = running.priorities.open_dialog()
        dialog.edits[Direction.DOWN].setText("12.5M")
        dialog.edits[Direction.UP].setText("5M")
        dialog.apply.click()
        qtbot.waitUntil(lambda: running.model.priority_state(FIREFOX).in_force, timeout=3000)
        qtbot.waitUntil(lambda: line.message.text() == "", timeout=1000)
        dialog.close()


class LimitsHeldClient(ScriptedClient):
    """A helper whose tc backend holds the directions that have a limit."""

    def __init__(self) -> None:
        super().__init__()
        self.held = {"down"}

    async def list_backends(self) -> list[BackendInfo]:
        return [BackendInfo("tc", True, "", tuple(sorted(self.held)))]

    async def set_limit(
        self, app_id: str, direction: Direction, rate_bps: int, burst_bytes: int = 0
    ) -> str:
        self.held.add(direction.value)
        return await super().set_limit(app_id, direction, rate_bps, burst_bytes)


def test_the_enforcing_field_follows_a_new_limit_at_once(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """gui34's walk (Xvfb, the real helper): Nimbus Sync's upload limited to 1 MB/s
    from the row menu, confirmed at once, the status line read *Enforcing ▼* for
    ~10 s more: the backends were read every tenth poll. Read at the next poll
    after a change."""
    client = LimitsHeldClient()
    with scripted_app(client, tmp_path, refresh_s=1.0) as running:
        running.start(show_window=True)
        field = running.window.status_line.backend
        qtbot.waitUntil(lambda: field.text() == "Enforcing ▼", timeout=5000)
        running.window.limitRequested.emit(FIREFOX, "up", 1_000_000)
        qtbot.waitUntil(lambda: client.held == {"down", "up"}, timeout=3000)
        qtbot.waitUntil(lambda: field.text() == "Enforcing ▼ ▲", timeout=2500)


def test_no_total_is_said_before_any_rate_was_heard(qtbot) -> None:  # type: ignore[no-untyped-def]
    """gui34's walk (Xvfb, 2x): the window started before its helper (not
    installed, or not running yet) read *▼ 0 B/s ▲ 0 B/s* at the top and in the
    *All applications* row, rates nothing had measured; and with the helper
    stopped just after a limit changed, *▼ … ▲ …* (being measured, in a second)
    where nothing measures them. Both read "—", as a row's rate does then."""
    from chadthrottle.gui.models.columns import Column as C

    from tests.gui.bare_window import bare_window

    model, window = bare_window()
    qtbot.addWidget(window)
    window.set_status(HelperStatus(HelperState.NOT_INSTALLED, "not installed"))
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: "▼ — " in window.header.totals.text(), timeout=2000)
    assert "0 B/s" not in window.header.totals.text()
    assert window.table.overall.overall_text(C.DOWN) == "—"
    window.set_status(CONNECTED)
    measuring = dataclasses.replace(app(FIREFOX, "Firefox", 2 * MB, 10 * KB), down_measuring=True)
    model.apply_snapshot([measuring])
    qtbot.waitUntil(lambda: "▼ …" in window.header.totals.text(), timeout=2000)
    window.set_status(HelperStatus(HelperState.NOT_RUNNING, "gone"))
    qtbot.waitUntil(lambda: "▼ —" in window.header.totals.text(), timeout=2000)
    assert window.table.overall.overall_text(C.DOWN) == "—"


def test_a_refused_watch_says_what_was_refused(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """gui34's walk (Xvfb, the window run as a user polkit does not authorize,
    the real helper and polkitd): the banner read *Not authorized: You are not
    allowed to do this.* over an empty list, of a window the user had only
    opened. It says that watching traffic was refused, and what to do."""
    from chadthrottle.contract import ErrorName

    with scripted_app(
        ScriptedClient(fail_with=ErrorName.NOT_AUTHORIZED.value), tmp_path
    ) as running:
        running.start(show_window=True)
        banner = running.window.banner
        qtbot.waitUntil(lambda: banner.isVisible() and bool(banner.text.text()), timeout=5000)
        qtbot.waitUntil(
            lambda: running.window.status.state is HelperState.NOT_AUTHORIZED, timeout=5000
        )
        said = banner.text.text()
        assert "do this" not in said, said
        assert said.startswith("Watching traffic was refused"), said
        assert "Ask again" in said and banner.retry_button.text() == "Ask again"


def test_a_screen_reader_hears_a_limit_cell_as_it_is_painted(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    """gui34's walk (Xvfb, the real helper): Parcel Updates' download blocked, its
    cell painted *Blocked*, its text (what an item view's accessible cell says,
    without an accessible text of its own) read "none", a limit of none. It says
    what is painted, with the line under it."""
    from PySide6.QtGui import QAccessible

    model = window.table.model().sourceModel()
    parcel = dataclasses.replace(
        app("app:parcel", "Parcel Updates", 0.0, 10 * KB), down_blocked=True
    )
    limited = app("app:nimbus", "Nimbus Sync", 10 * KB, 990 * KB, up_limit_bps=MB)
    model.apply_snapshot([parcel, limited])
    qtbot.waitUntil(lambda: window.table.proxy_index("app:parcel").isValid())
    view = QAccessible.queryAccessibleInterface(window.table)
    assert view is not None
    said = [view.child(i).text(QAccessible.Text.Name) for i in range(view.childCount())
            if view.child(i) is not None]  # fmt: skip
    assert "Blocked" in said, said
    assert "1.00 MB/s" in said, said
    window.set_status(HelperStatus(HelperState.NOT_RUNNING, "gone"))
    qtbot.waitUntil(lambda: window.table.proxy_index("app:nimbus", Column.UP_LIMIT).data(
        Qt.ItemDataRole.AccessibleTextRole) == "1.00 MB/s, not enforced", timeout=2000)  # fmt: skip
