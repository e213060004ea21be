"""Find the tray menu's actions as a user would see them: rebuild the menu
(as opening it does) and look an action up by its objectName."""

from __future__ import annotations

from chadthrottle.contract import Direction
from chadthrottle.gui.tray.tray import TrayController, action_name
from PySide6.QtGui import QAction


def _find(tray: TrayController, name: str) -> QAction | None:
    tray.rebuild_menu()
    return next(
        (action for action in tray.menu.findChildren(QAction) if action.objectName() == name), None
    )


def pause_action(tray: TrayController) -> QAction | None:
    """ "Pause all limits", or None when the menu has none."""
    return _find(tray, "pause-all")


def quick_limit_action(
    tray: TrayController, app_id: str, direction: Direction | str, label: str
) -> QAction | None:
    """One quick-limit action of an application and direction, by its label."""
    return _find(tray, action_name(app_id, Direction(direction), label))
