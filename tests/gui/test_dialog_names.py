"""Every focusable widget of the rules, link and usage dialogs is announced by a
screen reader with a name (issue 17: every control has an accessible name); the
main window's and the settings dialog's have their own tests."""

from __future__ import annotations

from chadthrottle.gui.models.usage_periods import UsagePeriod
from chadthrottle.gui.views.link_dialog import LinkDialog
from chadthrottle.gui.views.rules_dialog import AppRules, RulesDialog
from chadthrottle.gui.views.usage_dialog import UsageDialog
from chadthrottle.units import UnitSystem
from PySide6.QtCore import Qt
from PySide6.QtGui import QAccessible
from PySide6.QtWidgets import QWidget


def nameless(qtbot, dialog: QWidget) -> list[str]:  # type: ignore[no-untyped-def]
    """The focusable widgets whose accessible interface has no name (a button's text
    counts, as a screen reader reads it)."""
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    focusable = [w for w in dialog.findChildren(QWidget)
                 if w.focusPolicy() != Qt.FocusPolicy.NoFocus and w.isVisibleTo(dialog)]  # fmt: skip
    assert len(focusable) >= 3
    return [
        type(w).__name__
        for w in focusable
        if not (
            (face := QAccessible.queryAccessibleInterface(w)) and face.text(QAccessible.Text.Name)
        )
    ]


def test_the_rules_dialog_names_every_control(qtbot) -> None:  # type: ignore[no-untyped-def]
    dialog = RulesDialog(AppRules("app:org.example.Browser", "Browser"), UnitSystem.BYTES_DECIMAL)
    assert nameless(qtbot, dialog) == []


def test_the_link_and_usage_dialogs_name_every_control(qtbot) -> None:  # type: ignore[no-untyped-def]
    assert nameless(qtbot, LinkDialog(UnitSystem.BITS_DECIMAL)) == []
    assert nameless(qtbot, UsageDialog(UsagePeriod.WEEK)) == []
