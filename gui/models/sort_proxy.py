"""Filtering by name, and passing sort requests on to the model.

Rows are sorted by what the user is looking at (total rate by default) but
must not jump while the pointer is over the table: ``set_frozen(True)`` stops
re-sorting until released, then one re-sort catches up. The ordering itself
happens in ApplicationsModel (see its ``sort``); this proxy keeps the model's
order and only hides rows.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QSortFilterProxyModel, Qt

from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.columns import Column, Role


class ApplicationsProxy(QSortFilterProxyModel):
    """Sort/filter proxy over ApplicationsModel; children always follow their app."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setDynamicSortFilter(True)
        # Qt's own fixed-string filter on one text role: with no filter set it
        # accepts rows without calling into Python at all.
        self.setFilterRole(Role.FILTER_TEXT)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self._needle = ""

    def _source(self) -> ApplicationsModel:
        source = self.sourceModel()
        assert isinstance(source, ApplicationsModel), "ApplicationsProxy sits on an ApplicationsModel"
        return source

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """The header's sort request: the model reorders itself; this proxy keeps its order."""
        self._source().sort(column, order)

    def sortColumn(self) -> int:
        return int(self._source().order.column)

    def sortOrder(self) -> Qt.SortOrder:
        return Qt.SortOrder.DescendingOrder if self._source().order.descending else Qt.SortOrder.AscendingOrder

    def set_name_filter(self, text: str) -> None:
        """Show applications whose name, id or process names contain ``text``."""
        needle = text.strip()
        if needle != self._needle:
            self._needle = needle
            self.setFilterFixedString(needle)

    def set_frozen(self, frozen: bool) -> None:
        """Hold the current order (pointer over the table) or release it."""
        self._source().set_order_frozen(frozen)

    @property
    def frozen(self) -> bool:
        return bool(self._source().order.frozen)

    def sort_by_activity(self) -> None:
        self.sort(Column.ACTIVITY, Qt.SortOrder.DescendingOrder)
