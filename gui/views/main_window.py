"""The main window: find the busy application, cap it with one gesture.

Layout (docs/gui.md, "The main window"): header (title, filter, totals), a
banner only when the helper needs attention, the applications table, the
selected application's graph, and a status bar. The window never talks to the
helper: it emits ``limitRequested`` and is told the outcome through the model
and set_status.
"""

from __future__ import annotations

import logging
import time

from chadthrottle.contract import BackendInfo, ConnectionInfo, Direction, ProcessTraffic
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.ipc.status_logic import EMPTY_TEXT, nothing_enforced_reason
from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.columns import Role
from chadthrottle.gui.models.sort_proxy import ApplicationsProxy
from chadthrottle.gui.settings import Settings
from chadthrottle.gui.views.app_table import LEAST_ROWS, AppTable
from chadthrottle.gui.views.delegates import row_height
from chadthrottle.gui.views.detail.pane import DetailPane
from chadthrottle.gui.views.graph_scale import graph_top
from chadthrottle.gui.views.header_bar import HeaderBar
from chadthrottle.gui.views.paused_notice import PausedNotice
from chadthrottle.gui.views.row_menu import build_row_menu
from chadthrottle.gui.views.state_banner import TITLES, StateBanner
from chadthrottle.gui.views.status_line import StatusLine
from chadthrottle.gui.views.window_state import first_size
from chadthrottle.gui.widgets.limit_slider import LimitControl
from chadthrottle.units import UnitSystem
from PySide6.QtCore import (
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPoint,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QCloseEvent,
    QGuiApplication,
    QIcon,
    QKeyEvent,
    QPalette,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QGraphicsView,
    QMainWindow,
    QMenu,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

log = logging.getLogger(__name__)

# A list shorter than this many rows beside the graph at its smallest (2x on a
# 1366x768 laptop: 1½ once the connections' line is there; 1.5x: 4½): the window
# starts with the graph folded to its rates line.
MIN_LIST_ROWS = 4
# A list shorter than this many rows beside the whole graph at its least: the
# graph goes compact (DetailPane.set_compact) and the list is given these rows.
# At 2x on 1366x768 with the graph opened the list showed 2.5 rows.
LIST_ROWS_BESIDE_GRAPH = 5
# The helper connected but silent this long (or three polls, if longer): said so.
ANSWER_LATE_S = 5.0
# The list keeps this many rows when the detail pane asks for room for the
# connections (DetailPane.roomWanted): a list of five whole rows comes first.
LIST_ROWS_KEPT_FOR_CONNECTIONS = 6


def copy_application_id(app_id: str) -> None:
    QApplication.clipboard().setText(app_id)


class MainWindow(QMainWindow):
    """Activity view over an ApplicationsModel; emits what the user asks for."""

    limitRequested = Signal(str, str, object)  # app id, "down"/"up", bytes/s or None
    retryRequested = Signal()
    closedToTray = Signal()
    closedForGood = Signal()  # closed, not hidden in the tray
    # Whose connections are wanted: the selected application and the expanded rows.
    connectionsWanted = Signal(object)  # list[str]
    # Whose processes' rates are wanted: the expanded rows only (API 6).
    processesWanted = Signal(object)  # list[str]
    pauseRequested = Signal(bool)  # True: pause every limit, False: resume
    rulesRequested = Signal(str)  # app id: open its rules dialog (gui/rules_flow.py)
    priorityRequested = Signal(str, str)  # app id, priority (gui/priority_flow.py)
    blockRequested = Signal(str, str, bool)  # app id, "down"/"up", blocked (gui/controller.py)

    def __init__(
        self,
        model: ApplicationsModel,
        proxy: ApplicationsProxy,
        settings: Settings,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("ChadThrottle")
        self.setWindowIcon(QIcon.fromTheme("io.github.chadthrottle"))
        self.setObjectName("mainWindow")
        self.keep_running_in_tray = False
        self._model = model
        self._status = HelperStatus(HelperState.CONNECTING)
        self._paused = False
        self._filter_text = ""
        self._proxy = proxy
        # The row the user chose: a filter that hides it moves the selection,
        # and clearing the filter comes back to it (not to where it moved).
        self._chosen_app_id = ""
        self._filtering = False
        self._picking = False  # the window selects the busiest row itself (_on_snapshot)
        self._auto_pick = False  # ... and did so on no traffic: it does so again

        self.header = HeaderBar(settings, self)
        self.banner = StateBanner(self)
        self.paused_notice = PausedNotice(self)
        self.table = AppTable(proxy, self)
        self.detail = DetailPane(model, settings.refresh_interval_s, self)
        self.status_line = StatusLine(self)
        self.setStatusBar(self.status_line)

        self.splitter = splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(self.table)
        splitter.addWidget(self.detail)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setChildrenCollapsible(False)
        splitter.setSizes([400, 300])  # the graph keeps a fair share on a short screen
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.header)
        banner_box = QVBoxLayout()
        banner_box.setContentsMargins(10, 0, 10, 0)
        banner_box.addWidget(self.banner)
        banner_box.addWidget(self.paused_notice)
        layout.addLayout(banner_box)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)
        self.resize(first_size(self.screen()))
        # Whether the graph starts folded is decided when the window is first
        # shown at its real size, unless the user's choice was restored.
        self.fold_decided = False
        # Folded because the window was made short (opened again when it is made
        # tall); whether the list had its MIN_LIST_ROWS at the last size.
        self._folded_for_room = False
        self._folded_compact = False  # ... and it was compact then: opens again so
        self._folding_for_room = False
        self._list_roomy = True
        self.detail.foldedChanged.connect(self._on_detail_folded)
        self.detail.roomWanted.connect(self._give_detail_room)
        # The notes' lines changed the pane's least height: folded or opened for it (at 2x,
        # paused, three lines of notes under the compact graph left the list 2.1 rows).
        self.detail.notesResized.connect(lambda: QTimer.singleShot(0, self, self._fold_for_room))
        # a banner or the detail's notes come or go: the list's rows are counted again
        splitter.installEventFilter(self)

        self.header.filterChanged.connect(self._on_filter_changed)
        self.header.filter.installEventFilter(self)  # Down goes on to the list (eventFilter)
        self.banner.retryRequested.connect(self.retryRequested)
        self.paused_notice.resumeRequested.connect(lambda: self.pauseRequested.emit(False))
        self.table.limit_delegate.limitRequested.connect(self.limitRequested)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_changed)
        self.table.pressed.connect(self._on_row_pressed)  # the window's pick, clicked: the user's
        self.table.expansionChanged.connect(self._on_expansion_changed)
        self.table.rowMenuRequested.connect(self.open_row_menu)
        self._row_menu: QMenu | None = None
        self._connections_wanted: list[str] = []
        self._processes_wanted: list[str] = []
        # How long since the helper's last answer: late by a few polls, the status
        # bar says so (a busy machine's helper answered nothing for 16 s while
        # the rows stood still under "Helper: connected").
        self.answer_late_s = ANSWER_LATE_S
        self._answered_at = time.monotonic()
        self.answer_clock = QTimer(self)
        self.answer_clock.setInterval(1000)
        self.answer_clock.timeout.connect(self._show_answer_age)
        self.answer_clock.start()
        model.snapshotApplied.connect(self._on_snapshot)
        model.limitsShown.connect(self._on_limits_shown)
        model.dataChanged.connect(self._on_data_changed)
        self.set_units(settings.units)
        self.set_status(self._status)

    # --- hooks for the controller and for tests ------------------------------------------

    def limit_control(self, app_id: str, direction: Direction | str) -> LimitControl | None:
        """The real limit widget of a row, so a test can drag it or type into it."""
        return self.table.limit_control(app_id, Direction(direction))

    def select_application(self, app_id: str) -> bool:
        index = self.table.proxy_index(app_id)
        if not index.isValid():
            return False
        if not self._picking:
            # Asked for: kept (_on_current_changed), also when it is the row the
            # window had picked itself on no traffic, which no change of the
            # current row would say: the busiest then took its place.
            self._auto_pick = False
        self.table.selectionModel().setCurrentIndex(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        return True

    def row_menu(self, app_id: str) -> QMenu:
        """The menu of an application's row, built afresh (limits change every poll)."""
        if self._row_menu is not None:
            self._row_menu.deleteLater()
        self._row_menu = build_row_menu(
            self._model, app_id, self._status.can_limit,
            self.limitRequested.emit, copy_application_id, self.show_connections_of, self, self.rulesRequested.emit,
            self.priorityRequested.emit, self.blockRequested.emit,
        )  # fmt: skip
        return self._row_menu

    def open_row_menu(self, app_id: str, where: QPoint, row_top: int = -1) -> None:
        """The row menu at ``where``; opened from the keyboard under a row
        (row_top: the row's top on screen) that leaves it no room below, above
        the row: Qt slid it up over the row, and at 2x on 1366x768 a menu headed
        *Nimbus Sync* stood over *Harbor Browser*'s name, its own row hidden (gui36)."""
        menu = self.row_menu(app_id)
        screen = QGuiApplication.screenAt(where) or self.screen()
        room = screen.availableGeometry()
        height = menu.sizeHint().height()
        if (
            row_top >= 0
            and where.y() + height > room.bottom() + 1
            and row_top - height >= room.top()
        ):
            where = QPoint(where.x(), row_top - height)
        menu.popup(where)

    def show_connections_of(self, app_id: str) -> None:
        """Select the application and make sure the detail pane, which lists its
        connections, has room on screen; where the graph is compact (no room
        for them beside it), the row opens into them in the list instead."""
        self.select_application(app_id)
        self.detail.set_folded(False)
        if self.detail.compact:
            self.table.expand(self.table.proxy_index(app_id))
        sizes = self.splitter.sizes()
        if len(sizes) == 2 and sizes[1] < self.detail.minimumSizeHint().height():
            total = sum(sizes)
            self.splitter.setSizes([total // 2, total - total // 2])
        self.table.scrollTo(self.table.currentIndex())

    @property
    def status(self) -> HelperStatus:
        return self._status

    def set_status(self, status: HelperStatus) -> None:
        """Render a helper state: banner, greyed numbers, disabled limit controls."""
        if status.state is not self._status.state:
            self._answered_at = time.monotonic()  # late counts from the state's start
        self._status = status
        self.banner.show_status(status)
        self.status_line.set_status(status)
        stale = not status.can_monitor and status.state is not HelperState.CONNECTING
        self._model.set_stale(stale)
        self.table.sparkline_delegate.dimmed = stale
        self.table.set_stale(stale)
        self.detail.set_live(not stale)
        if status.can_limit:
            reason = ""
        elif status.state is HelperState.NOT_AUTHORIZED:
            reason = "Setting limits was not authorized. Use “Ask again” above to retry."
        elif status.state is HelperState.KERNEL_FEATURE_MISSING:
            reason = status.detail
        else:
            reason = TITLES.get(status.state, "The helper is not available.")
        self.table.set_limits_blocked(reason)
        self._update_empty_text()
        self._show_enforcement()
        self.table.viewport().update()
        self._update_counts()

    def show_connections(
        self, app_id: str, connections: list[ConnectionInfo], received_at: float | None = None
    ) -> None:
        """An application's open connections: in the detail pane if it is selected,
        under its row if that is expanded. received_at: when the answer came
        (time.monotonic(); None: now), what their rates are timed by."""
        self.detail.show_connections(app_id, connections, received_at)
        if self.table.is_expanded(app_id):
            self._model.set_connections(app_id, connections, received_at)

    def show_processes(self, app_id: str, processes: list[ProcessTraffic]) -> None:
        """An application's processes' own rates, under its row if that is expanded."""
        if self.table.is_expanded(app_id):
            self._model.set_process_traffic(app_id, processes)

    @property
    def limits_paused(self) -> bool:
        return self._paused

    def set_limits_paused(self, paused: bool) -> None:
        """Say plainly that the limits shown are not enforced right now."""
        self._paused = paused
        self.paused_notice.set_paused(paused)
        self.status_line.set_paused(paused)
        self._show_enforcement()
        self._update_counts()

    def set_backends(self, backends: tuple[BackendInfo, ...]) -> None:
        self.status_line.set_backends(backends)

    def set_units(self, units: UnitSystem) -> None:
        self._model.activity_tooltip = self.table.sparkline_delegate.scale_text(units)
        self._model.set_units(units)
        self.table.limit_delegate.units = units
        self.table.set_units(units)  # columns as wide as these units' values
        self.table.refresh_editors()
        self.detail.set_units(units)
        self._update_counts()

    def show_message(self, text: str, timeout_ms: int = 8000, short: str = "") -> None:
        self.status_line.show_text(text, timeout_ms, short)

    def fit_to_screen(self) -> None:
        """Keep a restored size within the screen it is shown on (Qt's
        restoreGeometry already brings the window back onto a screen)."""
        screen = self.screen()
        if self.isMaximized() or self.isFullScreen() or screen is None:
            return
        available = screen.availableGeometry().size()
        if self.width() > available.width() or self.height() > available.height():
            self.resize(self.size().boundedTo(available))

    def list_rows_beside_graph(self, compact: bool = False) -> float:
        """How many rows of applications the list shows with the graph open at
        its smallest (the detail pane's minimum height), whole or compact."""
        detail = self.detail.open_minimum_height(compact)
        frame = self.table.height() - self.table.viewport().height() - self.table.header().height()
        room = (self.splitter.height() - self.splitter.handleWidth() - detail
                - self.table.header().sizeHint().height() - max(frame, 0))  # fmt: skip
        return room / row_height(self.table.fontMetrics())

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self.fold_decided:  # the first showing, at the size it was given
            self.fold_decided = True
            self._list_roomy = True
            self._fold_for_room()  # folded if short; opened when made tall
            self._fit_graph()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_to_room()
        if event.size().height() > event.oldSize().height() > 0:
            QTimer.singleShot(0, self, self._keep_on_screen)  # once laid out; not after it is gone

    def _keep_on_screen(self) -> None:
        """Grown past the screen's bottom by its own content, the graph folds for
        room and the window comes back onto the screen. At 2x on 1366x768 under
        Xvfb, with the graph open, the helper-away banner's three lines raised
        the window's least height past its size: it grew 25 px and its status
        bar went under the screen's edge (the list kept its rows beside the
        graph, so nothing folded)."""
        screen = self.screen()
        if screen is None or self.isMaximized() or self.isFullScreen() or not self.isVisible():
            return
        available = screen.availableGeometry()
        over = self.frameGeometry().bottom() - available.bottom()
        if over <= 0:
            return
        if not self.detail.folded:
            self._set_folded_for_room(True)
            self._list_roomy = False  # opened again once the window has room
            layout = self.layout()
            if layout is not None:
                layout.activate()  # its least height without the graph, now
        height = max(self.minimumSizeHint().height(), self.height() - over)
        if height < self.height():
            self.resize(self.width(), height)
        over = self.frameGeometry().bottom() - available.bottom()
        if over > 0:  # even its least does not fit below where it stands: up
            self.move(self.x(), max(available.top(), self.y() - over))

    def _fit_to_room(self) -> None:
        """The graph compact or whole for the room there is, then folded or
        opened for it (on a resize, a banner come or gone, the notes' lines)."""
        if self._fitting or not self.fold_decided:
            return  # before the first showing: decided there (showEvent)
        self._fitting = True
        try:
            self._fit_graph()
            self._fold_for_room()
            self._fit_graph()  # opened again: compact or whole
        finally:
            self._fitting = False

    _fitting = False

    def _fit_graph(self) -> None:
        """Open beside fewer than LIST_ROWS_BESIDE_GRAPH rows of the list at its
        whole least, the graph goes compact and the list is given those rows
        (as far as the compact graph's least leaves room); with room again, it
        is whole."""
        compact = (not self.detail.folded
                   and self.list_rows_beside_graph() < LIST_ROWS_BESIDE_GRAPH)  # fmt: skip
        self.detail.set_compact(compact)
        if not compact:
            return
        sizes = self.splitter.sizes()
        total = sum(sizes)
        if len(sizes) != 2 or total <= 0:
            return
        frame = self.table.height() - self.table.viewport().height() - self.table.header().height()
        keep = (LIST_ROWS_BESIDE_GRAPH * row_height(self.table.fontMetrics())
                + self.table.header().sizeHint().height() + max(frame, 0))  # fmt: skip
        listed = min(max(sizes[0], keep), total - self.detail.open_minimum_height(compact=True))
        if listed > sizes[0]:
            self.splitter.setSizes([listed, total - listed])

    def _rows_for_room(self) -> float:
        """The list's rows beside the graph at its least as it is (compact or
        whole), or, folded, as it was when folded for room."""
        compact = self._folded_compact if self.detail.folded else self.detail.compact
        return self.list_rows_beside_graph(compact)

    def _fold_for_room(self) -> None:
        """Made so short that the list would show fewer than MIN_LIST_ROWS rows
        beside the graph (compact, if it is), the graph folds (as at a short
        first showing: at the window's minimum size it left 1½ rows); made tall
        enough again, a graph folded so opens. A fold the user chose is
        theirs: left as it is."""
        if not self.fold_decided or not self.isVisible():
            return
        roomy = self._rows_for_room() >= MIN_LIST_ROWS
        if roomy == self._list_roomy:
            return
        self._list_roomy = roomy
        fold = not roomy and not self.detail.folded
        if fold or (roomy and self._folded_for_room and self.detail.folded):
            self._set_folded_for_room(fold)

    def _set_folded_for_room(self, fold: bool) -> None:
        """Fold (or open) the graph for the room there is, not as the user's own
        choice (_on_detail_folded), remembered so, and whether it was compact."""
        compact = self.detail.compact
        self._folding_for_room = True
        try:
            self.detail.set_folded(fold)
        finally:
            self._folding_for_room = False
        self._folded_for_room = fold
        self._folded_compact = fold and compact

    # --- internals ---------------------------------------------------------------------

    def _on_detail_folded(self, folded: bool) -> None:
        """Unfolded, the graph takes a fair share, but no more than leaves the
        list MIN_LIST_ROWS rows (if the window has that room at all)."""
        self.fold_decided = True
        # folded, the window may go as short as its lines: the list keeps its rows
        self.table.set_least_rows(LEAST_ROWS if folded else 0)
        if not self._folding_for_room:  # the user's own choice
            self._folded_for_room = False
            self._folded_compact = False
            if not folded:
                self._fit_graph()  # compact if the list would keep too few rows
            self._list_roomy = self._rows_for_room() >= MIN_LIST_ROWS
        if not folded:
            sizes = self.splitter.sizes()
            total = sum(sizes)
            smallest = self.detail.minimumSizeHint().height()
            keep_for_list = (
                MIN_LIST_ROWS * row_height(self.table.fontMetrics())
                + self.table.header().sizeHint().height()
            )
            share = max(smallest, min(total * 2 // 5, total - keep_for_list))
            if len(sizes) == 2 and total > 0:
                self.splitter.setSizes([total - share, share])
            self._fit_graph()  # compact: the list its LIST_ROWS_BESIDE_GRAPH rows
            # the row shown stays in sight above it (once laid out): at 2x the
            # graph opened over Nimbus Sync's row left the list's top three
            QTimer.singleShot(0, self, self._show_current_row)
        self._want_connections()

    def _show_current_row(self) -> None:
        index = self.table.currentIndex()
        if index.isValid():
            self.table.scrollTo(index)

    def _give_detail_room(self, extra: int) -> None:
        """The detail pane wants ``extra`` px more (room for the connections'
        rows): the list gives what it can spare above LIST_ROWS_KEPT_FOR_CONNECTIONS
        rows, its titles and its frame."""
        sizes = self.splitter.sizes()
        if len(sizes) != 2 or extra <= 0:
            return
        frame = self.table.height() - self.table.viewport().height() - self.table.header().height()
        keep = (LIST_ROWS_KEPT_FOR_CONNECTIONS * row_height(self.table.fontMetrics())
                + self.table.header().sizeHint().height() + max(frame, 0))  # fmt: skip
        given = min(extra, sizes[0] - keep)
        if given > 0:
            self.splitter.setSizes([sizes[0] - given, sizes[1] + given])

    def _on_filter_changed(self, text: str) -> None:
        self._filtering = True
        try:
            self._proxy.set_name_filter(text)
        finally:
            self._filtering = False
        current = self.table.currentIndex()
        if self._chosen_app_id and (
            not current.isValid() or current.data(Role.APP_ID) != self._chosen_app_id
        ):
            self.select_application(self._chosen_app_id)
        self._filter_text = text.strip()
        self._update_empty_text()
        self.table.viewport().update()

    def _update_empty_text(self) -> None:
        """An empty list says why: nothing matches the filter, or nothing uses the network."""
        state = self._status.state
        if self._filter_text and self._status.can_monitor:
            self.table.empty_text = f"No application matches “{self._filter_text}”."
        else:
            self.table.empty_text = EMPTY_TEXT.get(state, "")

    def _show_answer_age(self) -> None:
        """The helper connected but late: for how long, in the status bar."""
        late = max(self.answer_late_s, 3 * self.detail.refresh_interval_s)
        age = time.monotonic() - self._answered_at
        connected = self._status.state is HelperState.CONNECTED
        self.status_line.set_late(age if connected and age >= late else 0.0)

    def _on_snapshot(self) -> None:
        self._answered_at = time.monotonic()
        self.status_line.set_late(0.0)
        down, up = self._model.peaks.peaks()
        scale = (graph_top(down), graph_top(up))
        if scale != self.table.sparkline_delegate.scale:
            self.table.set_sparkline_scale(scale)
            self._model.activity_tooltip = self.table.sparkline_delegate.scale_text(
                self._model.units
            )
        first = self.table.model().index(0, 0)
        busy = first.isValid() and bool(first.data(Role.RATE_DOWN) or first.data(Role.RATE_UP))
        if first.isValid() and (
            not self.table.currentIndex().isValid() or (self._auto_pick and busy)
        ):
            # The window's own choice: the busiest. Made on no traffic (a helper
            # started with the window lists all at 0 B/s: the first by name was
            # kept while a 17 MB/s download topped the list), it is made again.
            self._picking = True
            try:
                self.select_application(str(first.data(Role.APP_ID)))
            finally:
                self._picking = False
            self._auto_pick = not busy
        self.detail.refresh()
        self._update_counts(new_sample=True)

    def _on_limits_shown(self, app_id: str) -> None:
        """A limit asked for, or its request done: the rates line and the graph's
        limit line follow the row at once, not a poll later."""
        if app_id == self.detail.app_id:
            self.detail.refresh()

    def _on_row_pressed(self, _index: QModelIndex) -> None:
        self._auto_pick = False

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        app_id = str(current.data(Role.APP_ID) or "") if current.isValid() else ""
        if not self._picking:
            self._auto_pick = False  # chosen (by the user, or asked for): kept
        if app_id and not self._filtering:
            self._chosen_app_id = app_id
        self.detail.show_application(app_id)
        self._want_connections()

    def _on_expansion_changed(self, collapsed_app_id: str) -> None:
        if collapsed_app_id:
            self._model.clear_connections(collapsed_app_id)  # fetched afresh when opened again
        self._want_connections()

    def _want_connections(self) -> None:
        shown = "" if self.detail.folded else self.detail.app_id  # folded: its table is not seen
        wanted = list(dict.fromkeys([shown, *self.table.expanded_app_ids()]))
        wanted = [app_id for app_id in wanted if app_id]
        expanded = self.table.expanded_app_ids()
        if expanded != self._processes_wanted:  # first: a row just opened gets both at once
            self._processes_wanted = list(expanded)
            self.processesWanted.emit(list(expanded))
        if wanted != self._connections_wanted:
            self._connections_wanted = wanted
            self.connectionsWanted.emit(wanted)

    def _on_data_changed(self, top_left: QModelIndex, bottom_right: QModelIndex) -> None:
        # One row: a limit was asked for or settled. Whole-model changes come
        # with a snapshot, which updates the counts once in _on_snapshot.
        if top_left.row() == bottom_right.row():
            self._update_counts()

    def _update_counts(self, new_sample: bool = False) -> None:
        down, up = self._model.totals()
        if new_sample and down is not None and up is not None:
            # a poll: the overall row's activity moves on; one with a total not
            # known skips, as a row's own does (it drew a notch to a partial sum)
            self.table.overall.add_sample(down, up)
        live = self._status.can_monitor
        if not live and not self._model.app_ids():
            # no rate ever heard (a first start without the helper): not "0 B/s" (gui34)
            down = up = None
        self.header.set_totals(down, up, self._model.units, live)
        self.table.overall.show_totals(down, up, self._model.units, live)
        self.status_line.set_limits(
            self._model.limit_tally(),
            self.nothing_enforced,
            self._status,
            self._model.rowCount() > 0,
        )

    @property
    def nothing_enforced(self) -> str:
        """Why no limit is enforced now ("" when limits may be)."""
        return nothing_enforced_reason(self._status, self._paused)

    def _show_enforcement(self) -> None:
        """Every row's limits say they are not enforced while nothing is."""
        self._model.set_enforcement_problem(self.nothing_enforced)
        self.table.refresh_editors()
        self.detail.refresh()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """The splitter resized (a banner came or went): the graph fitted to
        the room (once laid out). Down in the filter box goes on to the list, on the row chosen (the
        first left by the filter, if none is): type a name, press Down, and
        the application is chosen; Tab went past the Usage and ☰ buttons first."""
        if (
            watched is self.header.filter
            and isinstance(event, QKeyEvent)
            and event.type() == QEvent.Type.KeyPress
            and event.key() == Qt.Key.Key_Down
            and event.modifiers() == Qt.KeyboardModifier.NoModifier
            and self._proxy.rowCount() > 0
        ):
            if not self.table.currentIndex().isValid():
                self.table.setCurrentIndex(self._proxy.index(0, 0))
            self.table.setFocus(Qt.FocusReason.OtherFocusReason)
            return True
        if watched is self.splitter and event.type() == QEvent.Type.Resize:
            QTimer.singleShot(0, self, self._fit_to_room)
        return super().eventFilter(watched, event)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.keep_running_in_tray:
            event.ignore()
            self.hide()
            self.closedToTray.emit()
            return
        super().closeEvent(event)
        # Closed for good (quit): what holds Python-owned Qt objects in reference
        # cycles lets go of them now, not to a collection at some later moment.
        self.detail.release_graphs()
        self.table.limit_delegate.forget_likenesses()
        self.closedForGood.emit()

    def follow_palette(self) -> None:
        """The theme changed: parts that took colours once take them again."""
        self.table.follow_palette()
        self.status_line.follow_palette()
        # The banners carry a style sheet, which kept the old palette for them and
        # their children: shown when Dark was chosen, a title stayed black on the
        # dark banner, its buttons light. Their sheets set again take the new one.
        for banner in (self.banner, self.paused_notice):
            sheet = banner.styleSheet()
            banner.setStyleSheet("")
            banner.setStyleSheet(sheet)
        base = QApplication.palette().color(QPalette.ColorRole.Base)  # ours may lag behind
        for view in self.detail.findChildren(QGraphicsView):
            if hasattr(view, "setBackground"):  # the detail graph (pyqtgraph)
                view.setBackground(base)
