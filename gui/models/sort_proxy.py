"""The view's handle on the model's order and filter.

Rows are sorted by what the user is looking at (total rate by default) but
must not jump while the pointer is over the table: ``set_frozen(True)`` stops
re-sorting until released, then one re-sort catches up. Both the ordering and
the filter happen in ApplicationsModel (see its ``sort`` and
``set_name_filter``); this is an identity proxy that forwards the requests.
It maps indexes in C++ without calling back into Python, where a
QSortFilterProxyModel called the model's ``index()`` for every cell it mapped.
"""

from __future__ import annotations

from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.columns import Column
from PySide6.QtCore import QIdentityProxyModel, QObject, Qt


class ApplicationsProxy(QIdentityProxyModel):
    """Identity proxy over ApplicationsModel; sorting and filtering go to the model."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)

    def _source(self) -> ApplicationsModel:
        source = self.sourceModel()
        assert isinstance(source, ApplicationsModel), (
            "ApplicationsProxy sits on an ApplicationsModel"
        )
        return source

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """The header's sort request: the model reorders itself."""
        self._source().sort(column, order)

    def sortColumn(self) -> int:
        return int(self._source().order.column)

    def sortOrder(self) -> Qt.SortOrder:
        return (
            Qt.SortOrder.DescendingOrder
            if self._source().order.descending
            else Qt.SortOrder.AscendingOrder
        )

    def set_name_filter(self, text: str) -> None:
        """Show applications whose name, id or process names contain ``text``."""
        self._source().set_name_filter(text)

    def set_frozen(self, frozen: bool) -> None:
        """Hold the current order (pointer over the table) or release it."""
        self._source().set_order_frozen(frozen)

    @property
    def frozen(self) -> bool:
        return bool(self._source().order.frozen)

    def sort_by_activity(self) -> None:
        self.sort(Column.ACTIVITY, Qt.SortOrder.DescendingOrder)
