"""AppController: builds the GUI's parts and wires them together.

No singletons: each part gets what it needs from here. The controller is the
only object that knows both the helper connection and the views, so the
limit flow (show at once, ask the helper, settle or fall back) lives here.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.gui import autostart
from chadthrottle.gui.alerts.flow import AlertsFlow
from chadthrottle.gui.ipc.client_protocol import ClientFactory
from chadthrottle.gui.ipc.connection import HelperConnection, LimitRequest
from chadthrottle.gui.ipc.state import LEFT_IN_FORCE, HelperState, HelperStatus
from chadthrottle.gui.ipc.worker import UNKNOWN_METHOD, Snapshot
from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.block_choice import unblocked_short, unblocked_words
from chadthrottle.gui.models.icons import IconProvider
from chadthrottle.gui.models.limit_truth import describe_limit
from chadthrottle.gui.models.sort_proxy import ApplicationsProxy
from chadthrottle.gui.priority_flow import PriorityFlow
from chadthrottle.gui.rules_flow import RulesFlow
from chadthrottle.gui.settings import Settings, Theme, load_settings, save_settings
from chadthrottle.gui.theme import apply_theme
from chadthrottle.gui.tray.tray import TrayController
from chadthrottle.gui.usage_flow import UsageFlow
from chadthrottle.gui.views.main_window import MainWindow
from chadthrottle.gui.views.settings_dialog import SettingsDialog
from chadthrottle.gui.views.window_state import restore_window_state, save_window_state
from chadthrottle.helper_run_state import STOPPED_KILLED
from chadthrottle.units import UnitSystem
from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

TRAY_BLOCK_KEY = "tray:block"  # HelperConnection.call's key of SetBlocked (tray and row menu)
BLOCKS_OLD_HELPER = (
    "Blocks need a newer helper: the one running here is older than this window (API 4)."
)
log = logging.getLogger(__name__)

NO_TRAY_NOTICE = (
    "No system tray on this desktop: this window is the way in, and closing it quits ChadThrottle."
)
# Started with --no-tray, where the desktop may well have one.
TRAY_LEFT_OUT_NOTICE = (
    "Started without a tray icon: this window is the way in, and closing it quits ChadThrottle."
)
# Where the whole notice does not fit (2x on 1366x768 cut it at "and cl…"): what matters.
NO_TRAY_SHORT = "No tray icon: closing this window quits ChadThrottle."


def closed_to_tray_words(nothing_enforced: str, enforced: int) -> str:
    """What the tray says when the window closes into it: "Limits stay in
    force" only while some are (it said so with the helper not installed)."""
    reopen = "Open the window again from the tray icon."
    if nothing_enforced == LEFT_IN_FORCE:  # a killed helper's stay in the kernel (gui25)
        return f"{STOPPED_KILLED} {reopen}"
    if nothing_enforced:
        return f"No limit is enforced now: {nothing_enforced}. {reopen}"
    if enforced:
        return f"Limits stay in force. {reopen}"
    return reopen


