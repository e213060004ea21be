"""A plain notice above the table while every limit is paused.

The limit columns still show the limits (they are kept), so without this the
window would claim limits that the kernel is not enforcing.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

PAUSED_TITLE = "All limits are paused"
PAUSED_TEXT = (
    "Traffic is not limited. The limits below are kept and are enforced again when you resume."
)


class PausedNotice(QFrame):
    """Shown while the helper has every limit paused; offers to resume."""

    resumeRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pausedNotice")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet(
            "#pausedNotice { background: rgba(229, 165, 10, 0.16); border-radius: 6px; }"
        )
        self.title = QLabel(PAUSED_TITLE, self)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.text = QLabel(PAUSED_TEXT, self)
        self.text.setWordWrap(True)
        self.resume_button = QPushButton("Resume limits", self)
        self.resume_button.setAccessibleName("Resume all limits")
        self.resume_button.clicked.connect(self.resumeRequested)
        texts = QVBoxLayout()
        texts.setSpacing(2)
        texts.addWidget(self.title)
        texts.addWidget(self.text)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.addLayout(texts, 1)
        layout.addWidget(self.resume_button, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def set_paused(self, paused: bool) -> None:
        self.setVisible(paused)
