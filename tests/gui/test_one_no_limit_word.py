"""walk26 (shot 30): "no limit" was said three ways: the window's limit
columns "none", the rules dialog's fields "no limit", the tray's first quick
limit "Unlimited". One word now, units.NO_LIMIT."""

from __future__ import annotations

from chadthrottle.contract import Direction
from chadthrottle.gui.views.main_window import MainWindow
from chadthrottle.gui.views.rules_dialog import AppRules, RulesDialog
from chadthrottle.units import UnitSystem
from PySide6.QtGui import QAction

from tests.gui.sample_data import sample_applications
from tests.gui.test_tray import make_tray

SYNCTHING = "exe:/usr/bin/syncthing"  # no upload limit in the sample


def test_the_window_the_rules_dialog_and_the_tray_say_no_limit_alike(
    qtbot,  # type: ignore[no-untyped-def]
    window: MainWindow,
) -> None:
    field = window.limit_control(SYNCTHING, Direction.UP).field
    word = field.text()
    assert word == "none"
    # what to type for it is the same word (parse_rate takes unlimited, off, 0 too)
    assert f" or {word}, then press Enter" in field.accessibleDescription()
    assert f" or {word}; Enter applies" in field.toolTip()

    dialog = RulesDialog(AppRules(SYNCTHING, "Syncthing"), UnitSystem.BYTES_DECIMAL)
    qtbot.addWidget(dialog)
    assert {edit.placeholderText() for edit in dialog.limit_edits.values()} == {word}
    # a schedule's fields too: they read "not limited" (walk28)
    assert {edit.placeholderText() for edit in dialog.schedule_rates.values()} == {word}

    model, tray = make_tray()
    model.apply_snapshot(sample_applications())
    tray.rebuild_menu()
    firsts = {
        action.text()
        for action in tray.menu.findChildren(QAction)
        if action.objectName().startswith("quick:") and action.isCheckable()
    }
    assert word.capitalize() in firsts and not {"Unlimited", "no limit"} & firsts
