"""The usage view's chart: one stacked bar per hour or day, the busiest
applications in colours of their own, the rest in grey as "Other".

Painted with QPainter (a few dozen rectangles, drawn when the data or the
size changes, not every poll). The palette's colours are taken at each
paint, so it reads in a dark and a light theme alike. Hovering a bar, or
moving through the bars with the arrow keys, shows what each application
moved in it (a tooltip, and the line under the chart for keyboard users).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chadthrottle.gui.models.usage_totals import OTHER_KEY, OTHER_LABEL, StackedBars
from chadthrottle.gui.views.graph_scale import nice_ceiling
from chadthrottle.units import UnitSystem, format_size
from PySide6.QtCore import QPoint, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFocusEvent,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
)
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

# Distinct in hue and lightness, and readable on a white and a near-black base.
SERIES_COLOURS = (QColor("#3584e4"), QColor("#e66100"), QColor("#26a269"),
                  QColor("#9141ac"), QColor("#c01c28"), QColor("#1c9aa8"))  # fmt: skip
OTHER_COLOUR = QColor("#9a9996")
LEFT_AXIS_ROOM = "888.8 Mbit"  # the widest tick label the left axis keeps room for


def series_colour(series: tuple[str, ...], key: str) -> QColor:
    if key == OTHER_KEY:
        return OTHER_COLOUR
    return SERIES_COLOURS[series.index(key) % len(SERIES_COLOURS)]


CHART_LINES = 6  # the chart's least height, in lines of its font


class UsageChart(QWidget):
    """Stacked bars of bytes (down + up) per slot; see the module's docstring."""

    barChosen = Signal(str)  # what the chosen bar holds, in words ("" for none)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # Six lines of text high: three scale labels and the bars' labels fit; 120 px
        # (240 at 2x) left the usage view's table 4 of 7 rows on 1366x768 at 2x (gui30).
        self.setMinimumSize(QSize(240, CHART_LINES * self.fontMetrics().height()))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAccessibleName("Data used per period, stacked by application")
        self.bars = StackedBars((), (), ())
        self.labels: list[str] = []
        self.units = UnitSystem.BYTES_DECIMAL
        self.name_of: Callable[[str], str] = lambda key: key
        self.chosen = -1  # the bar under the pointer or the keyboard's, -1 for none
        self.empty_text = "Loading…"

    def set_bars(self, bars: StackedBars, labels: list[str], units: UnitSystem,
                 name_of: Callable[[str], str]) -> None:  # fmt: skip
        # The chosen bar is a time, not a place: a week's "Sat 5" (the 7th bar) read
        # "06:00: 0 B" once Today's hours were shown. Kept where that time is a bar
        # again (the same period redrawn), else the latest while the keyboard is here.
        before = (
            self.bars.slot_starts[self.chosen]
            if 0 <= self.chosen < len(self.bars.slot_starts)
            else None
        )
        same_slots = _slot_length(self.bars.slot_starts) == _slot_length(bars.slot_starts)
        self.bars, self.labels, self.units, self.name_of = bars, labels, units, name_of
        starts = list(bars.slot_starts)
        if before is not None and same_slots and before in starts:
            self.chosen = starts.index(before)
        elif before is not None:
            self.chosen = len(starts) - 1 if self.hasFocus() and starts else -1
        self._announce()
        self.update()

    def series_name(self, key: str) -> str:
        return OTHER_LABEL if key == OTHER_KEY else self.name_of(key)

    def describe_bar(self, slot: int) -> str:
        """ "Tue 1: 1.23 GB — Firefox 800 MB, Steam 400 MB, Other 30 MB"."""
        if not 0 <= slot < len(self.bars.slot_starts):
            return ""
        # This bar's biggest first (the series are in the whole span's order), Other last.
        held = sorted(((key, value) for key, value in zip(self.bars.series, self.bars.values[slot], strict=True)
                       if value), key=lambda kv: (kv[0] == OTHER_KEY, -kv[1]))  # fmt: skip
        parts = [f"{self.series_name(key)} {self._amount(value)}" for key, value in held]
        total = self._amount(self.bars.slot_total(slot))
        return f"{self.labels[slot]}: {total}" + (" — " + ", ".join(parts) if parts else "")

    def _amount(self, value: int) -> str:
        """An amount whose number and unit stay on one line: the chosen bar's line,
        wrapped at 2x, read "Fetcher 1.16" and then "GB" on the next."""
        return format_size(value, self.units, unbroken=True)

    # --- geometry ------------------------------------------------------------------------

    def _plot_rect(self) -> QRect:
        metrics = self.fontMetrics()
        left = metrics.horizontalAdvance(LEFT_AXIS_ROOM) + 10
        return self.rect().adjusted(left, metrics.height() // 2 + 4, -8, -(metrics.height() + 8))

    def _slot_rect(self, plot: QRect, slot: int) -> QRectF:
        count = max(1, len(self.bars.slot_starts))
        width = plot.width() / count
        gap = min(width * 0.25, 8.0)
        return QRectF(plot.left() + slot * width + gap / 2, plot.top(), width - gap, plot.height())

    def slot_at(self, point: QPoint) -> int:
        plot = self._plot_rect()
        count = len(self.bars.slot_starts)
        if not count or not plot.adjusted(0, 0, 0, self.fontMetrics().height() + 8).contains(point):
            return -1
        return min(count - 1, max(0, int((point.x() - plot.left()) * count / max(1, plot.width()))))

    # --- painting ------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.WindowText)
        plot = self._plot_rect()
        if not self.bars.slot_starts or self.bars.highest <= 0:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.empty_text)
            painter.end()
            return
        top = nice_ceiling(self.bars.highest * 1.05)
        grid = QColor(text)
        grid.setAlpha(40)
        metrics = self.fontMetrics()
        for share in (0.0, 0.5, 1.0):  # three ticks: room for them on a 2x screen too
            y = round(plot.bottom() - plot.height() * share)
            painter.setPen(grid)
            painter.drawLine(plot.left(), y, plot.right(), y)
            painter.setPen(text)
            label_rect = QRect(0, y - metrics.height() // 2, plot.left() - 6, metrics.height())
            painter.drawText(label_rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                             format_size(int(top * share), self.units))  # fmt: skip
        if 0 <= self.chosen < len(self.bars.slot_starts):
            highlight = QColor(palette.color(QPalette.ColorRole.Highlight))
            highlight.setAlpha(50)
            painter.fillRect(self._slot_rect(plot, self.chosen).adjusted(-2, 0, 2, 0), highlight)
        for slot, values in enumerate(self.bars.values):
            bar = self._slot_rect(plot, slot)
            bottom = float(plot.bottom())
            for key, value in zip(self.bars.series, values, strict=True):
                if value <= 0:
                    continue
                height = plot.height() * value / top
                painter.fillRect(QRectF(bar.left(), bottom - height, bar.width(), height),
                                 series_colour(self.bars.series, key))  # fmt: skip
                bottom -= height
        self._paint_slot_labels(painter, plot, text)
        painter.end()

    def _paint_slot_labels(self, painter: QPainter, plot: QRect, colour: QColor) -> None:
        """As many labels under the bars as fit without touching, evenly spread."""
        count = len(self.labels)
        if not count:
            return
        metrics = self.fontMetrics()
        widest = max(metrics.horizontalAdvance(label) for label in self.labels) + 8
        every = max(1, -(-widest * count // max(1, plot.width())))
        painter.setPen(colour)
        for slot in range(0, count, every):
            bar = self._slot_rect(plot, slot)
            where = QRect(
                round(bar.center().x() - widest / 2), plot.bottom() + 4, widest, metrics.height()
            )
            painter.drawText(
                where, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, self.labels[slot]
            )

    # --- pointer and keys ----------------------------------------------------------------

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        slot = self.slot_at(event.position().toPoint())
        if slot != self.chosen:
            self.chosen = slot
            self._announce()
            self.update()
        if slot >= 0:
            QToolTip.showText(event.globalPosition().toPoint(), self.describe_bar(slot).replace(" — ", "\n")
                              .replace(", ", "\n"), self)  # fmt: skip
        else:
            QToolTip.hideText()

    def leaveEvent(self, event: object) -> None:
        if not self.hasFocus() and self.chosen >= 0:
            self.chosen = -1
            self._announce()
            self.update()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        count = len(self.bars.slot_starts)
        moves = {Qt.Key.Key_Left: -1, Qt.Key.Key_Right: 1}
        if count and event.key() in moves:
            step = moves[Qt.Key(event.key())]
            self.chosen = (
                count - 1 if self.chosen < 0 else min(count - 1, max(0, self.chosen + step))
            )
        elif count and event.key() in (Qt.Key.Key_Home, Qt.Key.Key_End):
            self.chosen = 0 if event.key() == Qt.Key.Key_Home else count - 1
        else:
            super().keyPressEvent(event)
            return
        self._announce()
        self.update()

    def focusInEvent(self, event: QFocusEvent) -> None:
        super().focusInEvent(event)
        if self.chosen < 0 and self.bars.slot_starts:
            self.chosen = len(self.bars.slot_starts) - 1  # the latest: today
            self._announce()
            self.update()

    def _announce(self) -> None:
        words = self.describe_bar(self.chosen)
        self.setAccessibleDescription(words)
        self.barChosen.emit(words)


def _slot_length(starts: Sequence[float]) -> float:
    """A period's bar length (a day, an hour), 0 for a single bar: a day's bar and
    the first hour of that day start at the same time."""
    return starts[1] - starts[0] if len(starts) > 1 else 0
