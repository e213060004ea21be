"""The totals column's own period: a right click on its title, or the ☰ menu.

The list's totals column and the usage view each keep a period of their own:
until gui28 choosing "Last 7 days" in the usage view also renamed the list's
"Today" column, which a user had not asked for (docs/gui.md, "The list").
The title's menu is the mouse's way; the ☰ menu's "Data used in the list"
holds the same choices for the keyboard (a column title takes no focus, so
until review28 the period could be chosen only with a mouse).
"""

from __future__ import annotations

from collections.abc import Callable

from chadthrottle.gui.models.usage_periods import COLUMN_PERIOD_MENU, PERIODS, UsagePeriod
from chadthrottle.gui.views.menu_heading import add_heading
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu, QWidget

MENU_TITLE = "Data used in this column"
SUBMENU_TITLE = COLUMN_PERIOD_MENU  # in the ☰ menu


def add_period_actions(
    menu: QMenu, current: UsagePeriod, choose: Callable[[UsagePeriod], None]
) -> None:
    """The four periods as radio items, the column's checked; each action's
    objectName is ``usage-column:<period>``."""
    group = QActionGroup(menu)
    for period, info in PERIODS.items():
        action = QAction(info.label, group, checkable=True, checked=period is current)
        action.setObjectName(f"usage-column:{period.value}")
        action.triggered.connect(lambda _checked=False, p=period: choose(p))
        menu.addAction(action)


def usage_column_menu(
    current: UsagePeriod, choose: Callable[[UsagePeriod], None], parent: QWidget | None = None
) -> QMenu:
    """The title's menu: a heading, then the periods (add_period_actions)."""
    menu = QMenu(parent)
    menu.setObjectName("usage-column-menu")
    add_heading(menu, MENU_TITLE)
    add_period_actions(menu, current, choose)
    return menu


def add_period_submenu(
    parent_menu: QMenu,
    after: QAction | None,
    current: Callable[[], UsagePeriod],
    choose: Callable[[UsagePeriod], None],
) -> QMenu:
    """The same choices as a submenu of the ☰ menu, after ``after`` (or last),
    checked afresh each time it opens (objectName ``usage-column-submenu``)."""
    submenu = QMenu(SUBMENU_TITLE, parent_menu)
    submenu.setObjectName("usage-column-submenu")

    def fill() -> None:
        submenu.clear()
        add_period_actions(submenu, current(), choose)

    submenu.aboutToShow.connect(fill)
    fill()
    actions = parent_menu.actions()
    following = actions[actions.index(after) + 1] if after in actions[:-1] else None
    if following is None:
        parent_menu.addMenu(submenu)
    else:
        parent_menu.insertMenu(following, submenu)
    return submenu
