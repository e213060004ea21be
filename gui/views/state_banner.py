"""A calm banner above the table that explains a helper problem once.

One banner, updated in place, never a stack of dialogs: the helper stopped
(restarting or not) shows "reconnecting…"; not installed shows the one install command; not
authorized explains the disabled limit controls and offers to ask again.
"""

from __future__ import annotations

from chadthrottle.gui.ipc.error_text import INSTALL_COMMAND
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.views.notice_frame import NoticeFrame
from chadthrottle.helper_run_state import CLEAN_DETAIL, KILLED_DETAIL, KILLED_PAUSED_DETAIL
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

TITLES: dict[HelperState, str] = {
    HelperState.CONNECTING: "Connecting to the ChadThrottle helper…",
    HelperState.NOT_RUNNING: "The helper is not running — reconnecting…",
    HelperState.NOT_AUTHORIZED: "Not authorized",
    HelperState.NOT_INSTALLED: "The ChadThrottle helper is not installed",
    HelperState.KERNEL_FEATURE_MISSING: "Limits are unavailable on this kernel",
}

NOTHING_ENFORCED = "No limit is enforced until it is back, and the numbers are greyed."
# Away this long, "usually back within seconds" no longer holds: say where to look.
AWAY_LONG_S = 30
AWAY_LONG = (
    "It has been away for over {:g} s; its log says why "
    "(with systemd: journalctl -u chadthrottle-helper)."
)

# The title stays one line (it does not wrap): at 2x on 1366x768 too.
CLEAN_TITLE = "The helper stopped — its limits are off"
KILLED_TITLE = "The helper stopped unexpectedly — its limits stay in force"
KILLED_PAUSED_TITLE = "The helper stopped unexpectedly — its limits were paused"
# after what a stopped or killed helper leaves (CLEAN_DETAIL, KILLED_DETAIL)
RECONNECTS = "The window reconnects as soon as it runs again; the numbers are greyed until then."

EXPLANATIONS: dict[HelperState, str] = {
    HelperState.CONNECTING: "",  # the title says it (the status's detail said it again)
    # Not "usually back within seconds": said of a helper simply stopped, that
    # was untrue. The window does keep trying, so a restart clears it by itself.
    HelperState.NOT_RUNNING: f"{NOTHING_ENFORCED} The window reconnects as soon as it runs "
    "again (a restart takes seconds); this banner then goes away by itself.",
    HelperState.NOT_INSTALLED: "ChadThrottle measures and limits traffic through a small "
    "system helper that runs as root and asks polkit before every change. Install it once:",
}


class StateBanner(NoticeFrame):
    """Shows the current HelperStatus when it needs the user's attention."""

    retryRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("stateBanner", parent)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setAccessibleName(
            "What is wrong with the helper"
        )  # selectable: it takes the focus
        self.command = QLabel(INSTALL_COMMAND, self)
        self.command.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.command.setAccessibleName("Install command")
        self.command.setStyleSheet("font-family: monospace; padding: 2px 6px;")
        self.copy_button = QPushButton("Copy command", self)
        self.copy_button.setAccessibleName("Copy the install command")
        self.copy_button.clicked.connect(
            lambda: QGuiApplication.clipboard().setText(INSTALL_COMMAND)
        )
        self.retry_button = QPushButton("Ask again", self)
        self.retry_button.clicked.connect(self.retryRequested)

        command_row = QHBoxLayout()
        command_row.addWidget(self.command)
        command_row.addWidget(self.copy_button)
        command_row.addStretch(1)
        self.texts.addLayout(command_row)
        self.add_button(self.retry_button)
        self._state: HelperState | None = None
        self.away_long_s: float = AWAY_LONG_S
        self._long_away = False  # away longer than away_long_s: the banner says where to look
        self._status = HelperStatus(HelperState.CONNECTING)
        self._away = QTimer(self)
        self._away.setSingleShot(True)
        self._away.timeout.connect(self._say_long_away)
        self.show_status(HelperStatus(HelperState.CONNECTING))

    def _say_long_away(self) -> None:
        self._long_away = True
        self.show_status(self._status)

    @property
    def state(self) -> HelperState | None:
        return self._state

    def show_status(self, status: HelperStatus) -> None:
        if status.state is not HelperState.NOT_RUNNING:
            self._away.stop()
            self._long_away = False
        elif self._state is not HelperState.NOT_RUNNING:  # it just went: from now
            self._away.start(int(self.away_long_s * 1000))
        self._state = status.state
        self._status = status
        if status.state is HelperState.CONNECTED:
            self.hide()
            return
        self.title.setText(TITLES[status.state])
        explanation = EXPLANATIONS.get(status.state, status.detail)
        if status.ended_known:
            # its run record says how it ended, and so what holds (gui25): the
            # title in its words, not "No limit is enforced" after a kill
            title, held = (
                (KILLED_TITLE, KILLED_DETAIL) if status.left_in_force
                else (KILLED_PAUSED_TITLE, KILLED_PAUSED_DETAIL) if status.killed_paused
                else (CLEAN_TITLE, CLEAN_DETAIL)
            )  # fmt: skip
            self.title.setText(title)
            later = AWAY_LONG.format(self.away_long_s) if self._long_away else RECONNECTS
            explanation = f"{held} {later}"
        elif status.state is HelperState.NOT_RUNNING and self._long_away:
            # no longer "restarting" nor "back within seconds"
            explanation = f"{NOTHING_ENFORCED} {AWAY_LONG.format(self.away_long_s)}"
        elif status.state is HelperState.NOT_RUNNING and status.detail:
            explanation = f"{status.detail} {explanation}"
        self.text.setText(explanation)
        self.text.setVisible(bool(explanation))
        installing = status.state is HelperState.NOT_INSTALLED
        self.command.setVisible(installing)
        self.copy_button.setVisible(installing)
        asking = status.state is HelperState.NOT_AUTHORIZED
        self.retry_button.setText("Ask again" if asking else "Try again")
        self.retry_button.setAccessibleName(
            "Ask again for permission" if asking else "Try to reach the helper again"
        )
        self.retry_button.setVisible(
            status.state
            in (HelperState.NOT_AUTHORIZED, HelperState.NOT_INSTALLED, HelperState.NOT_RUNNING)
        )
        problem = status.state not in (HelperState.CONNECTING, HelperState.NOT_RUNNING)
        self.setProperty("problem", problem)
        colour = "rgba(224, 27, 36, 0.10)" if problem else "rgba(53, 132, 228, 0.10)"
        self.setStyleSheet(f"#stateBanner {{ background: {colour}; border-radius: 6px; }}")
        self.show()
