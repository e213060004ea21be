"""Critical and high need an administrator's authorization even for one's own
application (SetPriority above normal needs limit-any): every place that offers
them says so before polkit's prompt appears; low and normal, which do not ask,
do not say it."""

from __future__ import annotations

from chadthrottle.gui.models.priority_view import ADMIN_ASKED
from chadthrottle.gui.views.main_window import MainWindow
from chadthrottle.gui.views.rules_dialog import AppRules, RulesDialog
from chadthrottle.units import UnitSystem
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu

from tests.gui.sample_data import sample_applications

FIREFOX = "app:org.mozilla.firefox"
ASKING = {"critical": True, "high": True, "normal": False, "low": False}


def _action(menu: QMenu, name: str) -> QAction:
    return next(a for a in menu.findChildren(QAction) if a.objectName() == name)


def test_row_menu_says_which_priorities_ask_for_an_administrator(window: MainWindow) -> None:
    model = window.table.model().sourceModel()
    model.set_viewer_uid(1000)
    menu = window.row_menu(FIREFOX)
    for value, asks in ASKING.items():
        tip = _action(menu, f"priority:{value}").toolTip()
        assert (ADMIN_ASKED in tip) is asks, (value, tip)
        assert "administrator" in tip if asks else "administrator" not in tip


def test_rules_dialog_and_tray_say_it_too(qtbot) -> None:  # type: ignore[no-untyped-def]
    from tests.gui.test_tray import make_tray

    dialog = RulesDialog(AppRules(FIREFOX, "Firefox"), UnitSystem.BYTES_DECIMAL)
    qtbot.addWidget(dialog)
    for value, asks in ASKING.items():
        tip = str(
            dialog.priority.itemData(dialog.priority.findData(value), Qt.ItemDataRole.ToolTipRole)
        )
        assert (ADMIN_ASKED in tip) is asks, (value, tip)
    model, tray = make_tray()
    model.set_viewer_uid(1000)
    model.apply_snapshot(sample_applications())
    tray.rebuild_menu()
    protect = _action(tray.menu, f"quick:{FIREFOX}:critical")
    assert protect.text() == "Critical" and ADMIN_ASKED in protect.toolTip()
