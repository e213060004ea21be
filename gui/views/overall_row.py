"""The overall row: "All applications" with the machine's totals, under the
column titles.

It is part of the table's header, not a row of the model: so no sort order or
filter can move it away, it lines up with the columns as they are resized, and
the model's sorting, filtering, limits and connections need no special case.
Clicks on it do nothing (they would sort); clicks on the titles sort as before.
"""

from __future__ import annotations

from chadthrottle.gui.models.applications import total_text
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.models.history import RateHistory
from chadthrottle.gui.views.delegates import row_height
from chadthrottle.gui.views.sort_arrow import arrow_for
from chadthrottle.gui.widgets.sparkline import SPARKLINE_SAMPLES, paint_sparkline
from chadthrottle.units import UnitSystem, format_size
from PySide6.QtCore import QAbstractItemModel, QEvent, QRect, QRectF, QSize, Qt
from PySide6.QtGui import (
    QFont,
    QFontMetrics,
    QHelpEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
)
from PySide6.QtWidgets import (
    QApplication,
    QHeaderView,
    QProxyStyle,
    QStyle,
    QStyleFactory,
    QStyleOption,
    QStyleOptionHeader,
    QToolTip,
    QWidget,
)

OVERALL_NAME = "All applications"
OVERALL_INDENT = 28  # the name's indent: in line with the names under it
# The overall row gives way on a list too short to show this many rows under it
# (at 2x on a 1366x768 screen): there the ▼/▲ totals at the top say the same.
ROWS_WANTED_UNDER = 3
# What a poll changes in the overall row (the totals column changes with GetUsage).
POLL_COLUMNS = (Column.DOWN, Column.UP, Column.ACTIVITY)


# Room between a title and its column's sort arrow.
ARROW_GAP = 3


class TitlesClearOfArrow(QProxyStyle):
    """The header's style, with each title's room ending before the sort arrow:
    Fusion's label rectangle runs 3 px under its arrow, so a right-aligned
    title ("Down", "Up") touched the arrow when sorted by, and a centred one at
    its least width ("Activity" at 2x on 1366x768) too."""

    def subElementRect(
        self, element: QStyle.SubElement, option: QStyleOption, widget: QWidget | None = None
    ) -> QRect:
        rect = super().subElementRect(element, option, widget)  # type: ignore[arg-type]
        if (
            element == QStyle.SubElement.SE_HeaderLabel
            and isinstance(option, QStyleOptionHeader)
            and option.sortIndicator != QStyleOptionHeader.SortIndicator.None_
        ):
            arrow = super().subElementRect(QStyle.SubElement.SE_HeaderArrow, option, widget)  # type: ignore[arg-type]
            if arrow.isValid() and arrow.center().x() > rect.center().x():  # arrow on the right
                rect.setRight(min(rect.right(), arrow.left() - ARROW_GAP))
        return rect

    def drawControl(
        self,
        element: QStyle.ControlElement,
        option: QStyleOption,
        painter: QPainter,
        widget: QWidget | None = None,
    ) -> None:
        """A sorted title drawn in the room subElementRect gives it: the base
        style's CE_Header asks its own subElementRect, not this one, so "Down"
        was still drawn under its arrow on screen (walk26, 1366x768 at 1x)."""
        if (
            element != QStyle.ControlElement.CE_Header
            or not isinstance(option, QStyleOptionHeader)
            or option.sortIndicator == QStyleOptionHeader.SortIndicator.None_
        ):
            super().drawControl(element, option, painter, widget)  # type: ignore[arg-type]
            return
        painter.save()
        painter.setClipRect(option.rect)
        self.drawControl(QStyle.ControlElement.CE_HeaderSection, option, painter, widget)
        part = QStyleOptionHeader(option)
        part.rect = self.subElementRect(QStyle.SubElement.SE_HeaderLabel, option, widget)
        if part.rect.isValid():
            self.drawControl(QStyle.ControlElement.CE_HeaderLabel, part, painter, widget)
        part.rect = self.subElementRect(QStyle.SubElement.SE_HeaderArrow, option, widget)
        self.drawPrimitive(QStyle.PrimitiveElement.PE_IndicatorHeaderArrow, part, painter, widget)
        painter.restore()


