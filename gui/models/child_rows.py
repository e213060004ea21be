"""What an application's child rows (its processes and connections) show.

Kept out of the model file, which is about the Qt interface and the merge.
"""

from __future__ import annotations

from typing import Any

from chadthrottle.contract import ConnectionInfo, Direction, ProcessTraffic
from chadthrottle.gui.models.columns import Column, Role
from chadthrottle.gui.models.connection_table import MEASURING, NO_VALUE
from chadthrottle.gui.models.connections import connection_key, connection_label, connection_tooltip
from chadthrottle.gui.models.rows import AppRow, ProcessRow
from chadthrottle.units import UnitSystem, format_rate
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QGuiApplication, QPalette


def _child_text_brush(stale: bool) -> QBrush:
    group = QPalette.ColorGroup.Disabled if stale else QPalette.ColorGroup.Active
    return QGuiApplication.palette().brush(group, QPalette.ColorRole.PlaceholderText)


# How a process row's rates are measured (its tooltip).
PROCESS_RATES_TOOLTIP = (
    "Counted in the kernel at the sockets this process created (TCP, UDP and the rest), "
    "on the wire at L3, loopback apart; the application's rates are its processes' summed."
)
# A limited application's own rates are what its limit let through.
LIMITED_NOTE = (
    "While a limit holds the application, its rate is what the limit let through; "
    "its processes' are still counted at their sockets."
)


def process_data(
    app: AppRow,
    process: ProcessRow,
    column: int,
    role: int,
    stale: bool,
    units: UnitSystem = UnitSystem.BYTES_DECIMAL,
) -> Any:
    traffic = app.process_traffic.get(process.pid)
    if role == Qt.ItemDataRole.DisplayRole and column == Column.NAME:
        return f"{process.name} (pid {process.pid})" if process.name else f"pid {process.pid}"
    if role == Qt.ItemDataRole.DisplayRole and column in (Column.DOWN, Column.UP):
        if traffic is None:
            return None  # not fetched yet, or a helper older than API 6
        if traffic.measuring(Direction.DOWN if column == Column.DOWN else Direction.UP):
            # its application's rules just changed: no rate yet (API 7); not known
            # while the helper is away, when nothing measures it
            return NO_VALUE if stale else MEASURING
        return format_rate(traffic.down_bps if column == Column.DOWN else traffic.up_bps, units)
    if role == Qt.ItemDataRole.TextAlignmentRole and column in (Column.DOWN, Column.UP):
        return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if role == Qt.ItemDataRole.ToolTipRole and traffic is not None:
        return process_tooltip(app, process, traffic)
    if role == Role.APP_ID:
        return app.info.id
    if role == Role.SORT:
        return process.pid if column != Column.NAME else (process.name.casefold(), process.pid)
    if role == Role.IS_PROCESS:
        return True
    if role == Role.WHOLE_ROW:  # only its name to say: it takes the whole row
        return traffic is None
    if role == Qt.ItemDataRole.ForegroundRole:
        return _child_text_brush(stale)
    return None


def process_tooltip(app: AppRow, process: ProcessRow, traffic: ProcessTraffic) -> str:
    limited = any(app.info.limit_bps(d) for d in Direction)
    lines = [
        f"{process.name or 'pid'} (pid {process.pid})",
        f"{traffic.rx_bytes:,} bytes received, {traffic.tx_bytes:,} sent since the helper "
        "counted it",
        PROCESS_RATES_TOOLTIP,
    ]
    if traffic.loopback_down_bps or traffic.loopback_up_bps:
        lines.insert(2, f"loopback apart: {traffic.loopback_down_bps:,.0f} B/s in, "
                        f"{traffic.loopback_up_bps:,.0f} B/s out")  # fmt: skip
    return "\n".join([*lines, LIMITED_NOTE] if limited else lines)


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
    if role == Role.CONNECTION and column == Column.NAME:  # cut to fit by NameDelegate
        return connection
    if role == Qt.ItemDataRole.DisplayRole and column in (Column.DOWN, Column.UP):
        down, up = app.connection_speeds.get(connection_key(connection), (None, None))
        rate = down if column == Column.DOWN else up
        if rate is None:  # UDP (no counters: empty), or a counted socket's first answer
            # "…" as the connections table says it: at 2x, where the detail pane is
            # folded, the expanded row's TCP connections stood with empty rates
            return MEASURING if connection.rx_bytes >= 0 else None
        return format_rate(rate, units)
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
