"""A plain notice above the table while every limit is paused.

The limit columns still show the limits (they are kept), so without this the
window would claim limits that the kernel is not enforcing.
"""

from __future__ import annotations

from chadthrottle.gui.views.notice_frame import NoticeFrame
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QPushButton, QWidget

PAUSED_TITLE = "All limits are paused"
PAUSED_TEXT = (
    "Traffic is not limited. The limits below are kept and are enforced again when you resume."
)


class PausedNotice(NoticeFrame):
    """Shown while the helper has every limit paused; offers to resume."""

    resumeRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("pausedNotice", parent)
        self.setStyleSheet(
            "#pausedNotice { background: rgba(229, 165, 10, 0.16); border-radius: 6px; }"
        )
        self.title.setText(PAUSED_TITLE)
        self.text.setText(PAUSED_TEXT)
        self.resume_button = QPushButton("Resume limits", self)
        self.resume_button.setAccessibleName("Resume all limits")
        self.resume_button.clicked.connect(self.resumeRequested)
        self.add_button(self.resume_button)
        self.hide()

    def set_paused(self, paused: bool) -> None:
        self.setVisible(paused)
