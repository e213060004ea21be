"""The usage view's table: one row per application with its bytes over the
chosen period, sortable by any column (busiest first to begin with)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from chadthrottle.app_names import Tell, name_of_apart, tells_apart
from chadthrottle.gui.models.usage_totals import UsageTotals
from chadthrottle.units import UnitSystem, format_size
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QPixmap

AnyIndex = QModelIndex | QPersistentModelIndex


class UsageColumn(IntEnum):
    NAME = 0
    DOWN = 1
    UP = 2
    TOTAL = 3


USAGE_HEADERS = {UsageColumn.NAME: "Application", UsageColumn.DOWN: "Download",
                 UsageColumn.UP: "Upload", UsageColumn.TOTAL: "Total"}  # fmt: skip
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
APP_ID_ROLE = Qt.ItemDataRole.UserRole + 1
TELL_ROLE = (
    Qt.ItemDataRole.UserRole + 2
)  # what of the id tells a name apart (app_names.tells_apart)


@dataclass(frozen=True)
class UsageTableRow:
    app_id: str
    name: str
    down: int
    up: int

    def key(self, column: UsageColumn) -> Any:
        if column is UsageColumn.NAME:
            return self.name.casefold()
        if column is UsageColumn.DOWN:
            return self.down
        if column is UsageColumn.UP:
            return self.up
        return self.down + self.up


class UsageTableModel(QAbstractTableModel):
    """Applications' totals; ``colour_of`` gives an application's swatch of its chart colour."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[UsageTableRow] = []
        self._tells: dict[str, Tell] = {}
        self.units = UnitSystem.BYTES_DECIMAL
        self.colour_of: Callable[[str], QPixmap | None] = lambda _app_id: (
            None
        )  # its swatch in the chart
        self._sort = (UsageColumn.TOTAL, Qt.SortOrder.DescendingOrder)

    def set_totals(
        self, totals: UsageTotals, name_of: Callable[[str], str], units: UnitSystem
    ) -> None:
        """New totals: applications that moved nothing are left out."""
        self.beginResetModel()
        self.units = units
        self._rows = [UsageTableRow(app_id, name_of(app_id), down, up)
                      for app_id, (down, up) in totals.items() if down or up]  # fmt: skip
        apart = {row.app_id: name for row in self._rows
                 if (name := name_of_apart(row.name, row.app_id)) is not None}  # fmt: skip
        self._tells = tells_apart(apart)  # names_apart's "name (id)": cut keeping these
        self._order()
        self.endResetModel()

    def rows(self) -> list[UsageTableRow]:
        return list(self._rows)

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(UsageColumn)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(UsageColumn):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return USAGE_HEADERS[UsageColumn(section)]
        if role == Qt.ItemDataRole.TextAlignmentRole and section != UsageColumn.NAME:
            return int(
                Qt.AlignmentFlag.AlignCenter
            )  # right-aligned, a title ran under the sort arrow
        if role == Qt.ItemDataRole.InitialSortOrderRole:  # bytes: the most first
            return (
                Qt.SortOrder.AscendingOrder
                if section == UsageColumn.NAME
                else Qt.SortOrder.DescendingOrder
            )
        return None

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row, column = self._rows[index.row()], UsageColumn(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return (
                row.name if column is UsageColumn.NAME else format_size(row.key(column), self.units)
            )
        if role == Qt.ItemDataRole.TextAlignmentRole and column is not UsageColumn.NAME:
            return _RIGHT
        if role == Qt.ItemDataRole.DecorationRole and column is UsageColumn.NAME:
            return self.colour_of(row.app_id)
        if role == Qt.ItemDataRole.ToolTipRole and column is UsageColumn.NAME:
            return f"{row.name}\n{row.app_id}"
        if role == APP_ID_ROLE:
            return row.app_id
        if role == TELL_ROLE:
            return self._tells.get(row.app_id)
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.layoutAboutToBeChanged.emit()
        self._sort = (UsageColumn(column), order)
        self._order()
        self.layoutChanged.emit()

    def _order(self) -> None:
        column, order = self._sort
        # Ties by name, so equal rows keep one order whichever way the column sorts.
        self._rows.sort(key=lambda row: row.name.casefold())
        self._rows.sort(
            key=lambda row: row.key(column), reverse=order == Qt.SortOrder.DescendingOrder
        )
