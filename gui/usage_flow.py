"""Usage history in the window: the list's totals column, the usage view and
the detail graph's first hour, all from the helper's GetUsage.

The controller makes one UsageFlow; it asks the helper through the
connection (off the GUI thread, answers come back as ``usageFetched`` under
a key saying who asked), and hands the answers to the model and the views.
An older helper without GetUsage is said so, in the column's tooltip, in the
usage view and in the graph's caption; nothing else changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from chadthrottle.app_names import fallback_name, names_apart
from chadthrottle.gui.ipc.connection import HelperConnection
from chadthrottle.gui.ipc.error_text import describe_error
from chadthrottle.gui.ipc.state import HelperStatus
from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.usage_cells import UsageColumnState
from chadthrottle.gui.models.usage_periods import (
    PERIODS,
    UsagePeriod,
    chart_resolution,
    period_since,
    totals_resolution,
)
from chadthrottle.gui.models.usage_totals import grand_total, totals_by_application
from chadthrottle.gui.views.main_window import MainWindow
from chadthrottle.gui.views.usage_column_menu import add_period_submenu, usage_column_menu
from chadthrottle.gui.views.usage_dialog import UsageDialog
from chadthrottle.usage_contract import UsageResolution, UsageRow
from PySide6.QtCore import QObject, QPoint, QSettings, QTimer
from PySide6.QtWidgets import QMenu

log = logging.getLogger(__name__)

# Each view's own period, remembered: the usage view's, and the list's totals
# column's (chosen by a right click on its title; until gui28 the view's choice
# was the column's too, and "Last 7 days" renamed the list's "Today").
PERIOD_KEY = "usage/period"
COLUMN_PERIOD_KEY = "usage/column_period"
SPLIT_KEY = "usage/split"  # the usage view's chart and table as the user left them
# The totals column is asked for again after each poll in which bytes moved
# (one question at a time: GetUsage adds what the helper has not written yet,
# so the column is a poll and a tick behind, not the helper's minute), and
# this often anyway (a new day); the open usage view every minute.
TOTALS_EVERY_MS = 15_000
VIEW_EVERY_MS = 60_000
SEED_AFTER_MS = 250
SEED_SPAN_S = (
    3_600  # the detail graph's longest span: its first hour comes from the helper's minutes
)
# Who asked: "totals:<period>", "view:<period>", "seed:<app id>" (an answer for a
# period or application no longer shown is dropped).
TOTALS_KEY, VIEW_KEY, SEED_KEY = "totals:", "view:", "seed:"
OLD_HELPER = ("Usage history is unavailable: the helper is older than this window (it has no GetUsage). "
              "Update the ChadThrottle helper to keep per-application totals.")  # fmt: skip
GRAPH_OLD_HELPER = (
    "The graph starts when this window opened: the helper is too old to keep history."
)


def load_period(store: QSettings, key: str = PERIOD_KEY) -> UsagePeriod:
    """The period chosen last time; today for anything missing or garbled."""
    try:
        return UsagePeriod(str(store.value(key, UsagePeriod.TODAY.value)))
    except ValueError:
        return UsagePeriod.TODAY


def load_column_period(store: QSettings) -> UsagePeriod:
    """The totals column's period. A settings file from before gui28 has
    none of its own: the column then showed usage/period (the usage view's),
    and keeps showing it rather than turning back to "Today" unasked on the
    first start after an update (review28)."""
    if store.contains(COLUMN_PERIOD_KEY):
        return load_period(store, COLUMN_PERIOD_KEY)
    period = load_period(store, PERIOD_KEY)
    if store.contains(PERIOD_KEY):
        store.setValue(COLUMN_PERIOD_KEY, period.value)
    return period


def unavailable_text(error_name: str, message: str = "") -> str:
    """Why no history is shown, in the words the rest of the window uses."""
    return f"Usage history could not be read: {describe_error(error_name, message).words}"


class UsageFlow(QObject):
    """Asks for usage history and puts it where it is shown."""

    def __init__(self, connection: HelperConnection, model: ApplicationsModel, window: MainWindow,
                 store: QSettings, clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        super().__init__(window)
        self._connection = connection
        self._model = model
        self._window = window
        self._store = store
        self._clock = clock
        self.period = load_column_period(store)  # the list's totals column's
        self.view_period = load_period(store)  # the usage view's
        self.dialog: UsageDialog | None = None
        self.history_supported: bool | None = None  # None: not known yet
        self._names: dict[
            str, str
        ] = {}  # ids seen running: their names, for when they no longer do
        self._asked: dict[str, float] = {}  # key -> when (the answer's "now")
        self._monitoring = False  # the helper answers now
        self._model.set_usage(UsageColumnState(title=PERIODS[self.period].column_title))
        connection.usageFetched.connect(self._on_usage)
        connection.statusChanged.connect(self._on_status)
        window.header.usageRequested.connect(self.open_dialog)
        window.table.usagePeriodMenuRequested.connect(self.open_column_menu)
        self.column_menu: QMenu | None = None
        # the same choices in the ☰ menu, for the keyboard: a title takes no focus
        settings_menu = window.header.menu_button.menu()
        self.column_submenu = add_period_submenu(settings_menu, window.header.open_usage,
                                                 lambda: self.period, self.choose_column_period)  # fmt: skip
        # The selected application's last hour, once the selection rests (arrow keys
        # run through many rows: one GetUsage each would queue up at the helper).
        self._seed_timer = QTimer(self)
        self._seed_timer.setSingleShot(True)
        self._seed_timer.setInterval(SEED_AFTER_MS)
        self._seed_timer.timeout.connect(lambda: self._seed_graph(self._window.detail.app_id))
        window.detail.applicationShown.connect(lambda _app_id: self._seed_timer.start())
        model.dataChanged.connect(self._follow_units)  # a units change repaints every row
        model.snapshotApplied.connect(self._after_poll)
        self._moved_asked: int | None = None  # model.bytes_moved() when the totals were last asked
        self._totals_timer = QTimer(self)
        self._totals_timer.timeout.connect(self.refresh_totals)
        self._totals_timer.start(TOTALS_EVERY_MS)
        self._view_timer = QTimer(self)
        self._view_timer.timeout.connect(self.refresh_view)

    # --- asking ----------------------------------------------------------------------------

    def _fetch(self, key: str, app_id: str, since: int, resolution: UsageResolution) -> None:
        self._asked[key] = self._clock()
        self._connection.fetch_usage(key, app_id, since, 0, resolution)

    def refresh_totals(self) -> None:
        if self.history_supported is False or not self._connection.status.can_monitor:
            return
        period = self.period
        self._fetch(
            TOTALS_KEY + period.value,
            "",
            period_since(period, self._clock()),
            totals_resolution(period),
        )

    def _after_poll(self) -> None:
        """Ask for the totals again if bytes moved since they were last asked,
        unless the last question is still unanswered (for less than 15 s)."""
        moved = self._model.bytes_moved()
        if moved == self._moved_asked:
            return
        asked = self._asked.get(TOTALS_KEY + self.period.value)
        if asked is not None and 0 <= self._clock() - asked < TOTALS_EVERY_MS / 1000:
            return
        self._moved_asked = moved
        self.refresh_totals()

    def refresh_view(self) -> None:
        if self.dialog is None or not self.dialog.isVisible():
            self._view_timer.stop()
            return
        if self.history_supported is False:
            self.dialog.show_unavailable(OLD_HELPER)
            return
        period = self.dialog.period
        self._fetch(
            VIEW_KEY + period.value,
            "",
            period_since(period, self._clock()),
            chart_resolution(period),
        )

    def _seed_graph(self, app_id: str) -> None:
        """The selected application's last hour, by minute, for its graph."""
        if not app_id or app_id.startswith("pid:"):
            return
        if self.history_supported is False:
            self._window.detail.set_recent_usage(app_id, [], GRAPH_OLD_HELPER)
            return
        now = int(self._clock())
        since = now - SEED_SPAN_S
        self._fetch(SEED_KEY + app_id, app_id, since - since % 60, UsageResolution.MINUTE)

    def _follow_units(self) -> None:
        if self.dialog is not None:
            self.dialog.set_units(self._model.units)  # nothing to do unless they changed

    def _on_status(self, status: HelperStatus) -> None:
        if (
            status.can_monitor and not self._monitoring
        ):  # connected (again): perhaps to a newer helper
            if self.history_supported is False:
                self.history_supported = None
            self.refresh_totals()
            self._seed_graph(self._window.detail.app_id)
        self._monitoring = status.can_monitor

    # --- the usage view --------------------------------------------------------------------

    def open_dialog(self) -> UsageDialog:
        """Show the usage view (one at a time) and ask for its numbers."""
        if self.dialog is None:
            self.dialog = dialog = UsageDialog(self.view_period, self._window)
            dialog.periodChosen.connect(self.choose_period)
            dialog.restore_split(self._store.value(SPLIT_KEY))
            dialog.split.splitterMoved.connect(
                lambda *_: self._store.setValue(SPLIT_KEY, dialog.split.saveState())
            )
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        self._view_timer.start(VIEW_EVERY_MS)
        self.refresh_view()
        return self.dialog

    def choose_period(self, period: UsagePeriod) -> None:
        """The usage view's period, remembered; the list's column keeps its own."""
        self.view_period = period
        self._store.setValue(PERIOD_KEY, period.value)
        self.refresh_view()

    # --- the list's totals column ------------------------------------------------------------

    def open_column_menu(self, where: QPoint) -> QMenu:
        """The totals column's periods, at a global position (its title right-clicked)."""
        if self.column_menu is not None:
            self.column_menu.deleteLater()
        self.column_menu = usage_column_menu(self.period, self.choose_column_period, self._window)
        self.column_menu.popup(where)
        return self.column_menu

    def choose_column_period(self, period: UsagePeriod) -> None:
        """The list's totals column over another period, remembered."""
        if period is self.period:
            return
        self.period = period
        self._store.setValue(COLUMN_PERIOD_KEY, period.value)
        state = self._model.usage
        self._model.set_usage(UsageColumnState(None, PERIODS[period].column_title, state.note))
        self._window.table.overall.show_usage_total(None)
        self.refresh_totals()

    # --- answers ---------------------------------------------------------------------------

    def name_of(self, app_id: str) -> str:
        info = self._model.application(app_id)
        if info is not None:
            self._names[app_id] = info.name
            return info.name
        return self._names.get(app_id) or fallback_name(app_id)

    def _on_usage(self, key: str, rows: list[UsageRow] | None, error_name: str) -> None:
        if rows is None:
            self.history_supported = False
        elif not error_name:
            self.history_supported = True
        asked_at = self._asked.pop(key, self._clock())
        if key == TOTALS_KEY + self.period.value:
            self._show_totals(rows, error_name)
        elif self.dialog is not None and key == VIEW_KEY + self.dialog.period.value:
            if rows is None or error_name:
                self.dialog.show_unavailable(
                    OLD_HELPER if rows is None else unavailable_text(error_name)
                )
            else:
                names = names_apart({row.app_id: self.name_of(row.app_id) for row in rows})
                self.dialog.show_rows(self.dialog.period, rows, asked_at,
                                      lambda app_id: names.get(app_id) or self.name_of(app_id),
                                      self._model.units)  # fmt: skip
        elif key.startswith(SEED_KEY):
            note = (
                GRAPH_OLD_HELPER if rows is None else ""
            )  # an error: the next selection asks again
            self._window.detail.set_recent_usage(key[len(SEED_KEY) :], rows or [], note)

    def _show_totals(self, rows: list[UsageRow] | None, error_name: str) -> None:
        title = PERIODS[self.period].column_title
        if rows is None:
            self._model.set_usage(UsageColumnState(None, title, OLD_HELPER))
            self._window.table.overall.show_usage_total(None, "—")
            return
        if error_name:  # the helper away for a moment: the last totals stay
            log.debug("usage totals: %s", error_name)
            return
        totals = totals_by_application(rows)
        self._model.set_usage(UsageColumnState(totals, title))
        down, up = grand_total(totals)
        self._window.table.overall.show_usage_total(down + up)
