"""Delegates for the applications table: sparklines and limit controls.

Limits are *painted* as a slider likeness on every row (cheap for hundreds of
rows); the real LimitControl is opened as a persistent editor only on the row
under the pointer and on the current row (see ``app_table``), so it is there
the moment the user reaches for it.
"""

from __future__ import annotations

import numpy as np
from chadthrottle.contract import Direction
from chadthrottle.gui.models.columns import LIMIT_COLUMNS, Column, Role
from chadthrottle.gui.models.limit_truth import LimitState, blocked_value, shown_value
from chadthrottle.gui.widgets.limit_slider import (
    PROBLEM_COLOUR,
    SLIDER_LEAST,
    WARNING_DISABLED_OPACITY,
    LimitControl,
    fitting_line,
    fitting_note,
    problem_colour,
    slider_fits,
    warning_pixmap,
)
from chadthrottle.gui.widgets.rate_scale import position_for_rate
from chadthrottle.gui.widgets.rate_width import (
    limit_field_width,
)
from chadthrottle.gui.widgets.slider_look import paint_rate_slider, slider_option
from chadthrottle.gui.widgets.sparkline import SPARKLINE_SAMPLES, paint_sparkline
from chadthrottle.units import UnitSystem, format_rate
from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics, QGuiApplication, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

AnyIndex = QModelIndex | QPersistentModelIndex
ROW_HEIGHT = 30  # at the usual font size; rows grow with the font (the desktop's scale)
NOTE_SCALE = 0.85  # the small notes in a limit cell (whose limit, a quota's use), as LimitControl's


def row_height(metrics: QFontMetrics) -> int:
    """Room for a limit field (font + 4) and the quota line under it (0.85 of the font)."""
    return max(
        ROW_HEIGHT,
        metrics.height() + 12,
        metrics.height() + 4 + round(metrics.height() * NOTE_SCALE),
    )


LIKENESS_CACHE_SIZE = 256


def _draw_background(option: QStyleOptionViewItem, painter: QPainter) -> None:
    """The item's selection/hover background, with no text or icon.

    Only the panel primitive: the model has no background role, so the full
    initStyleOption + CE_ItemViewItem round trip (ten data() calls a cell)
    would paint the same pixels at several times the cost.
    """
    style = option.widget.style() if option.widget else QApplication.style()
    style.drawPrimitive(
        QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, option.widget
    )


_NONE_HELD = np.zeros((0, 2))  # no limit held this minute: none to draw


class SparklineDelegate(QStyledItemDelegate):
    """Paints the activity column from the row's RateHistory."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.dimmed = False
        # One (down, up) scale for every row, so rows compare (set after each poll).
        self.scale: tuple[float, float] | None = None

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: AnyIndex) -> None:
        _draw_background(option, painter)
        history = index.data(Role.HISTORY)
        if history is None:
            return
        down_limit, up_limit = index.data(Role.LIMITS)
        rect = QRectF(option.rect).adjusted(4, 2, -4, -2)
        # each sample under the limit that held it, not today's across the minute
        held = (
            history.limits(SPARKLINE_SAMPLES)
            if history.held_in_last(SPARKLINE_SAMPLES)
            else _NONE_HELD
        )
        paint_sparkline(painter, rect, history.recent(SPARKLINE_SAMPLES), down_limit, up_limit, self.dimmed,
                        self.scale, held)  # fmt: skip

    def scale_text(self, units: UnitSystem) -> str:
        """What the shared scale is, for the column's tooltip."""
        if self.scale is None:
            return ""
        return (f"The last minute, every row on one scale: download (above the line) up to "
                f"{format_rate(self.scale[0], units)}, upload (below it) up to {format_rate(self.scale[1], units)}. "
                "A marker at the edge: a limit above that.")  # fmt: skip

    def sizeHint(self, option: QStyleOptionViewItem, index: AnyIndex) -> QSize:
        return QSize(120, row_height(option.fontMetrics))