class OverallHeader(QHeaderView):
    """Column titles above, the overall row below them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.history = RateHistory()  # the totals, one sample per poll
        self.totals: tuple[float | None, float | None] = (0.0, 0.0)  # None: not known ("…")
        self.units = UnitSystem.BYTES_DECIMAL
        self.live = True
        self._dirty = QRect()  # what the paint under way repaints
        self.overall_shown = True
        # Every application's bytes over the totals column's period; None: not known.
        self.usage_bytes: int | None = None
        self.usage_placeholder = ""  # what stands there while not known ("—": no history)
        self._title_height = 0  # 0: to be measured (the titles' font, style or texts changed)
        self._laid_out_for: tuple[int, ...] = ()  # what the last updateGeometries laid out
        # A title wider than its column ("Activity" and the sort arrow at 2x on a
        # 1366x768 screen) ends in "…" rather than being cut at both edges.
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self._titles_style: TitlesClearOfArrow | None = None
        self.follow_style()

    def follow_style(self) -> None:
        """The application's style (again, after a theme was chosen), its titles
        clear of the sort arrow. Over a new instance of that style: given the
        application's own, QProxyStyle would take ownership of it."""
        style = QApplication.style()
        while not style.name() and isinstance(style, QProxyStyle):  # ours: OutlinedFusion
            style = style.baseStyle()
        base = QStyleFactory.create(style.name())
        old, self._titles_style = self._titles_style, TitlesClearOfArrow(base)
        self._titles_style.setParent(self)
        self.setStyle(self._titles_style)
        self._forget_title_height()
        if old is not None:
            old.deleteLater()

    def add_sample(self, down_bps: float, up_bps: float) -> None:
        """One poll's totals (the activity column's last minute)."""
        self.history.append(down_bps, up_bps)

    def show_totals(
        self, down_bps: float | None, up_bps: float | None, units: UnitSystem, live: bool
    ) -> None:
        """Repaint the overall row's rates and activity (a poll); all of it when
        the units or liveness changed (the titles stay as they are)."""
        everything = (units, live) != (self.units, self.live)
        self.totals, self.units, self.live = (down_bps, up_bps), units, live
        if everything:
            self.viewport().update(self.overall_rect())
            return
        # Down, Up and Activity sit side by side: one rect, four fewer sections
        # painted each poll (the name and the limit columns do not change).
        row = self.overall_rect()
        spans = [(self.sectionViewportPosition(column), self.sectionSize(column))
                 for column in POLL_COLUMNS if not self.isSectionHidden(column)]  # fmt: skip
        if spans:
            left = min(x for x, _w in spans)
            right = max(x + w for x, w in spans)
            self.viewport().update(QRect(left, row.top(), right - left, row.height()))

    def show_usage_total(self, total_bytes: int | None, placeholder: str = "") -> None:
        """Every application's bytes in the totals column (None: not known)."""
        self.usage_bytes, self.usage_placeholder = total_bytes, placeholder
        self.viewport().update(self.overall_rect())

    def overall_text(self, column: Column) -> str:
        """What a column of the overall row says (for tests and screen readers)."""
        if column is Column.NAME:
            return OVERALL_NAME
        if column is Column.DOWN:
            return total_text(self.totals[0], self.units, self.live)
        if column is Column.UP:
            return total_text(self.totals[1], self.units, self.live)
        if column is Column.USAGE:
            return (
                self.usage_placeholder
                if self.usage_bytes is None
                else format_size(self.usage_bytes, self.units)
            )
        return ""

    def title_height(self) -> int:
        """The titles' height, measured once: QHeaderView's sizeHint asks every
        section's header data, and this is wanted for every section painted."""
        if not self._title_height:
            self._title_height = super().sizeHint().height()
        return self._title_height

    def _forget_title_height(self) -> None:
        self._title_height = 0

    def setModel(self, model: QAbstractItemModel | None) -> None:
        super().setModel(model)
        self._forget_title_height()
        if model is not None:  # a title's text changed: measured again
            model.headerDataChanged.connect(self._forget_title_height)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._forget_title_height()
        super().changeEvent(event)

    # The table lays out its rows again after every re-sort (each poll), and
    # QTreeView then lays out its header too: QHeaderView repaints every title
    # each time although no column moved. Only what can change the columns
    # (their count, hidden ones, the header's size) is passed on.

    def doItemsLayout(self) -> None:
        model = self.model()
        if model is None or self.count() != model.columnCount():
            super().doItemsLayout()  # the sections themselves must be made
            return
        self.updateGeometries()

    def updateGeometries(self) -> None:
        laid_out_for = (self.width(), self.height(), self.count(), self.hiddenSectionCount())
        if laid_out_for != self._laid_out_for:
            self._laid_out_for = laid_out_for
            super().updateGeometries()

    def overall_rect(self) -> QRect:
        return QRect(
            0, self.title_height(), self.viewport().width(), self.height() - self.title_height()
        )

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        extra = row_height(self.fontMetrics()) if self.overall_shown else 0
        return QSize(hint.width(), hint.height() + extra)

    def fit_to_view_height(self, view_height: int) -> None:
        """Show the overall row only where the list keeps room for a few rows under it."""
        row = row_height(self.fontMetrics())
        shown = view_height >= self.title_height() + row * (1 + ROWS_WANTED_UNDER)
        if shown != self.overall_shown:
            self.overall_shown = shown
            self._laid_out_for = ()
            self.updateGeometry()
            self.geometriesChanged.emit()  # the tree view lays out its header again

    def paintEvent(self, event: QPaintEvent) -> None:
        self._dirty = event.rect()
        super().paintEvent(event)

    def initStyleOptionForIndex(self, option: QStyleOptionHeader, logicalIndex: int) -> None:
        """The sort arrow the way the rows go (sort_arrow): busiest first is ▼."""
        super().initStyleOptionForIndex(option, logicalIndex)
        option.sortIndicator = arrow_for(option.sortIndicator)

    def paintSection(self, painter: QPainter, rect: QRect, logical_index: int) -> None:
        title = QRect(rect.left(), rect.top(), rect.width(), self.title_height())
        if title.intersects(self._dirty):  # not on every poll: only the row below changes
            painter.save()
            super().paintSection(painter, title, logical_index)
            painter.restore()
        if self.overall_shown:
            row = QRect(
                rect.left(), title.bottom() + 1, rect.width(), rect.bottom() - title.bottom()
            )
            self._paint_overall(painter, row, Column(logical_index))

    def _paint_overall(self, painter: QPainter, rect: QRect, column: Column) -> None:
        palette = self.palette()
        group = QPalette.ColorGroup.Active if self.live else QPalette.ColorGroup.Disabled
        painter.save()
        painter.fillRect(
            rect, palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.AlternateBase)
        )
        painter.setPen(palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.Mid))
        painter.drawLine(rect.bottomLeft(), rect.bottomRight())
        if column is Column.ACTIVITY:
            paint_sparkline(painter, QRectF(rect).adjusted(4, 2, -4, -2), self.history.recent(SPARKLINE_SAMPLES),
                            dimmed=not self.live)  # fmt: skip
        else:
            font = QFont(self.font())
            font.setBold(column is Column.NAME)
            painter.setFont(font)
            painter.setPen(palette.color(group, QPalette.ColorRole.Text))
            align = Qt.AlignmentFlag.AlignVCenter | (
                Qt.AlignmentFlag.AlignRight
                if column in (Column.DOWN, Column.UP, Column.USAGE)
                else Qt.AlignmentFlag.AlignLeft
            )
            text_rect, text = self.overall_cell(rect, column, painter.fontMetrics())
            painter.drawText(text_rect, align, text)
        painter.restore()

    def overall_cell(self, rect: QRect, column: Column, metrics: QFontMetrics) -> tuple[QRect, str]:
        """Where a column's total goes in the overall row, and its text, cut only
        where it does not fit: with the list's own cell margin (the style's item
        text margin), so a number that fits in the rows under it fits here too
        (a margin of 6 cut '74.5 Mbit/s' at 2x)."""
        margin = self.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, self) + 1
        indent = OVERALL_INDENT if column is Column.NAME else margin
        text_rect = rect.adjusted(indent, 0, -margin, 0)
        text = metrics.elidedText(
            self.overall_text(column), Qt.TextElideMode.ElideRight, text_rect.width()
        )
        return text_rect, text

    def _on_overall(self, event: QMouseEvent) -> bool:
        return event.position().toPoint().y() >= self.title_height()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self._on_overall(event):
            event.accept()  # not a sort: the overall row is not a title
            return
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._on_overall(event):
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def viewportEvent(self, event: QEvent) -> bool:
        """The titles' tooltip (how the rows are sorted, and that a click sorts)
        on the titles only: a click on the overall row sorts nothing."""
        if (
            event.type() == QEvent.Type.ToolTip
            and isinstance(event, QHelpEvent)
            and event.pos().y() >= self.title_height()
        ):
            QToolTip.hideText()
            event.ignore()
            return True
        return super().viewportEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if self._on_overall(event):
            event.accept()
            return
        super().mouseDoubleClickEvent(event)
