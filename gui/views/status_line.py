"""The status bar: backend, helper state, how many limits are really enforced,
and the link's capacity and shaping (issue 16; click it to change them)."""

from __future__ import annotations

import math

from chadthrottle.contract import BLOCK_LEASE_S, BackendInfo, Direction
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.ipc.status_logic import NOT_ENFORCING, PAUSED_FIELD, backend_field
from chadthrottle.gui.models.limit_truth import LimitTally
from chadthrottle.gui.models.priority_view import (
    LinkSummary,
    backend_notes,
    tooltip_lines,
    with_notes,
)
from chadthrottle.gui.widgets.limit_slider import problem_colour
from chadthrottle.gui.widgets.qt_bounds import QWIDGETSIZE_MAX
from chadthrottle.helper_run_state import CLEAN_DETAIL, KILLED_DETAIL, KILLED_PAUSED_DETAIL
from PySide6.QtCore import QEvent, QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QFontMetricsF, QPainter, QPaintEvent, QResizeEvent, QShowEvent
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QSizePolicy,
    QStatusBar,
    QStyle,
    QStyleOptionToolButton,
    QStylePainter,
    QToolButton,
    QWidget,
)

WORDS = {"down": "download", "up": "upload"}
NONE_ENFORCED = "No limits enforced"  # the limits field's short form while none can be  # a backend's active directions, said
HELPER_WORDS: dict[HelperState, str] = {
    HelperState.CONNECTING: "connecting…",
    HelperState.CONNECTED: "connected",
    HelperState.NOT_RUNNING: "reconnecting…",
    HelperState.NOT_AUTHORIZED: "not authorized",
    HelperState.NOT_INSTALLED: "not installed",
    HelperState.KERNEL_FEATURE_MISSING: "kernel feature missing",
}


# What holds while the helper is away (docs/helper.md, "While the helper is down" and
# "SIGKILL or a crash"): "No backend enforces anything" was not so after a kill. Said
# where its run record does not tell which (an older helper, none on this bus).
HELPER_AWAY = (
    "The helper is not running: nothing renews blocks and quotas, which let traffic through "
    f"within {BLOCK_LEASE_S:g} s. A helper stopped removes its rate limits and the link's "
    "capacity; one killed leaves them in the kernel until it starts again."
)


# Its run record tells (chadthrottle.helper_run_state): the helper field, and the
# backend field of a killed one, which left its rate limits in the kernel.
STOPPED_WORDS, KILLED_WORDS = "stopped", "stopped unexpectedly"
STILL_ENFORCING = "Still enforcing"
LEFT_IN_FORCE_TEXT = "Last limits stay in force: the helper stopped unexpectedly"
LEFT_IN_FORCE_SHORT = "Last limits stay in force"
# A window that never saw the killed helper's listing (started after the kill)
# does not know what it left: neither "Not enforcing" nor "No limits are
# enforced" (walk26: beside the banner's "its limits stay in force").
ENFORCING_NOT_KNOWN = "Enforcing: not known"
LEFT_NOT_KNOWN_TEXT = "Any limits it set stay in force: the helper stopped unexpectedly"
LEFT_NOT_KNOWN_SHORT = "Any limits stay in force"


def helper_words(status: HelperStatus) -> str:
    """The helper field's word: how it ended where its record says so."""
    if status.stopped_clean:
        return STOPPED_WORDS
    if status.left_in_force or status.killed_paused:
        return KILLED_WORDS
    return HELPER_WORDS[status.state]