class AppController(QObject):
    """Owns the connection, the model, the window and the tray."""

    snapshotShown = Signal()  # after each poll has been merged into the model
    quitRequested = Signal()

    def __init__(
        self,
        client_factory: ClientFactory,
        settings_store: QSettings,
        use_tray: bool = True,
        parent: QObject | None = None,
        autostart_path: Path | None = None,
    ) -> None:
        super().__init__(parent)
        # Kept, and deleted with the controller: held by it and its flows, the
        # store would otherwise be left to the collector (see dispose).
        settings_store.setParent(self)
        self._store = settings_store
        self._autostart_path = autostart_path or autostart.default_path()
        self.settings = load_settings(settings_store)
        self.settings_dialog: SettingsDialog | None = None
        if self.settings.theme is not Theme.SYSTEM:  # before the widgets take their colours
            apply_theme(self._application(), self.settings.theme)
        self.model = ApplicationsModel(IconProvider(), self)
        self.proxy = ApplicationsProxy(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.sort_by_activity()
        self.connection = HelperConnection(client_factory, self.settings.refresh_interval_s, self)
        self.window = MainWindow(self.model, self.proxy, self.settings)
        restore_window_state(self.window, settings_store)  # size, columns, sort, graph span
        self.tray: TrayController | None = None
        self.window.keep_running_in_tray = False
        self._told_closed_to_tray = False
        self._unblocking: tuple[str, Direction] | None = None  # the unblock asked for last
        self._stopped = False

        self.connection.applicationsUpdated.connect(self._on_snapshot)
        self.connection.connectionsUpdated.connect(self.window.show_connections)
        self.connection.processesUpdated.connect(self.window.show_processes)
        self.window.connectionsWanted.connect(self.connection.watch_connections)
        self.window.processesWanted.connect(self.connection.watch_processes)
        self.connection.backendsUpdated.connect(self.window.set_backends)
        self.connection.statusChanged.connect(self._on_status)
        self.connection.limitFinished.connect(self._on_limit_finished)
        self.connection.pausedChanged.connect(self._on_paused_changed)
        self.connection.pauseFinished.connect(self._on_pause_finished)
        self.window.pauseRequested.connect(self.request_pause)
        self.window.limitRequested.connect(self.request_limit)
        self.window.blockRequested.connect(self.request_block)
        self.connection.callFinished.connect(self._on_call_finished)
        self.window.retryRequested.connect(self.connection.retry)
        self.window.closedToTray.connect(self._on_closed_to_tray)
        self.window.header.unitsChosen.connect(self._set_units)
        self.window.header.refreshIntervalChosen.connect(self._set_refresh_interval)
        self.window.header.startHiddenToggled.connect(
            lambda hidden: self._save(dataclasses.replace(self.settings, start_hidden=hidden))
        )
        self.window.header.show_start_at_login(autostart.is_enabled(self._autostart_path))
        self.window.header.startAtLoginToggled.connect(self._set_start_at_login)
        self.window.header.settingsRequested.connect(self.open_settings)
        self.window.header.quitRequested.connect(self.quitRequested)
        self.window.closedForGood.connect(self._on_window_closed)
        self.usage = UsageFlow(
            self.connection, self.model, self.window, settings_store
        )  # GetUsage: totals, view, graph
        self.rules = RulesFlow(
            self.connection, self.model, self.window, self.request_limit
        )  # the rules dialog
        self.priorities = PriorityFlow(
            self.connection, self.model, self.window
        )  # priorities, link capacity
        self.alerts = AlertsFlow(
            self.connection, settings_store, lambda: self.settings.alerts, parent=self
        )
        self._tray_left_out = not use_tray
        if use_tray and TrayController.is_available():
            self.attach_tray(TrayController(self.model, self.window, self))
        self._on_status(self.connection.status)

    def attach_tray(self, tray: TrayController) -> None:
        """Wire a tray icon in like the window: its limits take the same path.

        Public so that a test on a platform without a tray (offscreen) can
        still drive the real tray menu against the real helper.
        """
        self.tray = tray
        self.window.keep_running_in_tray = self.settings.close_to_tray
        tray.limitRequested.connect(self.request_limit)
        tray.blockRequested.connect(self.request_block)
        tray.priorityRequested.connect(self.priorities.request_priority)
        tray.pauseRequested.connect(self.request_pause)
        tray.openRequested.connect(self.show_window)
        tray.quitRequested.connect(self.quitRequested)
        tray.set_status(self.connection.status)
        tray.set_limits_paused(self.connection.limits_paused)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self, show_window: bool | None = None) -> None:
        """Start polling and show the tray and/or the window."""
        self.connection.start()
        if self.tray is not None:
            self.tray.show()
        else:
            self.show_no_tray_notice()
        hidden = self.settings.start_hidden if show_window is None else not show_window
        if not hidden or self.tray is None:
            self.show_window()

    def show_no_tray_notice(self) -> None:
        """Say once, at start, that the window is the way in (no tray icon)."""
        notice = TRAY_LEFT_OUT_NOTICE if self._tray_left_out else NO_TRAY_NOTICE
        log.info(notice)
        self.window.show_message(notice, 20000, short=NO_TRAY_SHORT)

    def shutdown(self) -> None:
        """Stop the worker thread and remove the tray icon; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        save_window_state(self.window, self._store)
        self.connection.stop()
        self.alerts.close()
        if self.tray is not None:
            self.tray.shutdown()
        self.window.keep_running_in_tray = False
        self.window.close()

    def dispose(self) -> None:
        """Shut down, then delete the window and the controller, with all they
        own, at the next deferred delete (how the app quits). Their Python
        wrappers are held in reference cycles: left to the collector, their Qt
        objects would be destroyed at whatever moment, in whichever thread, it ran."""
        self.shutdown()
        self.window.deleteLater()
        self.deleteLater()

    def show_window(self) -> None:
        self.window.show()
        self.window.raise_()
        self.window.activateWindow()

    # --- the limit flow ------------------------------------------------------------------

    def request_limit(self, app_id: str, direction: str, rate_bps: int | None) -> None:
        """Show the new limit at once, then ask the helper (never blocks)."""
        if not self.connection.status.can_limit:
            self.window.show_message(
                self.connection.status.detail or "Limits are unavailable right now."
            )
            self.window.table.refresh_editors()
            return
        state = self.model.limit_state(app_id, Direction(direction))
        if state.read_only:  # it would change only the viewer's outranked rule
            self.window.show_message(describe_limit(state, Direction(direction), self.model.units))
            self.window.table.refresh_editors()
            return
        self.model.mark_pending(app_id, Direction(direction), rate_bps)
        self.connection.set_limit(app_id, direction, rate_bps)

    def _on_limit_finished(self, request: LimitRequest, error_name: str, words: str) -> None:
        succeeded = not error_name
        directions = (
            list(Direction) if request.direction == "both" else [Direction(request.direction)]
        )
        for direction in directions:
            self.model.resolve_pending(request.app_id, direction, succeeded)
        self.window.table.refresh_editors()
        if not succeeded:
            label = self.model.shown_name(request.app_id)  # "name (id)" beside another of its name
            self.window.show_message(f"Could not change the limit of {label}: {words}")

    def request_block(self, app_id: str, direction: str, blocked: bool) -> None:
        """Block or unblock (SetBlocked, off the GUI thread); the row shows it
        from the helper's next answer, a refusal as a message; an unblock done,
        when its open connections go on (block_choice.unblocked_words)."""
        self._unblocking = None if blocked else (app_id, Direction(direction))
        self.connection.call(
            TRAY_BLOCK_KEY, lambda c: c.set_blocked(app_id, Direction(direction), blocked)
        )

    def _on_call_finished(self, key: str, _result: object, error_name: str, words: str) -> None:
        if key == TRAY_BLOCK_KEY and not error_name:  # the row says Blocked now, not a tick later
            self.connection.poll_now()
        if key == TRAY_BLOCK_KEY and error_name == UNKNOWN_METHOD:  # no SetBlocked: offer none
            self.model.blocks_unavailable = BLOCKS_OLD_HELPER
            self.window.show_message(f"Could not change the block: {BLOCKS_OLD_HELPER}")
        elif key == TRAY_BLOCK_KEY and error_name:
            self.window.show_message(f"Could not change the block: {words}")
        elif key == TRAY_BLOCK_KEY and self._unblocking is not None:
            app_id, direction = self._unblocking
            self._unblocking = None
            name = self.model.shown_name(app_id)
            self.window.show_message(unblocked_words(name, direction), 15000,
                                     unblocked_short(name, direction))  # fmt: skip

    def request_pause(self, paused: bool) -> None:
        """Pause or resume every limit (the helper asks polkit for an administrator)."""
        self.connection.set_limits_paused(paused)

    def _on_pause_finished(self, paused: bool, error_name: str, words: str) -> None:
        if error_name:
            self.window.show_message(
                f"Could not {'pause' if paused else 'resume'} the limits: {words}"
            )
            # the notice's "Resuming…" back to its button
            self.window.set_limits_paused(self.window.limits_paused)
        if self.tray is not None:  # a refused toggle shows the state in force again
            self.tray.set_limits_paused(self.connection.limits_paused)

    def _on_paused_changed(self, paused: bool | None) -> None:
        self.window.set_limits_paused(bool(paused))
        if self.tray is not None:
            self.tray.set_limits_paused(paused)

    # --- helper results ------------------------------------------------------------------

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        self.model.set_rules(snapshot.rules)
        self.model.apply_snapshot(snapshot.applications, snapshot.process_names, snapshot.asked_at)
        self.snapshotShown.emit()

    def _on_status(self, status: HelperStatus) -> None:
        self.window.set_status(status)
        if status.state is not HelperState.CONNECTED:  # another helper may come back: ask it afresh
            self.model.blocks_unavailable = ""
        if self.tray is not None:
            self.tray.set_status(status)

    def _on_closed_to_tray(self) -> None:
        save_window_state(self.window, self._store)
        if self.tray is not None and self.settings.notifications and not self._told_closed_to_tray:
            self._told_closed_to_tray = True
            self.tray.icon.showMessage(
                "ChadThrottle keeps running",
                closed_to_tray_words(self.window.nothing_enforced, self.model.active_limit_count()),
                QSystemTrayIcon.MessageIcon.Information,
                5000,
            )

    # --- settings ------------------------------------------------------------------------

    def _set_units(self, units: UnitSystem) -> None:
        self.apply_settings(dataclasses.replace(self.settings, units=units))

    def _set_refresh_interval(self, interval_s: float) -> None:
        self.apply_settings(dataclasses.replace(self.settings, refresh_interval_s=interval_s))

    def _set_start_at_login(self, enabled: bool) -> None:
        try:
            autostart.set_enabled(self._autostart_path, enabled)
        except OSError as error:
            log.warning("could not change %s: %s", self._autostart_path, error)
            self.window.show_message(f"Could not change start at login: {error.strerror or error}")
        enabled = autostart.is_enabled(self._autostart_path)
        self.window.header.show_start_at_login(enabled)
        if self.settings_dialog is not None:
            self.settings_dialog.show_start_at_login(enabled)

    def open_settings(self) -> SettingsDialog:
        """Show the settings dialog (one at a time); each choice applies at once."""
        if self.settings_dialog is None:
            dialog = SettingsDialog(self.settings, autostart.is_enabled(self._autostart_path),
                                    self.tray is not None, self.window)  # fmt: skip
            dialog.settingsChanged.connect(self.apply_settings)
            dialog.startAtLoginToggled.connect(self._set_start_at_login)
            dialog.finished.connect(self._forget_settings_dialog)
            self.settings_dialog = dialog
        self.settings_dialog.show()
        self.settings_dialog.raise_()
        self.settings_dialog.activateWindow()
        return self.settings_dialog

    def _forget_settings_dialog(self) -> None:
        if self.settings_dialog is not None:
            self.settings_dialog.deleteLater()
            self.settings_dialog = None

    def apply_settings(self, new: Settings) -> None:
        """Store new settings and apply what changed, while running."""
        old = self.settings
        if new.units is not old.units:
            self.window.set_units(new.units)
            if self.tray is not None:
                self.tray.refresh()
        if new.refresh_interval_s != old.refresh_interval_s:
            self.connection.set_refresh_interval(new.refresh_interval_s)
            self.window.detail.refresh_interval_s = new.refresh_interval_s
        if new.theme is not old.theme:
            apply_theme(self._application(), new.theme)
            self.window.follow_palette()
        self.window.keep_running_in_tray = self.tray is not None and new.close_to_tray
        self._save(new)

    def _on_window_closed(self) -> None:
        """The window was closed, not hidden: with a tray and close-to-tray off,
        that quits (without a tray, Qt quits on the last window by itself)."""
        if self.tray is not None and not self._stopped:
            self.quitRequested.emit()

    @staticmethod
    def _application() -> QApplication:
        app = QApplication.instance()
        assert isinstance(app, QApplication)
        return app

    def _save(self, settings: Settings) -> None:
        self.settings = settings
        save_settings(self._store, settings)
        self.window.header.show_settings(settings)
