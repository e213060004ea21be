"""Labels whose text changes each poll without laying the window out again.

QLabel.setText calls updateGeometry, and that invalidates every layout up to
the window unless the label's size is fixed (QWidget::updateGeometry skips a
widget whose minimum and maximum sizes are equal). So a line of rates gets a
fixed size measured on the widest values it can show (issue 17)."""

from __future__ import annotations

from collections.abc import Iterable

from chadthrottle.units import UnitSystem, unit_label
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

UNIT_POWERS = range(5)  # B/s to TB/s: format_rate's prefixes


def widest_rates(units: UnitSystem) -> list[str]:
    """The candidates for format_rate's widest text in these units: three
    significant digits ("888", "88.8"), four below a binary step ("1023")."""
    numbers = ("888", "88.8", "8888") if units.base == 1024 else ("888", "88.8")
    return [f"{number} {unit_label(units, power)}" for number in numbers for power in UNIT_POWERS]


def widest_rate(label: QLabel, units: UnitSystem) -> str:
    """The widest of widest_rates in the label's font."""
    metrics = label.fontMetrics()
    return max(widest_rates(units), key=metrics.horizontalAdvance)


ROUNDING_PX = 4  # another text of the same digits may round a pixel or two wider


def fix_to_widest(label: QLabel, texts: Iterable[str], slack: int = 0) -> None:
    """Fix the label's size to its widest text (plain, one line), plus slack."""
    metrics = label.fontMetrics()
    margins = label.contentsMargins()
    widest = max(
        max(metrics.horizontalAdvance(text), metrics.boundingRect(text).width()) for text in texts
    )
    label.setFixedSize(
        widest + ROUNDING_PX + slack + margins.left() + margins.right(),
        metrics.height() + margins.top() + margins.bottom(),
    )


def set_selectable_text(label: QLabel, text: str) -> None:
    """setText for a label whose text can be selected (a text control draws
    it): the control lays the new text out in the label's next paint, and that
    layout asks for one more paint of the label and its parents. Measuring the
    label (minimumSizeHint) lays it out now, before the paint (issue 17)."""
    label.setText(text)
    label.minimumSizeHint()


class ClipBox(QWidget):
    """Holds a label of fixed size (fix_to_widest) and gives way: its least
    width is none, so a long line never makes the window wider than the
    screen (at 2x on 1366x768 a rates line with two limits, 624 px, made it
    719 px wide: off the screen); the owner shortens what it shows to
    room() (elided_to_room), again when it is resized."""

    resized = Signal()

    def __init__(self, label: QLabel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = label
        label.setParent(self)
        label.move(0, 0)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return self.label.size()

    def minimumSizeHint(self) -> QSize:
        return QSize(0, self.label.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self.resized.emit()

    def room(self) -> int:
        """The width the label's text has here (its own margins taken off)."""
        margins = self.label.contentsMargins()
        return max(self.width(), 0) - margins.left() - margins.right() - ROUNDING_PX


def elided_to_room(box: ClipBox, text: str) -> str:
    """The text, cut with "…" where the box gives it less room than it needs."""
    metrics = box.label.fontMetrics()
    if metrics.horizontalAdvance(text) <= box.room():
        return text
    return metrics.elidedText(text, Qt.TextElideMode.ElideRight, max(box.room(), 0))