class StatusLine(QStatusBar):
    """Four permanent fields; transient messages use showMessage as usual."""

    linkRequested = Signal()  # the link field was clicked: open the capacity dialog

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = ElidingLabel(self)
        self.message.setContentsMargins(8, 0, 8, 0)
        # A long message is cut with "…" (its tooltip has it whole) rather than
        # widening the window past a small screen.
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._message_timer = QTimer(self)
        self._message_timer.setSingleShot(True)
        self._message_timer.timeout.connect(self._end_message)
        # Nothing until the helper answers: whether anything is enforced is not known.
        self.backend = QLabel("", self)
        self.helper = QLabel("Helper: connecting…", self)
        # gives way to its short form: paused at 2x on 1366x768 its whole text widened
        # the window by itself, 1132 to 1328 px (review23, under Xvfb)
        self.limits = ElidingLabel(self)
        self.limits.setText("No limits")
        for label in (self.backend, self.helper, self.limits):
            # 4 px each side, with the bar's own spacing between fields: 8 left the
            # link field's short text cut at 2x on 1366x768 (on screen, with a limit not met).
            label.setContentsMargins(4, 0, 4, 0)
        self.addWidget(self.message, 1)
        self.addPermanentWidget(self.backend)
        self.addPermanentWidget(self.helper)
        self.addPermanentWidget(self.limits)
        # A button, so it is reachable with Tab and says it can be clicked; hidden
        # until the helper answers GetLinkShaping (an older helper has none).
        self.link = ElidingButton(self)
        self.link.setObjectName("linkField")
        self.link.setAutoRaise(True)
        self.link.setSizePolicy(
            QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed
        )  # may give way
        self.link.setAccessibleName("Link capacity and shaping: change")
        self.link.clicked.connect(self.linkRequested)
        self.link.hide()
        self.addPermanentWidget(self.link)
        self._warning: dict[QWidget, bool] = {self.limits: False, self.link: False}
        self._backends: tuple[BackendInfo, ...] = ()
        self._link: LinkSummary | None = None  # as given, before the backends' notes
        self._state, self._detail, self._late = HelperState.CONNECTING, "", False
        self._status = HelperStatus(HelperState.CONNECTING)
        self._kept = 0  # rate limits a killed helper left in the kernel (LimitTally.left)
        self._listed = True  # the helper's applications were listed here: what it left is known
        self._helper_gone = False  # not running or not installed: no backend holds anything
        self._paused = False  # limits paused: no backend holds anything either
        self._gated: tuple[str, ...] = ()  # the ways a block or quota holds (LimitTally.gated)
        # What makes way for a long message (show_text): the least read fields.
        self._giving_way = (self.backend, self.helper)
        # The message takes what the fields leave: it is resized whenever they are laid
        # out again (one shown or hidden, a text changed), and then the room is known.
        self.message.installEventFilter(self)

    def show_text(self, text: str, timeout_ms: int = 8000, short: str = "") -> None:
        """A transient message. Where it does not fit (2x on 1366x768: "Backup
        Server: Low priority set, " and nothing of why it is not in force), the
        backend and helper fields make way while it shows; what still does not
        fit is said short where there is a short form, else cut with "…"."""
        self.message.short_text = short
        self.message.setText(text)
        self.message.setToolTip(text)
        self._make_way()
        self._message_timer.start(timeout_ms)

    def _make_way(self) -> None:
        """The giving-way fields hidden while the message would not fit beside them;
        the limits field at its short form where the fields do not fit whole (beside
        the message, or at all); the link field at its short form last, while not
        even the message's short form would fit (2x on 1366x768 beside "Link
        capacity: ≈ ▼ 400 Mbit/s ▲ not in force"). Until gui33 the limits field took
        the width of its whole text while it drew its short one (paused at 2x: *No
        limits enforced* and a gap), and the link field read *Link capacity: not…*
        beside it."""
        if not self.isVisible():
            return  # not laid out yet: decided when it is (showEvent)
        layout = self.layout()
        spacing = layout.spacing() if layout is not None else 0
        giving = sum(f.sizeHint().width() + spacing for f in self._giving_way)
        # The message's room were every field shown whole (below 0: they do not fit).
        shown = [f for f in (*self._giving_way, self.limits, self.link) if f.isVisible()]
        at_ease = self.message.width() - sum(f.sizeHint().width() - f.width() for f in shown)
        at_ease -= sum(f.sizeHint().width() + spacing for f in self._giving_way if f.isHidden())
        text, metrics = self.message.text(), self.message.fontMetrics()
        margins = self.message.contentsMargins().left() + self.message.contentsMargins().right()
        need = metrics.horizontalAdvance(text) + margins if text else 0
        crowded = bool(text) and need > at_ease
        for field in self._giving_way:
            field.setVisible(not crowded)
        room = at_ease + (giving if crowded else 0)
        short_limits = bool(self.limits.short_text) and need > room
        if short_limits:
            room += self.limits.sizeHint().width() - self.limits.minimumSizeHint().width()
        self.limits.setMaximumWidth(
            self.limits.minimumSizeHint().width() if short_limits else QWIDGETSIZE_MAX
        )
        least = metrics.horizontalAdvance(self.message.short_text or text) + margins if text else 0
        squeeze = least > room
        self.link.setMaximumWidth(
            self.link.minimumSizeHint().width() if squeeze else QWIDGETSIZE_MAX
        )

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._make_way()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """The fields laid out again: decide again with the widths they have now (a
        decision made as the link field was hidden, helper stopped, read the widths
        from before and kept the limits field short beside an empty line: gui33)."""
        if watched is self.message and event.type() == QEvent.Type.Resize:
            self._make_way()
        return super().eventFilter(watched, event)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        # Once laid out: a message shown before (at start). With self as context: not
        # called if the bar is deleted first (a window shown and deleted at once).
        QTimer.singleShot(0, self, self._make_way)

    def end_text(self, text: str) -> None:
        """End the message if it is still this one (a message no longer true)."""
        if self.message.text() == text:
            self._message_timer.stop()
            self._end_message()

    def _end_message(self) -> None:
        self.message.short_text = ""
        self.message.clear()
        self.message.setToolTip("")
        for field in self._giving_way:
            field.show()
        self.link.setMaximumWidth(QWIDGETSIZE_MAX)
        self._make_way()  # the limits field's short form may still be needed

    def set_backends(self, backends: tuple[BackendInfo, ...]) -> None:
        if backend_notes(backends) != backend_notes(self._backends) and self._link is not None:
            self._backends = backends
            self.set_link(self._link)  # its tooltip says them
        self._backends = backends
        if self._helper_gone:
            return  # said when it is back (set_status)
        if self._paused:
            # "Backend: tc, ebpf" (those available) or a reading from before the
            # pause ("tc ▼, ebpf ▲") read as holding limits that nothing held.
            available = ", ".join(b.name for b in backends if b.available)
            self.backend.setText(PAUSED_FIELD)
            self.backend.setToolTip(
                "Limits are paused: no backend shapes or blocks anything until they are resumed."
                + (f" Available: {available}." if available else "")
            )
            return
        self.backend.setText(backend_field(backends, self._gated))
        # what is set: limits, blocks, quotas, the link's shaping for priorities ("holds the
        # download and upload limits" read beside "No limits" with only the link shaped)
        holding = [f"{b.name} enforces what is set for the {' and '.join(WORDS.get(d, d) for d in b.active_directions)}"
                   for b in backends if b.available and b.active_directions]  # fmt: skip
        if self._gated:  # the kernel's gates: no backend lists them as active
            holding.append(
                f"A block or quota is enforced for the {' and '.join(WORDS[d] for d in self._gated)}"
            )
        ready = [b.name for b in backends if b.available and not b.active_directions]
        if ready and not holding:  # nothing limited (or nothing in force): none holds anything
            holding = [
                f"None holds a limit now; {' and '.join(ready)} can enforce limits once set."
            ]
        unavailable = [f"{b.name}: {b.reason}" for b in backends if not b.available]
        notes = tooltip_lines(backend_notes(backends))
        self.backend.setToolTip(
            "\n".join([*holding, *notes, *unavailable]) or "All backends available"
        )

    def set_paused(self, paused: bool) -> None:
        """Limits paused (or resumed): the backend field says so, not the backends."""
        if paused != self._paused:
            self._paused = paused
            self.set_backends(self._backends)

    def set_late(self, seconds: float) -> None:
        """The helper connected but silent for this long (0: it answers): the
        numbers shown are its last, not live."""
        if seconds > 0:
            text, tip = (
                f"Helper: no answer for {int(seconds)} s",
                (
                    f"The helper has not answered for {int(seconds)} s (a busy machine?): "
                    "the numbers shown are the last it sent."
                ),
            )
        elif self._late:
            text, tip = f"Helper: {helper_words(self._status)}", self._detail
        else:
            return
        self._late = seconds > 0
        self.helper.setText(text)
        self.helper.setToolTip(tip)

    def set_status(self, status: HelperStatus) -> None:
        self._state, self._detail, self._late = status.state, status.detail, False
        self._status = status
        self.helper.setText(f"Helper: {helper_words(status)}")
        self.helper.setToolTip(status.detail)
        # With the helper gone no backend holds anything: "Backend: tc" beside
        # "No limits are enforced" read as if tc still did (seen under Xvfb).
        gone = status.state in (HelperState.NOT_RUNNING, HelperState.NOT_INSTALLED)
        if gone != self._helper_gone:
            self._helper_gone = gone
            if not gone:
                self.set_backends(self._backends)
        if gone:
            self._say_gone()

    def _say_gone(self) -> None:
        """The enforcing field with the helper away: a killed one's limits stay in
        the kernel ("Still enforcing", where it had any); a stopped one's are off."""
        status = self._status
        if status.left_in_force:
            self.backend.setText(
                STILL_ENFORCING
                if self._kept
                else NOT_ENFORCING
                if self._listed
                else ENFORCING_NOT_KNOWN
            )
            self.backend.setToolTip(f"{status.detail} {KILLED_DETAIL}")
        elif status.stopped_clean or status.killed_paused:
            held = CLEAN_DETAIL if status.stopped_clean else KILLED_PAUSED_DETAIL
            self.backend.setText(NOT_ENFORCING)
            self.backend.setToolTip(f"{status.detail} {held}")
        else:
            self.backend.setText(NOT_ENFORCING)
            self.backend.setToolTip(HELPER_AWAY)

    def set_limits(
        self, tally: LimitTally, nothing_enforced: str, status: HelperStatus, listed: bool = True
    ) -> None:
        """Count only limits that are enforced; say plainly when none is, and why.
        listed: the window holds the helper's listing (False: none came yet)."""
        gated = tuple(d.value for d in Direction if d in tally.gated)
        if gated != self._gated:  # the enforcing field says the ways a block or quota holds
            self._gated = gated
            self.set_backends(self._backends)
        if (tally.left, listed) != (self._kept, self._listed):
            self._kept, self._listed = tally.left, listed
            if self._helper_gone:
                self._say_gone()
        warning, short = False, ""
        if status.state is HelperState.CONNECTING:
            text, tip = "Limits: waiting for the helper", ""
        elif status.state is HelperState.NOT_AUTHORIZED and not status.can_monitor:
            text, tip = (
                "Limits not shown",
                "Watching was not authorized, so the limits in force cannot be shown.",
            )
        elif status.left_in_force and tally.left:
            # the kernel keeps them, unwatched: not "No limits are enforced" (gui25)
            text, warning, short = LEFT_IN_FORCE_TEXT, True, LEFT_IN_FORCE_SHORT
            tip = f"{status.detail} {KILLED_DETAIL}"
        elif status.left_in_force and not listed:
            text, warning, short = LEFT_NOT_KNOWN_TEXT, True, LEFT_NOT_KNOWN_SHORT
            tip = f"{status.detail} {KILLED_DETAIL} The window never saw its limits listed."
        elif nothing_enforced:
            text, warning, short = (
                f"No limits are enforced: {nothing_enforced}",
                True,
                NONE_ENFORCED,
            )
            kept = tally.total
            tip = "\n".join(filter(None, [f"{text}.", f"{kept} limit{'s are' if kept != 1 else ' is'} kept and "
                                           "shown, and will be enforced again once that changes." if kept else ""]))  # fmt: skip
        elif tally.problems:  # "1 limit active, 1 not met, 2 not enforced"
            counts = [f"{len(names)} {words}" for words, names in tally.problems]
            text, warning = ", ".join([f"{tally.active} active", *counts]), True
            tip = "\n".join(
                f"{words.capitalize()}:\n" + "\n".join(names) for words, names in tally.problems
            )
        else:
            text = f"{tally.active} active" if tally.enforced else "No limits"
            tip = ""
        self.limits.setText(text)
        if short != self.limits.short_text:
            self.limits.short_text = short
            self.limits.updateGeometry()  # its least width follows
        self.limits.setToolTip(tip)
        self._warn(self.limits, warning)
        self._make_way()  # its whole text may fit now, or no more

    def set_link(self, summary: LinkSummary | None) -> None:
        """The link's capacity and shaping, or nothing (None: not known, or an older helper)."""
        self._link = summary
        self.link.setVisible(summary is not None)
        if summary is not None:
            summary = with_notes(summary, self.backend_notes())
            self.link.setText(summary.text)
            self.link.short_text = summary.short
            self.link.least_text = summary.least
            self.link.setToolTip(summary.tooltip)
            self._warn(self.link, summary.warning)
        self._make_way()

    def backend_notes(self) -> list[str]:
        """The backends' notes in plain words (priority_view.backend_notes), for
        the link dialog too; none while the helper is away (not its state now)."""
        return [] if self._helper_gone else backend_notes(self._backends)

    def _warn(self, field: QWidget, warning: bool) -> None:
        """Amber while it warns, in the palette's amber (lighter on dark)."""
        self._warning[field] = warning
        style = (
            f"color: {problem_colour(QApplication.palette())};" if warning else ""
        )  # ours may lag behind
        if field.styleSheet() != style:
            field.setStyleSheet(style)

    def follow_palette(self) -> None:
        """The theme changed (MainWindow.follow_palette): its amber too."""
        for field, warning in self._warning.items():
            self._warn(field, warning)


