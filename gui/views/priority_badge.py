"""The name cell with a small priority badge at its right end (issue 16).

Normal shows nothing, so a list without priorities looks as before and costs
one data() call a painted name cell more. A badge is a small rounded pill:
filled in the priority's colour while in force; outlined, in amber with a
warning sign, when the helper says it is not in force (never shown as in
force), and in italics with "…" while asked for and not yet confirmed. Where
the whole word does not fit after the whole name (2x on a small screen), the
word goes on a small line under the name, as a limit cell's quota line does,
rather than being cut to "Crit".
"""

from __future__ import annotations

from typing import NamedTuple

from chadthrottle.app_names import name_of_apart
from chadthrottle.contract import ConnectionInfo
from chadthrottle.gui.models.columns import Role
from chadthrottle.gui.models.connections import fitted_connection_label
from chadthrottle.gui.models.name_cut import fitted_keeping_end, fitted_name_apart
from chadthrottle.gui.models.priority_view import PriorityState
from chadthrottle.gui.widgets.limit_slider import problem_colour
from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPen
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

AnyIndex = QModelIndex | QPersistentModelIndex
# Readable with white text on light and dark rows alike.
COLOURS: dict[str, str] = {
    "critical": "#c0392b",
    "high": "#2c6fbb",
    "low": "#6b7280",
    "normal": "#6b7280",
}
MARGIN = 6


SHORT_LETTERS = 4  # "Crit": High and Low stay whole; one letter read as nothing (gui31b G2)
UNDER_SCALE = 0.85  # the line under the name: as a limit cell's notes (delegates.NOTE_SCALE)


class Badge(NamedTuple):
    """Where and how a cell shows its priority: a pill after the name, or a
    line under it (under: then width is the line's)."""

    text: str
    width: float
    under: bool = False
    plain: bool = False  # the word after the name with no pill round it


def badge_text(state: PriorityState, short: bool = False) -> str:
    """ "Critical", "⚠ High" (not in force), "Low…" (asked for); short, for a
    narrow column (2x on a small screen): "Crit", "⚠ High", "Low…"."""
    text = (state.label[:SHORT_LETTERS] if short else state.label) + ("…" if state.pending else "")
    return f"⚠ {text}" if state.problem else text


def word_colour(option: QStyleOptionViewItem, state: PriorityState) -> QColor:
    """A badge's word with no pill (after the name or under it): the
    priority's colour, amber while not in force, lighter on a dark theme."""
    if state.problem:
        return QColor(problem_colour(option.palette))
    colour = QColor(COLOURS.get(state.priority, COLOURS["normal"]))
    if option.palette.base().color().lightness() < 128:  # a dark theme: lighter
        colour = colour.lighter(160)
    return colour


def badge_font(font: QFont, state: PriorityState) -> QFont:
    """The pill's font: smaller than the name's; bold in force, italic while asked for."""
    small = QFont(font)
    small.setPointSizeF(max(6.0, small.pointSizeF() * 0.8))
    small.setBold(state.in_force)
    small.setItalic(state.pending)
    return small


def under_font(font: QFont, state: PriorityState) -> QFont:
    """The line under the name: as a limit cell's notes, bold in force."""
    small = badge_font(font, state)
    small.setPointSizeF(max(6.0, font.pointSizeF() * UNDER_SCALE))
    return small


