"""What an application's child rows (its processes and connections) show.

Kept out of the model file, which is about the Qt interface and the merge.
"""

from __future__ import annotations

from typing import Any

from chadthrottle.contract import ConnectionInfo
from chadthrottle.gui.models.columns import Column, Role
from chadthrottle.gui.models.connections import connection_key, connection_label, connection_tooltip
from chadthrottle.gui.models.rows import AppRow, ProcessRow
from chadthrottle.units import UnitSystem, format_rate
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QGuiApplication, QPalette


def _child_text_brush(stale: bool) -> QBrush:
    group = QPalette.ColorGroup.Disabled if stale else QPalette.ColorGroup.Active
    return QGuiApplication.palette().brush(group, QPalette.ColorRole.PlaceholderText)


def process_data(app: AppRow, process: ProcessRow, column: int, role: int, stale: bool) -> Any:
    if role == Qt.ItemDataRole.DisplayRole and column == Column.NAME:
        return f"{process.name} (pid {process.pid})" if process.name else f"pid {process.pid}"
    if role == Role.APP_ID:
        return app.info.id
    if role == Role.SORT:
        return process.pid if column != Column.NAME else (process.name.casefold(), process.pid)
    if role in (Role.IS_PROCESS, Role.WHOLE_ROW):
        return True
    if role == Qt.ItemDataRole.ForegroundRole:
        return _child_text_brush(stale)
    return None


def connection_data(
    app: AppRow,
    connection: ConnectionInfo,
    column: int,
    role: int,
    stale: bool,
    units: UnitSystem = UnitSystem.BYTES_DECIMAL,
) -> Any:
    if role == Qt.ItemDataRole.DisplayRole and column == Column.NAME:
        return connection_label(connection)
    if role == Qt.ItemDataRole.DisplayRole and column in (Column.DOWN, Column.UP):
        down, up = app.connection_speeds.get(connection_key(connection), (None, None))
        rate = down if column == Column.DOWN else up
        return None if rate is None else format_rate(rate, units)  # None: UDP, or the first answer
    if role == Qt.ItemDataRole.TextAlignmentRole and column in (Column.DOWN, Column.UP):
        return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if role == Qt.ItemDataRole.ToolTipRole and column in (Column.NAME, Column.DOWN, Column.UP):
        return connection_tooltip(connection)
    if role == Role.APP_ID:
        return app.info.id
    if role == Role.SORT:
        return connection_label(connection)
    if role == Role.IS_PROCESS:
        return True
    if role == Qt.ItemDataRole.ForegroundRole:
        return _child_text_brush(stale)
    return None
