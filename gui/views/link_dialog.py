"""The link capacity dialog: what the real bottleneck (usually the modem) can
carry, per direction, or let the helper estimate it; or clear it.

Opened from the status line's link field. It only asks: the flow
(gui/priority_flow.py) sends SetLinkCapacity off the GUI thread (polkit asks
for an administrator: it shapes the whole machine's traffic) and shows the
answer here. What it can check itself (a rate that does not parse or is out of
range, nothing asked) it says at once and sends nothing.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

from chadthrottle.contract import (
    ESTIMATE_COST,
    MAX_RATE_BPS,
    MIN_RATE_BPS,
    Direction,
    LinkShapingInfo,
)
from chadthrottle.gui.models.priority_view import link_summary, note_heads, tooltip_lines
from chadthrottle.gui.widgets.limit_slider import error_colour
from chadthrottle.units import UnitError, UnitSystem, format_rate, parse_rate
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

WORDS = {Direction.DOWN: "Download", Direction.UP: "Upload"}
# The placeholder's example, so the form and the window's units show before any error: 50/10 Mbit/s.
EXAMPLE_BPS = {Direction.DOWN: 6_250_000, Direction.UP: 1_250_000}
ADMIN_NOTE = (
    "Changing it paces every application's traffic: an administrator's password may be asked for."
)


class LinkDialog(QDialog):
    capacityRequested = Signal(
        object, object, bool
    )  # down bytes/s, up bytes/s (0: not set), estimate

    def __init__(self, units: UnitSystem, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("linkDialog")
        self.setWindowTitle("Link capacity")
        self.units = units
        self.state = QLabel("Asking the helper…", self)
        self.state.setObjectName("linkState")
        self.state.setWordWrap(True)
        intro = QLabel("The rate your connection really carries (usually the modem's, not the network card's). "
                       "ChadThrottle paces traffic just under it, so the queue forms here, where priorities order it.",
                       self)  # fmt: skip
        intro.setWordWrap(True)
        form = QFormLayout()
        self.edits: dict[Direction, QLineEdit] = {}
        for direction in Direction:
            edit = QLineEdit(self)
            edit.setObjectName(f"capacity:{direction.value}")
            edit.setPlaceholderText(f"not set (e.g. {format_rate(EXAMPLE_BPS[direction], units)})")
            edit.setAccessibleName(f"{WORDS[direction]} capacity")
            self.edits[direction] = edit
            form.addRow(f"{WORDS[direction]} capacity:", edit)
        self.estimate = QCheckBox(
            "Estimate it and follow changes (a value above is where it starts)", self
        )
        self.estimate.setObjectName("estimate")
        # A tooltip, not a line: at 2x on 1366x768 the dialog is at Qt's 2/3-of-the-screen
        # height already, and a wrapped line more was cut.
        self.estimate.setToolTip(textwrap.fill(ESTIMATE_COST, 72))  # plain tooltips do not wrap
        form.addRow(self.estimate)
        self.message = QLabel(ADMIN_NOTE, self)
        self.message.setObjectName("linkMessage")
        self.message.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        self.apply = QPushButton("Apply", self)
        self.apply.setObjectName("applyCapacity")
        self.apply.setDefault(True)
        self.apply.clicked.connect(self._on_apply)
        self.off = QPushButton("Clear capacity", self)
        self.off.setObjectName("shapingOff")
        self.off.clicked.connect(self._on_off)
        buttons.addButton(self.apply, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.off, QDialogButtonBox.ButtonRole.ActionRole)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.state)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(buttons)
        self._estimate_touched = False
        self.estimate.clicked.connect(lambda: setattr(self, "_estimate_touched", True))

    def show_shaping(self, shaping: LinkShapingInfo, notes: Sequence[str] = ()) -> None:
        """The shaping in force (each answer); what the user is editing stays.
        notes: the backends' (priority_view.backend_notes), said under it short,
        whole in its tooltip."""
        summary = link_summary(shaping, self.units)
        state = re.sub(r"\s*Click to (change|set it)\.$", "", summary.tooltip)  # this is where
        self.state.setText("\n".join([state, *note_heads(notes)]))
        self.state.setToolTip("\n".join(tooltip_lines(notes)))
        for direction, edit in self.edits.items():
            wanted = shaping.down_set_bps if direction is Direction.DOWN else shaping.up_set_bps
            if not edit.isModified():
                edit.setText(format_rate(wanted, self.units) if wanted else "")
        if not self._estimate_touched:
            self.estimate.setChecked(shaping.estimate)
        # Nothing to clear: it read as a switch beside "No link capacity is set".
        set_ = bool(shaping.down_set_bps or shaping.up_set_bps or shaping.estimate)
        self.off.setEnabled(set_)
        self.off.setToolTip("" if set_ else "No capacity is set: give one and Apply.")

    def show_outcome(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(f"color: {error_colour(self.palette())}" if error else "")

    def _rate(self, direction: Direction) -> int | None:
        """bytes/s (0: not shaped), or None after saying what is wrong."""
        edit = self.edits[direction]
        text = edit.text().strip()
        if not text:
            return 0
        try:
            rate = parse_rate(text, self.units)
        except UnitError as error:
            self.show_outcome(f"{WORDS[direction]} capacity: {error}", error=True)
            edit.setFocus()
            return None
        if rate is None:  # "unlimited", "none": as empty, that direction not shaped
            return 0
        if not MIN_RATE_BPS <= rate <= MAX_RATE_BPS:
            self.show_outcome(
                f"{WORDS[direction]} capacity: give a rate from {format_rate(MIN_RATE_BPS, self.units)}"
                f" to {format_rate(MAX_RATE_BPS, self.units)}, or leave it empty.",
                error=True,
            )
            edit.setFocus()
            return None
        return rate

    def _on_apply(self) -> None:
        down, up = self._rate(Direction.DOWN), self._rate(Direction.UP)
        if down is None or up is None:
            return
        estimate = self.estimate.isChecked()
        if not (down or up or estimate):
            self.show_outcome(
                "Give a capacity or tick estimate; to have none, use Clear capacity.",
                error=True,
            )
            return
        self._sent()
        self.capacityRequested.emit(down, up, estimate)

    def _on_off(self) -> None:
        for edit in self.edits.values():
            edit.setText("")
        self.estimate.setChecked(False)
        self._sent()
        self.capacityRequested.emit(0, 0, False)

    def _sent(self) -> None:
        for edit in self.edits.values():
            edit.setModified(False)  # follows the helper again
        self._estimate_touched = False
        self.show_outcome("Asking the helper (an administrator's password may be asked for)…")
