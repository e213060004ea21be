"""The selected application's live graph: down and up, its limits, its rates.

Two pyqtgraph plots sharing the time axis (cheap to update once a second):
download above, upload below, each scaled to what was measured in it, so a
200 KB/s upload stays readable under a 50 MB/s download. A limit is drawn as a
dashed line where it is near the traffic; a limit far above it (a slider left
at 900 MB/s) is a marker at the plot's top edge instead of a scale that
flattens the traffic to a line. A line of text puts each configured limit next
to the measured rate, and a choice of time span. Under the graph, a table of
the application's open connections (gui/models/connection_table.py), filled
from the ListConnections polls the main window asks for while an application
is shown here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from chadthrottle.contract import RATES_UNDER_NEW_RULES_AFTER_S, ConnectionInfo, Direction
from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.connection_table import (
    MEASURING,
    NO_VALUE,
    ConnColumn,
    ConnectionTableModel,
)
from chadthrottle.gui.models.graph_series import graph_series
from chadthrottle.gui.models.history import COARSE_EVERY
from chadthrottle.gui.models.limit_truth import (
    LimitState,
    describe_kept_limit,
    describe_limit,
    describe_problem,
    describe_quota,
)
from chadthrottle.gui.models.priority_view import describe_latency
from chadthrottle.gui.views.graph_scale import graph_top
from chadthrottle.gui.views.sort_arrow import use_honest_arrows
from chadthrottle.gui.views.steady_text import (
    ClipBox,
    elided_to_room,
    fix_to_widest,
    set_selectable_text,
    widest_rate,
)
from chadthrottle.gui.widgets.rate_width import widest_amount
from chadthrottle.gui.widgets.rate_width import widest_rate as widest_rate_px
from chadthrottle.gui.widgets.sparkline import DOWN_COLOUR, UP_COLOUR
from chadthrottle.units import UnitSystem, format_rate
from chadthrottle.usage_contract import UsageRow
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QPalette, QResizeEvent, QTextLayout
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QGraphicsItem,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    import pyqtgraph as pg

MEASURED_OVER_SAMPLES = 5
WIDGET_SIZE_MAX = (1 << 24) - 1  # Qt's QWIDGETSIZE_MAX, which PySide6 does not export
# A window shorter than this (logical pixels: 2x on a 1366x768 screen is 384)
# starts with the connections table folded: open, it left the list of
# applications one and a half rows.
SHORT_WINDOW_HEIGHT = 560
# Taller, the connections table opens with room for this many rows: taken from
# the list as far as it keeps its rows (MainWindow), then from the graph down to
# its least. At 1x in a 1100x720 window it opened with two fifths of the
# pane, two rows, until the user dragged the line above it.
CONNECTION_ROWS_WANTED = 5
RECENT_MINUTES_KEPT = 8  # applications whose last hour from the helper is kept (about 60 rows each)
# (label, seconds shown, ten-poll means). The time axis is real time: with a
# refresh of 0.5 s, five minutes hold more polls than the history keeps, and
# the helper's minutes fill in before the first one (graph_series).
SPANS: tuple[tuple[str, int, bool], ...] = (
    ("Last 60 s", 60, False),
    ("Last 5 min", 300, False),
    ("Last hour", 3600, True),  # ten-poll means, labelled in minutes
)


NO_SELECTION = "Select an application to see its traffic."
# In the graph's place while no application is shown, so the pane under the
# list reads as waiting for one, not as a blank half of the window.
EMPTY_GRAPH_SELECT = (
    "Select an application in the list to see its download and upload over time, "
    "its limits and its open connections here."
)
EMPTY_GRAPH_NOTHING_LISTED = (
    "Once applications are listed, the one you select shows here: its download and "
    "upload over time, its limits and its open connections."
)
# The connections caption while the helper is away: an empty table would say "none".
CONNECTIONS_UNKNOWN = "Connections not known while the helper is away"


def describe_rates(
    name: str,
    down: float | None,
    up: float | None,
    limits: tuple[int, int],
    measured: tuple[float | None, float | None],
    units: UnitSystem,
    rate_text: Callable[[float, UnitSystem], str] = format_rate,
    unmeasured: str = MEASURING,
) -> str:
    """ "Firefox: down 8.1 MB/s (limit 5 MB/s, avg 4.98 MB/s), up 210 KB/s":
    beside a limit, the mean of the last MEASURED_OVER_SAMPLES polls it is
    judged by (both figures are measured: "measured" told them apart not; the
    line's tooltip, average_tooltip, says over how long). Short: at 2x on a
    1366x768 screen the line fills the window's width.
    rate_text other than format_rate: the line's widest form (steady_text.py).
    A rate None is being measured (MEASURING: its rules just changed, the row says so too),
    or, the helper away since, not known (unmeasured NO_VALUE, as the row)."""
    parts = []
    for word, rate, limit, mean in (
        ("down", down, limits[0], measured[0]),
        ("up", up, limits[1], measured[1]),
    ):
        text = f"{word} {unmeasured if rate is None else rate_text(rate, units)}"
        if limit:
            average = "…" if mean is None else rate_text(mean, units)  # no poll under it yet
            text += f" (limit {rate_text(limit, units)}, avg {average})"
        parts.append(text)
    return f"{name}: " + ", ".join(parts)


def average_tooltip(average_s: float) -> str:
    """What "avg" beside a limit is."""
    return (
        f"The first rate is the last poll's; avg is the mean of the last {average_s:g} s,"
        " which a limit is judged by, counting only seconds measured under the limit shown"
        " (… until the first)."
    )


# The notes under the rates line take at most this many lines of the pane, with
# a scroll bar beside longer ones (NotesBox): a helper's long reason (a filter on
# each of several links) ran to eight lines, and in a short window the pane cut
# them through the middle of a line. Cut with "…" instead (whole only in the
# tooltip), at 2x on 1366x768 the last sentence was lost ("...when the quota's
# bloc…"; one line with the graph compact).
NOTES_MAX_LINES = 3


def wrapped_lines(text: str, font: QFont, width: int) -> int:
    """How many lines text takes word-wrapped at width (its paragraphs each on new lines)."""
    lines = 0
    for paragraph in text.split("\n"):
        layout = QTextLayout(paragraph, font)
        layout.beginLayout()
        count = 0
        while (line := layout.createLine()).isValid():
            line.setLineWidth(width)
            count += 1
        layout.endLayout()
        lines += max(count, 1)
    return lines


class NotesBox(QScrollArea):
    """The notes' label, whole: as tall as its lines up to NOTES_MAX_LINES, a
    scroll bar beside it where they run longer; no frame, the pane's background."""

    def __init__(self, label: QLabel, parent: QWidget) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidgetResizable(True)
        self.setBackgroundRole(QPalette.ColorRole.Window)
        self.viewport().setAutoFillBackground(False)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the label's text is selectable with the mouse
        self.setWidget(label)
        label.setAutoFillBackground(False)
        self.label = label

    def fit(self, lines: int, width: int) -> None:
        """As tall as the label's lines at this width, up to NOTES_MAX_LINES of
        them: its own height for the width, as it lays them out (selectable, as
        a document: not the font's line spacing times the lines)."""
        whole = self.label.heightForWidth(width)
        height = whole if lines <= NOTES_MAX_LINES else whole * NOTES_MAX_LINES // lines
        if self.height() != height or self.minimumHeight() != height:
            self.setFixedHeight(height)


def describe_limit_notes(
    states: dict[Direction, LimitState],
    units: UnitSystem,
    own: dict[Direction, int] | None = None,
) -> str:
    """Only what the numbers above do not say: whose limit it is when not the
    viewer's, why a limit or a block is not enforced, how a limit holds over
    several namespaces, a quota's use, and a limit of one's own kept beneath a
    block (own: the viewer's stored limits, ListRules)."""
    notes = []
    for direction, state in states.items():
        note = ""
        if state.held and (state.owner_note or state.problem or state.reach):
            note = describe_limit(state, direction, units)  # with the quota, if any
        elif state.quota_bytes:
            word = "Download" if direction is Direction.DOWN else "Upload"
            problem = f" {describe_problem(state.problem, units)}." if state.problem else ""
            note = f"{word} quota: {describe_quota(state, units)}.{problem}"
        kept = describe_kept_limit(state, direction, (own or {}).get(direction, 0), units)
        note = " ".join(filter(None, [note, kept]))
        if note:
            notes.append(note)
    return "\n".join(notes)


def describe_connection_count(connections: list[ConnectionInfo]) -> str:
    """The table's caption: "3 open connections", "No open connections."."""
    if not connections:
        return "No open connections."
    return f"{len(connections)} open connection{'s' if len(connections) != 1 else ''}"


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


class DetailPane(QWidget):
    """Graph and numbers for one application, refreshed after each poll."""

    applicationShown = Signal(str)  # another application is shown: its history is wanted
    roomWanted = Signal(int)  # px more the pane would like (the connections' rows), at once
    foldedChanged = Signal(bool)  # True: only the rates line (set_folded)
    notesResized = Signal()  # the notes took more or fewer lines, or came or went

    def __init__(
        self,
        model: ApplicationsModel,
        refresh_interval_s: float = 1.0,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._model = model
        self._app_id = ""
        self.refresh_interval_s = refresh_interval_s
        self._minutes: Sequence[UsageRow] = ()  # the helper's last hour of the application shown
        # ... and of the last few shown: selected again, its graph has its past at once.
        self._recent_minutes: dict[str, Sequence[UsageRow]] = {}
        self.history_note = ""  # why the graph has no history from the helper ("" when it has)
        self.plotted: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros((0, 2)))  # x, rates
        self._hover_x: float | None = None  # the pointer's time on the graph, None when off it
        self.summary = QLabel("", self)  # nothing to ask for until something is listed
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setAccessibleName("Rates of the selected application")
        self._summary_box = ClipBox(self.summary, self)  # a long line gives way (elided_to_room)
        self._summary_text = ""  # the whole line, cut to the box's room when shown
        self._summary_box.resized.connect(self._cut_summary)
        self._summary_widest = ""  # the widest form of the line shown, its fixed size's measure
        self.span = QComboBox(self)
        self.span.setAccessibleName("Graph time span")
        for label, _samples, _coarse in SPANS:
            self.span.addItem(label)
        self.span.currentIndexChanged.connect(lambda _i: self.refresh())

        # The graph's place; the pyqtgraph plots in it are built when an
        # application is first shown: importing pyqtgraph is about 0.2 s that the
        # window need not wait for before it appears.
        self.plot = QWidget(self)
        self.plot.setAccessibleName("Traffic graph")
        self.plot.setMinimumHeight(GRAPH_MIN_HEIGHT)
        self.plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        QVBoxLayout(self.plot).setContentsMargins(0, 0, 0, 0)
        self.graphs: dict[Direction, _DirectionGraph] = {}
        self._graph_view: pg.GraphicsLayoutWidget | None = None  # built on first need
        self.empty_note = QLabel(EMPTY_GRAPH_NOTHING_LISTED, self)
        self.empty_note.setObjectName("graph-empty")
        self.empty_note.setWordWrap(True)
        self.empty_note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_note.setStyleSheet("QLabel { color: palette(placeholder-text); }")
        self.empty_note.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._graph_place = graph_place = QWidget(self)  # the graph, or the note in its place
        place_layout = QVBoxLayout(graph_place)
        place_layout.setContentsMargins(0, 0, 0, 0)
        place_layout.addWidget(self.plot)
        place_layout.addWidget(self.empty_note)

        # The switch that folds the graph and the connections away, leaving this
        # line: on a short screen (2x on a laptop) the list of applications
        # comes first (the window starts folded there, see MainWindow).
        self.fold_button = QToolButton(self)
        self.fold_button.setObjectName("graph-fold")
        self.fold_button.setAccessibleName("Graph and connections: show or hide")
        self.fold_button.setToolTip("Show or hide the graph and the connections")
        self.fold_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.fold_button.setAutoRaise(True)
        self.fold_button.setCheckable(True)
        self.fold_button.setChecked(True)
        self.fold_button.setArrowType(Qt.ArrowType.DownArrow)
        self.fold_button.setText("Graph")
        self.fold_button.toggled.connect(lambda shown: self.set_folded(not shown))
        QWidget.setTabOrder(self.fold_button, self.span)  # as they stand, left to right
        top = QHBoxLayout()
        top.addWidget(self.fold_button)
        top.addWidget(self._summary_box)
        top.addStretch(1)  # the summary's fixed size (_fit_summary) leaves the rest here
        top.addWidget(self.span)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, PANE_MARGIN, 8, PANE_MARGIN)
        layout.setSpacing(PANE_SPACING)
        layout.addLayout(top)
        # Whose limits these are and what keeps one from being enforced.
        self.limit_notes = QLabel("", self)
        self.limit_notes.setObjectName("limit-notes")
        self.limit_notes.setAccessibleName("About the limits")
        self.limit_notes.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.limit_notes.setWordWrap(True)
        self.limit_notes.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.notes_box = NotesBox(self.limit_notes, self)  # whole, scrolled where long
        self.notes_box.hide()
        self._notes_shown: tuple[str, int] = ("", 0)  # the whole text, and the width it was laid at
        self._notes_lines = 0  # the lines in sight: up to NOTES_MAX_LINES
        layout.addWidget(self.notes_box)
        # Graph above, connections below; the user moves the line between them.
        self.split = _Split(Qt.Orientation.Vertical, self)
        self.split.setChildrenCollapsible(False)
        self.split.resized.connect(self._on_split_resized)
        self.split.splitterMoved.connect(self._on_split_dragged)  # only a drag moves it so
        self.split.addWidget(graph_place)
        below = QWidget(self.split)
        below_layout = QVBoxLayout(below)
        below_layout.setContentsMargins(0, 4, 0, 0)
        below_layout.setSpacing(2)
        # The count, and the switch that shows or hides the table under it.
        self.connections_caption = QToolButton(below)
        self.connections_caption.setAccessibleName("Open connections: show or hide the table")
        self.connections_caption.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.connections_caption.setAutoRaise(True)
        self.connections_caption.setCheckable(True)
        self.connections_caption.setChecked(True)
        self.connections_caption.setArrowType(Qt.ArrowType.DownArrow)
        self.connections_caption.toggled.connect(self._show_table)
        below_layout.addWidget(self.connections_caption, 0, Qt.AlignmentFlag.AlignLeft)
        self.connections_model = ConnectionTableModel(parent=self)
        self.connections = connections_view(self.connections_model, below)
        below_layout.addWidget(self.connections, 1)
        self.split.addWidget(below)
        self.split.setStretchFactor(0, 1)
        self.split.setStretchFactor(1, 1)
        self._connections_box = below
        self._split_placed = False
        self._split_dragged = False  # the user moved the line: theirs, kept in proportion
        self._table_folded_for_room = False  # by a short window, not by the user
        below.hide()  # until there is something to show: a short screen needs the room
        layout.addWidget(self.split, 1)
        self.plot.setVisible(False)
        self.compact = (
            False  # the graph a strip, the notes a line, the connections left to the list
        )
        # While the helper is away no poll refreshes the pane: this clock moves the
        # graph's time axis on, so its last samples slide into the past rather than
        # reading as now.
        self._live = True
        self._away_clock = QTimer(self)
        self._away_clock.timeout.connect(self.refresh)

    @property
    def live(self) -> bool:
        return self._live

    def set_live(self, live: bool) -> None:
        """The helper answers (True) or is away: its numbers are then only the
        last it sent, greyed; connections are not known, not "none"."""
        if live == self._live:
            return
        self._live = live
        self.summary.setEnabled(live)
        if live:
            self._away_clock.stop()
            return
        self.connections_model.clear()
        self.connections_caption.setText(CONNECTIONS_UNKNOWN)
        self._fit_split()  # no rows: the graph takes the room
        self._away_clock.start(max(250, int(self.refresh_interval_s * 1000)))
        self.refresh()

    @property
    def app_id(self) -> str:
        return self._app_id

    @property
    def folded(self) -> bool:
        """Only the rates line is shown: no graph, no connections table."""
        return self.split.isHidden()

    def set_folded(self, folded: bool) -> None:
        """Fold the graph and the connections away (or back); folded, the pane
        is no taller than its lines, so the window's splitter gives the list
        the rest, and nothing is plotted or fetched for it."""
        if folded == self.folded:
            return
        self.split.setVisible(not folded)
        self.span.setVisible(not folded)
        self.fold_button.blockSignals(True)
        self.fold_button.setChecked(not folded)
        self.fold_button.blockSignals(False)
        self.fold_button.setArrowType(Qt.ArrowType.RightArrow if folded else Qt.ArrowType.DownArrow)
        self._fit_folded()
        if not folded:
            self.refresh()
        self.foldedChanged.emit(folded)

    def set_compact(self, compact: bool) -> None:
        """Compact, the graph is a strip of its two lanes (GRAPH_COMPACT_HEIGHT,
        no time axis: the span beside it says how long) and the connections are
        left to the list (a row opens into them): the window asks for it where
        the whole graph would leave the list fewer than its rows. At 2x on
        1366x768 under Xvfb, the graph opened, the list showed 2.5 rows of
        applications beside a graph whose time axis took half its height."""
        if compact == self.compact:
            return
        self.compact = compact
        layout = self.layout()
        assert layout is not None
        margin, spacing = (
            (COMPACT_MARGIN, COMPACT_SPACING) if compact else (PANE_MARGIN, PANE_SPACING)
        )
        layout.setContentsMargins(8, margin, 8, margin)
        layout.setSpacing(spacing)
        self.plot.setMinimumHeight(GRAPH_COMPACT_HEIGHT if compact else GRAPH_MIN_HEIGHT)
        for graph in self.graphs.values():
            graph.set_compact(compact)
        if self._graph_view is not None:
            self._fit_graph_view(self._graph_view)
        if compact:
            self._connections_box.hide()
        elif self.connections_caption.text():  # answered while compact, or before
            self._connections_box.show()
            self._fit_split()
        # its least height the new one now, not at the next layout pass: the
        # window's splitter reads it at once (MainWindow._fit_graph)
        place = self._graph_place.layout()
        assert place is not None
        place.invalidate()
        self.split.updateGeometry()
        layout.invalidate()
        layout.activate()
        # folded, its height is its lines' with the new margins: folded for room while
        # compact and then made whole, it kept the compact ones' and cut the notes' last
        # line in half (2x, paused, under Xvfb)
        self._fit_folded()

    def open_minimum_height(self, compact: bool = False) -> int:
        """The pane's smallest height open, whole or compact (set_compact),
        with an application shown: before one is, its graph and the
        connections' line are not there yet."""
        height = self.minimumSizeHint().height() if not self.folded else 0
        if self.folded or self.plot.isHidden():
            height = max(height, self.summary.sizeHint().height() + 12) + GRAPH_MIN_HEIGHT
            if self.folded and not self.notes_box.isHidden():  # open, they stand there too
                height += self.notes_box.height() + PANE_SPACING
        elif self.compact:  # its least now is the compact one: the whole one's is more
            height += self._compact_saving(with_connections=False)
        if self.folded or self._connections_box.isHidden():
            height += self.connections_caption.sizeHint().height() + 4 + self.split.handleWidth()
        if not compact:
            return height
        # Compact, the room is judged as if the notes took one line, as when they
        # were cut to one: their further lines (at most two) come from the list
        # while they show, rather than folding a graph the user opened; a banner
        # come on top still folds it (at 2x, paused: the list was left 2.0 rows).
        lines = self._notes_lines if not self.notes_box.isHidden() else 1
        notes = (lines - 1) * self.limit_notes.fontMetrics().lineSpacing()
        return height - self._compact_saving() - notes

    def _compact_saving(self, with_connections: bool = True) -> int:
        """How much less the pane needs compact than whole: the graph's time
        axis and some of its height, the margins and the connections' line
        (the notes are as tall either way, read whole: NotesBox)."""
        gaps = 1 if self.notes_box.isHidden() else 2
        saving = (GRAPH_MIN_HEIGHT - GRAPH_COMPACT_HEIGHT + 2 * (PANE_MARGIN - COMPACT_MARGIN)
                  + gaps * (PANE_SPACING - COMPACT_SPACING))  # fmt: skip
        if with_connections:
            saving += self.connections_caption.sizeHint().height() + 4 + self.split.handleWidth()
        return saving

    def _fit_folded(self) -> None:
        """Folded, the pane's height is what its lines need (the notes may wrap)."""
        if self.folded:
            layout = self.layout()
            assert layout is not None
            layout.invalidate()  # what was just hidden or shown counts now
            height = (layout.totalHeightForWidth(self.width()) if layout.hasHeightForWidth()
                      else layout.totalSizeHint().height())  # fmt: skip
            self.setMaximumHeight(height)
            # and no less: in a window as short as it goes the splitter squeezed
            # the notes through the middle of a line (the window stops short of it)
            self.setMinimumHeight(height)
        else:
            self.setMinimumHeight(0)
            self.setMaximumHeight(WIDGET_SIZE_MAX)

    def show_application(self, app_id: str) -> None:
        changed = app_id != self._app_id
        if changed:
            self.connections_model.clear()
            self._connections_box.hide()
            self._minutes = self._recent_minutes.get(app_id, ())
        self._app_id = app_id
        self.refresh()
        if changed:
            self.applicationShown.emit(app_id)

    def set_recent_usage(self, app_id: str, minutes: Sequence[UsageRow], note: str = "") -> None:
        """The helper's per-minute history of an application (GetUsage), drawn
        before the window's own samples; ``note`` says why there is none."""
        if app_id != self._app_id:
            return  # an answer for an application no longer shown
        self._minutes = tuple(minutes)
        self._recent_minutes.pop(app_id, None)
        self._recent_minutes[app_id] = self._minutes
        while len(self._recent_minutes) > RECENT_MINUTES_KEPT:
            del self._recent_minutes[
                next(iter(self._recent_minutes))
            ]  # the least recently answered
        self.history_note = note
        self.refresh()

    def show_connections(
        self, app_id: str, connections: list[ConnectionInfo], received_at: float | None = None
    ) -> None:
        """The selected application's open sockets, most interesting first;
        received_at: when the answer came (time.monotonic(); None: now)."""
        if app_id != self._app_id or not self._live:
            return  # an answer for a row no longer selected, or a failed call's none
        if self.connections_model.units != self._model.units:
            self._set_connection_units(self._model.units)
        self.connections_model.set_connections(app_id, connections, received_at)
        caption = describe_connection_count(connections)
        if caption != self.connections_caption.text():  # the same answer every poll, mostly
            self.connections_caption.setText(caption)
        if self.compact:
            return  # shown when the graph is whole again (set_compact)
        if self._connections_box.isHidden():
            self._connections_box.show()
            if not self._split_placed:  # the first time: room asked of the window
                self._split_placed = True
                if self.window().height() < SHORT_WINDOW_HEIGHT:
                    # the list of applications needs the room more; opened when made tall
                    self.connections_caption.setChecked(False)
                    self._table_folded_for_room = True
                else:
                    self._place_split()
                return
        self._fit_split()  # as many rows as it has now

    def _show_table(self, shown: bool) -> None:
        """Show or fold the connections table; folded, the count stays as a
        line under the graph and the graph takes the room."""
        self.connections_caption.setArrowType(
            Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow
        )
        self.connections.setVisible(shown)
        self._table_folded_for_room = False  # the user's own fold or opening, or a tall window's
        if shown:
            self._split_dragged = False  # opened afresh: placed for its rows again
            self._place_split()
            return
        total = sum(self.split.sizes())
        line = self.connections_caption.sizeHint().height() + 6
        self.split.setSizes([total - line, line])

    def connections_wanted_height(self, rows: int = CONNECTION_ROWS_WANTED) -> int:
        """The connections' part with this many rows: the count's line, the
        titles, the rows, a sideways scroll bar if there is one and the frame."""
        table = self.connections
        box = self._connections_box.layout()
        margins = box.contentsMargins().top() + box.spacing() if box is not None else 6
        scroll = table.horizontalScrollBar()
        return (
            self.connections_caption.sizeHint().height()
            + margins
            + table.horizontalHeader().sizeHint().height()
            + rows * table.verticalHeader().defaultSectionSize()
            + (scroll.sizeHint().height() if scroll.isVisibleTo(table) else 0)
            + 2 * table.frameWidth()
        )

    def _fit_split(self) -> None:
        """The table no taller than its rows need (one at least; up to
        CONNECTION_ROWS_WANTED, or two fifths of the split if that is more),
        the graph the rest: under Xvfb at 1366x768 an application with one
        connection, or none known while the helper was away, left the graph
        95 px beside four empty rows. Again on every resize, so the table
        keeps its rows and the graph follows the window. A line the user
        dragged is theirs (QSplitter keeps it in proportion)."""
        if (self._split_dragged or self.split.isHidden() or self._connections_box.isHidden()
                or self.connections.isHidden()):  # fmt: skip
            return
        total = self.split.height() - self.split.handleWidth()
        if total <= 0:
            return
        need = self.connections_wanted_height(max(1, self.connections_model.rowCount()))
        most = max(total * 2 // 5, self.connections_wanted_height())
        table = max(0, min(need, most, total - GRAPH_MIN_HEIGHT))
        if self.split.sizes() != [total - table, table]:
            self.split.setSizes([total - table, table])

    def _on_split_resized(self) -> None:
        if self._table_folded_for_room and self.window().height() >= SHORT_WINDOW_HEIGHT:
            self.connections_caption.setChecked(True)  # made tall: opened (and placed)
            return
        self._fit_split()

    def _on_split_dragged(self, _position: int, _index: int) -> None:
        self._split_dragged = True

    def _place_split(self) -> None:
        """Room for the table's rows (at most CONNECTION_ROWS_WANTED) beside
        the graph: asked of the window first (roomWanted), which takes it from
        the list as far as the list keeps its rows; what that does not give,
        the graph gives, down to its least (there, with two plots, it read
        squashed beside a list with rows to spare). Then _fit_split."""
        rows = min(CONNECTION_ROWS_WANTED, max(1, self.connections_model.rowCount()))
        wanted = self.connections_wanted_height(rows)
        least = GRAPH_MIN_HEIGHT
        # its height, not its sizes: a part just shown is not in them yet
        height = self.split.height() - self.split.handleWidth()
        short = max(least, height - height * 2 // 5) + wanted - height
        if short > 0:
            self.roomWanted.emit(short)  # the window resizes the pane now, or not
        self._fit_split()

    def _show_notes(self, text: str) -> None:
        """The notes whole, NOTES_MAX_LINES of them in sight at the pane's
        width and a scroll bar beside the rest (NotesBox), compact too: cut with
        "…", their last sentence was only in the tooltip."""
        layout = self.layout()
        margins = layout.contentsMargins() if layout is not None else None
        sides = margins.left() + margins.right() if margins is not None else 0
        width = self.width() - sides - 4  # the box spans the pane; a little under its wrapping
        key = (text, width)
        if key == self._notes_shown and self.notes_box.isHidden() != bool(text):
            return
        self._notes_shown = key
        font, room = self.limit_notes.font(), max(width, 40)
        lines = wrapped_lines(text, font, room) if text else 0
        if text != self.limit_notes.text():
            self.limit_notes.setText(text)
            self.limit_notes.setToolTip("")
        before = (self.notes_box.isHidden(), self.notes_box.height())
        self._notes_lines = min(NOTES_MAX_LINES, lines)
        self.notes_box.fit(lines, room)
        self.limit_notes.setVisible(bool(text))
        self.notes_box.setVisible(bool(text))
        self._fit_folded()
        if (self.notes_box.isHidden(), self.notes_box.height()) != before:
            self.notesResized.emit()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width() and self._notes_shown[0]:
            self._show_notes(self._notes_shown[0])  # cut again at the new width

    def _build_graphs(self) -> None:
        """Download above, upload below, one time axis (see the module's docstring)."""
        import pyqtgraph as pg

        view = pg.GraphicsLayoutWidget()
        view.setAccessibleName("Traffic graph")
        view.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # nothing to do in it with keys or mouse
        view.viewport().setFocusPolicy(Qt.FocusPolicy.NoFocus)  # nor in its viewport
        view.setBackground(self.palette().color(QPalette.ColorRole.Base))
        view.ci.setSpacing(0)
        self.graphs = {
            Direction.DOWN: _DirectionGraph(view, Direction.DOWN, row=0),
            Direction.UP: _DirectionGraph(view, Direction.UP, row=1),
        }
        self.graphs[Direction.UP].item.setXLink(self.graphs[Direction.DOWN].item)
        self.graphs[Direction.DOWN].item.getAxis("bottom").setStyle(showValues=False)
        view.scene().sigMouseMoved.connect(self._on_mouse_moved)
        view.installEventFilter(self)  # the pointer leaving it hides the hover line
        self._fit_graph_view(view)
        for graph in self.graphs.values():
            graph.set_compact(self.compact)
            graph.set_units(self._model.units)
            graph.set_backing(self.palette().color(QPalette.ColorRole.Base))
        layout = self.plot.layout()
        assert layout is not None
        layout.addWidget(view)
        self._graph_view = view

    def _fit_graph_view(self, view: pg.GraphicsLayoutWidget) -> None:
        """Whole, the download's lane the taller; compact, both alike, and
        the view's margins above and below (9 px each) given to the lanes."""
        grid = view.ci.layout
        grid.setRowStretchFactor(0, 1 if self.compact else 3)
        grid.setRowStretchFactor(1, 1 if self.compact else 2)
        margin = 1 if self.compact else 9
        grid.setContentsMargins(9, margin, 9, margin)

    def release_graphs(self) -> None:
        """Let go of the graphs and delete their view (the window closes for good;
        shown again, they are built again). Held from this pane, pyqtgraph's plot
        items and their top-level menus, widget groups and pixmaps were left in
        reference cycles when the window went: destroyed only by the collector, at
        whatever moment and in whichever thread it ran."""
        view = self._graph_view
        if view is None:
            return
        self._graph_view = None
        view.scene().sigMouseMoved.disconnect(self._on_mouse_moved)
        view.removeEventFilter(self)
        self.graphs = {}
        view.deleteLater()

    def _set_connection_units(self, units: UnitSystem) -> None:
        self.connections_model.set_units(units)
        size_number_columns(self.connections, units)

    def set_units(self, units: UnitSystem) -> None:
        self._set_connection_units(units)
        for graph in self.graphs.values():
            graph.set_units(units)
        self.refresh()

    def refresh(self) -> None:
        info = self._model.application(self._app_id) if self._app_id else None
        history = self._model.history(self._app_id) if self._app_id else None
        if info is None or history is None:
            # Nothing listed (first start, no helper): the list says why; asking
            # to select an application there was asking for what is not there.
            asked = NO_SELECTION if self._model.rowCount() > 0 else ""
            self._fit_summary(NO_SELECTION)
            self._summary_text = ""
            self.summary.setText(asked)
            self._show_notes("")
            self.plot.setVisible(False)
            self.empty_note.setText(EMPTY_GRAPH_SELECT if asked else EMPTY_GRAPH_NOTHING_LISTED)
            self.empty_note.setVisible(True)
            for graph in self.graphs.values():
                graph.clear()
            return
        units = self._model.units
        limits = (
            self._model.effective_limit(info.id, Direction.DOWN),
            self._model.effective_limit(info.id, Direction.UP),
        )
        widest = widest_rate(self.summary, units)
        average_s = MEASURED_OVER_SAMPLES * self.refresh_interval_s
        self._fit_summary(
            describe_rates(info.name, 0, 0, limits, (0, 0), units, lambda _r, _u: widest)
        )
        means = [  # the polls of the last average_s (the tooltip's words), none from
            # before a gap, nor from before the limit shown or of its first seconds
            history.mean_since(
                MEASURED_OVER_SAMPLES,
                column,
                self._model.limit_since(info.id, direction) + RATES_UNDER_NEW_RULES_AFTER_S,
                within_s=average_s + self.refresh_interval_s / 2,
            )
            for column, direction in enumerate(Direction)
        ]
        down, up = (
            None if info.measuring(direction) else info.rate_bps(direction)
            for direction in Direction
        )
        self._summary_text = describe_rates(
            info.name,
            down,
            up,
            limits,
            (means[0], means[1]),
            units,
            unmeasured=MEASURING if self._live else NO_VALUE,
        )
        shown = elided_to_room(self._summary_box, self._summary_text)
        set_selectable_text(self.summary, shown)
        tooltip = average_tooltip(average_s) if any(limits) else ""
        if shown != self._summary_text:  # cut: the whole line first
            tooltip = f"{self._summary_text}\n{tooltip}".rstrip("\n")
        if tooltip != self.summary.toolTip():
            self.summary.setToolTip(tooltip)
        states = {direction: self._model.limit_state(info.id, direction) for direction in Direction}
        own = {direction: self._model.own_limit(info.id, direction) for direction in Direction}
        latency = describe_latency(
            info, self._model.priority_state(info.id)
        )  # protected applications only
        self._show_notes(
            "\n".join(
                filter(None, [describe_limit_notes(states, units, own), latency, self.history_note])
            )
        )
        if self.folded:
            return  # nothing drawn that is not seen (set_folded refreshes on unfolding)
        if not self.graphs:
            self._build_graphs()
        self.plot.setVisible(True)
        self.empty_note.setVisible(False)
        _label, span_s, coarse = SPANS[self.span.currentIndex()]
        step_s = self.refresh_interval_s * (COARSE_EVERY if coarse else 1)
        times, rates = history.timed(int(span_s / step_s) + 1, coarse)
        x, data = graph_series(times, rates, self._minutes, time.time(), span_s, step_s)
        per = 60.0 if coarse else 1.0  # the hour view counts in minutes
        self.plotted = (x / per, data)
        for column, (direction, limit) in enumerate(zip(Direction, limits, strict=True)):
            self.graphs[direction].show(x / per, data[:, column], limit, -span_s / per, units)
        self.graphs[Direction.UP].set_time_unit("minutes ago" if coarse else "seconds ago")
        for graph in self.graphs.values():  # a new range, or the other plot's (linked in x):
            # pyqtgraph would set the plot's new transform in its paint, which moves
            # its items and so paints the graph once more; set it before the paint.
            graph.item.getViewBox().updateMatrix()
        self._show_hover()

    # --- values on hover ----------------------------------------------------------------

    def _on_mouse_moved(self, position: QPointF) -> None:
        graph = self.graphs[Direction.DOWN]
        view_box = graph.item.getViewBox()
        inside = any(g.item.sceneBoundingRect().contains(position) for g in self.graphs.values())
        self._hover_x = float(view_box.mapSceneToView(position).x()) if inside else None
        self._show_hover()

    def _cut_summary(self) -> None:
        """The line cut again to the box's new room (or whole, given room)."""
        if self._summary_text:
            set_selectable_text(self.summary, elided_to_room(self._summary_box, self._summary_text))

    def _fit_summary(self, widest: str) -> None:
        """The rates line's size is fixed to its widest form (steady_text.py):
        a poll's new rates repaint it without laying the window out again; the
        size changes with the name, the limits or the units."""
        if widest != self._summary_widest:
            self._summary_widest = widest
            fix_to_widest(self.summary, [widest])
            self._summary_box.updateGeometry()
            layout = self.layout()
            if layout is not None and self.isVisible():
                layout.activate()  # the box's room now, for the line about to be cut to it

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        measured = getattr(self, "_summary_widest", "")  # events come during __init__ too
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange) and measured:
            fix_to_widest(self.summary, [measured])  # measured again in the new font
            self._summary_box.updateGeometry()
        if event.type() == QEvent.Type.PaletteChange:  # a theme was chosen
            for graph in self.graphs.values():
                graph.set_backing(self.palette().color(QPalette.ColorRole.Base))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Leave and self._hover_x is not None:
            self._hover_x = None
            self._show_hover()
        return super().eventFilter(watched, event)

    def hover_text(self, x: float) -> str:
        """What the graph says at x (its time axis' units): the nearest sample."""
        xs, data = self.plotted
        if not len(xs):
            return ""
        index = int(np.nanargmin(np.abs(xs - x)))
        if np.isnan(data[index]).any():
            return "not measured"
        coarse = SPANS[self.span.currentIndex()][2]
        seconds = -xs[index] * (60.0 if coarse else 1.0)
        when = time.strftime("%H:%M:%S", time.localtime(time.time() - seconds))
        units = self._model.units
        return f"{when}  ▼ {format_rate(data[index, 0], units)}  ▲ {format_rate(data[index, 1], units)}"

    def _show_hover(self) -> None:
        x = self._hover_x
        text = self.hover_text(x) if x is not None else ""
        for graph in self.graphs.values():
            graph.show_hover(x if text else None, text if graph.direction is Direction.DOWN else "")


GRAPH_MIN_HEIGHT = 110
# Compact (DetailPane.set_compact): two lanes of about 28 px, as tall as the whole
# graph's lanes at its least (its time axis took the rest), and no time axis.
GRAPH_COMPACT_HEIGHT = 56
PANE_MARGIN, PANE_SPACING = 6, 6  # the pane's top and bottom margins, and between its lines
COMPACT_MARGIN, COMPACT_SPACING = 2, 2  # ... compact


class _Split(QSplitter):
    """The graph and the connections: says when it was resized, after it laid
    its parts out (DetailPane fits the table to its rows again)."""

    resized = Signal()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.resized.emit()


class _DirectionGraph:
    """One direction's plot: rate, limit line or edge marker, its own scale."""

    def __init__(self, layout: pg.GraphicsLayoutWidget, direction: Direction, row: int) -> None:
        import pyqtgraph as pg
        from chadthrottle.gui.views.rate_axis import RateAxis
        from chadthrottle.gui.views.time_axis import AgoAxis

        colour = DOWN_COLOUR if direction is Direction.DOWN else UP_COLOUR
        self.direction = direction
        self.axis = RateAxis()
        self.item = layout.addPlot(
            row=row, col=0, axisItems={"left": self.axis, "bottom": AgoAxis()}
        )
        item = self.item
        item.setMenuEnabled(False)
        item.setMouseEnabled(x=False, y=False)
        item.hideButtons()
        item.showGrid(x=False, y=True, alpha=0.15)
        item.getAxis("left").setWidth(72)  # both plots' axes line up
        # One level of ticks (RateAxis spaces them so their labels never overlap).
        item.getAxis("left").setStyle(maxTickLevel=0, maxTextLevel=0)
        self.time_unit = "seconds ago"
        if direction is Direction.UP:
            item.getAxis("bottom").setLabel(self.time_unit)
        # Each axis (the left one with its grid lines across the plot) is redrawn
        # whenever a curve under it changes, every poll: replaying its picture was
        # most of the graph's cost. Kept as a pixmap, it is redrawn only when its
        # range or size changes.
        for side in ("left", "bottom"):
            item.getAxis(side).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        fill = QColor(colour)
        fill.setAlpha(60)
        self.curve = item.plot(pen=pg.mkPen(colour, width=1.6), fillLevel=0, brush=fill,
                               name="down" if direction is Direction.DOWN else "up")  # fmt: skip
        self.limit_line = pg.InfiniteLine(
            angle=0, pen=pg.mkPen(colour.darker(120), style=Qt.PenStyle.DashLine)
        )
        self.limit_line.setVisible(False)
        item.addItem(self.limit_line)
        # A limit far above the traffic: a marker at the top edge, with its value.
        self.limit_marker = pg.TextItem("", color=colour.darker(120), anchor=(1, 0))
        self.limit_marker.setVisible(False)
        item.addItem(self.limit_marker, ignoreBounds=True)
        # The legend: which plot is which direction, and what the dashed line is.
        words = "▼ download" if direction is Direction.DOWN else "▲ upload"
        self.words = words
        self.label = pg.TextItem(
            words, color=colour, anchor=(0, 0)
        )  # on a backing: the curve may pass under it
        item.addItem(self.label, ignoreBounds=True)
        # Values on hover: a line at the pointer's time, the values there in words.
        self.hover_line = pg.InfiniteLine(
            angle=90, pen=pg.mkPen(QColor(128, 128, 128, 160), width=1)
        )
        self.hover_line.setVisible(False)
        item.addItem(self.hover_line, ignoreBounds=True)
        self.hover_label = pg.TextItem("", color=QColor(128, 128, 128), anchor=(0.5, 0))
        self.hover_label.setVisible(False)
        item.addItem(self.hover_label, ignoreBounds=True)
        self.top = 0.0
        self.start_s = 0.0
        # Linked on x, the two plots' ranges are matched by their size on screen: a
        # range set before the pane was laid out (unfolded at 2x, shown first) was
        # left at about 56 s of the 60 with the legend half off the left edge until
        # the scale next moved. Set again whenever the plot's size changes.
        item.getViewBox().sigResized.connect(self._set_range)

    def _set_range(self, *_: object) -> None:
        if self.top > 0:
            self.item.setRange(xRange=(self.start_s, 0), yRange=(0, self.top), padding=0)
            self.label.setPos(self.start_s, self.top)
            self.limit_marker.setPos(0, self.top)

    def set_backing(self, base: QColor) -> None:
        """The legend's, the far limit's and hover text's backing: the plot's
        background, a little see-through, so the text stays readable over the
        curve (under Xvfb the download ran through "limit 8.00 MB/s ↑")."""
        import pyqtgraph as pg

        backing = QColor(base)
        backing.setAlpha(200)
        for text in (self.label, self.limit_marker, self.hover_label):
            text.fill = pg.mkBrush(backing)
            text.update()

    def set_compact(self, compact: bool) -> None:
        """Compact, no time axis under the plot (the lanes keep the height)."""
        self.item.showAxis("bottom", not compact)

    def set_time_unit(self, words: str) -> None:
        if words != self.time_unit:
            self.time_unit = words
            self.item.getAxis("bottom").setLabel(words)

    def show_hover(self, x: float | None, text: str) -> None:
        """The line at x (None: hidden) and, on this plot, the values there."""
        self.hover_line.setVisible(x is not None)
        self.hover_label.setVisible(x is not None and bool(text))
        if x is None:
            return
        self.hover_line.setValue(x)
        if text:
            middle = self.start_s / 2
            anchor = (0, 0) if x < middle else (1, 0)  # kept inside the plot
            self.hover_label.setAnchor(anchor)
            self.hover_label.setText(text)
            self.hover_label.setPos(x, self.top * 0.9)

    def set_units(self, units: UnitSystem) -> None:
        self.axis.units = units
        self.axis.picture = None
        self.axis.update()

    def clear(self) -> None:
        self.curve.setData([], [])
        self.limit_line.setVisible(False)
        self.limit_marker.setVisible(False)

    def show(
        self, x: np.ndarray, rates: np.ndarray, limit: int, start_s: float, units: UnitSystem
    ) -> None:
        """Plot the rates on a scale they fill; the limit as a line if it is on
        that scale, as a marker at the top edge if it is far above."""
        self.curve.setData(x, rates)
        measured = rates[~np.isnan(rates)]  # a gap (no answer from the helper) is NaN
        peak = float(measured.max()) if len(measured) else 0.0
        top = graph_top(peak, limit)
        if (top, start_s) != (self.top, self.start_s):  # each poll mostly neither moves
            self.top, self.start_s = top, start_s
            self._set_range()
        on_scale = 0 < limit <= top
        legend = f"{self.words}   ┄ limit" if on_scale else self.words
        if self.label.textItem.toPlainText() != legend:
            self.label.setText(legend)
        self.limit_line.setVisible(on_scale)
        if on_scale and self.limit_line.value() != limit:
            self.limit_line.setValue(limit)
        far = limit > top
        self.limit_marker.setVisible(far)
        if far:
            text = f"limit {format_rate(limit, units)} ↑"
            if self.limit_marker.textItem.toPlainText() != text:
                self.limit_marker.setText(text)
