"""The frame of a notice above the list (the helper's state banner, the
paused notice): a bold title over a wrapped text, its button to the right."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QVBoxLayout, QWidget


class NoticeFrame(QFrame):
    """title and text stacked in texts (more lines may go under them), the
    button beside them (add_button)."""

    def __init__(self, object_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel(self)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.text = QLabel(self)
        self.text.setWordWrap(True)
        self.texts = QVBoxLayout()
        self.texts.setSpacing(2)
        self.texts.addWidget(self.title)
        self.texts.addWidget(self.text)
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(12, 8, 12, 8)
        self._row.addLayout(self.texts, 1)

    def add_button(self, button: QWidget) -> None:
        """The notice's action, at the right, level with the title."""
        self._row.addWidget(button, 0, Qt.AlignmentFlag.AlignTop)
