"""ApplicationsModel: applications, their processes and connections, updated in place.

Each poll is merged by application id: existing rows keep their position and
identity (selection, open editors and persistent indexes survive), vanished
applications are removed, new ones appended, then the rows are put in the
chosen order (``sort``). The filter is applied here too (``set_name_filter``):
an application that does not match is kept aside, its history still growing,
rather than listed; doing it here, not in a QSortFilterProxyModel, spares the
Python ``index()`` call the proxy made for every cell it mapped, the largest
share of painting the table. The per-app rate history lives with the row (``rows``). An application's children
are its processes, then (while the view has the row expanded) its connections,
which arrive apart from the polls (``set_connections``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Sequence
from typing import Any

from chadthrottle.app_names import Tell, names_apart, tells_apart
from chadthrottle.contract import (
    ApplicationInfo,
    ConnectionInfo,
    Direction,
    ProcessTraffic,
    RuleInfo,
)
from chadthrottle.gui.models.block_choice import unblock_hint
from chadthrottle.gui.models.child_rows import connection_data, process_data
from chadthrottle.gui.models.columns import HEADERS, LIMIT_COLUMNS, Column, Role
from chadthrottle.gui.models.connection_table import MEASURING, NO_VALUE
from chadthrottle.gui.models.connections import connection_key, interesting_first
from chadthrottle.gui.models.held_limits import held_limits
from chadthrottle.gui.models.history import SHARED_SCALE_SAMPLES, PeakWindow, RateHistory
from chadthrottle.gui.models.icons import IconProvider
from chadthrottle.gui.models.limit_truth import (
    LimitState,
    LimitTally,
    describe_limit,
    limit_state,
    limited_rate_tooltip,
    own_limit_rate,
    spoken_value,
    tally,
    what_a_block_leaves,
)
from chadthrottle.gui.models.priority_view import (
    NORMAL,
    PriorityState,
    describe_priority,
    priority_state,
    priority_word,
)
from chadthrottle.gui.models.row_order import RowOrder, ordered, runs
from chadthrottle.gui.models.rows import (
    AppRow,
    ProcessRow,
    identity_or_limits,
    matches,
    row_identity,
    sort_key,
)
from chadthrottle.gui.models.usage_cells import UsageColumnState, usage_text, usage_tooltip
from chadthrottle.gui.models.usage_periods import COLUMN_PERIOD_MENU
from chadthrottle.units import NO_LIMIT, UnitSystem, format_limit, format_rate, unit_label
from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QGuiApplication, QPalette

log = logging.getLogger(__name__)

AnyIndex = QModelIndex | QPersistentModelIndex
_ROOT_ID = 0  # internalId of top-level rows; children carry their app's serial
# Looked up for every painted cell: plain ints and precomputed flags, because
# building enum members per call was a visible share of the GUI's idle CPU.
_COLUMN_COUNT = len(Column)
_APP_FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
_LIMIT_FLAGS = _APP_FLAGS | Qt.ItemFlag.ItemIsEditable
_PROCESS_FLAGS = _APP_FLAGS | Qt.ItemFlag.ItemNeverHasChildren
_ANSWERED_ROLES = frozenset(
    int(role) for role in (
        Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.TextAlignmentRole,
        Qt.ItemDataRole.ForegroundRole, Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleTextRole,
        *Role,
    )
)  # fmt: skip
_VERTICAL_SORT = QAbstractItemModel.LayoutChangeHint.VerticalSortHint
_LAYOUT_ARGS = (
    "QList<QPersistentModelIndex>",
    "QAbstractItemModel::LayoutChangeHint",
)  # the overload with a hint
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


def _limit_hint(units: UnitSystem) -> str:
    return (
        "Rates on the wire at L3 (IP header included). "
        f"Drag the slider or type a value such as 500K, 2M, 2 {unit_label(units, 2)} or {NO_LIMIT}."
    )


RATE_COLUMNS: dict[int, Direction] = {Column.DOWN: Direction.DOWN, Column.UP: Direction.UP}


def total_text(rate_bps: float | None, units: UnitSystem, live: bool = True) -> str:
    """A total as the header, the overall row and the tray say it: "…" while
    not known (ApplicationsModel.totals), "—" where nothing measures it (the
    helper away, as a row's rate reads then)."""
    if rate_bps is None:
        return MEASURING if live else NO_VALUE
    return format_rate(rate_bps, units)


def measuring_tooltip(direction: Direction, stale: bool = False) -> str:
    """Why a rate reads "…": the helper restarted its measure at a rule change,
    or has no earlier reading of the application (its first tick: every row's
    after the helper starts); or, the helper away since, "—": nothing measures
    it and no rate is known (its "…" and "at most a second" stayed for as long
    as the helper was away)."""
    word = "Download" if direction is Direction.DOWN else "Upload"
    if stale:
        return (f"{word}: not known: the helper went away before it measured a rate "
                "(its rules had just changed, or it had just started).")  # fmt: skip
    return (f"{word}: the helper is measuring it (its rules just changed, or the helper has just "
            "started or just seen it) and lists no rate until its next reading (at most a second).")  # fmt: skip


def _append_history(app: AppRow, now: float, held: tuple[float, float]) -> None:
    """The poll's rates into the row's history (its sparkline and the detail
    graph) with the limits that held them (held_limits); a direction being
    measured is NaN there (a gap in its own plot), not drawn at 0 or at the rate
    from before its rules changed. The other direction keeps its rate: until
    gui31 the whole poll was left out, and a limit set on the upload cut a gap
    in the steady download's graph too (Xvfb, the real helper)."""
    info = app.info
    if not (info.down_measuring and info.up_measuring):
        app.history.append(math.nan if info.down_measuring else info.down_bps,
                           math.nan if info.up_measuring else info.up_bps, now, held)  # fmt: skip


# Rate columns sort busiest first on their first click (the header asks this role).
_BUSIEST_FIRST = frozenset({Column.DOWN, Column.UP, Column.ACTIVITY, Column.USAGE})


def sort_words(column: Column, descending: bool) -> str:
    """ "busiest first", "A to Z", "lowest limit first": what an order puts on top."""
    if column is Column.NAME:
        return "Z to A" if descending else "A to Z"
    if column in LIMIT_COLUMNS:
        return "no limit first, then the highest" if descending else "lowest limit first"
    if column is Column.USAGE:
        return "most data first" if descending else "least data first"
    return "busiest first" if descending else "quietest first"


# Why a list sorted by a live column is not in order now (gui/views/app_table.py)
HELD_WORDS = "The rows hold still while the pointer is over the list."
PERIOD_WORDS = (  # gui/views/usage_column_menu.py
    f"Right-click the title for another period, or use the ☰ menu ({COLUMN_PERIOD_MENU})."
)
_RIGHT_COLUMNS = frozenset({Column.DOWN, Column.UP, Column.USAGE})


def _may_hold(app: AppRow) -> bool:
    """Whether a limit or block may hold either direction (a state to build)."""
    info = app.info
    return bool(
        info.down_limit_bps
        or info.up_limit_bps
        or info.down_blocked
        or info.up_blocked
        or info.down_quota_bytes  # a quota alone: its gate holds (LimitTally.gated)
        or info.up_quota_bytes
        or app.pending
    )


class ApplicationsModel(QAbstractItemModel):
    """Tree model: one top-level row per application; children: its processes, then its connections."""

    snapshotApplied = Signal()  # after each merged poll: totals may have changed
    # A limit was asked for or its request finished (mark_pending, resolve_pending):
    # what is shown of that application's limits changed between polls.
    limitsShown = Signal(str)  # app id

    def __init__(self, icons: IconProvider, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._icons = icons
        self._rows: list[AppRow] = []  # listed: the filter's matches, in order
        self._hidden: dict[str, AppRow] = {}  # filtered out, kept up to date
        self._needle = ""  # the filter, case-folded
        self._row_of_id: dict[str, int] = {}
        self._row_of_serial: dict[int, int] = {}
        self._next_serial = 1
        self._units = UnitSystem.BYTES_DECIMAL
        self._stale = False
        self._order = RowOrder()
        # Whose rules are "yours": the helper judges the caller by this uid too.
        self._viewer_uid = os.geteuid()
        self._rules: tuple[RuleInfo, ...] = ()  # ListRules: the viewer's outranked rules
        self._enforcement_problem = ""  # what keeps every limit from being enforced now
        self.peaks = PeakWindow(SHARED_SCALE_SAMPLES)  # the sparklines' shared scale
        self.activity_tooltip = ""  # what that scale is, said by the view that draws it
        self._usage = UsageColumnState()  # the totals column: GetUsage's totals over a period
        # id -> name as shown: "name (id)" where two share a name (names_apart):
        # two rows read "python3.11" and nothing told them apart (walk28)
        self._shown_names: dict[str, str] = {}
        # id -> what of the id tells it from the others of its name (tells_apart),
        # kept where a narrow cell or menu cuts the rest (name_cut.py)
        self._tells: dict[str, Tell] = {}
        # Why priorities cannot be set here ("" when they can): an older helper (gui/priority_flow.py).
        self.priority_unavailable = ""
        # Why blocks cannot be set here ("" when they can): a helper without SetBlocked
        # (API 3 and before; gui/controller.py learns it from the helper's answer).
        self.blocks_unavailable = ""

    # --- Qt model interface -------------------------------------------------------------

    def index(self, row: int, column: int, parent: AnyIndex = QModelIndex()) -> QModelIndex:
        if column < 0 or column >= _COLUMN_COUNT or row < 0:
            return QModelIndex()
        if not parent.isValid():
            if row >= len(self._rows):
                return QModelIndex()
            return self.createIndex(row, column, _ROOT_ID)
        if parent.internalId() != _ROOT_ID or parent.column() != 0:
            return QModelIndex()
        app = self._rows[parent.row()]
        if row >= app.child_count():
            return QModelIndex()
        return self.createIndex(row, column, app.serial)

    def parent(self, child: AnyIndex = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        if not child.isValid() or child.internalId() == _ROOT_ID:
            return QModelIndex()
        row = self._row_of_serial.get(child.internalId())
        if row is None:
            return QModelIndex()
        return self.createIndex(row, 0, _ROOT_ID)

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:
        if not parent.isValid():
            return len(self._rows)
        if parent.internalId() == _ROOT_ID and parent.column() == 0:
            return self._rows[parent.row()].child_count()
        return 0

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return _COLUMN_COUNT

    def hasChildren(self, parent: AnyIndex = QModelIndex()) -> bool:
        # Asked for every row after each re-sort: answered here, not through rowCount
        # (the tree's relayout of 200 rows 0.89 -> 0.80 ms offscreen).
        if not parent.isValid():
            return bool(self._rows)
        if parent.internalId() == _ROOT_ID and parent.column() == 0:
            return self._rows[parent.row()].child_count() > 0
        return False

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        if index.internalId() != _ROOT_ID:
            return _PROCESS_FLAGS
        return _LIMIT_FLAGS if index.column() in LIMIT_COLUMNS else _APP_FLAGS

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < _COLUMN_COUNT:
            return None
        column = Column(section)
        if role == Qt.ItemDataRole.DisplayRole:
            return self._usage.title if column is Column.USAGE else HEADERS[column]
        if role == Qt.ItemDataRole.TextAlignmentRole and column in _RIGHT_COLUMNS:
            return int(_RIGHT)
        if role == Qt.ItemDataRole.InitialSortOrderRole:
            busiest = column in _BUSIEST_FIRST
            return Qt.SortOrder.DescendingOrder if busiest else Qt.SortOrder.AscendingOrder
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = self.sort_tooltip(column)
            return f"{tip} {PERIOD_WORDS}" if column is Column.USAGE else tip
        return None

    def sort_tooltip(self, column: Column) -> str:
        """How the rows are in order, in words: the arrow alone ("Activity ▲"
        over the busiest-first list) was read as quietest first."""
        sorted_by = self._order.column == column
        descending = self._order.descending if sorted_by else column in _BUSIEST_FIRST
        words = sort_words(column, descending)
        if not sorted_by:
            return f"Click to sort by this column, {words}."
        other = sort_words(column, not descending)
        text = f"Sorted by this column, {words} ({'▼' if descending else '▲'}). Click for {other}."
        if column in _BUSIEST_FIRST:  # a live order: why it may lag the numbers
            text += f" {HELD_WORDS}"
        return text

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role not in _ANSWERED_ROLES or not index.isValid():
            return None  # most roles a painted cell asks for (font, size hint, ...)
        if index.internalId() == _ROOT_ID:
            return self._app_data(self._rows[index.row()], index.column(), role)
        row = self._row_of_serial.get(index.internalId())
        if row is None:
            return None
        app = self._rows[row]
        child = index.row()
        if child < len(app.processes):
            return process_data(app, app.processes[child], index.column(), role, self._stale,
                                self._units)  # fmt: skip
        return connection_data(app, app.connections[child - len(app.processes)], index.column(), role, self._stale,
                               self._units)  # fmt: skip

    # --- reading rows -------------------------------------------------------------------

    def _app_data(self, app: AppRow, column: int, role: int) -> Any:
        info = app.info
        if role == Qt.ItemDataRole.DisplayRole:
            if column == Column.NAME:
                return self._shown_names.get(info.id, info.name)
            if column in RATE_COLUMNS:
                direction = RATE_COLUMNS[column]
                if info.measuring(direction):
                    return NO_VALUE if self._stale else MEASURING
                return format_rate(info.rate_bps(direction), self._units)
            if column in LIMIT_COLUMNS:
                return format_limit(app.limit_bps(LIMIT_COLUMNS[column]), self._units)
            if column == Column.USAGE:
                return usage_text(app.usage, self._units)
            return None
        if role == Qt.ItemDataRole.DecorationRole and column == Column.NAME:
            return self._icons.icon(info.icon, info.name)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in _RIGHT_COLUMNS:
            return int(_RIGHT)
        if role == Qt.ItemDataRole.ForegroundRole and self._stale:
            return QGuiApplication.palette().brush(
                QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text
            )
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._app_tooltip(app, column)
        if role == Qt.ItemDataRole.AccessibleTextRole:  # as painted, not the bare limit
            if column in LIMIT_COLUMNS:
                return spoken_value(self._state(app, LIMIT_COLUMNS[column]), self._units)
            if column == Column.NAME and (info.priority != NORMAL or app.priority_asked):
                # its badge, in the tray's words: it read the bare name (gui36)
                said = priority_word(self._priority(app))
                name = self._shown_names.get(info.id, info.name)
                return f"{name}, {said}" if said else None
            return None
        if role == Role.APP_ID:
            return info.id
        if role == Role.TELL:
            return self._tells.get(info.id)
        if role == Role.SORT:
            return sort_key(app, column)
        if role == Role.RATE_DOWN:
            return info.down_bps
        if role == Role.RATE_UP:
            return info.up_bps
        if role == Role.LIMIT and column in LIMIT_COLUMNS:
            return app.limit_bps(LIMIT_COLUMNS[column])
        if role == Role.LIMIT_PENDING and column in LIMIT_COLUMNS:
            return LIMIT_COLUMNS[column] in app.pending
        if role == Role.LIMIT_STATE and column in LIMIT_COLUMNS:
            return self._state(app, LIMIT_COLUMNS[column])
        if role == Role.LIMITS:
            return (app.limit_bps(Direction.DOWN), app.limit_bps(Direction.UP))
        if role == Role.PRIORITY:  # the name cell's badge; None (no badge) for normal
            if info.priority == NORMAL and app.priority_asked is None:
                return None
            return self._priority(app) if column == Column.NAME else None
        if role == Role.HISTORY:
            return app.history
        if role == Role.IS_PROCESS:
            return False
        return None

    def _app_tooltip(self, app: AppRow, column: int) -> str | None:
        if column in RATE_COLUMNS and app.info.measuring(RATE_COLUMNS[column]):
            return measuring_tooltip(RATE_COLUMNS[column], self._stale)
        if column in RATE_COLUMNS:
            state = self._state(app, RATE_COLUMNS[column])
            if state.enforced and state.rate_bps > 0 and not state.pending:  # what it let through
                return limited_rate_tooltip(RATE_COLUMNS[column])
        if column in LIMIT_COLUMNS:
            direction = LIMIT_COLUMNS[column]
            state = self._state(app, direction)
            text = describe_limit(state, direction, self._units)
            held = state.enforced or state.held_on  # the kernel blocks it now
            if state.blocked and held and not state.quota_switching:  # not both ways
                text += f"\n{what_a_block_leaves(direction)}"
            if state.read_only:
                return text
            # A blocked cell has no slider and a read-only field: its tooltip
            # said "Drag the slider or type a value" (gui10, under Xvfb).
            if state.by_quota:  # its quota sentence says until when: no Unblock lifts it
                return text
            hint = unblock_hint(state, direction) if state.blocked else _limit_hint(self._units)
            return f"{text}\n{hint}"
        if column == Column.ACTIVITY:
            return self.activity_tooltip or None
        if column == Column.USAGE:
            return usage_tooltip(app.usage, self._usage, self._units)
        if column == Column.NAME:
            processes = len(app.processes)
            text = f"{app.info.name}\n{app.info.id}\n{processes} process{'es' * (processes != 1)}"
            if app.info.priority != NORMAL or app.priority_asked is not None:
                text += f"\n{describe_priority(self._priority(app))}"
            return text
        return None

    # --- public helpers for views and the tray -------------------------------------------

    def app_ids(self) -> list[str]:
        """The listed applications, in order (the filter's matches)."""
        return [app.info.id for app in self._rows]

    def application(self, app_id: str) -> ApplicationInfo | None:
        """Any application the helper reported, listed or filtered out."""
        app = self._find(app_id)
        return None if app is None else app.info

    def applications(self) -> list[ApplicationInfo]:
        return [app.info for app in self._all_rows()]

    def shown_name(self, app_id: str) -> str:
        """The name the list, the tray and the row menu show: "name (id)" where
        another application listed shares its name (app_names.names_apart, as
        the usage view and the CLI say it); its id if it is not listed."""
        app = self._find(app_id)
        return app_id if app is None else self._shown_names.get(app_id, app.info.name)

    def tell(self, app_id: str) -> Tell | None:
        """The part of the id that tells its name from another's, where one
        shares it (app_names.tells_apart): a cut name keeps it (name_cut.py)."""
        return self._tells.get(app_id)

    def history(self, app_id: str) -> RateHistory | None:
        app = self._find(app_id)
        return None if app is None else app.history

    def limit_since(self, app_id: str, direction: Direction) -> float:
        """When the limit shown took its value (unix seconds; 0: before the row was listed)."""
        app = self._find(app_id)
        return 0.0 if app is None else app.limit_since.get(direction, (0, 0.0))[1]

    def effective_limit(self, app_id: str, direction: Direction) -> int:
        """The limit shown for this app: a pending request wins over the helper's."""
        app = self._find(app_id)
        return 0 if app is None else app.limit_bps(direction)

    def index_of(self, app_id: str, column: int = 0) -> QModelIndex:
        row = self._row_of_id.get(app_id)
        return QModelIndex() if row is None else self.index(row, column)

    def totals(self) -> tuple[float | None, float | None]:
        """Every application's rates, whatever the filter shows; None (not
        known, "…") in a direction one of them is being measured in: neither
        its 0 nor its rate from before its rules changed counts, and a sum left
        without it was never true (under Xvfb ▼ 4.03 MB/s, then 456 KB/s for a
        poll, then 1.44 MB/s, as Harbor Browser's download was limited)."""
        rows = self._all_rows()
        down = (
            None if any(a.info.down_measuring for a in rows) else sum(a.info.down_bps for a in rows)
        )
        up = None if any(a.info.up_measuring for a in rows) else sum(a.info.up_bps for a in rows)
        return down, up

    def has_own_limit(self, app_id: str, direction: Direction) -> bool:
        """A limit of the viewer's own to clear: the one shown, or one stored
        beneath a block or a used-up quota (under Xvfb "Clear limits" was grey
        beside Nimbus Sync's 1 MB/s limit beneath its quota's block)."""
        state = self.limit_state(app_id, direction)
        if state.read_only:
            return False
        if self.own_limit(app_id, direction) > 0:
            return True
        # A used-up quota's then-rate is the quota's, not a limit to clear: under
        # Xvfb "Clear limits" stood enabled beside it and changed nothing (walk26)
        quota_rate = state.quota_spent and state.quota_then_bps == state.rate_bps
        return state.rate_bps > 0 and not quota_rate

    def own_limit(self, app_id: str, direction: Direction) -> int:
        """The viewer's own stored limit (ListRules), 0 for none: also beneath
        a block or a used-up quota, where the row shows no rate of it."""
        return own_limit_rate(self._rules, app_id, direction, self._viewer_uid)

    def limit_state(self, app_id: str, direction: Direction) -> LimitState:
        """The truth about one limit: whose, changeable or not, enforced or why not."""
        app = self._find(app_id)
        return LimitState(0) if app is None else self._state(app, direction)

    def limit_tally(self) -> LimitTally:
        """Every application's limits (whatever the filter shows): enforced, and not."""
        return tally(
            (
                (app.info.name, direction, self._state(app, direction))
                for app in self._all_rows()
                if _may_hold(app)  # most hold nothing: skip building their states every second
                for direction in Direction
            ),
            self._units,
        )

    def active_limit_count(self) -> int:
        """Limits in force now; a limit that is not enforced is not counted."""
        return self.limit_tally().enforced

    @property
    def viewer_uid(self) -> int:
        return self._viewer_uid

    def set_viewer_uid(self, uid: int) -> None:
        """Whose rules are "yours" (the GUI's own uid unless a test says otherwise)."""
        if uid != self._viewer_uid:
            self._viewer_uid = uid
            self._emit_all_changed()

    def set_rules(self, rules: Sequence[RuleInfo] | None) -> None:
        """The stored rules ListRules returned (None: a helper without it); they
        name the viewer's own limit under an administrator's."""
        self._rules = tuple(rules or ())

    @property
    def enforcement_problem(self) -> str:
        """Why no limit is enforced now ("" when they may be): set_enforcement_problem."""
        return self._enforcement_problem

    def set_enforcement_problem(self, problem: str) -> None:
        """Why no limit is enforced now ("" when they may be): every limit shown
        then says so, and none is counted as active."""
        if problem != self._enforcement_problem:
            self._enforcement_problem = problem
            self._emit_all_changed()

    def priority_state(self, app_id: str) -> PriorityState:
        """The truth about an application's priority: whose, asked for, in force or why not."""
        app = self._find(app_id)
        return PriorityState() if app is None else self._priority(app)

    def mark_priority_pending(self, app_id: str, priority: str) -> None:
        """Show a requested priority at once, before the helper confirms it."""
        app = self._find(app_id)
        if app is not None:
            app.priority_asked = (priority, None)
            self._emit_app_changed(app_id)

    def resolve_priority(self, app_id: str, succeeded: bool) -> None:
        """A SetPriority finished: keep the asked one until a poll sent after
        this answers (an earlier poll may predate it), or drop it on failure."""
        app = self._find(app_id)
        if app is None or app.priority_asked is None:
            return
        app.priority_asked = (app.priority_asked[0], time.monotonic()) if succeeded else None
        self._emit_app_changed(app_id)

    def _priority(self, app: AppRow) -> PriorityState:
        asked = app.priority_asked[0] if app.priority_asked is not None else None
        return priority_state(app.info, self._viewer_uid, asked, self._enforcement_problem)

    def _held(self, info: ApplicationInfo) -> tuple[float, float]:
        """The limits that held this poll's rates (the graph's limit line)."""
        return held_limits(info, self._viewer_uid, self._rules, self._enforcement_problem)

    def _state(self, app: AppRow, direction: Direction) -> LimitState:
        return limit_state(app.info, direction, self._viewer_uid, app.pending.get(direction),
                           self._rules, self._enforcement_problem, self._units)  # fmt: skip

    def set_name_filter(self, text: str) -> None:
        """List only applications whose name, id or process names contain text
        (case-insensitive); the rest are kept aside, not forgotten."""
        needle = text.strip().casefold()
        if needle == self._needle:
            return
        self._needle = needle
        self._refilter()
        self._reorder()

    def _find(self, app_id: str) -> AppRow | None:
        row = self._row_of_id.get(app_id)
        return self._rows[row] if row is not None else self._hidden.get(app_id)

    def _all_rows(self) -> list[AppRow]:
        return [*self._rows, *self._hidden.values()] if self._hidden else self._rows

    @property
    def units(self) -> UnitSystem:
        return self._units

    def set_units(self, units: UnitSystem) -> None:
        if units != self._units:
            self._units = units
            self._emit_all_changed()

    def set_stale(self, stale: bool) -> None:
        """Grey the numbers while the helper is away; they are no longer live."""
        if stale != self._stale:
            self._stale = stale
            self._emit_all_changed()

    # --- the totals column ------------------------------------------------------------

    @property
    def usage(self) -> UsageColumnState:
        return self._usage

    def set_usage(self, state: UsageColumnState) -> None:
        """New totals (or a new period, or why there are none) for every row;
        only the rows whose figure changed are repainted (asked after each
        poll that moved bytes, most rows' figures stay)."""
        retitled = state.title != self._usage.title
        every = retitled or state.totals is None or self._usage.totals is None
        self._usage = state
        changed = []
        for row, app in enumerate(self._rows):
            usage = state.of(app.info.id)
            if every or usage != app.usage:
                app.usage = usage
                changed.append(row)
        for app in self._hidden.values():
            app.usage = state.of(app.info.id)
        if retitled:
            self.headerDataChanged.emit(Qt.Orientation.Horizontal, Column.USAGE, Column.USAGE)
        if changed:
            self.dataChanged.emit(
                self.index(changed[0], Column.USAGE), self.index(changed[-1], Column.USAGE)
            )
        if self._order.column == Column.USAGE and changed:
            self._reorder()

    def bytes_moved(self) -> int:
        """The bytes every application has moved since the helper started
        (listed or filtered out): a number that changes when bytes moved."""
        return sum(app.info.rx_bytes + app.info.tx_bytes for app in self._all_rows())

    # --- connections of expanded rows ---------------------------------------------------

    def set_connections(self, app_id: str, connections: Sequence[ConnectionInfo],
                        received_at: float | None = None) -> None:  # fmt: skip
        """Merge an application's open connections into its children;
        received_at: when the answer came (time.monotonic(); None: now).

        Merged by socket (protocol, addresses, pid) so rows that stay keep their
        place and only their state and rates change; closed ones go, new ones
        are added at the end, most interesting first.
        """
        row = self._row_of_id.get(app_id)
        if row is None:
            return
        app = self._rows[row]
        at = time.monotonic() if received_at is None else received_at
        speeds = app.connection_rates.update(connections, at) if connections else {}
        if not connections:
            app.connection_rates.clear()
        moved = speeds != app.connection_speeds
        app.connection_speeds = speeds
        incoming = {connection_key(c): c for c in connections}
        parent = self.index(row, 0)
        base = len(app.processes)
        gone = [i for i, c in enumerate(app.connections) if connection_key(c) not in incoming]
        for first, last in reversed(list(runs(gone))):
            self.beginRemoveRows(parent, base + first, base + last)
            del app.connections[first : last + 1]
            self.endRemoveRows()
        changed = []
        for i, current in enumerate(app.connections):
            update = incoming.pop(connection_key(current))
            if update != current or moved:
                app.connections[i] = update
                changed.append(base + i)
        for child in changed:
            self.dataChanged.emit(
                self.index(child, 0, parent), self.index(child, _COLUMN_COUNT - 1, parent)
            )
        if incoming:
            first = app.child_count()
            self.beginInsertRows(parent, first, first + len(incoming) - 1)
            app.connections.extend(interesting_first(incoming.values()))
            self.endInsertRows()

    def clear_connections(self, app_id: str) -> None:
        """Drop an application's connections and its processes' rates (its row
        was collapsed)."""
        self.set_connections(app_id, ())
        self.set_process_traffic(app_id, ())

    def set_process_traffic(self, app_id: str, processes: Sequence[ProcessTraffic]) -> None:
        """Each process's own rates from the helper, shown in its row's rate
        columns; the process rows themselves come with the polls."""
        row = self._row_of_id.get(app_id)
        if row is None:
            return
        app = self._rows[row]
        traffic = {process.pid: process for process in processes}
        if traffic == app.process_traffic:
            return
        app.process_traffic = traffic
        if app.processes:
            parent = self.index(row, 0)
            self.dataChanged.emit(
                self.index(0, 0, parent),
                self.index(len(app.processes) - 1, _COLUMN_COUNT - 1, parent),
            )

    # --- limits the user asked for ------------------------------------------------------

    def mark_pending(self, app_id: str, direction: Direction, rate_bps: int | None) -> None:
        """Show a requested limit at once, before the helper confirms it."""
        app = self._find(app_id)
        if app is None:
            return
        app.pending[direction] = rate_bps or 0
        app.note_limits(time.time())
        self._emit_app_changed(app_id)
        self.limitsShown.emit(app_id)

    def resolve_pending(self, app_id: str, direction: Direction, succeeded: bool) -> None:
        """A request finished: keep its value on success, fall back on failure."""
        app = self._find(app_id)
        if app is None:
            return
        requested = app.pending.pop(direction, None)
        if requested is None:
            return
        if succeeded:
            app.info = _with_limit(app.info, direction, requested)
            app.confirmed[direction] = (time.monotonic(), requested)
            app.note_confirmed(direction, time.time())
        app.note_limits(time.time())
        self._emit_app_changed(app_id)
        self.limitsShown.emit(app_id)

    # --- order ----------------------------------------------------------------------------

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Keep the applications ordered by a column (the header's choice, via the proxy).

        The model orders its own rows, once per poll with Python's sort, rather
        than letting QSortFilterProxyModel call back into Python for each of the
        ~1,500 comparisons a re-sort of 200 rows takes.
        """
        descending = order == Qt.SortOrder.DescendingOrder
        self._order = dataclasses.replace(self._order, column=column, descending=descending)
        self._reorder(asked=True)

    def set_order_frozen(self, frozen: bool) -> None:
        """Hold the order (pointer over the table); releasing it catches up at once."""
        self._order = dataclasses.replace(self._order, frozen=frozen)
        self._reorder()

    @property
    def order(self) -> RowOrder:
        return self._order

    def _in_order(self, rows: list[AppRow]) -> list[AppRow]:
        """New rows in the order shown, also while the order holds: a row never
        seen has no place to hold. Under Xvfb a window opened under the pointer
        listed the helper's order (by id) and chose its first row, not the busiest."""
        column = self._order.column
        if column < 0 or len(rows) < 2:
            return rows
        return ordered(rows, lambda app: sort_key(app, column),
                       lambda app: app.info.name.casefold(), self._order.descending)  # fmt: skip

    def _reorder(self, asked: bool = False) -> bool:
        """Put the rows in order; True if that moved any. asked: the user chose
        the order (a column title clicked, the pointer on it): it is kept to
        even while the order holds."""
        if (self._order.frozen and not asked) or self._order.column < 0:
            return False
        rows = self._in_order(self._rows)
        if all(new is old for new, old in zip(rows, self._rows, strict=True)):
            return False
        # A vertical sort: the header's sections do not move, so it need not
        # remap (and repaint) them every poll.
        # PySide6's stubs do not know an overloaded signal picked by its signature
        self.layoutAboutToBeChanged[_LAYOUT_ARGS].emit([], _VERTICAL_SORT)  # type: ignore[index]
        before = self.persistentIndexList()
        new_row = {app.serial: row for row, app in enumerate(rows)}
        after = [  # children are addressed by their app's serial and stay valid
            self.createIndex(new_row[self._rows[index.row()].serial], index.column(), _ROOT_ID)
            if index.internalId() == _ROOT_ID else QModelIndex(index)
            for index in before
        ]  # fmt: skip
        self._rows = rows
        self._reindex()
        self.changePersistentIndexList(before, after)
        self.layoutChanged[_LAYOUT_ARGS].emit([], _VERTICAL_SORT)  # type: ignore[index]
        return True

    # --- merging a poll -----------------------------------------------------------------

    def apply_snapshot(
        self,
        applications: Sequence[ApplicationInfo],
        process_names: dict[int, str] | None = None,
        asked_at: float | None = None,
    ) -> None:
        """Merge one ListApplications result by application id; asked_at: when
        that poll was sent (time.monotonic(); None: after every confirmed limit)."""
        names = process_names or {}
        now = time.time()  # the samples' time: the detail graph's time axis
        self.peaks.append(max((a.down_bps for a in applications), default=0.0),
                          max((a.up_bps for a in applications), default=0.0))  # fmt: skip
        incoming = {info.id: info for info in applications}
        for app_id in [app_id for app_id in self._hidden if app_id not in incoming]:
            del self._hidden[app_id]
        gone = [row for row, app in enumerate(self._rows) if app.info.id not in incoming]
        self._remove_rows(gone)
        changed_rows = []
        for row, app in enumerate(self._rows):
            info = incoming.pop(app.info.id)
            if app.confirmed:
                info = _keep_confirmed(app, info, asked_at)
            if app.priority_asked is not None and _priority_settled(app, asked_at):
                app.priority_asked = None
                changed_rows.append(row)
            else:
                identity = identity_or_limits(info)
                if identity != row_identity(app):
                    changed_rows.append(row)
                app.identity, app.identity_of = identity, info
            app.info = info
            app.note_limits(now)
            _append_history(app, now, self._held(app.info))
            self._merge_processes(row, app, names)
        for app in self._hidden.values():  # not listed: no signals
            app.info = incoming.pop(app.info.id)
            app.note_limits(now)
            _append_history(app, now, self._held(app.info))
            app.processes = [
                ProcessRow(pid, names.get(pid, "")) for pid in dict.fromkeys(app.info.pids)
            ]
        named = {info.id: info.name for info in applications}
        shown = names_apart(named)
        if shown != self._shown_names:  # a second of one name came or went: both rows say it
            tells = tells_apart(named)  # a third of a name moves the others' tells too
            changed_rows.extend(
                row for row, app in enumerate(self._rows)
                if (shown.get(app.info.id), tells.get(app.info.id))
                != (self._shown_names.get(app.info.id), self._tells.get(app.info.id))
                and row not in changed_rows
            )  # fmt: skip
            self._shown_names, self._tells = shown, tells
        for row in changed_rows:  # names and limits: rare, and they touch the editors
            self._emit_row_changed(row)
        new_rows = [self._new_row(info, names) for info in incoming.values()]
        if self._needle:  # a name or a process name may have changed
            self._refilter()
            self._hidden.update(
                {app.info.id: app for app in new_rows if not matches(app, self._needle)}
            )
            new_rows = [app for app in new_rows if matches(app, self._needle)]
        self._insert_rows(self._in_order(new_rows))
        if not self._reorder() and self._rows:
            # Rates and activity change every poll. A new order repaints every row
            # anyway; saying both would paint the table twice.
            self.dataChanged.emit(
                self.index(0, Column.DOWN), self.index(len(self._rows) - 1, Column.ACTIVITY)
            )
        self.snapshotApplied.emit()

    def clear(self) -> None:
        self._hidden.clear()
        self._remove_rows(list(range(len(self._rows))))
        self.snapshotApplied.emit()

    def _refilter(self) -> None:
        """Set aside the listed rows that no longer match; list the kept ones that do."""
        leaving = [row for row, app in enumerate(self._rows) if not matches(app, self._needle)]
        for row in leaving:
            app = self._rows[row]
            app.connections = []  # fetched afresh if it is listed and opened again
            app.process_traffic = {}
            self._hidden[app.info.id] = app
        self._remove_rows(leaving)
        joining = [app for app in self._hidden.values() if matches(app, self._needle)]
        for app in joining:
            del self._hidden[app.info.id]
        self._insert_rows(joining)

    def _remove_rows(self, rows: list[int]) -> None:
        # Contiguous runs from the bottom up, so earlier row numbers stay valid.
        for first, last in reversed(list(runs(rows))):
            self.beginRemoveRows(QModelIndex(), first, last)
            del self._rows[first : last + 1]
            self._reindex()
            self.endRemoveRows()

    def _new_row(self, info: ApplicationInfo, names: dict[int, str]) -> AppRow:
        app = AppRow(self._next_serial, info, [ProcessRow(p, names.get(p, "")) for p in info.pids])
        app.usage = self._usage.of(info.id)
        now = time.time()
        app.note_limits(now)
        _append_history(app, now, self._held(info))
        self._next_serial += 1
        return app

    def _insert_rows(self, new_rows: list[AppRow]) -> None:
        if not new_rows:
            return
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(new_rows) - 1)
        self._rows.extend(new_rows)
        self._reindex()
        self.endInsertRows()

    def _merge_processes(self, row: int, app: AppRow, names: dict[int, str]) -> None:
        pids = app.info.pids
        if len(pids) == len(app.processes) and [p.pid for p in app.processes] == [*pids]:
            return  # most polls: the same processes (a repeated pid never matches here)
        wanted = list(dict.fromkeys(pids))
        wanted_set = set(wanted)
        if [p.pid for p in app.processes] == wanted:
            return
        parent = self.index(row, 0)
        gone = [i for i, p in enumerate(app.processes) if p.pid not in wanted_set]
        for first, last in reversed(list(runs(gone))):
            self.beginRemoveRows(parent, first, last)
            del app.processes[first : last + 1]
            self.endRemoveRows()
        known = {p.pid for p in app.processes}
        added = [ProcessRow(pid, names.get(pid, "")) for pid in wanted if pid not in known]
        if added:
            first = len(app.processes)
            self.beginInsertRows(parent, first, first + len(added) - 1)
            app.processes.extend(added)
            self.endInsertRows()

    def _reindex(self) -> None:
        self._row_of_id = {app.info.id: row for row, app in enumerate(self._rows)}
        self._row_of_serial = {app.serial: row for row, app in enumerate(self._rows)}

    def _emit_app_changed(self, app_id: str) -> None:
        row = self._row_of_id.get(app_id)
        if row is not None:  # a filtered-out row has nobody to tell
            self._emit_row_changed(row)

    def _emit_row_changed(self, row: int) -> None:
        self.dataChanged.emit(self.index(row, 0), self.index(row, _COLUMN_COUNT - 1))

    def _emit_all_changed(self) -> None:
        if self._rows:
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(self._rows) - 1, _COLUMN_COUNT - 1)
            )


def _with_limit(info: ApplicationInfo, direction: Direction, rate_bps: int) -> ApplicationInfo:
    if direction is Direction.DOWN:
        return dataclasses.replace(info, down_limit_bps=rate_bps)
    return dataclasses.replace(info, up_limit_bps=rate_bps)


def _priority_settled(app: AppRow, asked_at: float | None) -> bool:
    """Whether this poll tells the truth about the priority the viewer asked
    for: it was confirmed before the poll was sent."""
    confirmed_at = app.priority_asked[1] if app.priority_asked is not None else None
    return confirmed_at is not None and (asked_at is None or asked_at > confirmed_at)


def _keep_confirmed(app: AppRow, info: ApplicationInfo, asked_at: float | None) -> ApplicationInfo:
    """A poll sent before the helper confirmed the user's limit may have been
    answered before it: keep the confirmed limit rather than show the old one
    again for a poll, and its rate, measured under the old one, as not known
    ("…", as the helper lists one just after a rule change); a poll sent after
    it is the truth again."""
    for direction, (confirmed_at, rate_bps) in list(app.confirmed.items()):
        if asked_at is None or asked_at > confirmed_at:
            del app.confirmed[direction]
        else:
            info = _with_limit(info, direction, rate_bps)
            if direction is Direction.DOWN:
                info = dataclasses.replace(info, down_measuring=True)
            else:
                info = dataclasses.replace(info, up_measuring=True)
    return info
