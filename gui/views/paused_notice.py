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
RESUME = "Resume limits"
# Said at the click, until the helper answers (it asks polkit and sets every limit
# again): under Xvfb at load 9 the notice stayed as it was for 1.1 s after a click
# (gui33), which read as a click not taken.
RESUMING = "Resuming…"


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
        self.resume_button = QPushButton(RESUME, self)
        self.resume_button.setAccessibleName("Resume all limits")
        # As wide as its widest word: no jump of the text beside it at the click.
        self.resume_button.setMinimumWidth(
            max(self.resume_button.sizeHint().width(),
                self.resume_button.fontMetrics().horizontalAdvance(RESUMING) + 24)
        )  # fmt: skip
        self.resume_button.clicked.connect(self._on_resume)
        self.add_button(self.resume_button)
        self.hide()

    def _on_resume(self) -> None:
        """Say at once that the resume is asked; the notice goes at the answer."""
        self.resume_button.setText(RESUMING)
        self.resume_button.setEnabled(False)
        self.resumeRequested.emit()

    def set_paused(self, paused: bool) -> None:
        """The helper's state (also after a refused resume: the button again)."""
        self.setVisible(paused)
        self.resume_button.setText(RESUME)
        self.resume_button.setEnabled(True)