class ElidingLabel(QLabel):
    """A one-line label cut at the end with "…" where it has too little room
    (a QLabel clips mid-word, and the cut did not show); first its short text,
    if it has one, which is also as narrow as a layout may make it."""

    short_text = ""

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        if not self.short_text:
            return hint
        margins = self.contentsMargins()
        # rounded up: the advance rounded down cut "No limits enforced" to "…enforc…"
        advance = math.ceil(QFontMetricsF(self.font()).horizontalAdvance(self.short_text))
        width = advance + 1 + margins.left() + margins.right()
        return QSize(min(hint.width(), width), hint.height())

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(self.contentsRect(), int(self.alignment()), self.shown_text())

    def shown_text(self) -> str:
        room, metrics = self.contentsRect().width(), self.fontMetrics()
        text = self.text()
        if self.short_text and metrics.horizontalAdvance(text) > room:
            text = self.short_text
        return metrics.elidedText(text, Qt.TextElideMode.ElideRight, room)


class ElidingButton(QToolButton):
    """A flat button that gives way on a narrow status line (2x on a small
    screen): first its short text (the unit once), then cut at the end ("…");
    the tooltip has it whole. least_text: narrower than the short one, tried
    before a cut (at the window's least the short form lost its unit)."""

    short_text = ""
    least_text = ""

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        return QSize(min(hint.width(), self.fontMetrics().horizontalAdvance("Link capacity: not…") + 12),
                     hint.height())  # fmt: skip

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QStylePainter(self)
        option = QStyleOptionToolButton()
        self.initStyleOption(option)
        option.text = self.shown_text()
        painter.drawComplexControl(QStyle.ComplexControl.CC_ToolButton, option)

    def shown_text(self) -> str:
        """The whole text where it fits, else the short one, else cut."""
        room, metrics = self.width() - 12, self.fontMetrics()
        text = self.text()
        for shorter in (self.short_text, self.least_text):
            if metrics.horizontalAdvance(text) > room and shorter:
                text = shorter
        return metrics.elidedText(text, Qt.TextElideMode.ElideRight, room)
