"""The usage view: what each application moved today, in 7 or 30 days or
this month, as a table and as stacked bars by hour or day (docs/gui.md,
"Data usage").

A window of its own (Ctrl+U, or the Usage button at the top of the main
window) that never talks to the helper: it emits ``periodChosen`` and is
handed the rows (``show_rows``) or told why there are none
(``show_unavailable``). Its period is its own: the main list's totals column
keeps its own, chosen on the column's title (gui/views/usage_column_menu.py).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

from chadthrottle.gui.models.usage_periods import PERIODS, UsagePeriod, slot_label, slot_starts
from chadthrottle.gui.models.usage_table import (
    APP_ID_ROLE,
    TELL_ROLE,
    UsageColumn,
    UsageTableModel,
)
from chadthrottle.gui.models.usage_totals import (
    OTHER_KEY,
    grand_total,
    stacked_bars,
    totals_by_application,
)
from chadthrottle.gui.views.name_apart_delegate import NameApartDelegate
from chadthrottle.gui.views.sort_arrow import use_honest_arrows
from chadthrottle.gui.views.usage_chart import UsageChart, series_colour
from chadthrottle.units import UnitSystem, format_size
from chadthrottle.usage_contract import UsageRow
from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeySequence, QPixmap, QResizeEvent, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

# The table's rows the view opens with where the chart can yield them (it keeps
# its least height): at 2x on 1366x768 it opened with 4.3 of 7 rows (gui30). A
# split the user chose (the handle moved) is kept instead (usage_flow.py).
TABLE_ROWS_WANTED = 6


def colour_swatch(colour: QColor, size: int) -> QPixmap:
    pixmap = QPixmap(size, size)
    pixmap.fill(colour)
    return pixmap


def _unbroken(text: str) -> str:
    """Escaped text a line does not break: no-break spaces and hyphens, and a
    word joiner after each slash (a line may break after "/" otherwise)."""
    return text.replace(" ", "&nbsp;").replace("-", "\u2011").replace("/", "/\u2060")


class UsageDialog(QDialog):
    """Totals per application over a period, and the period's stacked bars."""

    periodChosen = Signal(object)  # UsagePeriod

    def __init__(self, period: UsagePeriod, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("usageDialog")
        self.setWindowTitle("Data usage — ChadThrottle")
        self.period = period
        # What is shown (period, rows, when, names), to show again in other units.
        self.shown: tuple[UsagePeriod, tuple[UsageRow, ...], float, Callable[[str], str]] | None = (
            None
        )
        self.buttons = QButtonGroup(self)
        periods = QHBoxLayout()
        for number, (choice, info) in enumerate(PERIODS.items(), start=1):
            button = QPushButton(info.label, self)
            button.setCheckable(True)
            button.setChecked(choice is period)
            button.setToolTip(f"{info.label} (Alt+{number})")
            button.setAccessibleName(f"Show {info.label.lower()}")
            QShortcut(QKeySequence(f"Alt+{number}"), self).activated.connect(button.click)
            self.buttons.addButton(button, number - 1)
            periods.addWidget(button)
        periods.addStretch(1)
        self.buttons.idClicked.connect(self._on_period_clicked)
        self._mark_chosen()
        # The focus frame on the chosen period when the window opens: the first
        # button took it, "Today" framed beside a bold "This month" (walk28, 2x).
        self.buttons.button(list(PERIODS).index(period)).setFocus(Qt.FocusReason.OtherFocusReason)
        self.note = QLabel("Loading…", self)
        self.note.setObjectName("usage-note")
        self.note.setWordWrap(True)
        self.note.setAccessibleName("About these numbers")
        self.chart = UsageChart(self)
        self.legend = QLabel("", self)
        self.legend.setWordWrap(True)
        self.legend.setAccessibleName("Chart legend")
        self.chosen_bar = QLabel("", self)
        self.chosen_bar.setWordWrap(True)
        self.chosen_bar.setAccessibleName("The chosen bar")
        self.chart.barChosen.connect(self.chosen_bar.setText)
        self.chart.barChosen.connect(lambda _text: self._keep_room_for_legend())
        self.table_model = UsageTableModel(self)
        self.table = QTableView(self)
        self.table.setObjectName("usageTable")
        self.table.setAccessibleName("Data used by each application")
        self.table.setModel(self.table_model)
        self.table.setItemDelegateForColumn(
            UsageColumn.NAME, NameApartDelegate(APP_ID_ROLE, TELL_ROLE, self.table)
        )  # two "python3.11 (exe:/home/…" read alike, cut at the right
        use_honest_arrows(self.table)  # "Total ▼" over the largest first
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(UsageColumn.TOTAL, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(UsageColumn.NAME, QHeaderView.ResizeMode.Stretch)
        for column in (UsageColumn.DOWN, UsageColumn.UP, UsageColumn.TOTAL):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Fixed)
            # the widest value, or the title with the sort arrow beside it
            header.resizeSection(column, max(self.fontMetrics().horizontalAdvance("888.8 Gbit") + 28,
                                             header.sectionSizeHint(column) + 16))  # fmt: skip
        self.total = QLabel("", self)
        self.total.setAccessibleName("Every application's total")

        chart_box = self.chart_box = QWidget(self)
        chart_layout = QVBoxLayout(chart_box)
        chart_layout.setContentsMargins(0, 0, 0, 0)
        chart_layout.addWidget(self.chart, 1)
        chart_layout.addWidget(self.legend)
        chart_layout.addWidget(self.chosen_bar)
        self.split = QSplitter(Qt.Orientation.Vertical, self)
        self.split.setChildrenCollapsible(False)
        self.split.addWidget(chart_box)
        self.split.addWidget(self.table)
        self.split.setStretchFactor(0, 1)
        self.split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(periods)
        layout.addWidget(self.note)
        layout.addWidget(self.split, 1)
        layout.addWidget(self.total)
        self.setTabOrder(self.buttons.button(len(PERIODS) - 1), self.chart)
        self.setTabOrder(self.chart, self.table)
        self._split_chosen = False  # the user's split (moved, or restored): not fitted
        self._fit_queued = False
        self.split.splitterMoved.connect(self._on_split_moved)  # by the user's hand alone
        self._fit_to_screen()

    def _fit_to_screen(self) -> None:
        screen = self.screen()
        available = screen.availableGeometry().size() if screen is not None else None
        width, height = 760, 600
        if available is not None:
            width, height = min(width, available.width() - 16), min(height, available.height() - 40)
        self.resize(width, height)

    def restore_split(self, state: object) -> bool:
        """The split the user left (QSplitter.saveState), kept over the default."""
        if isinstance(state, QByteArray | bytes) and self.split.restoreState(QByteArray(state)):
            self._split_chosen = True
        return self._split_chosen

    def _on_split_moved(self, _position: int, _index: int) -> None:
        self._split_chosen = True

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._fit_split_soon()

    def _fit_split_soon(self) -> None:
        """Once the layout has taken the new size or lines (the legend's height
        read before it did left the table 4.6 rows, not 6), unless the user chose."""
        if not self._split_chosen and not self._fit_queued:
            self._fit_queued = True
            QTimer.singleShot(0, self, self._fit_queued_split)

    def _fit_queued_split(self) -> None:
        self._fit_queued = False
        if not self._split_chosen and self.isVisible():
            self._fit_split()

    def _fit_split(self) -> None:
        """The table as high as its rows (TABLE_ROWS_WANTED at least, half the
        split at most where it has more), the chart the rest, never under its
        least: at 1x seven rows left 200 px of empty table under a 170 px chart."""
        self._keep_room_for_legend()
        chart, table = self.split.sizes()
        total, least = chart + table, self.chart_box.minimumHeight()
        if total <= 0:
            return
        row = self.table.verticalHeader().defaultSectionSize()
        frame = self.table.horizontalHeader().sizeHint().height() + 2 * self.table.frameWidth()
        rows = self.table_model.rowCount()
        wanted = frame + row * max(TABLE_ROWS_WANTED, rows)
        fewest = frame + row * TABLE_ROWS_WANTED
        height = min(wanted, max(fewest, total // 2), max(0, total - least))
        height = max(height, self.table.minimumSizeHint().height())
        if height != table:
            self.split.setSizes([total - height, height])

    def _mark_chosen(self) -> None:
        """The chosen period in bold: a checked button alone hardly shows in
        every style (Fusion's dark palette)."""
        for button in self.buttons.buttons():
            font = button.font()
            font.setBold(button.isChecked())
            button.setFont(font)

    def _on_period_clicked(self, number: int) -> None:
        self._mark_chosen()
        # Alt+N clicks without the focus: its frame stayed on "Today" beside the
        # bold "Last 7 days" (under Xvfb at 2x), as if both were chosen.
        chosen = self.buttons.button(number)
        if self.focusWidget() in self.buttons.buttons() and not chosen.hasFocus():
            chosen.setFocus(Qt.FocusReason.ShortcutFocusReason)
        period = list(PERIODS)[number]
        if period is not self.period:
            self.period = period
            self.note.setText("Loading…")
            self.note.show()
            self.periodChosen.emit(period)

    def choose_period(self, period: UsagePeriod) -> None:
        """As a click on the period's button (tests, and the keyboard's Alt+N)."""
        self.buttons.button(list(PERIODS).index(period)).click()

    def show_rows(self, period: UsagePeriod, rows: Sequence[UsageRow], now: float,
                  name_of: Callable[[str], str], units: UnitSystem) -> None:  # fmt: skip
        """GetUsage's rows for the period at the chart's resolution: the
        table's totals are their sums, so both always agree."""
        if period is not self.period:
            return  # an answer for a period no longer shown
        self.shown = (period, tuple(rows), now, name_of)
        starts = slot_starts(period, now)
        bars = stacked_bars(rows, starts)
        self.chart.empty_text = f"Nothing was used {PERIODS[period].label.lower()}."
        self.chart.set_bars(bars, [slot_label(period, start) for start in starts], units, name_of)
        totals = totals_by_application(rows)
        size = self.fontMetrics().height() - 4
        swatches = {
            key: colour_swatch(series_colour(bars.series, key), size) for key in bars.series
        }
        self.table_model.colour_of = lambda app_id: (
            swatches.get(app_id) if app_id in bars.series else swatches.get(OTHER_KEY))  # fmt: skip
        self.table_model.set_totals(totals, name_of, units)
        # Lines break between applications, never inside a name ("Torrent Client
        # With A Long" on one line, "Name" on the next; "traffic.py (script:/tmp/"
        # and the rest of its id, walk28).
        self.legend.setText("   ".join(
            f"<span style='color:{series_colour(bars.series, key).name()}'>■</span>&nbsp;"
            f"{_unbroken(html.escape(self.chart.series_name(key)))}"
            for key in bars.series))  # fmt: skip
        self._keep_room_for_legend()
        self._fit_split_soon()  # the legend's lines came: the table keeps its rows
        down, up = grand_total(totals)
        self.total.setText(f"All applications, {PERIODS[period].label.lower()}: <b>{format_size(down + up, units)}"
                           f"</b> ({format_size(down, units)} down, {format_size(up, units)} up; on the wire, "
                           "loopback not counted)")  # fmt: skip
        self.note.hide()

    def _keep_room_for_legend(self) -> None:
        """The chart box at least the chart's least height and its legend's and
        chosen bar's wrapped lines (an empty line still takes its place): a
        QSplitter reads no height for width, gave the box the chart's least
        alone, and a legend of four lines was laid over the chart's day labels
        (walk28, 2x on 1366x768)."""
        width = self.chart_box.contentsRect().width()
        layout = self.chart_box.layout()
        spacing = max(layout.spacing(), 0) if layout is not None else 0
        needed = max(self.chart.minimumHeight(), self.chart.minimumSizeHint().height())
        for label in (self.legend, self.chosen_bar):
            needed += spacing + max(label.heightForWidth(width), label.minimumSizeHint().height())
        self.chart_box.setMinimumHeight(needed)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._keep_room_for_legend()  # narrower: more lines
        self._fit_split_soon()  # the table its rows, the chart the rest, at this size too

    def set_units(self, units: UnitSystem) -> None:
        """Show the same numbers in other units (chosen in the settings)."""
        if self.shown is not None and units is not self.table_model.units:
            period, rows, now, name_of = self.shown
            self.show_rows(period, rows, now, name_of, units)

    def show_unavailable(self, text: str) -> None:
        """No history to show: an older helper, not authorized, the helper away."""
        self.note.setText(text)
        self.note.show()
        self.chart.empty_text = "No usage history."
        self.chart.update()
