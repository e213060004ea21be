"""The applications table: a tree view that stays fast and holds still.

Real LimitControls exist only on the row under the pointer and the current
row; every other row paints a likeness (``delegates.LimitDelegate``). While the
pointer is over the table (moving or resting), a menu opened over it is open or
one of its limit controls is in use, the sort order holds so rows do not move
under the pointer (docs/gui.md, "The list").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from chadthrottle.contract import Direction
from chadthrottle.gui.models.columns import LIMIT_COLUMNS, Column, Role
from chadthrottle.gui.models.sort_proxy import ApplicationsProxy
from chadthrottle.gui.theme import contrast, mix
from chadthrottle.gui.views.delegates import LimitDelegate, SparklineDelegate, row_height
from chadthrottle.gui.views.overall_row import OVERALL_INDENT, OVERALL_NAME, OverallHeader
from chadthrottle.gui.views.priority_badge import NameDelegate
from chadthrottle.gui.widgets.limit_slider import LimitControl
from chadthrottle.gui.widgets.rate_width import limit_field_width, widest_amount, widest_rate
from chadthrottle.units import UnitSystem
from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QContextMenuEvent,
    QCursor,
    QEnterEvent,
    QFont,
    QFontMetricsF,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHeaderView,
    QStyle,
    QStyleOptionHeader,
    QTreeView,
    QWidget,
)

log = logging.getLogger(__name__)

# While the order holds, how often the view looks whether anything still holds
# it: the pointer over the list, a menu opened over it, a limit control in use, a
# button down. Leave events release it at once; this catches what sends none (a
# menu closed with the pointer elsewhere, a field that lost the focus).
HOLD_CHECK_MS = 250
_FIRST_LIMIT_COLUMN, _LAST_LIMIT_COLUMN = min(LIMIT_COLUMNS), max(LIMIT_COLUMNS)
# A limit control's events that say the pointer is over it (the rows hold).
_REACHING = (QEvent.Type.Enter, QEvent.Type.MouseMove, QEvent.Type.MouseButtonPress)
LIMIT_SLIDER_LEAST = 44  # a limit column's slider part (and spacing) at its narrowest
# ... and what it gets before the name grows past its wanted width: a knob (15 px)
# with twice its width of travel (delegates and LimitControl: 10 px of spacing).
LIMIT_SLIDER_USABLE = 58
# The list keeps room for this many rows of applications while the graph is folded.
LEAST_ROWS = 3


def _plain(persistent: QPersistentModelIndex) -> QModelIndex:
    """The index a persistent one stands for now (Qt converts; PySide6's stubs lack it)."""
    return QModelIndex(persistent)  # type: ignore[call-overload]


def tabular_font(font: QFont) -> QFont:
    """The same font with tabular (fixed-width) digits, so numbers do not jitter."""
    tabular = QFont(font)
    if hasattr(QFont, "Tag"):
        tabular.setFeature(QFont.Tag("tnum"), 1)
    return tabular


# The selected row against the rows around it (WCAG contrast ratio): still a
# soft tint on a light palette, where text contrast matters most.
DARK_CONTRAST = 1.5
LIGHT_CONTRAST = 1.15


class AppTable(QTreeView):
    """Tree view over ApplicationsProxy with per-row limit editors."""

    # The set of expanded applications changed; the app id collapsed, or "".
    expansionChanged = Signal(str)
    # The row menu is wanted for an application, at a global position.
    rowMenuRequested = Signal(
        str, QPoint, int
    )  # app id, where, the row's top on screen (-1: a click)
    # The totals column's title was right-clicked: its periods, at a global position.
    usagePeriodMenuRequested = Signal(QPoint)

    def __init__(self, proxy: ApplicationsProxy, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._proxy = proxy
        self.setModel(proxy)
        self.overall = OverallHeader(self)  # the column titles and the "All applications" row
        self.setHeader(self.overall)
        self.setFont(tabular_font(self.font()))
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        self.setAllColumnsShowFocus(True)
        self.setSortingEnabled(True)
        self.setMouseTracking(True)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setIconSize(QSize(20, 20))
        self.setAccessibleName("Applications")
        self.setAccessibleDescription(
            "Applications using the network, busiest first. Up and Down choose one; "
            "Tab moves on to its download and upload limits."
        )
        self.empty_text = "Waiting for the helper…"
        self._least_rows = 0  # set_least_rows
        self._soften_selection()
        self.sparkline_delegate = SparklineDelegate(self)
        self.limit_delegate = LimitDelegate(self)
        self.setItemDelegateForColumn(Column.ACTIVITY, self.sparkline_delegate)
        self.name_delegate = NameDelegate(self)  # the priority badge
        self.setItemDelegateForColumn(Column.NAME, self.name_delegate)
        for column in LIMIT_COLUMNS:
            self.setItemDelegateForColumn(column, self.limit_delegate)
        header = self.header()
        header.setAccessibleName("Sort by column")
        self.verticalScrollBar().setAccessibleName("Scroll the applications")
        # By pixels: scrolled by whole rows, a last row brought into view (a right
        # click on the partly shown one) left an empty band of most of a row under
        # it while the busiest application vanished above (seen under Xvfb).
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.horizontalScrollBar().setAccessibleName("Scroll the columns")
        header.setStretchLastSection(False)
        header.setSectionResizeMode(Column.NAME, QHeaderView.ResizeMode.Stretch)
        # Widths follow the font (and so the desktop's scale); each column but the
        # name can be resized and is remembered (window_state). When the window is
        # narrower than they add up to, they give way down to a minimum, so every
        # column stays on screen rather than behind a horizontal scroll bar.
        self._units = UnitSystem.BYTES_DECIMAL
        self._preferred, self._minimum = self._column_widths(self._units)
        self._dragged: set[Column] = set()  # widths the user chose: kept when units change
        self._fitting = False
        for column in self._preferred:
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
        header.setMinimumSectionSize(min(self._minimum.values()))
        header.moveSection(
            header.visualIndex(Column.USAGE), header.visualIndex(Column.UP) + 1
        )  # totals by the rates
        header.sectionResized.connect(self._on_section_resized)
        # A right click on the totals column's title: its own period (usage_flow).
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._on_titles_menu)
        proxy.headerDataChanged.connect(lambda *_: self._measure_columns())  # "This month"
        self._fit_columns()
        self.sortByColumn(Column.ACTIVITY, Qt.SortOrder.DescendingOrder)
        self._hover_row: QPersistentModelIndex = QPersistentModelIndex()
        self._hold_timer = QTimer(self)
        self._hold_timer.setInterval(HOLD_CHECK_MS)
        self._hold_timer.timeout.connect(self._release_unless_held)
        self._shown_under: QPoint | None = None  # where the pointer was when shown (showEvent)
        self._open: list[QPersistentModelIndex] = []
        self._pinned: list[QPersistentModelIndex] = []  # opened through limit_control()
        self.viewport().installEventFilter(self)
        self.selectionModel().currentRowChanged.connect(lambda *_: self._sync_editors())
        proxy.rowsRemoved.connect(lambda *_: self._forget_invalid())
        proxy.layoutChanged.connect(lambda *_: self._sync_editors())
        # A re-sort (each poll) is laid out at once, not on the view's delayed-layout
        # timer: the list is then painted in the same pass as the rest of the poll's
        # changes rather than in a pass of its own (one flush to the display fewer).
        proxy.layoutChanged.connect(lambda *_: self.executeDelayedItemsLayout())
        # ... and the selected row, in sight before it, wholly in sight after it.
        self._current_in_sight = False
        proxy.layoutAboutToBeChanged.connect(lambda *_: self._note_current_in_sight())
        proxy.layoutChanged.connect(lambda *_: self._keep_current_in_sight())
        self._expanded_ids: list[str] = []  # kept on expand/collapse: asked after every poll
        self.expanded.connect(lambda _index: self._expansion_changed(""))
        # A process row that says only its name (no rates from the helper yet)
        # takes the whole row, which at 2x on a 1366x768 screen cut
        # "python (pid 19956)" to "python (pid…".
        self.expanded.connect(self._span_processes)
        proxy.rowsInserted.connect(
            lambda parent, _first, _last: self._span_processes(parent)
            if parent.isValid() and self.isExpanded(parent) else None
        )  # fmt: skip
        self.collapsed.connect(
            lambda index: self._expansion_changed(str(index.data(Role.APP_ID) or ""))
        )
        proxy.rowsRemoved.connect(self._on_rows_removed)

    def _note_current_in_sight(self) -> None:
        current = self.currentIndex()
        self._current_in_sight = current.isValid() and self.visualRect(current).intersects(
            self.viewport().rect()
        )

    def _keep_current_in_sight(self) -> None:
        """After a re-sort, the selected row wholly in sight if any of it was
        before: scrolled by pixels, a poll's re-sort at 2x on 1366x768 (a few
        rows, paused) moved it to the row cut by the list's bottom edge. Only
        up or down, by as little as that takes (scrollTo would also scroll
        sideways to the current cell's column)."""
        current = self.currentIndex()
        if not (self._current_in_sight and current.isValid()):
            return
        row, sight = self.visualRect(current), self.viewport().rect()
        bar = self.verticalScrollBar()
        if row.top() < sight.top():
            bar.setValue(bar.value() - (sight.top() - row.top()))
        elif row.bottom() > sight.bottom() and row.height() <= sight.height():
            bar.setValue(bar.value() + row.bottom() - sight.bottom())

    # --- the row menu: right click, the Menu key or Shift+F10 ------------------------

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        if event.reason() == QContextMenuEvent.Reason.Mouse:
            index = self.indexAt(event.pos())
            if index.isValid():
                self.setCurrentIndex(index)
            self._request_row_menu(index, self.viewport().mapToGlobal(event.pos()))
        else:
            self.open_row_menu_for_current()
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        shift_f10 = (
            event.key() == Qt.Key.Key_F10 and event.modifiers() == Qt.KeyboardModifier.ShiftModifier
        )
        if event.key() == Qt.Key.Key_Menu or shift_f10:
            self.open_row_menu_for_current()
            event.accept()
            return
        super().keyPressEvent(event)

    def open_row_menu_for_current(self) -> None:
        """The keyboard's way in: the menu opens under the current row (over
        it where there is no room below: MainWindow.open_row_menu)."""
        index = self.currentIndex()
        rect = (
            self.visualRect(index.siblingAtColumn(0)) if index.isValid() else self.viewport().rect()
        )
        top = self.viewport().mapToGlobal(rect.topLeft()).y()
        self._request_row_menu(
            index, self.viewport().mapToGlobal(rect.bottomLeft() + QPoint(16, 0)), top
        )

    def _request_row_menu(self, index: QModelIndex, where: QPoint, row_top: int = -1) -> None:
        app_id = str(index.data(Role.APP_ID) or "") if index.isValid() else ""
        if app_id:
            self.rowMenuRequested.emit(app_id, where, row_top)

    def _on_titles_menu(self, pos: QPoint) -> None:
        """The totals column's title (or its overall cell): its own period."""
        header = self.overall
        if header.logicalIndexAt(pos) == Column.USAGE:
            self.usagePeriodMenuRequested.emit(header.viewport().mapToGlobal(pos))

    def set_sparkline_scale(self, scale: tuple[float, float]) -> None:
        """Every row's sparkline on one scale (the model's Activity tooltip tells it)."""
        self.sparkline_delegate.scale = scale

    # --- column widths ----------------------------------------------------------------

    def _column_widths(self, units: UnitSystem) -> tuple[dict[Column, int], dict[Column, int]]:
        """Preferred and smallest widths of every column but the name: from the font
        and the widest value the units can show ("88.8 MB/s", not "888 Mibit/s" in
        every unit), and never narrower than the column's title with a sort arrow."""
        font = self.font()
        rate, amount = widest_rate(font, units), widest_amount(font, units)
        field = limit_field_width(font, units)  # LimitControl's field
        margins = 2 * self._cell_margin()
        preferred = {Column.DOWN: rate + 24, Column.UP: rate + 24, Column.ACTIVITY: 140,
                     Column.DOWN_LIMIT: field + 140, Column.UP_LIMIT: field + 140,
                     Column.USAGE: amount + 24}  # fmt: skip
        minimum = {Column.DOWN: rate + margins, Column.UP: rate + margins, Column.ACTIVITY: 48,
                   Column.DOWN_LIMIT: field + LIMIT_SLIDER_LEAST, Column.UP_LIMIT: field + LIMIT_SLIDER_LEAST,
                   Column.USAGE: amount + margins}  # fmt: skip
        for column in minimum:
            title = self.title_width(column)
            minimum[column] = max(minimum[column], title)
            preferred[column] = max(preferred[column], title)
        return preferred, minimum

    def _cell_margin(self) -> int:
        """The style's margin either side of a cell's text (as the overall row uses)."""
        return self.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, self) + 1

    def title_width(self, column: int) -> int:
        """What a column's title needs to be drawn whole, with room for the sort
        arrow (any column can be sorted by): QHeaderView cuts the title to the
        style's label rectangle, which leaves the arrow its room."""
        header = self.overall
        option = QStyleOptionHeader()
        option.initFrom(header)
        option.state |= QStyle.StateFlag.State_Horizontal
        option.sortIndicator = QStyleOptionHeader.SortIndicator.SortDown
        option.rect = QRect(0, 0, 1000, header.title_height())
        label = header.style().subElementRect(QStyle.SubElement.SE_HeaderLabel, option, header)
        title = str(self.model().headerData(column, Qt.Orientation.Horizontal) or "")
        return (
            math.ceil(QFontMetricsF(header.font()).horizontalAdvance(title))
            + option.rect.width()
            - label.width()
            + 1
        )

    def set_units(self, units: UnitSystem) -> None:
        """Size the rate, total and limit columns for the units now shown; a width the
        user dragged stays."""
        self._units = units
        self._measure_columns()

    def _measure_columns(self) -> None:
        preferred, self._minimum = self._column_widths(self._units)
        for column, width in preferred.items():
            if column not in self._dragged:
                self._preferred[column] = width
            self._preferred[column] = max(self._preferred[column], self._minimum[column])
        self.header().setMinimumSectionSize(min(self._minimum.values()))
        self._fit_columns()
        self.updateGeometry()  # the least width follows the columns' least (minimumSizeHint)

    def name_minimum_width(self) -> int:
        """The column's title, and the overall row's name whole: at the window's least
        width under Xvfb it read "All applicati…"."""
        title = self.fontMetrics().horizontalAdvance("Application") + self.indentation() + 40
        return max(title, self._overall_name_width())

    def _overall_name_width(self) -> int:
        bold = QFont(self.font())
        bold.setBold(True)
        overall = (
            OVERALL_INDENT + math.ceil(QFontMetricsF(bold).horizontalAdvance(OVERALL_NAME)) + 1
        )
        return overall + 2 * self._cell_margin()

    def name_wanted_width(self) -> int:
        """What the name column gets before any other column is given more than its
        least: the overall row's name whole, and a usual application name (16
        characters) beside its icon and priority badge."""
        metrics = self.fontMetrics()
        usual = (self.indentation() + self.iconSize().width() + 2 * metrics.height()
                 + 16 * metrics.averageCharWidth())  # fmt: skip
        return max(self.name_minimum_width(), usual)

    def preferred_widths(self) -> list[int]:
        """Each column's width as the user left it (the name column's as shown); 0
        for a column the user never resized, which follows the units."""
        return [
            (self._preferred[Column(c)] if Column(c) in self._dragged else 0)
            if Column(c) in self._preferred
            else self.header().sectionSize(c)
            for c in range(len(Column))
        ]

    def set_preferred_widths(self, widths: list[int]) -> None:
        """Widths remembered from last time; each at least its column's minimum. A 0
        is a width never dragged: it follows the units."""
        for column in self._preferred:
            if widths[column] > 0:
                self._dragged.add(column)
                self._preferred[column] = max(self._minimum[column], widths[column])
        self._fit_columns()

    def _on_section_resized(self, column: int, _old: int, new: int) -> None:
        if not self._fitting and column in self._preferred:  # the user dragged a divider
            self._preferred[Column(column)] = new
            self._dragged.add(Column(column))

    def _fit_columns(self) -> None:
        """Preferred widths where they fit; otherwise the columns shrink towards
        their minimum, the limit columns last (_share_out), so the name and all
        the limits stay visible. The name first gets its wanted width, as far as the other columns can
        keep their least; where they cannot, the totals column gives way (its
        numbers are in the usage view too): names cut to "Media Ser…" at 2x on
        1366x768 said less than the totals did."""
        viewport = self.viewport().width()
        hide_usage = viewport - self.name_wanted_width() < sum(self._minimum.values())
        # Narrower still, the sparklines give way too (the graph below has them): at
        # the window's least width every other column stays whole (least_width).
        hide_activity = viewport - self.name_minimum_width() < sum(
            width for column, width in self._minimum.items() if column is not Column.USAGE
        )
        hidden = {Column.USAGE: hide_usage, Column.ACTIVITY: hide_activity}
        for column, hide in hidden.items():
            if self.header().isSectionHidden(column) != hide:
                self.header().setSectionHidden(column, hide)
        shown = {column: width for column, width in self._preferred.items()
                 if not hidden.get(column, False)}  # fmt: skip
        least = sum(self._minimum[column] for column in shown)
        name = max(self.name_minimum_width(), min(self.name_wanted_width(), viewport - least))
        self._keep_name(
            self.name_wanted_width() if viewport - least < self.name_minimum_width() else 0
        )
        widths = self._share_out(shown, viewport - name - least, hide_usage)
        self._fitting = True
        try:
            for column, width in widths.items():
                self.header().resizeSection(column, width)
        finally:
            self._fitting = False

    def _share_out(self, shown: dict[Column, int], spare: int, narrow: bool) -> dict[Column, int]:
        """Each column's least, and what the name's wanted width leaves beyond
        (spare) given first to the limit columns, until their sliders have
        LIMIT_SLIDER_USABLE px: the slider is the main control, and at 2x on
        1366x768 it had 34 px (19 of travel) while the name took 208. Then, this
        narrow (the totals hidden), the rest goes to the name (long names, a
        connection's far end); wider, every column shares it in proportion."""
        widths = {column: self._minimum[column] for column in shown}
        spare = max(0, spare)
        limits = [column for column in shown if column in LIMIT_COLUMNS]
        usable = LIMIT_SLIDER_USABLE - LIMIT_SLIDER_LEAST
        for column in limits:
            given = min(usable, max(0, shown[column] - widths[column]), spare // len(limits))
            widths[column] += given
        spare -= sum(widths[column] - self._minimum[column] for column in limits)
        if narrow:
            return widths
        growth = {column: max(0, width - widths[column]) for column, width in shown.items()}
        share = min(1.0, spare / max(1, sum(growth.values())))
        return {column: width + round(growth[column] * share) for column, width in widths.items()}

    def _keep_name(self, width: int) -> None:
        """Narrower than every column's least (the window's own minimum is, at 2x
        on 1366x768: 511 px), the name column keeps the width it wants (a usual
        name whole; the view scrolls sideways anyway); stretched, it was squeezed
        to its icon and "Applic…" while the others kept theirs. 0: stretch again."""
        header = self.header()
        mode = QHeaderView.ResizeMode.Interactive if width else QHeaderView.ResizeMode.Stretch
        self._fitting = True  # none of this is the user's dragging
        try:
            if header.sectionResizeMode(Column.NAME) != mode:
                header.setSectionResizeMode(Column.NAME, mode)
                # The switch lays the sections out again with a hidden one's old
                # width still counted (a gap where Today was): hide it afresh.
                for column in range(header.count()):
                    if header.isSectionHidden(column):
                        header.showSection(column)
                        header.hideSection(column)
            if width and header.sectionSize(Column.NAME) != width:
                header.resizeSection(Column.NAME, width)
        finally:
            self._fitting = False

    def set_least_rows(self, rows: int) -> None:
        """The rows the list keeps room for (0: the view's own least), asked
        for while the graph under it is folded (MainWindow)."""
        if rows != self._least_rows:
            self._least_rows = rows
            self.updateGeometry()

    def least_width(self) -> int:
        """Every column whole at its least but Today and Activity (they give way
        first: _fit_columns), and the name at its least: the window goes no narrower.
        Its minimum came from the header and status line (465 px under Xvfb), and
        there the limit columns were behind a sideways scroll bar, "Down limit" cut;
        with Activity kept it would be 678 px in binary bits, the whole of a
        1366x768 screen at 2x."""
        columns = sum(width for column, width in self._minimum.items()
                      if column not in (Column.USAGE, Column.ACTIVITY))  # fmt: skip
        return (self.name_minimum_width() + columns + 2 * self.frameWidth()
                + self.verticalScrollBar().sizeHint().width())  # fmt: skip

    def minimumSizeHint(self) -> QSize:
        """Room for the column titles and the least rows (and a sideways scroll
        bar): the window goes no shorter. At 2x on 1366x768 its least height
        left one row of applications, the rest of the list behind a scroll bar."""
        hint = super().minimumSizeHint()
        hint.setWidth(max(hint.width(), self.least_width()))
        if not self._least_rows:
            return hint
        least = (
            self.overall.title_height()
            + self._least_rows * row_height(self.fontMetrics())
            + 2 * self.frameWidth()
            + self.horizontalScrollBar().sizeHint().height()
        )
        return QSize(hint.width(), max(hint.height(), least))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_columns()
        # the rows' room: not the frame's, nor a sideways scroll bar's (counted in,
        # a list at its least height showed the overall row and two rows under it)
        scroll_bar = self.horizontalScrollBar()
        self.overall.fit_to_view_height(
            self.height()
            - 2 * self.frameWidth()
            - (scroll_bar.height() if scroll_bar.isVisible() else 0)
        )

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self.model().rowCount() == 0 and self.empty_text:
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter, self.empty_text)
            painter.end()

    def follow_palette(self) -> None:
        """Take the application's palette again (a theme was chosen) and tint the
        selection for it."""
        self.setPalette(QPalette())  # drop our own roles: the rest follows the application
        self.overall.follow_style()  # the header has a style of its own (titles clear of the arrow)
        self._soften_selection(QApplication.palette())
        self.limit_delegate.forget_likenesses()  # cached in the old colours
        self.refresh_editors()
        self.viewport().update()

    def _soften_selection(self, source: QPalette | None = None) -> None:
        """A light tint for the selected row, so sliders and text stay readable on it.

        A fifth of the accent is the start; where that hardly shows against
        both row colours (on a dark palette always, on a light one with a pale
        accent) the tint is made stronger until it stands out.
        """
        palette = self.palette()
        source = source or palette  # a new application palette may not have reached us yet
        for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
            accent = source.color(QPalette.ColorGroup.Active, QPalette.ColorRole.Highlight)
            base = source.color(group, QPalette.ColorRole.Base)
            rows = (base, source.color(group, QPalette.ColorRole.AlternateBase))
            share = 0.2
            tint = mix(base, accent, share)
            wanted = DARK_CONTRAST if base.lightness() < 128 else LIGHT_CONTRAST
            while share < 0.6 and min(contrast(tint, row) for row in rows) < wanted:
                share += 0.05
                tint = mix(base, accent, share)
            palette.setColor(group, QPalette.ColorRole.Highlight, tint)
            palette.setColor(
                group,
                QPalette.ColorRole.HighlightedText,
                source.color(group, QPalette.ColorRole.Text),
            )
        self.setPalette(palette)

    # --- hooks for the window and for tests ---------------------------------------------

    def proxy_index(self, app_id: str, column: int = Column.NAME) -> QModelIndex:
        """The view's index of an application's row (invalid if filtered out or absent)."""
        matches = self._proxy.match(
            self._proxy.index(0, 0), Role.APP_ID, app_id, 1, Qt.MatchFlag.MatchExactly
        )
        if not matches:
            return QModelIndex()
        return matches[0].siblingAtColumn(column)

    def expanded_app_ids(self) -> list[str]:
        """Applications whose rows are open: their connections are wanted."""
        return list(self._expanded_ids)

    def is_expanded(self, app_id: str) -> bool:
        return app_id in self._expanded_ids

    def limit_control(self, app_id: str, direction: Direction) -> LimitControl | None:
        """The real LimitControl of a row, opened (and kept open) on demand."""
        column = Column.DOWN_LIMIT if direction is Direction.DOWN else Column.UP_LIMIT
        index = self.proxy_index(app_id, column)
        if not index.isValid():
            return None
        self.scrollTo(index)
        self._open_editor(index, pinned=True)
        widget = self.indexWidget(index)
        return widget if isinstance(widget, LimitControl) else None

    def set_limits_blocked(self, reason: str) -> None:
        """Disable every limit control, saying why ("" enables them)."""
        self.limit_delegate.blocked_reason = reason
        for persistent in self._open:
            widget = self.indexWidget(_plain(persistent))
            if isinstance(widget, LimitControl):
                widget.set_blocked(reason)
        self.viewport().update()

    def set_stale(self, stale: bool) -> None:
        """Grey the selected row's text too while the numbers are not live."""
        palette = self.palette()
        group = QPalette.ColorGroup.Disabled if stale else QPalette.ColorGroup.Active
        for target in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
            palette.setColor(
                target,
                QPalette.ColorRole.HighlightedText,
                palette.color(group, QPalette.ColorRole.Text),
            )
        self.setPalette(palette)

    def refresh_editors(self) -> None:
        """Push model values into open editors (units changed, limits confirmed)."""
        for persistent in self._open:
            index = _plain(persistent)
            widget = self.indexWidget(index)
            if widget is not None:
                self.limit_delegate.setEditorData(widget, index)

    def dataChanged(
        self,
        top_left: QModelIndex | QPersistentModelIndex,
        bottom_right: QModelIndex | QPersistentModelIndex,
        roles: Sequence[int] = (),
    ) -> None:
        """QTreeView ignores dataChanged, editors included, while a layout is
        pending: in a poll that also added or removed a row, a limit changed
        elsewhere reached the cell but not the open LimitControl in it. A process
        row spans the row until its own rates come (ListProcesses)."""
        super().dataChanged(top_left, bottom_right, list(roles))
        parent = top_left.parent()
        if parent.isValid() and self.isExpanded(parent):
            self._span_processes(QModelIndex(parent))
        if bottom_right.column() < _FIRST_LIMIT_COLUMN or top_left.column() > _LAST_LIMIT_COLUMN:
            return  # the rates every poll: no limit in the range
        rows, parent = range(top_left.row(), bottom_right.row() + 1), top_left.parent()
        for persistent in self._open:
            index = _plain(persistent)
            widget = self.indexWidget(index)
            if widget is not None and index.row() in rows and index.parent() == parent:
                self.limit_delegate.setEditorData(widget, index)

    # --- pointer tracking -------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._shown_under = QCursor.pos()

    def _pointer_moved(self) -> bool:
        """Whether the pointer has moved since the list was shown. A window that
        opens (or comes back from the tray) under a resting pointer gets an
        enter event with no one reaching for a row: under Xvfb at 2x the list
        opened held, Backup Server at 2.88 MB/s below Parcel Updates at 1.73,
        until the pointer left it. The first move holds it."""
        if self._shown_under is not None and QCursor.pos() == self._shown_under:
            return False
        self._shown_under = None
        return True

    def enterEvent(self, event: QEnterEvent) -> None:
        """The pointer came over the list, its column titles or scroll bars."""
        if self._pointer_moved():
            self._hold_order()
        super().enterEvent(event)

    def leaveEvent(self, event: QEvent) -> None:
        super().leaveEvent(event)
        self._release_unless_held()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is not self.viewport() and isinstance(watched, QWidget):
            kind = event.type()  # a limit control's (_open_editor)
            if kind == QEvent.Type.MouseButtonPress:
                self._shown_under = None  # a press reaches for it, moved or not
            if kind in _REACHING and not self._proxy.frozen and self._pointer_moved():
                self._hold_order()
            return super().eventFilter(watched, event)
        if watched is self.viewport():
            kind = event.type()
            if kind == QEvent.Type.Enter and self._pointer_moved():
                self._hold_order()
            elif kind == QEvent.Type.Leave and QApplication.activePopupWidget() is not None:
                pass  # to a menu opened over the rows: they hold until it is gone
            elif kind == QEvent.Type.Leave:
                # to the column titles, a scroll bar or out of the list: only
                # the last lets the order go (_release_unless_held)
                self._hover_row = QPersistentModelIndex()
                self._sync_editors()
                self._release_unless_held()
            elif kind == QEvent.Type.MouseMove and isinstance(event, QMouseEvent):
                if not self._proxy.frozen and self._pointer_moved():
                    self._hold_order()
                index = self.indexAt(event.position().toPoint())
                row = index.siblingAtColumn(0) if index.isValid() else QModelIndex()
                if _plain(self._hover_row) != row:
                    self._hover_row = QPersistentModelIndex(row)
                    self._sync_editors()
        return super().eventFilter(watched, event)

    def _hold_order(self) -> None:
        """The pointer is over the rows: keep them where they are. Held also
        while it rests: released after a rest (3 s, until gui28), the list
        re-sorted under a pointer the user had kept on a row, and a right click
        then opened the menu of the application that had moved there."""
        self._proxy.set_frozen(True)
        if not self._hold_timer.isActive():
            self._hold_timer.start()

    def pointer_over(self) -> bool:
        """Whether the pointer is over the list: its rows, a row's limit control,
        the column titles or a scroll bar, and not over a window above it. Qt's
        own enter and leave bookkeeping (WA_UnderMouse, on the list and every
        parent of the widget under the pointer): it holds on Wayland too, where
        a window's place on the screen (QApplication.widgetAt) is not known.
        Not while the list is hidden (closed to the tray): a platform that sends
        no leave event then would hold it till the pointer came back (review28)."""
        return self.isVisible() and self.underMouse()

    def order_held(self) -> bool:
        """Whether the rows must hold still now: the pointer is over them, a
        menu opened over them is open (the row it was opened on stays under
        it), a limit control in them is in use, or a button is down (a drag)."""
        return (
            self.pointer_over()
            or QApplication.activePopupWidget() is not None
            or self._in_use()
            or QApplication.mouseButtons() != Qt.MouseButton.NoButton
        )

    def _in_use(self) -> bool:
        """A limit control being worked: its slider dragged, a key's change
        settling, text typed in its field and not yet entered. Its keyboard
        focus alone is not: a slider keeps it after a drag, and one released
        outside the window held the list still until the user clicked
        elsewhere in it (review28, Xvfb)."""
        return any(
            isinstance(widget := self.indexWidget(_plain(p)), LimitControl) and widget.is_editing()
            for p in self._open
        )

    def _release_unless_held(self) -> None:
        """Let the rows follow the traffic again (at once) if nothing holds them."""
        if not self._proxy.frozen:
            self._hold_timer.stop()
        elif not self.order_held():
            self._hold_timer.stop()
            self._proxy.set_frozen(False)
        elif not self._hold_timer.isActive():
            self._hold_timer.start()

    def _busy(self, widget: QWidget | None) -> bool:
        """An editor the user is working in must not be closed under them."""
        if not isinstance(widget, LimitControl):
            return False
        focus = QApplication.focusWidget()
        return widget.is_editing() or (focus is not None and widget.isAncestorOf(focus))

    def _wanted_rows(self) -> list[QModelIndex]:
        rows = []
        for candidate in (_plain(self._hover_row), self.currentIndex()):
            if candidate.isValid() and not candidate.parent().isValid():
                rows.append(candidate.siblingAtColumn(0))
        return rows

    def _sync_editors(self) -> None:
        """Open editors on the hovered and current rows; close the rest unless in use."""
        wanted = {row.row() for row in self._wanted_rows()}
        keep: list[QPersistentModelIndex] = []
        for persistent in self._open:
            index = _plain(persistent)
            if not index.isValid():
                continue
            if (
                index.row() in wanted
                or persistent in self._pinned
                or self._busy(self.indexWidget(index))
            ):
                keep.append(persistent)
            else:
                self.closePersistentEditor(index)
        self._open = keep
        for row in self._wanted_rows():
            for column in LIMIT_COLUMNS:
                self._open_editor(row.siblingAtColumn(column), pinned=False)
        self._chain_current_editors()

    def _chain_current_editors(self) -> None:
        """Tab from the table goes to the current row's limits, then on as before:
        table, down slider, down field, up slider, up field, the rest of the window."""
        current = self.currentIndex()
        if not current.isValid() or current.parent().isValid():
            return
        previous: QWidget = self
        for column in LIMIT_COLUMNS:
            control = self.indexWidget(current.siblingAtColumn(column))
            if not isinstance(control, LimitControl):
                return
            for part in (control.slider, control.field):
                QWidget.setTabOrder(previous, part)
                previous = part

    def _open_editor(self, index: QModelIndex, pinned: bool) -> None:
        persistent = QPersistentModelIndex(index)
        if pinned and persistent not in self._pinned:
            self._pinned.append(persistent)
        if persistent in self._open:
            return
        self.openPersistentEditor(index)
        self._open.append(persistent)
        # The pointer reaching a row's limit control holds the rows too: it can come
        # there without a move over the rows themselves (the viewport's events), the
        # list shown under it (gui33, XTest: a drag on Harbor Browser's slider, then
        # Media Server moved under the resting pointer and took the limit typed next).
        widget = self.indexWidget(index)
        if isinstance(widget, LimitControl):
            for part in (widget, widget.slider, widget.field):
                part.installEventFilter(self)

    def _on_rows_removed(self, parent: QModelIndex, _first: int, _last: int) -> None:
        if not parent.isValid() and self._expanded_ids:  # a vanished or filtered-out one is closed
            self._expansion_changed("")

    def _expansion_changed(self, collapsed_app_id: str) -> None:
        proxy = self._proxy
        self._expanded_ids = [
            str(index.data(Role.APP_ID))
            for index in (proxy.index(row, 0) for row in range(proxy.rowCount()))
            if self.isExpanded(index)
        ]
        self.expansionChanged.emit(collapsed_app_id)

    def _span_processes(self, parent: QModelIndex) -> None:
        for row in range(self._proxy.rowCount(parent)):
            whole = bool(self._proxy.index(row, 0, parent).data(Role.WHOLE_ROW))
            if whole != self.isFirstColumnSpanned(row, parent):
                self.setFirstColumnSpanned(row, parent, whole)

    def _forget_invalid(self) -> None:
        self._open = [p for p in self._open if p.isValid()]
        self._pinned = [p for p in self._pinned if p.isValid()]
