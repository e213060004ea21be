"""The notes under the rates line, read whole: a box as tall as their lines
up to NOTES_MAX_LINES, with a scroll bar beside longer ones."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QPalette, QTextLayout
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QWidget

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
        # an empty label has no height for a width (-1): Qt warned "Negative sizes"
        whole = max(0, self.label.heightForWidth(width))
        height = whole if lines <= NOTES_MAX_LINES else whole * NOTES_MAX_LINES // lines
        if self.height() != height or self.minimumHeight() != height:
            self.setFixedHeight(height)
