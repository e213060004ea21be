"""The selected application's detail pane: its rates line (each configured
limit next to the measured rate), notes on its limits, and under them its
graph (traffic_graph.py: a limit near the traffic a dashed line, far above it
a marker at the top edge, so a slider left at 900 MB/s does not flatten the
traffic to a line) with a choice of time span, and the table of its open
connections (connections_split.py), filled from the ListConnections polls the
main window asks for while an application is shown here. The pane folds to
its lines, or turns compact, where the window is short (MainWindow)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from chadthrottle.contract import RATES_UNDER_NEW_RULES_AFTER_S, ConnectionInfo, Direction
from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.connection_table import MEASURING, NO_VALUE
from chadthrottle.gui.models.priority_view import describe_latency
from chadthrottle.gui.views.detail.connections_split import ConnectionsSplit
from chadthrottle.gui.views.detail.direction_graph import DirectionGraph
from chadthrottle.gui.views.detail.notes_box import NOTES_MAX_LINES, NotesBox, wrapped_lines
from chadthrottle.gui.views.detail.rates_line import Named, RatesLine
from chadthrottle.gui.views.detail.sizes import (
    COMPACT_MARGIN,
    COMPACT_SPACING,
    GRAPH_COMPACT_HEIGHT,
    GRAPH_MIN_HEIGHT,
    PANE_MARGIN,
    PANE_SPACING,
)
from chadthrottle.gui.views.detail.traffic_graph import SPANS, TrafficGraph
from chadthrottle.gui.views.detail.words import (
    CONNECTIONS_UNKNOWN,
    EMPTY_GRAPH_NOTHING_LISTED,
    EMPTY_GRAPH_SELECT,
    MEASURED_OVER_SAMPLES,
    NO_SELECTION,
    describe_limit_notes,
)
from chadthrottle.gui.widgets.fold_switch import fold_switch, point_fold
from chadthrottle.gui.widgets.qt_bounds import QWIDGETSIZE_MAX
from chadthrottle.units import UnitSystem
from chadthrottle.usage_contract import UsageRow
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

RECENT_MINUTES_KEPT = 8  # applications whose last hour from the helper is kept (about 60 rows each)


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
        self.rates_line = RatesLine(self)
        self.summary = self.rates_line.label
        self.span = QComboBox(self)
        self.span.setAccessibleName("Graph time span")
        for label, _samples, _coarse in SPANS:
            self.span.addItem(label)
        self.span.currentIndexChanged.connect(lambda _i: self.refresh())
        self.traffic = TrafficGraph(model.units, self)  # the graph, or the note in its place
        self.plot, self.empty_note = self.traffic.plot, self.traffic.empty_note

        # The switch that folds the graph and the connections away, leaving this
        # line: on a short screen (2x on a laptop) the list of applications
        # comes first (the window starts folded there, see MainWindow).
        self.fold_button = fold_switch(self, "Graph and connections: show or hide")
        self.fold_button.setObjectName("graph-fold")
        self.fold_button.setToolTip("Show or hide the graph and the connections")
        self.fold_button.setText("Graph")
        self.fold_button.toggled.connect(lambda shown: self.set_folded(not shown))
        QWidget.setTabOrder(self.fold_button, self.span)  # as they stand, left to right
        top = QHBoxLayout()
        top.addWidget(self.fold_button)
        top.addWidget(self.rates_line.box)
        top.addStretch(1)  # the line's fixed size (RatesLine.fit) leaves the rest here
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
        self.split = ConnectionsSplit(self.traffic, self)
        self.split.roomWanted.connect(self.roomWanted)
        self.connections_caption = self.split.caption
        self.connections_model = self.split.model
        self.connections = self.split.table
        layout.addWidget(self.split, 1)
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
    def graphs(self) -> dict[Direction, DirectionGraph]:
        """The two plots, once built (the first application shown)."""
        return self.traffic.graphs

    @property
    def plotted(self) -> tuple[np.ndarray, np.ndarray]:
        """What the graph shows: its x (its time axis' units) and the rates there."""
        return self.traffic.plotted

    def hover_text(self, x: float) -> str:
        """What the graph says at x: the nearest sample."""
        return self.traffic.hover_text(x)

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
        self.split.fit()  # no rows: the graph takes the room
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
        point_fold(self.fold_button, shown=not folded)
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
        self.traffic.set_compact(compact)
        if compact:
            self.split.box.hide()
        elif self.connections_caption.text():  # answered while compact, or before
            self.split.box.show()
            self.split.fit()
        # its least height the new one now, not at the next layout pass: the
        # window's splitter reads it at once (MainWindow._fit_graph)
        place = self.traffic.layout()
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
        if self.folded or self.split.box.isHidden():
            height += self.split.caption_line_height()
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
            saving += self.split.caption_line_height()
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
            self.setMaximumHeight(QWIDGETSIZE_MAX)

    def show_application(self, app_id: str) -> None:
        changed = app_id != self._app_id
        if changed:
            self.connections_model.clear()
            self.split.box.hide()
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
            self.split.set_units(self._model.units)
        self.split.show_connections(app_id, connections, received_at, self.compact)

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

    def release_graphs(self) -> None:
        """Let go of the graphs (the window closes for good: TrafficGraph.release)."""
        self.traffic.release()

    def set_units(self, units: UnitSystem) -> None:
        self.split.set_units(units)
        self.traffic.set_units(units)
        self.refresh()

    def refresh(self) -> None:
        info = self._model.application(self._app_id) if self._app_id else None
        history = self._model.history(self._app_id) if self._app_id else None
        if info is None or history is None:
            # Nothing listed (first start, no helper): the list says why; asking
            # to select an application there was asking for what is not there.
            asked = NO_SELECTION if self._model.rowCount() > 0 else ""
            self.rates_line.show_words(asked, NO_SELECTION)
            self._show_notes("")
            self.traffic.show_note(EMPTY_GRAPH_SELECT if asked else EMPTY_GRAPH_NOTHING_LISTED)
            return
        units = self._model.units
        states = {direction: self._model.limit_state(info.id, direction) for direction in Direction}
        own = {direction: self._model.own_limit(info.id, direction) for direction in Direction}
        # A used-up quota's rate that nothing holds now (the helper away, limits
        # paused) is no limit: the line read "(limit 100 KB/s, avg …)" of it
        # while the note under it said it holds nothing until the helper runs (gui30).
        # Nor a limit nothing holds now (the helper stopped, limits paused): the mean
        # beside it counted the unheld seconds since, "(limit 1.00 MB/s, avg 1.95 MB/s)"
        # read as a limit failing (gui33); the note under the line says it is set.
        # A killed helper's limit the kernel keeps and a block its gate holds until a
        # lease lapses do hold (LimitState.holding): named (review36b).
        down_limit, up_limit = (
            0
            if (
                states[d].quota_spent
                and (states[d].quota_helper_off or states[d].quota_paused)
                and own[d] != self._model.effective_limit(info.id, d)
            )
            or not (states[d].holding or states[d].pending)
            else self._model.effective_limit(info.id, d)
            for d in Direction
        )
        limits = (down_limit, up_limit)
        average_s = MEASURED_OVER_SAMPLES * self.refresh_interval_s
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
        unmeasured = MEASURING if self._live else NO_VALUE
        named = Named(
            self._model.shown_name(info.id), info.name, info.id, self._model.tell(info.id)
        )
        self.rates_line.show_rates(
            named, (down, up), limits, (means[0], means[1]), units, unmeasured, average_s
        )
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
        self.traffic.units = units
        self.traffic.draw(history, self._minutes, self.span.currentIndex(), self.refresh_interval_s)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if not hasattr(self, "traffic"):
            return  # events come during __init__ too
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self.rates_line.refit()  # measured again in the new font
        if event.type() == QEvent.Type.PaletteChange:
            self.traffic.set_backing(self.palette())  # a theme was chosen
