"""Columns and item roles of the applications model, shared with views."""

from __future__ import annotations

from enum import IntEnum

from chadthrottle.contract import Direction
from PySide6.QtCore import Qt


class Column(IntEnum):
    NAME = 0
    DOWN = 1
    UP = 2
    ACTIVITY = 3
    DOWN_LIMIT = 4
    UP_LIMIT = 5
    USAGE = 6  # bytes moved today (or the chosen period); shown right after Up


HEADERS: dict[Column, str] = {
    Column.NAME: "Application",
    Column.DOWN: "Down",
    Column.UP: "Up",
    Column.ACTIVITY: "Activity",
    Column.DOWN_LIMIT: "Down limit",
    Column.UP_LIMIT: "Up limit",
    Column.USAGE: "Today",  # the model titles it after the period shown
}

# Keyed by Column; looked up with an index's column(), a plain int.
LIMIT_COLUMNS: dict[int, Direction] = {
    Column.DOWN_LIMIT: Direction.DOWN,
    Column.UP_LIMIT: Direction.UP,
}


class Role(IntEnum):
    """Custom data roles. Values are ints so PySide passes them through untouched."""

    APP_ID = Qt.ItemDataRole.UserRole + 1  # str, on every row (children: their app's)
    SORT = Qt.ItemDataRole.UserRole + 2  # float or str: what the column sorts by
    RATE_DOWN = Qt.ItemDataRole.UserRole + 3  # float bytes/s
    RATE_UP = Qt.ItemDataRole.UserRole + 4
    LIMIT = Qt.ItemDataRole.UserRole + 5  # int bytes/s on a limit column, 0 = none
    LIMIT_PENDING = Qt.ItemDataRole.UserRole + 6  # bool: asked for, not confirmed yet
    HISTORY = Qt.ItemDataRole.UserRole + 7  # RateHistory, on the activity column
    IS_PROCESS = Qt.ItemDataRole.UserRole + 8  # bool: a child row (a process or a connection)
    LIMITS = Qt.ItemDataRole.UserRole + 9  # (down_limit_bps, up_limit_bps)
    LIMIT_STATE = Qt.ItemDataRole.UserRole + 10  # limit_truth.LimitState, on a limit column
    PRIORITY = (
        Qt.ItemDataRole.UserRole + 11
    )  # priority_view.PriorityState on the name column, None for normal
    WHOLE_ROW = (
        Qt.ItemDataRole.UserRole + 12
    )  # bool: a child row whose name is all it says (a process)
    CONNECTION = Qt.ItemDataRole.UserRole + 13  # ConnectionInfo, on a connection row's name
    TELL = (
        Qt.ItemDataRole.UserRole + 14
    )  # app_names.Tell: what of the id tells a name apart, or None
