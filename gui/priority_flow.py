"""Priorities and the link's capacity between the GUI and the helper (issue 16).

Priorities asked for in the row menu, the rules dialog or the tray are shown
at once (marked as asked), sent as SetPriority off the GUI thread, and settle
when a poll sent after the helper's answer confirms them; a refusal is said
in the status line. GetLinkShaping is read every few polls for the status
line's link field; its dialog sends SetLinkCapacity (polkit asks for an
administrator) and shows the answer. A helper older than priorities answers
UnknownMethod: then every priority control is disabled with the reason, the
link field hidden, and nothing else changes; a reconnect asks again.
"""

from __future__ import annotations

from chadthrottle.contract import ErrorName, LinkShapingInfo
from chadthrottle.gui.ipc.connection import HelperConnection
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.ipc.worker import UNKNOWN_METHOD
from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.priority_view import (
    LABELS,
    OLD_HELPER,
    describe_priority,
    link_summary,
)
from chadthrottle.gui.views.link_dialog import LinkDialog
from PySide6.QtCore import QObject

SHAPING_KEY, CAPACITY_KEY, PRIORITY_KEY = "link:shaping", "link:capacity", "priority:"
SHAPING_EVERY_N_POLLS = 5  # the capacity changes rarely (an estimate within seconds)
REFUSED = ("The link capacity was not changed: an administrator's authorization was refused "
           "(it shapes every user's traffic).")  # fmt: skip


