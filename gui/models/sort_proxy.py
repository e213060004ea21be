"""Sorting by current total rate, filtering by name, and holding still.

Rows are sorted by what the user is looking at (total rate by default) but
must not jump while the pointer is over the table: ``set_frozen(True)`` stops
re-sorting until released, then one re-sort catches up.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QSortFilterProxyModel, Qt

from chadthrottle.gui.models.columns import Column, Role


class ApplicationsProxy(QSortFilterProxyModel):
    """Sort/filter proxy over ApplicationsModel; children always follow their app."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(Role.SORT)
        self.setDynamicSortFilter(True)
        self._needle = ""
        self._frozen = False

    def set_name_filter(self, text: str) -> None:
        """Show applications whose name, id or process names contain ``text``."""
        needle = text.strip().casefold()
        if needle == self._needle:
            return
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9; invalidateRowsFilter is deprecated
            self.beginFilterChange()
            self._needle = needle
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self._needle = needle
            self.invalidateRowsFilter()

    def set_frozen(self, frozen: bool) -> None:
        """Hold the current order (pointer over the table) or release it."""
        if frozen != self._frozen:
            self._frozen = frozen
            self.setDynamicSortFilter(not frozen)

    @property
    def frozen(self) -> bool:
        return self._frozen

    def sort_by_activity(self) -> None:
        self.sort(Column.ACTIVITY, Qt.SortOrder.DescendingOrder)

    def filterAcceptsRow(
        self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex
    ) -> bool:
        if source_parent.isValid() or not self._needle:
            return True
        model = self.sourceModel()
        index = model.index(source_row, Column.NAME, source_parent)
        haystacks = [str(model.data(index)), str(model.data(index, Role.APP_ID))]
        for child in range(model.rowCount(index)):
            haystacks.append(str(model.data(model.index(child, Column.NAME, index))))
        return any(self._needle in text.casefold() for text in haystacks)

    def lessThan(
        self,
        left: QModelIndex | QPersistentModelIndex,
        right: QModelIndex | QPersistentModelIndex,
    ) -> bool:
        left_key: Any = left.data(Role.SORT)
        right_key: Any = right.data(Role.SORT)
        if type(left_key) is not type(right_key):
            return str(left_key) < str(right_key)
        if left_key == right_key:
            # Stable tie-break by name so equal rates (idle apps) keep a fixed order,
            # reversed for descending sorts so the order reads alphabetically.
            left_name = str(left.siblingAtColumn(Column.NAME).data()).casefold()
            right_name = str(right.siblingAtColumn(Column.NAME).data()).casefold()
            if self.sortOrder() == Qt.SortOrder.DescendingOrder:
                return left_name > right_name
            return left_name < right_name
        return bool(left_key < right_key)
