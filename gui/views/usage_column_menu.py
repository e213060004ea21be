"""The totals column's own period, chosen by a right click on its title.

The list's totals column and the usage view each keep a period of their own:
until gui28 choosing "Last 7 days" in the usage view also renamed the list's
"Today" column, which a user had not asked for (docs/gui.md, "The list").
"""

from __future__ import annotations

from collections.abc import Callable

from chadthrottle.gui.models.usage_periods import PERIODS, UsagePeriod
from chadthrottle.gui.views.menu_heading import add_heading
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu, QWidget

MENU_TITLE = "Data used in this column"


def usage_column_menu(
    current: UsagePeriod, choose: Callable[[UsagePeriod], None], parent: QWidget | None = None
) -> QMenu:
    """The four periods as radio items, the column's checked; each action's
    objectName is ``usage-column:<period>``."""
    menu = QMenu(parent)
    menu.setObjectName("usage-column-menu")
    add_heading(menu, MENU_TITLE)
    group = QActionGroup(menu)
    for period, info in PERIODS.items():
        action = QAction(info.label, group, checkable=True, checked=period is current)
        action.setObjectName(f"usage-column:{period.value}")
        action.triggered.connect(lambda _checked=False, p=period: choose(p))
        menu.addAction(action)
    return menu
