"""The table of the shown application's open connections: compact, sortable,
its number columns as wide as their widest text in the units shown."""

from __future__ import annotations

from chadthrottle.gui.models.connection_table import ConnColumn, ConnectionTableModel
from chadthrottle.gui.views.sort_arrow import use_honest_arrows
from chadthrottle.gui.widgets.rate_width import widest_amount
from chadthrottle.gui.widgets.rate_width import widest_rate as widest_rate_px
from chadthrottle.units import UnitSystem
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

CELL_PADDING = 18  # a cell's margins and a header's sort arrow


def size_number_columns(view: QTableView, units: UnitSystem) -> None:
    """The rate and byte columns as wide as their widest text in the units shown:
    sized for "888 KB/s" in any unit, bits cut "2.33 Mbit/s" to "2.33 Mbi…"."""
    metrics = view.fontMetrics()
    header = view.horizontalHeader()
    for columns, widest in (((ConnColumn.DOWN, ConnColumn.UP), widest_rate_px(view.font(), units)),
                            ((ConnColumn.RECEIVED, ConnColumn.SENT), widest_amount(view.font(), units))):  # fmt: skip
        for column in columns:
            title = str(view.model().headerData(column, Qt.Orientation.Horizontal))
            header.resizeSection(
                column, max(widest, metrics.horizontalAdvance(title)) + CELL_PADDING
            )


def connections_view(model: ConnectionTableModel, parent: QWidget) -> QTableView:
    """A compact, sortable table; sorted by the helper's interesting-first order
    until a header is clicked."""
    view = QTableView(parent)
    view.setObjectName("connections")
    view.setAccessibleName("Open connections")
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setWordWrap(False)
    view.setAlternatingRowColors(True)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 6)
    header = use_honest_arrows(view)  # "Sent ▼" over the most sent first
    header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
    view.setSortingEnabled(True)
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setSectionResizeMode(
        ConnColumn.HOST, QHeaderView.ResizeMode.Stretch
    )  # takes the room left
    header.setStretchLastSection(False)
    # Wide enough for what usually stands there (and the title), not measured per
    # answer: resizing to contents each second would make the columns jump.
    samples = {ConnColumn.PROTOCOL: "Protocol", ConnColumn.LOCAL: "192.168.100.100:51234",
               ConnColumn.REMOTE: "192.168.100.100:51234", ConnColumn.STATE: "ESTABLISHED",
               ConnColumn.PID: "4194304"}  # fmt: skip
    metrics = view.fontMetrics()
    for column, sample in samples.items():
        header.resizeSection(column, metrics.horizontalAdvance(sample) + CELL_PADDING)
    size_number_columns(view, model.units)
    # one row and the titles: the pane gives the table no more than its rows need
    view.setMinimumHeight(
        view.verticalHeader().defaultSectionSize()
        + header.sizeHint().height()
        + 2 * view.frameWidth()
    )
    return view
