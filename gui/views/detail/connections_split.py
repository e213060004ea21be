"""The graph above, the shown application's open connections below, and the
line between them that the user may drag: the table no taller than its rows
need, room for them asked of the window first, folded in a short window."""

from __future__ import annotations

from chadthrottle.contract import ConnectionInfo
from chadthrottle.gui.models.connection_table import ConnectionTableModel
from chadthrottle.gui.views.detail.connections_table import connections_view, size_number_columns
from chadthrottle.gui.views.detail.sizes import (
    CONNECTION_ROWS_WANTED,
    GRAPH_MIN_HEIGHT,
    SHORT_WINDOW_HEIGHT,
)
from chadthrottle.gui.views.detail.words import describe_connection_count
from chadthrottle.gui.widgets.fold_switch import fold_switch, point_fold
from chadthrottle.units import UnitSystem
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget


class ConnectionsSplit(QSplitter):
    """The graph (given) above the connections' part (box): the count as a
    switch (caption) and the table under it; fitted to the table's rows on
    every resize, after it laid its parts out."""

    roomWanted = Signal(int)  # px more the connections' rows would like, at once

    def __init__(self, graph: QWidget, parent: QWidget) -> None:
        super().__init__(Qt.Orientation.Vertical, parent)
        self.setChildrenCollapsible(False)
        self.splitterMoved.connect(self._on_dragged)  # only a drag moves it so
        self.addWidget(graph)
        box = QWidget(self)
        box_layout = QVBoxLayout(box)
        box_layout.setContentsMargins(0, 4, 0, 0)
        box_layout.setSpacing(2)
        # The count, and the switch that shows or hides the table under it.
        self.caption = fold_switch(box, "Open connections: show or hide the table")
        self.caption.toggled.connect(self._show_table)
        box_layout.addWidget(self.caption, 0, Qt.AlignmentFlag.AlignLeft)
        self.model = ConnectionTableModel(parent=self)
        self.table = connections_view(self.model, box)
        box_layout.addWidget(self.table, 1)
        self.addWidget(box)
        self.setStretchFactor(0, 1)
        self.setStretchFactor(1, 1)
        self.box = box
        self._placed = False
        self._dragged = False  # the user moved the line: theirs, kept in proportion
        self._folded_for_room = False  # by a short window, not by the user
        box.hide()  # until there is something to show: a short screen needs the room

    def caption_line_height(self) -> int:
        """The count's line under the graph, with the handle above it."""
        return self.caption.sizeHint().height() + 4 + self.handleWidth()

    def set_units(self, units: UnitSystem) -> None:
        self.model.set_units(units)
        size_number_columns(self.table, units)

    def show_connections(
        self,
        app_id: str,
        connections: list[ConnectionInfo],
        received_at: float | None,
        compact: bool,
    ) -> None:
        """The answer in the table and its count in the caption; the part
        shown (not while compact: the pane shows it when whole again), room
        asked for it the first time, or folded if the window is short."""
        self.model.set_connections(app_id, connections, received_at)
        caption = describe_connection_count(connections)
        if caption != self.caption.text():  # the same answer every poll, mostly
            self.caption.setText(caption)
        if compact:
            return
        if self.box.isHidden():
            self.box.show()
            if not self._placed:  # the first time: room asked of the window
                self._placed = True
                if self.window().height() < SHORT_WINDOW_HEIGHT:
                    # the list of applications needs the room more; opened when made tall
                    self.caption.setChecked(False)
                    self._folded_for_room = True
                else:
                    self._place()
                return
        self.fit()  # as many rows as it has now

    def _show_table(self, shown: bool) -> None:
        """Show or fold the connections table; folded, the count stays as a
        line under the graph and the graph takes the room."""
        point_fold(self.caption, shown)
        self.table.setVisible(shown)
        self._folded_for_room = False  # the user's own fold or opening, or a tall window's
        if shown:
            self._dragged = False  # opened afresh: placed for its rows again
            self._place()
            return
        total = sum(self.sizes())
        line = self.caption.sizeHint().height() + 6
        self.setSizes([total - line, line])

    def wanted_height(self, rows: int = CONNECTION_ROWS_WANTED) -> int:
        """The connections' part with this many rows: the count's line, the
        titles, the rows, a sideways scroll bar if there is one and the frame."""
        table = self.table
        box = self.box.layout()
        margins = box.contentsMargins().top() + box.spacing() if box is not None else 6
        scroll = table.horizontalScrollBar()
        return (
            self.caption.sizeHint().height()
            + margins
            + table.horizontalHeader().sizeHint().height()
            + rows * table.verticalHeader().defaultSectionSize()
            + (scroll.sizeHint().height() if scroll.isVisibleTo(table) else 0)
            + 2 * table.frameWidth()
        )

    def fit(self) -> None:
        """The table no taller than its rows need (one at least; up to
        CONNECTION_ROWS_WANTED, or two fifths of the split if that is more),
        the graph the rest: under Xvfb at 1366x768 an application with one
        connection, or none known while the helper was away, left the graph
        95 px beside four empty rows. Again on every resize, so the table
        keeps its rows and the graph follows the window. A line the user
        dragged is theirs (QSplitter keeps it in proportion)."""
        if self._dragged or self.isHidden() or self.box.isHidden() or self.table.isHidden():
            return
        total = self.height() - self.handleWidth()
        if total <= 0:
            return
        need = self.wanted_height(max(1, self.model.rowCount()))
        most = max(total * 2 // 5, self.wanted_height())
        table = max(0, min(need, most, total - GRAPH_MIN_HEIGHT))
        if self.sizes() != [total - table, table]:
            self.setSizes([total - table, table])

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._folded_for_room and self.window().height() >= SHORT_WINDOW_HEIGHT:
            self.caption.setChecked(True)  # made tall: opened (and placed)
            return
        self.fit()

    def _on_dragged(self, _position: int, _index: int) -> None:
        self._dragged = True

    def _place(self) -> None:
        """Room for the table's rows (at most CONNECTION_ROWS_WANTED) beside
        the graph: asked of the window first (roomWanted), which takes it from
        the list as far as the list keeps its rows; what that does not give,
        the graph gives, down to its least (there, with two plots, it read
        squashed beside a list with rows to spare). Then fit."""
        rows = min(CONNECTION_ROWS_WANTED, max(1, self.model.rowCount()))
        wanted = self.wanted_height(rows)
        least = GRAPH_MIN_HEIGHT
        # its height, not its sizes: a part just shown is not in them yet
        height = self.height() - self.handleWidth()
        short = max(least, height - height * 2 // 5) + wanted - height
        if short > 0:
            self.roomWanted.emit(short)  # the window resizes the pane now, or not
        self.fit()