class LimitDelegate(QStyledItemDelegate):
    """Paints a limit as a slider likeness; edits it with a LimitControl."""

    limitRequested = Signal(str, str, object)  # app id, direction value, rate or None

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.units = UnitSystem.BYTES_DECIMAL
        self.blocked_reason = ""
        self._field_width: tuple[UnitSystem, int] | None = None  # for these units
        self._likenesses: dict[tuple[object, ...], QPixmap] = {}

    # --- painting ---------------------------------------------------------------------

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: AnyIndex) -> None:
        _draw_background(option, painter)
        if index.data(Role.IS_PROCESS) or index.column() not in LIMIT_COLUMNS:
            return
        view = option.widget
        if isinstance(view, QAbstractItemView) and view.indexWidget(index) is not None:
            return  # the real control is open here, and its background is see-through
        state = index.data(Role.LIMIT_STATE)
        if not isinstance(state, LimitState):
            state = LimitState(
                int(index.data(Role.LIMIT) or 0), pending=bool(index.data(Role.LIMIT_PENDING))
            )
        enabled = not self.blocked_reason and bool(option.state & QStyle.StateFlag.State_Enabled)
        ratio = painter.device().devicePixelRatioF()
        key = (option.rect.width(), option.rect.height(), ratio, state.rate_bps, state.pending, state.owner_note,
               state.read_only, bool(state.problem), enabled, self.units, state.blocked, state.note_lines,
               state.quota_switching, state.quota_then_bps, state.quota_not_holding)  # fmt: skip
        likeness = self._likenesses.get(key)
        if likeness is None:
            if len(self._likenesses) > LIKENESS_CACHE_SIZE:
                self._likenesses.clear()
            likeness = self._paint_likeness(option, state, enabled, ratio)
            self._likenesses[key] = likeness
        painter.drawPixmap(option.rect.topLeft(), likeness)

    def forget_likenesses(self) -> None:
        """The palette changed (a theme was chosen): paint them afresh."""
        self._likenesses.clear()

    def _paint_likeness(
        self, option: QStyleOptionViewItem, state: LimitState, enabled: bool, ratio: float
    ) -> QPixmap:
        """Slider likeness and limit text on a transparent pixmap, laid out like
        LimitControl: slider, whose limit it is, a warning if it is not enforced,
        the value. A read-only limit has no slider. Most rows look the same poll
        after poll, so they are drawn once and then only copied."""
        pixmap = QPixmap(option.rect.size() * ratio)
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(Qt.GlobalColor.transparent)
        local = QStyleOptionViewItem(option)
        local.rect = QRect(QPoint(0, 0), option.rect.size())
        small = QFont(option.font)
        small.setPointSizeF(max(6.0, small.pointSizeF() * NOTE_SCALE))
        quota_rect = QRect()
        lines = state.note_lines  # the quota's, else why the limit is not held
        if lines:  # a line under slider and value, as LimitControl lays it out
            line_height = QFontMetrics(small).height()
            local.rect.setBottom(local.rect.height() - line_height - 1)
        slider_rect, text_rect = self._split(local)
        room = slider_rect.width()  # beside the value, before a note or a warning takes some
        if lines:  # ending where the value above it ends, not at the cell's edge
            quota_rect = QRect(2, local.rect.bottom() + 1, text_rect.right() - 1, line_height)
        widget = option.widget
        style = widget.style() if widget else QApplication.style()
        painter = QPainter(pixmap)
        group = QPalette.ColorGroup.Active if enabled else QPalette.ColorGroup.Disabled
        if lines:
            painter.setFont(small)
            role = (
                QPalette.ColorRole.Text if state.quota_spent else QPalette.ColorRole.PlaceholderText
            )
            colour = option.palette.color(group, role)
            if state.note_is_problem and enabled:  # why it is not held: amber, as the value
                colour = QColor(problem_colour(option.palette))
            painter.setPen(colour)
            in_line = state.note_is_problem  # as LimitControl
            sign = max(10, line_height - 2)
            # its own room: reusing the slider's name drew the slider by the line's
            # width, a stub beside a quota's value at the window's least (gui30)
            line_room = quota_rect.width() - (sign + 3 if in_line else 0)
            line = fitting_line(lines, QFontMetrics(small), line_room)
            painter.drawText(
                quota_rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, line
            )
            if in_line:  # the warning before the words that say why, not in the slider's room
                left = quota_rect.right() - QFontMetrics(small).horizontalAdvance(line) - 3 - sign
                icon = QRect(left, quota_rect.center().y() - sign // 2, sign, sign)
                painter.setOpacity(1.0 if enabled else WARNING_DISABLED_OPACITY)  # as LimitControl
                painter.drawPixmap(icon, warning_pixmap(style, sign))
                painter.setOpacity(1.0)
        limited = state.held
        if state.problem and limited and not (lines and state.note_is_problem):  # beside the value
            icon = QRect(slider_rect.right() - 14, slider_rect.center().y() - 6, 14, 14)
            painter.setOpacity(1.0 if enabled else WARNING_DISABLED_OPACITY)  # as LimitControl
            painter.drawPixmap(icon, warning_pixmap(style))
            painter.setOpacity(1.0)
            slider_rect.setRight(icon.left() - 4)
        if state.owner_note:
            painter.setFont(small)
            painter.setPen(option.palette.color(group, QPalette.ColorRole.PlaceholderText))
            note_rect = QRect(slider_rect)
            note_room = slider_rect.width() - (0 if state.read_only else SLIDER_LEAST + 8)
            note = fitting_note(
                state.owner_note, QFontMetrics(small), note_room
            )  # the field keeps its room
            if not state.read_only:
                width = QFontMetrics(small).horizontalAdvance(note) + 6
                note_rect.setLeft(slider_rect.right() - width)
                slider_rect.setRight(note_rect.left() - 2)
            painter.drawText(
                note_rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, note
            )
        # a block is no rate: no slider; nor where it would be a stub (the value alone)
        if not state.read_only and not state.blocked and slider_fits(room):
            slider = slider_option(slider_rect, position_for_rate(state.rate_bps), widget)
            paint_rate_slider(painter, slider, style, widget, limited=limited, enabled=enabled)
        font = QFont(option.font)
        font.setBold(limited)
        font.setItalic(state.pending or state.quota_switching)  # on its way, as a limit asked for
        painter.setFont(font)
        if limited and state.problem:
            colour = (
                QColor(PROBLEM_COLOUR)
                if enabled
                else option.palette.color(group, QPalette.ColorRole.Text)
            )
        elif limited:
            # The slider's accent (calmer than the link blue), as the open field shows it.
            colour = QGuiApplication.palette().color(group, QPalette.ColorRole.Highlight)
        else:
            colour = option.palette.color(group, QPalette.ColorRole.PlaceholderText)
        painter.setPen(colour)
        text = shown_value(state, self.units)
        painter.drawText(
            text_rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text
        )
        painter.end()
        return pixmap

    def _split(self, option: QStyleOptionViewItem) -> tuple[QRect, QRect]:
        """Slider and text areas, matching LimitControl's own layout."""
        if self._field_width is None or self._field_width[0] != self.units:
            self._field_width = (self.units, limit_field_width(option.font, self.units))
        field_width = self._field_width[1]
        rect = option.rect.adjusted(2, 0, -2, 0)
        text_rect = QRect(
            rect.right() - field_width + 1, rect.top(), field_width - 6, rect.height()
        )
        slider_rect = QRect(rect.left(), rect.top(), rect.width() - field_width - 6, rect.height())
        return slider_rect, text_rect

    def sizeHint(self, option: QStyleOptionViewItem, index: AnyIndex) -> QSize:
        return QSize(210, row_height(option.fontMetrics))

    # --- editing -------------------------------------------------------------------------

    def createEditor(
        self, parent: QWidget, option: QStyleOptionViewItem, index: AnyIndex
    ) -> QWidget:
        direction = LIMIT_COLUMNS[Column(index.column())]
        app_id = str(index.data(Role.APP_ID))
        name = str(index.sibling(index.row(), Column.NAME).data())
        word = "Download" if direction is Direction.DOWN else "Upload"
        control = LimitControl(f"{word} limit for {name}", self.units, parent)
        control.setObjectName(f"limit:{app_id}:{direction.value}")
        control.set_blocked(self.blocked_reason)
        rate_role = Role.RATE_DOWN if direction is Direction.DOWN else Role.RATE_UP
        row = QPersistentModelIndex(index)
        control.current_rate_source = lambda: (
            float(row.data(rate_role) or 0.0) if row.isValid() else 0.0
        )
        control.limitChosen.connect(
            lambda rate_bps: self.limitRequested.emit(app_id, direction.value, rate_bps)
        )
        return control

    def setEditorData(self, editor: QWidget, index: AnyIndex) -> None:
        if isinstance(editor, LimitControl):
            editor.set_units(self.units)
            state = index.data(Role.LIMIT_STATE)
            # not blocked, the state's rate: none for a used-up quota's rate that nothing
            # holds (the open control read "100 KB/s" of it, the helper away, gui31b)
            shown = state.rate_bps if isinstance(state, LimitState) and not state.blocked else None
            editor.set_limit((int(index.data(Role.LIMIT) or 0) if shown is None else shown) or None)
            if isinstance(state, LimitState):
                tooltip = str(index.data(Qt.ItemDataRole.ToolTipRole) or "")
                editor.set_state(
                    state.owner_note,
                    state.read_only,
                    state.problem if state.rate_bps or state.blocked else "",
                    tooltip,
                    blocked=state.blocked,
                    blocked_text=blocked_value(state, self.units),
                )
                editor.set_quota_lines(
                    state.note_lines,
                    state.quota_spent,
                    problem=state.note_is_problem,
                )

    def setModelData(self, editor: QWidget, model: object, index: AnyIndex) -> None:
        """Limits travel through ``limitRequested`` to the helper, not into the model."""

    def updateEditorGeometry(
        self, editor: QWidget, option: QStyleOptionViewItem, index: AnyIndex
    ) -> None:
        editor.setGeometry(option.rect)
