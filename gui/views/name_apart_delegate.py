"""A table's name cell whose "name (id)" is cut keeping what tells it from the
others of its name (name_cut.py), for a model that gives each row's id and
tell in roles: the usage view's table cut "python3.11 (exe:/home/…" at the
right, as the list did before graph28 (words29)."""

from __future__ import annotations

from chadthrottle.app_names import name_of_apart
from chadthrottle.gui.models.name_cut import fitted_name_apart
from chadthrottle.gui.views.priority_badge import AnyIndex, NameDelegate
from PySide6.QtCore import QObject
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import QStyledItemDelegate, QStyleOptionViewItem


class NameApartDelegate(QStyledItemDelegate):
    """Qt's cell, its text cut by fitted_name_apart where it is a name told apart."""

    def __init__(self, app_id_role: int, tell_role: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._roles = (app_id_role, tell_role)

    def initStyleOption(self, option: QStyleOptionViewItem, index: AnyIndex) -> None:
        super().initStyleOption(option, index)
        app_id = index.data(self._roles[0])
        if isinstance(app_id, str) and name_of_apart(option.text, app_id) is not None:
            option.text = fitted_name_apart(
                option.text, app_id, NameDelegate.text_room(option),
                QFontMetricsF(option.font).horizontalAdvance, index.data(self._roles[1]),
            )  # fmt: skip
