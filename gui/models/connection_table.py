"""The detail pane's connections table: one row per open socket of the
selected application, with its remote host's name and its own rates and bytes.

Rates come from successive ListConnections answers (the helper is stateless
about them): the change of a socket's byte counters over the time between two
answers. A socket seen for the first time, or one the kernel counts nothing for
(UDP: rx_bytes -1), has no rate ("—"); a counted one seen once reads
"…" (measuring) until the next answer. Host names come from a
ReverseDnsCache: the Remote host column shows a name only when reverse DNS
gave one, "no name" (greyed) when it gave none, and nothing while it is asked:
the address is the Remote column's (it read "192.0.2.7" beside "192.0.2.7:443"
until gui28).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from chadthrottle.contract import ConnectionInfo
from chadthrottle.gui.models.connections import (
    NO_RATE_TOOLTIP,
    ConnectionRates,
    connection_key,
    interesting_first,
)
from chadthrottle.gui.models.reverse_dns import ReverseDnsCache, host_of, worth_resolving
from chadthrottle.units import UnitSystem, format_rate, format_size
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QGuiApplication, QPalette

NO_VALUE = "\u2014"
MEASURING = "\u2026"  # counted, but seen once: a rate needs a second answer
NO_NAME = "no name"  # the Remote host column: reverse DNS gave no name
NO_ANSWER = "no answer"  # ... and: it could not be asked (offline), so not known
UNCOUNTED_TOOLTIP = NO_RATE_TOOLTIP
MEASURING_TOOLTIP = "Measuring: a socket's rate is the change of its byte counters between two answers from the helper, a second apart."
# Why a connection can read 0 beside its application's rate: under an upload
# block, Harbor's row read Up 13.6 KB/s (its download's bare acknowledgements,
# whole packets as the application's counters count them) and its only
# connection Up 0 B/s, Sent 0 B (gui18's walk under Xvfb, 2026-12-06).
_PAYLOAD_ONLY = ("as the kernel counts it: no headers, no retransmissions, no bare acknowledgements. "
                 "The application's row counts whole packets, so it can read more.")  # fmt: skip
BYTES_TOOLTIP = f"TCP payload since the connection opened, {_PAYLOAD_ONLY}"
RATE_TOOLTIP = f"TCP payload a second, {_PAYLOAD_ONLY}"


class ConnColumn(IntEnum):
    PROTOCOL = 0
    LOCAL = 1
    REMOTE = 2
    HOST = 3
    STATE = 4
    DOWN = 5
    UP = 6
    RECEIVED = 7
    SENT = 8
    PID = 9


HEADERS = {
    ConnColumn.PROTOCOL: "Protocol", ConnColumn.LOCAL: "Local", ConnColumn.REMOTE: "Remote",
    ConnColumn.HOST: "Remote host", ConnColumn.STATE: "State", ConnColumn.DOWN: "Down", ConnColumn.UP: "Up",
    ConnColumn.RECEIVED: "Received", ConnColumn.SENT: "Sent", ConnColumn.PID: "PID",
}  # fmt: skip
NUMERIC = {ConnColumn.DOWN, ConnColumn.UP, ConnColumn.RECEIVED, ConnColumn.SENT, ConnColumn.PID}


@dataclass
class ConnectionRow:
    info: ConnectionInfo
    down_bps: float | None = None
    up_bps: float | None = None


def _shown_values(row: ConnectionRow) -> tuple[object, ...]:
    """What the changing columns (State to Sent) show of a row; the rest is its key."""
    return (row.info.state, row.down_bps, row.up_bps, row.info.rx_bytes, row.info.tx_bytes)


def interesting_first_rows(rows: list[ConnectionRow]) -> list[ConnectionRow]:
    order = {id(info): i for i, info in enumerate(interesting_first(r.info for r in rows))}
    return sorted(rows, key=lambda r: order[id(r.info)])


class ConnectionTableModel(QAbstractTableModel):
    """The selected application's connections, re-sorted after each answer."""

    hostResolved = Signal(str, str)  # address, name: emitted from a resolver thread

    def __init__(self, dns: ReverseDnsCache | None = None, clock: Callable[[], float] = time.monotonic,
                 parent: QObject | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self._rows: list[ConnectionRow] = []
        self._rates = ConnectionRates()
        self._clock = clock
        self._app_id = ""
        self.units = UnitSystem.BYTES_DECIMAL
        self._sort: tuple[int, Qt.SortOrder] | None = None
        self.dns = dns if dns is not None else ReverseDnsCache()
        self.dns.on_resolved = self.hostResolved.emit
        self.hostResolved.connect(self._on_host_resolved)
        # Gone with the model (its window closed): no lookup thread is left, and
        # none emits on this model once its C++ side is deleted.
        self.destroyed.connect(self.dns.close)

    # --- updates ----------------------------------------------------------------------

    def set_connections(self, app_id: str, connections: Sequence[ConnectionInfo],
                        received_at: float | None = None) -> None:  # fmt: skip
        """A new answer for app_id, come at received_at (on the clock; None:
        now); another application's starts its rates afresh."""
        if app_id != self._app_id:
            self._rates.clear()
            self._app_id = app_id
        rates = self._rates.update(
            connections, self._clock() if received_at is None else received_at
        )
        rows = self._sorted([ConnectionRow(c, *rates[connection_key(c)]) for c in connections])
        if [connection_key(r.info) for r in rows] == [connection_key(r.info) for r in self._rows]:
            # The same sockets in the same order: only their state, rates and bytes may
            # have changed. Only the rows that did are repainted, from State to Sent
            # (an idle socket's row, and the addresses, stay as painted).
            changed = [i for i, (new, old) in enumerate(zip(rows, self._rows, strict=True))
                       if _shown_values(new) != _shown_values(old)]  # fmt: skip
            self._rows = rows
            if changed:
                self.dataChanged.emit(
                    self.index(changed[0], ConnColumn.STATE),
                    self.index(changed[-1], ConnColumn.SENT),
                )
            return
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def clear(self) -> None:
        self.set_connections("", [])

    def set_units(self, units: UnitSystem) -> None:
        self.units = units
        if self._rows:
            self.dataChanged.emit(
                self.index(0, ConnColumn.DOWN), self.index(len(self._rows) - 1, ConnColumn.SENT)
            )

    def _on_host_resolved(self, address: str, _name: str) -> None:
        for row, item in enumerate(self._rows):
            if host_of(item.info.remote) == address:
                index = self.index(row, ConnColumn.HOST)
                self.dataChanged.emit(index, index)

    def row(self, row: int) -> ConnectionRow:
        return self._rows[row]

    # --- sorting ----------------------------------------------------------------------

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Column -1 (no header clicked yet): the most interesting first."""
        self._sort = (column, order) if 0 <= column < len(ConnColumn) else None
        self.layoutAboutToBeChanged.emit()
        self._rows = self._sorted(self._rows)
        self.layoutChanged.emit()

    def _sorted(self, rows: list[ConnectionRow]) -> list[ConnectionRow]:
        if self._sort is None:
            return interesting_first_rows(rows)
        column, order = self._sort
        return sorted(rows, key=lambda r: _sort_key(r, ConnColumn(column), self.dns),
                      reverse=order == Qt.SortOrder.DescendingOrder)  # fmt: skip

    # --- Qt interface -----------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(ConnColumn)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(ConnColumn)
        ):
            return HEADERS[ConnColumn(section)]
        return None

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row, column = self._rows[index.row()], ConnColumn(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, column)
        if (
            role == Qt.ItemDataRole.ForegroundRole
            and column is ConnColumn.HOST
            and self._text(row, column) in (NO_NAME, NO_ANSWER)
        ):  # a placeholder, greyed: not a host called that
            return QGuiApplication.palette().color(QPalette.ColorRole.PlaceholderText)
        return None

    def _text(self, row: ConnectionRow, column: ConnColumn) -> str:
        info = row.info
        if column is ConnColumn.PROTOCOL:
            return info.protocol
        if column is ConnColumn.LOCAL:
            return info.local
        if column is ConnColumn.REMOTE:
            return info.remote
        if column is ConnColumn.HOST:
            address = host_of(info.remote)
            if not worth_resolving(address):
                return ""  # a listening or unconnected socket has no remote host
            name = self.dns.name_of(address)
            if name:
                return name
            if self.dns.failed(address):
                return NO_ANSWER  # not "no name": whether it has one is not known
            return NO_NAME if self.dns.answered(address) else ""  # "": being asked
        if column is ConnColumn.STATE:
            return info.state
        if column in (ConnColumn.DOWN, ConnColumn.UP):
            rate = row.down_bps if column is ConnColumn.DOWN else row.up_bps
            if rate is None:
                return NO_VALUE if info.rx_bytes < 0 else MEASURING
            return format_rate(rate, self.units)
        if column is ConnColumn.RECEIVED:
            return NO_VALUE if info.rx_bytes < 0 else format_size(info.rx_bytes, self.units)
        if column is ConnColumn.SENT:
            return NO_VALUE if info.tx_bytes < 0 else format_size(info.tx_bytes, self.units)
        return str(info.pid)

    def _tooltip(self, row: ConnectionRow, column: ConnColumn) -> str | None:
        if row.info.rx_bytes >= 0 and (
            (column is ConnColumn.DOWN and row.down_bps is None)
            or (column is ConnColumn.UP and row.up_bps is None)
        ):
            return MEASURING_TOOLTIP
        if column in (ConnColumn.DOWN, ConnColumn.UP, ConnColumn.RECEIVED, ConnColumn.SENT):
            if row.info.rx_bytes < 0:
                return UNCOUNTED_TOOLTIP
            return RATE_TOOLTIP if column in (ConnColumn.DOWN, ConnColumn.UP) else BYTES_TOOLTIP
        if column is ConnColumn.HOST:
            return host_tooltip(host_of(row.info.remote), self.dns)
        return None


def _sort_key(row: ConnectionRow, column: ConnColumn, dns: ReverseDnsCache) -> tuple[Any, ...]:
    """Numbers as numbers (unknown below zero), text as folded text."""
    info = row.info
    numbers = {
        ConnColumn.DOWN: row.down_bps, ConnColumn.UP: row.up_bps,
        ConnColumn.RECEIVED: info.rx_bytes, ConnColumn.SENT: info.tx_bytes, ConnColumn.PID: info.pid,
    }  # fmt: skip
    if column in numbers:
        value = numbers[column]
        return (-1.0 if value is None or value < 0 else float(value),)
    if column is ConnColumn.HOST:  # names A to Z, then the rest by their address
        address = host_of(info.remote)
        name = dns.name_of(address)
        return (0, name.casefold()) if name else (1, address.casefold())
    text = {ConnColumn.PROTOCOL: info.protocol, ConnColumn.LOCAL: info.local,
            ConnColumn.REMOTE: info.remote, ConnColumn.STATE: info.state}[column]  # fmt: skip
    return (text.casefold(),)


def host_tooltip(address: str, dns: ReverseDnsCache) -> str | None:
    """The Remote host cell's tooltip: whose name it is, or why there is none."""
    if not worth_resolving(address):
        return None
    name = dns.name_of(address)
    if name:
        return f"{name}: the name of {address} by reverse DNS"
    if dns.answered(address):
        return f"No name: reverse DNS gave none for {address}"
    if dns.failed(address):
        return (f"No answer: reverse DNS could not tell the name of {address}\n"
                "(no name server answered, or the lookup failed); asked again within a minute")  # fmt: skip
    return f"Looking up the name of {address} (reverse DNS)…"
