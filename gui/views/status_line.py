"""The status bar: backend, helper state, number of active limits."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from chadthrottle.contract import BackendInfo
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.ipc.status_logic import backend_summary

HELPER_WORDS: dict[HelperState, str] = {
    HelperState.CONNECTING: "connecting…",
    HelperState.CONNECTED: "connected",
    HelperState.NOT_RUNNING: "reconnecting…",
    HelperState.NOT_AUTHORIZED: "not authorized",
    HelperState.NOT_INSTALLED: "not installed",
    HelperState.KERNEL_FEATURE_MISSING: "kernel feature missing",
}


class StatusLine(QStatusBar):
    """Three permanent fields; transient messages use showMessage as usual."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = QLabel(self)
        self.message.setContentsMargins(8, 0, 8, 0)
        self._message_timer = QTimer(self)
        self._message_timer.setSingleShot(True)
        self._message_timer.timeout.connect(self.message.clear)
        self.backend = QLabel("Backend: —", self)
        self.helper = QLabel("Helper: connecting…", self)
        self.limits = QLabel("No limits", self)
        for label in (self.backend, self.helper, self.limits):
            label.setContentsMargins(8, 0, 8, 0)
        self.addWidget(self.message, 1)
        self.addPermanentWidget(self.backend)
        self.addPermanentWidget(self.helper)
        self.addPermanentWidget(self.limits)

    def show_text(self, text: str, timeout_ms: int = 8000) -> None:
        """A transient message that never hides the permanent fields."""
        self.message.setText(text)
        self.message.setToolTip(text)
        self._message_timer.start(timeout_ms)

    def set_backends(self, backends: tuple[BackendInfo, ...]) -> None:
        self.backend.setText(f"Backend: {backend_summary(backends)}")
        unavailable = [f"{b.name}: {b.reason}" for b in backends if not b.available]
        self.backend.setToolTip("\n".join(unavailable) or "All backends available")

    def set_status(self, status: HelperStatus) -> None:
        self.helper.setText(f"Helper: {HELPER_WORDS[status.state]}")
        self.helper.setToolTip(status.detail)

    def set_limit_count(self, count: int, paused: bool = False) -> None:
        if count == 0:
            self.limits.setText("No limits")
        else:
            self.limits.setText(f"{count} limit{'s' * (count != 1)} {'paused' if paused else 'active'}")