class NameDelegate(QStyledItemDelegate):
    """Icon and name as Qt paints them, then the badge where there is one; a
    connection row's label cut so that its far end stays whole, as is the id
    of a name told apart by it and a process row's pid."""

    def initStyleOption(self, option: QStyleOptionViewItem, index: AnyIndex) -> None:
        super().initStyleOption(option, index)
        connection = index.data(Role.CONNECTION)
        if isinstance(connection, ConnectionInfo):
            option.text = fitted_connection_label(
                connection, self.text_room(option), QFontMetricsF(option.font).horizontalAdvance
            )
        elif index.data(Role.IS_PROCESS) and " (pid " in option.text:  # its pid whole
            option.text = fitted_keeping_end(
                option.text, option.text.rindex(" (pid "), self.text_room(option),
                QFontMetricsF(option.font).horizontalAdvance,
            )  # fmt: skip
        elif isinstance(app_id := index.data(Role.APP_ID), str) and name_of_apart(option.text, app_id) is not None:  # fmt: skip
            option.text = fitted_name_apart(
                option.text, app_id, self.text_room(option),
                QFontMetricsF(option.font).horizontalAdvance, index.data(Role.TELL),
            )  # fmt: skip

    @staticmethod
    def text_room(option: QStyleOptionViewItem) -> float:
        """The width Qt draws a cell's text in (its rect less the text margins)."""
        style = option.widget.style() if option.widget else QApplication.style()
        margin = style.pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, option.widget) + 1
        text = style.subElementRect(QStyle.SubElement.SE_ItemViewItemText, option, option.widget)
        return float(text.width() - 2 * margin)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: AnyIndex) -> None:
        state = index.data(Role.PRIORITY)
        if not isinstance(state, PriorityState):
            super().paint(painter, option, index)
            return
        font = badge_font(option.font, state)
        metrics = QFontMetricsF(font)
        height = metrics.height() + 4
        rect = option.rect
        chosen = self.badge_fitted(option, index, state, metrics)
        if chosen is None:
            super().paint(painter, option, index)
            return
        text, width, under, plain = chosen
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawPrimitive(
            QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, option.widget
        )
        if under:
            self._paint_under(painter, option, index, state, text)
            return
        name = QStyleOptionViewItem(option)
        name.rect = rect.adjusted(0, 0, -int(width) - MARGIN, 0)
        super().paint(painter, name, index)
        # Just after the name; at the cell's end only when the name needs the room
        # (maximized, a badge at the far end read as the Down column's).
        left = min(self._name_end(name, index) + MARGIN, rect.right() - width - MARGIN / 2)
        pill = QRectF(left, rect.center().y() - height / 2 + 0.5, width, height)
        if plain:  # the word alone, in the line of the name, as the line under would say it
            painter.save()
            painter.setFont(font)
            painter.setPen(word_colour(option, state))
            name_line = QFontMetricsF(option.font)  # on the name's baseline, as Qt centres it
            baseline = rect.top() + (rect.height() - name_line.height()) / 2 + name_line.ascent()
            painter.drawText(QPointF(left, baseline), text)
            painter.restore()
            return
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setFont(font)
        colour = QColor(COLOURS.get(state.priority, COLOURS["normal"]))
        if state.in_force:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(colour)
            painter.drawRoundedRect(pill, height / 2, height / 2)
            painter.setPen(QColor("white"))
        else:  # outlined: asked for, or not in force (then amber)
            colour = QColor(problem_colour(option.palette)) if state.problem else colour
            painter.setPen(
                QPen(colour, 1.2, Qt.PenStyle.DashLine if state.problem else Qt.PenStyle.SolidLine)
            )
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(pill.adjusted(0.5, 0.5, -0.5, -0.5), height / 2, height / 2)
            painter.setPen(colour)
        painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()

    def _paint_under(self, painter: QPainter, option: QStyleOptionViewItem, index: AnyIndex,
                     state: PriorityState, text: str) -> None:  # fmt: skip
        """The priority's word on a small line at the cell's foot, from where the
        name starts: in the priority's colour (bold in force), amber with its "⚠"
        while not in force, italic while asked for. The name (and icon) over it,
        raised from where every row has its name only as far as its descenders
        need to clear the word's capitals: 2-3 px at 2x; centred in the cell's
        upper part they stood 6.5 px above the other rows' names (gui33, gui34)."""
        small = under_font(option.font, state)
        word, name_metrics = QFontMetricsF(small), QFontMetricsF(option.font)
        line = word.height()
        rect = option.rect
        word_top = rect.top() + rect.height() - line
        centred = (rect.height() - name_metrics.height()) / 2  # the name's top in other rows
        clear = word_top + word.ascent() - word.capHeight() - name_metrics.height() - rect.top()
        name_top = max(0.0, min(centred, clear))
        name = QStyleOptionViewItem(option)
        # Qt centres the name (and icon) in the rect it is given: one centred on name_top's line
        name.rect = rect.adjusted(
            0, 0, 0, -rect.height() + round(2 * name_top + name_metrics.height())
        )
        super().paint(painter, name, index)
        left = self._text_left(option, index)
        where = QRectF(left, word_top, rect.right() - left, line)
        painter.save()
        painter.setFont(small)
        painter.setPen(word_colour(option, state))
        painter.drawText(
            where, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), text
        )
        painter.restore()

    def shown_badge(self, option: QStyleOptionViewItem, index: AnyIndex) -> Badge | None:
        """The badge as paint() shows it in this cell (None: none)."""
        state = index.data(Role.PRIORITY)
        if not isinstance(state, PriorityState):
            return None
        return self.badge_fitted(
            option, index, state, QFontMetricsF(badge_font(option.font, state))
        )

    def badge_fitted(self, option: QStyleOptionViewItem, index: AnyIndex, state: PriorityState,
                     metrics: QFontMetricsF) -> Badge | None:  # fmt: skip
        """The badge in this cell, None for none: the whole word where it fits
        after the whole name; else the whole word on a line under the name where
        the row has the height for both (at 2x on 1366x768 the name column has 164
        px, "Relay Chat" and its pill need 173: it read "Crit" until gui33, and the
        sliders beside cannot give the room); else the short one after the name;
        where none of that fits, the whole word while the name keeps three rows'
        height, the short one while it keeps two (the name needs the room more).
        Until gui31b the short one was taken by the rule of room alone: at 2x on
        1366x768 "Relay Chat C"."""
        rect, height = option.rect, metrics.height() + 4
        forms = [badge_text(state), badge_text(state, short=True)]
        widths = [metrics.horizontalAdvance(forms[0]) + 12,
                  max(height, metrics.horizontalAdvance(forms[1]) + 10)]  # fmt: skip
        name_end = self._name_end(option, index)
        if name_end + MARGIN + widths[0] + MARGIN / 2 <= rect.right():
            return Badge(forms[0], widths[0])
        # the word with no pill round it, in the name's line: at 2x on 1366x768
        # "Relay Chat" and its pill need 173 px of 164, the word alone 161; under
        # the name (below) the name is raised 3 px off the other rows' line (gui36)
        word = metrics.horizontalAdvance(forms[0])
        if name_end + MARGIN + word + MARGIN / 2 <= rect.right():
            return Badge(forms[0], word, plain=True)
        small = QFontMetricsF(under_font(option.font, state))
        name_line = QFontMetricsF(option.font).height()
        if rect.height() >= name_line + small.height() + 1:
            width = small.horizontalAdvance(forms[0])
            if self._text_left(option, index) + width <= rect.right():
                return Badge(forms[0], width, under=True)
        if name_end + MARGIN + widths[1] + MARGIN / 2 <= rect.right():
            return Badge(forms[1], widths[1])
        for text, width, rows in zip(forms, widths, (3, 2), strict=True):
            if rect.width() - width - MARGIN >= rect.height() * rows:
                return Badge(text, width)
        return None

    def _text_left(self, option: QStyleOptionViewItem, index: AnyIndex) -> float:
        """Where the name's text starts (after the icon), in the view."""
        return self._name_span(option, index)[0]

    def _name_end(self, option: QStyleOptionViewItem, index: AnyIndex) -> float:
        """Where the painted name's text ends (icon and margins in), in the view."""
        return self._name_span(option, index)[1]

    def _name_span(self, option: QStyleOptionViewItem, index: AnyIndex) -> tuple[float, float]:
        laid = QStyleOptionViewItem(option)
        self.initStyleOption(laid, index)
        style = laid.widget.style() if laid.widget else QApplication.style()
        text = style.subElementRect(QStyle.SubElement.SE_ItemViewItemText, laid, laid.widget)
        left = (
            text.left()
            + style.pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, laid.widget)
            + 1
        )
        return left, left + QFontMetricsF(laid.font).horizontalAdvance(laid.text)
