"""What gui36's walk (a new user under Xvfb at 1366x768, 2x and 1x, openbox and
trayer, the real helper and polkitd) found, each on real widgets (offscreen)."""

from __future__ import annotations

import dataclasses

from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.tray.tray import TrayController
from chadthrottle.gui.views.main_window import MainWindow
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu

from tests.gui.sample_data import KB, NO_CAPACITY, app, sample_applications
from tests.gui.test_walk33_faults import FIRST_SIZE_2X, RELAY, shown_badge

CONNECTED = HelperStatus(HelperState.CONNECTED, "", True, True)


def _checked_priority(menu: QMenu) -> str:
    """The text of the checked action among a menu's priority choices."""
    found = [a.text() for a in menu.findChildren(QAction)
             if a.isChecked() and a.objectName().endswith(("priority:critical", ":critical"))]  # fmt: skip
    assert len(found) == 1, [(a.objectName(), a.text()) for a in menu.findChildren(QAction)]
    return found[0]


def test_critical_reads_critical_in_the_window_and_the_tray(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    """gui34's walk: the tray said *Relay Chat (protected)* and *Protect this
    app* where the row's badge, the row menu, the rules dialog and
    chadthrottle-ctl say *Critical*: a user who set Critical in the window did
    not recognise it in the tray. One word, also for a screen reader (the name
    cell read the bare name beside its badge)."""
    model = window.table.model().sourceModel()
    model.set_viewer_uid(1000)
    relay = dataclasses.replace(
        app(RELAY, "Relay Chat", 45 * KB, 12 * KB), priority="critical", priority_owner=1000
    )
    tray = TrayController(model)
    tray.set_status(CONNECTED)
    for problem, said in (("", "Critical"), (NO_CAPACITY, "Critical not in force")):
        model.apply_snapshot([*sample_applications(), dataclasses.replace(relay, priority_problem=problem)])  # fmt: skip
        window.resize(*FIRST_SIZE_2X)
        qtbot.waitUntil(lambda: window.table.visualRect(window.table.proxy_index(RELAY)).isValid())
        badge = shown_badge(window, RELAY)
        assert badge is not None and badge.text.removeprefix("⚠ ") == "Critical", badge
        row_menu = window.row_menu(RELAY)
        assert _checked_priority(row_menu) == "Critical"
        row_menu.deleteLater()
        tray.rebuild_menu()
        entry = next(a for a in tray.menu.actions() if a.menu() is not None
                     and a.menu().objectName() == f"quick:{RELAY}")  # fmt: skip
        assert entry.text().split("\t")[0] == f"Relay Chat ({said})", entry.text()
        assert _checked_priority(entry.menu()) == "Critical"
        assert "protect" not in " ".join(a.text().lower() for a in entry.menu().actions())
        name = window.table.proxy_index(RELAY).siblingAtColumn(Column.NAME)
        assert name.data(Qt.ItemDataRole.AccessibleTextRole) == f"Relay Chat, {said}"
    tray.shutdown()


def test_a_tray_name_is_whole_where_the_screen_has_room_beside_its_submenu(qtbot) -> None:  # type: ignore[no-untyped-def]
    """gui34's walk (Xvfb, 2x on 1366x768, trayer): *Parcel Upd… (download
    blocked)*, the widest entry, cut to keep the menu within 60% of the screen
    (794 of 1366 px) while its submenu beside it left 250 px of the screen
    spare. The menu may take what the screen leaves beside its widest submenu.
    The test's screen is offscreen's, its font larger to stand for 2x."""
    from chadthrottle.gui.models.applications import ApplicationsModel
    from chadthrottle.gui.models.icons import IconProvider
    from PySide6.QtWidgets import QApplication

    from tests.gui.sample_data import MB

    font = QApplication.font()
    larger = QApplication.font()
    larger.setPointSizeF(font.pointSizeF() * 1.3)
    QApplication.setFont(larger)
    try:
        model = ApplicationsModel(IconProvider())
        model.set_viewer_uid(1000)
        tray = TrayController(model)
        tray.set_status(CONNECTED)
        demo = [
            app("app:media", "Media Server", 23 * KB, 3.85 * MB),
            app("app:harbor", "Harbor Browser", 3.25 * MB, 99 * KB, up_limit_bps=100_000),
            app("app:backup", "Backup Server", 1.1 * MB, 18 * KB),
            app("app:nimbus", "Nimbus Sync", 17 * KB, 994 * KB, up_limit_bps=MB),
            app("app:fetcher", "Fetcher", 586 * KB, 3 * KB),
            dataclasses.replace(
                app(RELAY, "Relay Chat", 20 * KB, 8 * KB), priority="critical", priority_owner=1000
            ),
            dataclasses.replace(app("app:parcel", "Parcel Updates", 0, 0), down_blocked=True),
        ]
        model.apply_snapshot(demo)
        tray.rebuild_menu()
        labels = {a.menu().objectName(): a.text().split("\t")[0]
                  for a in tray.menu.actions() if a.menu() is not None}  # fmt: skip
        assert labels["quick:app:parcel"] == "Parcel Updates (download blocked)", labels
        screen = tray.menu.screen().availableGeometry().width()
        beside = max(m.sizeHint().width() for m in tray.menu.findChildren(QMenu))
        assert tray.menu.sizeHint().width() + beside <= screen
        tray.shutdown()
    finally:
        QApplication.setFont(font)


def test_a_word_that_fits_after_the_name_without_its_pill_keeps_the_name_in_line(
    qtbot, window: MainWindow
) -> None:  # type: ignore[no-untyped-def]
    """gui34's walk (Xvfb, 2x on 1366x768): Relay Chat's Critical, 9 px too wide
    for the name column with its pill, went on a line under the name and the
    name was raised 3 px off the other rows' names and its own rates
    (docs/screenshots/badge-under-2x.png). The word alone fits after the name:
    it goes there, in the name's line, with no pill."""
    from chadthrottle.gui.views.priority_badge import COLOURS
    from PySide6.QtGui import QColor, QFontMetricsF

    from tests.gui.test_walk34_faults import critical_row_at_2x, name_ink_top

    badge = critical_row_at_2x(qtbot, window, "Relay Chat")
    assert badge is not None and badge.text == "Critical" and not badge.under, badge
    name_end = QFontMetricsF(window.table.font()).horizontalAdvance("Relay Chat")
    others = [name_ink_top(window, info.id) for info in sample_applications()[:3]]
    relay_top = name_ink_top(window, RELAY)
    assert min(others) <= relay_top <= max(others), (relay_top, others)  # it was 3 px above
    # the red word: after the name, in its line (centred in the cell as the name)
    red = QColor(COLOURS["critical"])
    table = window.table
    rect = table.visualRect(table.proxy_index(RELAY))
    image = table.viewport().grab(rect).toImage()
    ratio = table.viewport().devicePixelRatioF()
    ink = [(x, y) for y in range(image.height()) for x in range(image.width())
           if QColor(image.pixel(x, y)) == red]  # fmt: skip
    assert ink, "no red word"
    xs, ys = [x / ratio for x, _ in ink], [y / ratio for _, y in ink]
    assert min(xs) > name_end, (min(xs), name_end)  # the name's width alone, before the icon
    assert max(xs) - min(xs) > 0.8 * badge.width, (min(xs), max(xs), badge)
    assert abs((min(ys) + max(ys)) / 2 - rect.height() / 2) <= 3, (min(ys), max(ys), rect.height())


def test_a_row_menu_with_no_room_under_its_row_opens_above_it(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    """gui36's walk (Xvfb, 2x on 1366x768): Shift+F10 on Nimbus Sync, the
    fourth row, opened its menu under the row; with no room below, Qt slid it
    up over the row: the menu headed *Nimbus Sync* stood over *Harbor
    Browser*'s name, its own row hidden. It opens above the row then."""
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QApplication

    model = window.table.model().sourceModel()
    model.apply_snapshot(sample_applications())
    app_id = sample_applications()[2].id
    window.show()
    qtbot.waitExposed(window)
    window.select_application(app_id)
    table = window.table
    qtbot.waitUntil(lambda: table.visualRect(table.proxy_index(app_id)).isValid())
    rect = table.visualRect(table.proxy_index(app_id))
    room = window.screen().availableGeometry()
    height = window.row_menu(app_id).sizeHint().height()
    # the row's bottom 40 px over the screen's: no room under it, room above it
    row_bottom = table.viewport().mapToGlobal(rect.bottomLeft()).y()
    window.move(window.x(), window.y() + room.bottom() - 40 - row_bottom)
    qtbot.waitUntil(
        lambda: table.viewport().mapToGlobal(rect.bottomLeft()).y() >= room.bottom() - 41
    )
    row_top = table.viewport().mapToGlobal(rect.topLeft()).y()
    assert row_top - height >= room.top(), (row_top, height, room)
    table.setFocus()
    qtbot.keyClick(table, Qt.Key.Key_Menu)
    qtbot.waitUntil(lambda: isinstance(QApplication.activePopupWidget(), QMenu))
    menu = QApplication.activePopupWidget()
    assert menu.objectName() == f"row-menu:{app_id}"
    shown = menu.geometry()
    assert shown.bottom() < row_top, (shown.getRect(), row_top)  # the row left in sight
    assert shown.top() >= room.top()
    assert shown.left() == table.viewport().mapToGlobal(QPoint(rect.left() + 16, 0)).x()
    menu.close()