class PriorityFlow(QObject):
    def __init__(
        self, connection: HelperConnection, model: ApplicationsModel, window: QObject
    ) -> None:
        super().__init__(window)
        self._connection = connection
        self._model = model
        self._window = window
        self.shaping: LinkShapingInfo | None = None
        self.dialog: LinkDialog | None = None
        self._polls = 0
        self._asking = False
        self._again = False
        self._units = model.units
        self._settling: set[str] = (
            set()
        )  # priorities set: say once confirmed if they are not in force
        # (application, its message) while "… priority set, not in force" may still show
        self._not_in_force_said: tuple[str, str, str] | None = None
        window.priorityRequested.connect(self.request_priority)  # type: ignore[attr-defined]
        window.status_line.linkRequested.connect(self.open_dialog)  # type: ignore[attr-defined]
        window.header.linkRequested.connect(self.open_dialog)  # type: ignore[attr-defined]  # the ☰ menu's entry
        connection.callFinished.connect(self._on_call_finished)
        connection.applicationsUpdated.connect(self._on_snapshot)
        connection.statusChanged.connect(self._on_status)
        # Paused, the helper shapes nothing: the link field follows at once (read
        # every few polls, it said "Link: not shaped" for seconds after Resume).
        connection.pausedChanged.connect(self._on_paused_changed)

    # --- priorities ------------------------------------------------------------------

    def request_priority(self, app_id: str, priority: str) -> None:
        """Show it at once, then SetPriority (never blocks); refusals as a message."""
        name = self._model.shown_name(app_id)  # "name (id)" beside another of its name
        state = self._model.priority_state(app_id)
        why = (self._model.priority_unavailable or (describe_priority(state) if state.read_only else "")
               or ("" if self._connection.status.can_limit else self._connection.status.detail
                   or "Priorities cannot be changed right now."))  # fmt: skip
        if why or priority not in LABELS:
            self._say(f"Could not change the priority of {name}: {why or 'unknown priority'}")
            return
        self._model.mark_priority_pending(app_id, priority)
        self._connection.call(
            PRIORITY_KEY + app_id, lambda client: client.set_priority(app_id, priority)
        )  # type: ignore[attr-defined]

    # --- the link ----------------------------------------------------------------------

    def open_dialog(self) -> LinkDialog:
        """The capacity dialog (one at a time), filled from the last answer and asked afresh."""
        if self.dialog is None:
            self.dialog = LinkDialog(self._model.units, self._window)  # type: ignore[arg-type]
            self.dialog.capacityRequested.connect(self._set_capacity)
            self.dialog.finished.connect(self._forget_dialog)
        if self.shaping is not None:
            self.dialog.show_shaping(self.shaping, self._window.status_line.backend_notes())  # type: ignore[attr-defined]
        self.dialog.show()
        self.dialog.raise_()
        self._fetch_shaping()
        return self.dialog

    def _forget_dialog(self) -> None:
        if self.dialog is not None:
            self.dialog.deleteLater()
            self.dialog = None

    def _set_capacity(self, down_bps: int, up_bps: int, estimate: bool) -> None:
        self._connection.call(
            CAPACITY_KEY, lambda client: client.set_link_capacity(down_bps, up_bps, estimate)
        )  # type: ignore[attr-defined]

    def _fetch_shaping(self) -> None:
        """GetLinkShaping, one at a time; asked while one is on its way (sent
        before a change), it is asked again when that one answers."""
        self._again = self._asking
        if not self._asking:
            self._asking = True
            self._connection.call(SHAPING_KEY, lambda client: client.get_link_shaping(), reads=True)  # type: ignore[attr-defined]

    # --- answers -------------------------------------------------------------------------

    def _on_snapshot(self, _snapshot: object) -> None:
        if self.shaping is not None and self._units is not self._model.units:  # units chosen since
            self._show_shaping(self.shaping)
        for app_id in list(self._settling):
            self._say_if_not_in_force(app_id)
        self._unsay_once_in_force()
        if self._polls % SHAPING_EVERY_N_POLLS == 0 and not self._model.priority_unavailable:
            self._fetch_shaping()
        self._polls += 1

    def _on_paused_changed(self, _paused: object) -> None:
        if not self._model.priority_unavailable:
            self._fetch_shaping()

    def _on_status(self, status: HelperStatus) -> None:
        if status.state is not HelperState.CONNECTED:  # another helper may come back: ask it afresh
            self._polls = 0
            self._set_unavailable("")
            self._window.status_line.set_link(None)  # type: ignore[attr-defined]

    def _on_call_finished(self, key: str, result: object, error_name: str, words: str) -> None:
        if key == SHAPING_KEY:
            self._asking = False
            if error_name == UNKNOWN_METHOD:
                self._set_unavailable(OLD_HELPER)
            elif not error_name and isinstance(result, LinkShapingInfo):
                self._show_shaping(result)
            if self._again:
                self._fetch_shaping()
        elif key == CAPACITY_KEY:
            if self.dialog is not None:
                refused = error_name == ErrorName.NOT_AUTHORIZED.value
                text = REFUSED if refused else f"Not changed: {words}" if error_name else "Done."
                self.dialog.show_outcome(text, error=bool(error_name))
            if error_name == UNKNOWN_METHOD:
                self._set_unavailable(OLD_HELPER)
            self._fetch_shaping()
            if not error_name:
                # the rows' priorities in force (or not) with it: ask now, not at the
                # next tick (gui33: a Critical badge "⚠" 1.45 s after "Done." under Xvfb)
                self._connection.poll_now()
        elif key.startswith(PRIORITY_KEY):
            app_id = key[len(PRIORITY_KEY) :]
            self._model.resolve_priority(app_id, not error_name)
            if not error_name:
                self._settling.add(app_id)
                # the badge reads "High…" until a poll asked after this answer: ask
                # it now, not at the next tick (gui32: 0.9 s under Xvfb)
                self._connection.poll_now()
            if error_name == UNKNOWN_METHOD:
                self._set_unavailable(OLD_HELPER)
            if error_name:
                self._say(f"Could not change the priority of {self._model.shown_name(app_id)}: "
                          f"{OLD_HELPER if error_name == UNKNOWN_METHOD else words}")  # fmt: skip

    def _say_if_not_in_force(self, app_id: str) -> None:
        """A priority just confirmed by a poll: when the helper says it is not
        in force (no capacity yet, most often), say so where the user looks."""
        state = self._model.priority_state(app_id)
        if state.pending:
            return  # the poll that tells has not come yet
        self._settling.discard(app_id)
        if state.problem and state.priority != "normal":
            name = self._model.shown_name(app_id)
            # Short where it does not fit (2x on 1366x768): the why, cut, and the link
            # field beside it cut to "Link capacity: not…" read as two riddles (gui33);
            # the tooltip, the pane and the link field say why.
            text = f"{name}: {state.label} priority set, not in force: {state.problem}."
            self._say(text, f"{name}: {state.label} priority not in force")
            self._not_in_force_said = (app_id, state.label, text)

    def _unsay_once_in_force(self) -> None:
        """The "not in force" message goes once the priority it named is in force
        (or is another now): under Xvfb at 2x, the capacity set, *Nimbus Sync:
        Critical priority not in force* stood for its 8 s beside the row's
        *Critical* in force (gui34)."""
        if self._not_in_force_said is None:
            return
        app_id, label, text = self._not_in_force_said
        state = self._model.priority_state(app_id)
        if state.problem and state.label == label and not state.pending:
            return
        self._not_in_force_said = None
        self._window.status_line.end_text(text)  # type: ignore[attr-defined]

    def _show_shaping(self, shaping: LinkShapingInfo) -> None:
        self.shaping = shaping
        self._units = self._model.units
        self._window.status_line.set_link(link_summary(shaping, self._model.units))  # type: ignore[attr-defined]
        if self.dialog is not None:
            self.dialog.show_shaping(shaping, self._window.status_line.backend_notes())  # type: ignore[attr-defined]

    def _set_unavailable(self, reason: str) -> None:
        if reason != self._model.priority_unavailable:
            self._model.priority_unavailable = reason
            entry = self._window.header.open_link  # type: ignore[attr-defined]
            entry.setEnabled(not reason)
            entry.setToolTip(reason)
            if reason:
                self.shaping = None
                self._window.status_line.set_link(None)  # type: ignore[attr-defined]

    def _say(self, text: str, short: str = "") -> None:
        self._window.show_message(text, 8000, short)  # type: ignore[attr-defined]
