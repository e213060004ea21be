"""TrayController: the tray icon, its tooltip, and a menu rebuilt on opening.

Holds no state of its own beyond what it shows: the menu is rebuilt from the
model each time it opens (``aboutToShow``), so it lists the busiest
applications now. Limit choices leave as ``limitRequested``, like the window's.
"""

from __future__ import annotations

import logging

from chadthrottle.app_names import Tell
from chadthrottle.contract import ApplicationInfo, Direction
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.ipc.status_logic import (
    EMPTY_TEXT,
    helper_gone_words,
    nothing_enforced_reason,
)
from chadthrottle.gui.models.applications import ApplicationsModel, total_text
from chadthrottle.gui.models.block_choice import (
    BLOCK_TIP,
    BLOCK_WORDS,
    RETRY_UNBLOCK,
    unblock_retried,
    unblock_tip,
)
from chadthrottle.gui.models.connection_table import MEASURING
from chadthrottle.gui.models.limit_truth import (
    QUOTA_BLOCK_TIP,
    LimitState,
    block_lifts,
    describe_limit,
)
from chadthrottle.gui.models.name_cut import fitted_name_apart
from chadthrottle.gui.models.priority_view import (
    LABELS,
    NORMAL,
    choice_hint,
    describe_priority,
    priority_word,
)
from chadthrottle.gui.tray.icons import TrayIconKind, state_icon, tray_icon_kind
from chadthrottle.gui.tray.menu_width import (
    MENU_NAME_LEAST_CHARS,
    RatesCountedOnce,
    menu_style,
    name_room,
)
from chadthrottle.gui.tray.quick_limits import (
    CUSTOM,
    QuickLimit,
    busiest_applications,
    checked_label,
    quick_limits,
)
from chadthrottle.priority import Priority
from chadthrottle.units import NO_LIMIT, UnitError, UnitSystem, format_rate, parse_rate, unit_label
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QFontMetrics
from PySide6.QtWidgets import QInputDialog, QLineEdit, QMenu, QSystemTrayIcon, QWidget

log = logging.getLogger(__name__)

PAUSE_UNSUPPORTED = "The helper running here cannot pause limits: it is older than this window."
# Pausing lifts blocks and quotas too (helper: "Paused, outranked"), and
# priorities (no link capacity is in force while paused: link_plan.capacities;
# until review28 unsaid): said, as "Clear rate limits" says what it leaves
# (walk26). Two lines: plain tooltips do not wrap (~125 characters are wider
# than 1366 px at 2x).
PAUSE_TOOLTIP = (
    "Stop enforcing every limit, block, quota and priority, for every user,\n"
    "without forgetting them (asks for an administrator's password)."
)


BLOCK_LABEL = "block"  # the block action's name part (its text says Block or Blocked)
CRITICAL_LABEL = "critical"  # the "Critical" switch's name part; checked, choosing it sets Normal
CRITICAL = Priority.CRITICAL.value


def limit_word(states: tuple[LimitState, ...]) -> str:
    """What the menu says after an application's name of its limits (states:
    one a direction, in Direction's order), as the row does: never "limited"
    for a limit that is not met or not enforced (the helper gone, paused, a
    path it cannot hold); a block one way says which (under Xvfb "Harbor
    Browser (blocked)" read beside its upload running at 79 KB/s)."""
    held = [state for state in states if state.held]
    if not held:
        return ""
    if any(state.not_met for state in held):
        return "limit not met"
    if any(state.held_on for state in held):  # the kernel still blocks what was to change
        return "blocked, change refused"
    if any(state.problem for state in held):
        # a killed helper's rate limits stay in the kernel (LimitState.problem_lines)
        left = all(state.problem_lines[:1] == ("left in force",) for state in held)
        return "limit left in force" if left else "not enforced"
    # a used-up quota on its way to its rate is a limit, not a block the user set
    blocked = [
        d for d, s in zip(Direction, states, strict=True) if s.blocked and not s.quota_switching
    ]
    if not blocked:
        return "limited"
    return "blocked" if len(blocked) == len(states) else f"{BLOCK_WORDS[blocked[0]]} blocked"


def marker(*words: str) -> str:
    """ " (limited, Critical)" after the name; "" when there is nothing to say."""
    said = [word for word in words if word]
    return f" ({', '.join(said)})" if said else ""


# A name longer than this many average characters is cut with "…": one long
# name made the whole menu as wide as the screen (seen under Xvfb at 1366x768).
MENU_NAME_CHARS = 36


def menu_name(
    name: str,
    metrics: QFontMetrics,
    room: int | None = None,
    app_id: str = "",
    tell: Tell | None = None,
) -> str:
    """The name as a menu entry shows it: cut to MENU_NAME_CHARS (and to ``room``
    pixels: menu_width.name_room), a "name (id)" by the id's start, as the list
    cuts it (name_cut), and a "&" doubled (a single one is a mnemonic: "AT&T"
    read "ATT", T underlined)."""
    most = metrics.averageCharWidth() * MENU_NAME_CHARS
    width = most if room is None else min(most, room)
    if app_id:
        name = fitted_name_apart(name, app_id, width, metrics.horizontalAdvance, tell)
    shown = metrics.elidedText(name, Qt.TextElideMode.ElideRight, width)
    return shown.replace("&", "&&")


def entry_rooms(
    metrics: QFontMetrics, entries: dict[str, tuple[str, str]], label_room: int
) -> dict[str, int]:
    """The pixels each entry's name may take beside its marker (entries: id ->
    (name, marker)): its share of label_room, or, where another entry's name and
    marker already make the menu wider, up to that width. The menu is no wider
    for it, and a name is not cut where its line has room: at 2x on 1366x768
    "Parcel Upd… (download blocked)" stood under the longer "Relay Chat
    (protection not in force)" (gui33, gui34; "Critical not in force" since gui36)."""
    least = metrics.averageCharWidth() * MENU_NAME_LEAST_CHARS
    most = metrics.averageCharWidth() * MENU_NAME_CHARS
    own = {
        app_id: max(least, label_room - metrics.horizontalAdvance(said))
        for app_id, (_name, said) in entries.items()
    }
    widest = max(
        (
            min(metrics.horizontalAdvance(name), own[app_id], most)
            + metrics.horizontalAdvance(said)
            for app_id, (name, said) in entries.items()
        ),
        default=0,
    )
    return {
        app_id: max(own[app_id], widest - metrics.horizontalAdvance(said))
        for app_id, (_name, said) in entries.items()
    }


def action_name(app_id: str, direction: Direction, label: str) -> str:
    """objectName of a quick-limit action (tests/gui/tray_actions.py finds actions by it)."""
    return f"quick:{app_id}:{direction.value}:{label}"


class TrayController(QObject):
    """Tray icon + menu over the applications model."""

    limitRequested = Signal(str, str, object)  # app id, direction, bytes/s or None
    blockRequested = Signal(str, str, bool)  # app id, direction, True: block, False: unblock
    priorityRequested = Signal(str, str)  # app id, priority ("critical", or "normal" to undo it)
    pauseRequested = Signal(bool)  # True: pause every limit, False: resume
    openRequested = Signal()
    quitRequested = Signal()

    def __init__(
        self,
        model: ApplicationsModel,
        dialog_parent: QWidget | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._model = model
        self._dialog_parent = dialog_parent
        self._status = HelperStatus(HelperState.CONNECTING)
        self._icons = {kind: state_icon(kind) for kind in TrayIconKind}
        self._kind: TrayIconKind | None = None
        self._paused: bool | None = None  # None: unknown, or the helper cannot pause
        self.menu = QMenu()
        self._menu_style: RatesCountedOnce | None = None  # menu_width: as wide as its entries
        self.menu.setToolTipsVisible(True)
        self.menu.aboutToShow.connect(self.rebuild_menu)
        self.icon = QSystemTrayIcon(self)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._on_activated)
        model.snapshotApplied.connect(self.refresh)
        model.dataChanged.connect(lambda *_: self.refresh())
        self.refresh()
        self.rebuild_menu()

    @staticmethod
    def is_available() -> bool:
        return QSystemTrayIcon.isSystemTrayAvailable()

    def show(self) -> None:
        self.icon.show()

    def hide(self) -> None:
        self.icon.hide()

    def shutdown(self) -> None:
        self.icon.hide()
        self.icon.setContextMenu(None)  # type: ignore[arg-type]
        self.menu.deleteLater()

    def set_status(self, status: HelperStatus) -> None:
        self._status = status
        self.refresh()

    def set_limits_paused(self, paused: bool | None) -> None:
        self._paused = paused
        self.refresh()

    @property
    def kind(self) -> TrayIconKind | None:
        return self._kind

    def refresh(self) -> None:
        """Icon and tooltip: "down 12.4 MB/s, up 1.1 MB/s, 2 limits", counting
        only limits that are enforced, and saying so when none is."""
        down, up = self._model.totals()
        tally = self._model.limit_tally()
        nothing_enforced = nothing_enforced_reason(self._status, bool(self._paused))
        enforced = 0 if nothing_enforced else tally.enforced
        kind = tray_icon_kind(self._status, (down or 0.0) + (up or 0.0), enforced)
        busy_before = self._kind in (TrayIconKind.TRAFFIC, TrayIconKind.LIMITS_ACTIVE)
        if kind is TrayIconKind.IDLE and None in (down, up) and busy_before:
            kind = TrayIconKind.TRAFFIC  # a total being measured: not idle for a poll
        if kind is not self._kind:
            self._kind = kind
            self.icon.setIcon(self._icons[kind])
        units = self._model.units
        # With the helper away the totals are its last, frozen: not said as now.
        live = self._status.can_monitor or not self._status.is_problem
        tooltip = f"down {total_text(down, units)}, up {total_text(up, units)}, " if live else ""
        if self._status.left_in_force and tally.left:  # the kernel keeps them (gui25)
            tooltip += "the kernel keeps its rate limits as last set, unwatched"
        elif nothing_enforced:
            tooltip += f"no limit is enforced: {nothing_enforced}"
        else:
            tooltip += tally.active
            tooltip += "".join(f", {len(names)} {words}" for words, names in tally.problems)
        if self._status.ended_known:  # how it ended
            tooltip = f"ChadThrottle: {helper_gone_words(self._status)}\n{tooltip}"
        elif self._status.is_problem:
            tooltip = (
                f"ChadThrottle: helper {self._status.state.value.replace('-', ' ')}\n{tooltip}"
            )
        self.icon.setToolTip(tooltip)

    def rebuild_menu(self) -> None:
        """Busiest applications with quick limits, then the fixed entries."""
        self.menu.clear()
        for submenu in self.menu.findChildren(QMenu):  # clear() leaves the old submenus
            submenu.setParent(None)  # type: ignore[call-overload]
            submenu.deleteLater()
        style = menu_style(self._menu_style)
        if style is not self._menu_style:
            old_style, self._menu_style = self._menu_style, style
            style.setParent(self.menu)
            self.menu.setStyle(style)
            if old_style is not None:
                old_style.deleteLater()
        units = self._model.units
        can_limit = self._status.can_limit
        applications = busiest_applications(self._model.applications())
        rates = {
            # The last rates the helper sent stop being news when it is gone: none shown.
            # Each direction, as the window's totals: the sum alone ("Media Server
            # 8.41 MB/s") did not say whether it downloads or uploads.
            info.id: f"▼ {self._rate(info, Direction.DOWN)}  ▲ {self._rate(info, Direction.UP)}"
            if self._status.can_monitor
            else ""
            for info in applications
        }
        nothing_enforced = nothing_enforced_reason(self._status, bool(self._paused))
        if self._status.ended_known:
            # said first, how it ended: a killed helper's limits below stay in force
            note = self.menu.addAction(helper_gone_words(self._status))
            note.setObjectName("nothing-enforced")
            note.setEnabled(False)
        elif nothing_enforced:  # said first: every limit below is only remembered
            note = self.menu.addAction(f"No limit is enforced: {nothing_enforced}")
            note.setObjectName("nothing-enforced")
            note.setEnabled(False)
        if not applications:
            empty = self.menu.addAction(EMPTY_TEXT.get(self._status.state, "").rstrip("."))
            empty.setEnabled(False)
        # Said in words: a bare " *" after the name told a new user nothing.
        markers = {
            info.id: marker(
                limit_word(tuple(self._model.limit_state(info.id, d) for d in Direction)),
                priority_word(self._model.priority_state(info.id)),
            )
            for info in applications
        }
        submenus: dict[str, QMenu] = {}
        for info in applications:
            whole = self._model.shown_name(info.id)  # "name (id)" beside another of its name
            submenu = self.menu.addMenu("")  # titled below, knowing how wide the submenus are
            submenus[info.id] = submenu
            submenu.setObjectName(f"quick:{info.id}")
            submenu.setToolTipsVisible(True)
            for direction in Direction:
                state = self._model.limit_state(info.id, direction)
                # A used-up quota holds the rate checked below: said, as the row's
                # line says it ("Unlimited" then changed nothing, unexplained).
                spent = " (quota used up)" if state.quota_spent else ""
                submenu.addSection(
                    ("Download limit" if direction is Direction.DOWN else "Upload limit") + spent
                )
                limit_bps = self._model.effective_limit(info.id, direction)
                current = checked_label(limit_bps, units)
                # One of them: drawn as radio items (as in the row menu); Block is a switch.
                group = QActionGroup(submenu)
                for quick in quick_limits(units):
                    action = self._quick_action(submenu, info.id, whole, direction, quick, units)
                    group.addAction(action)
                    action.setChecked(quick.label == current and not state.blocked)
                    if quick.rate_bps == CUSTOM and quick.label == current:
                        # checked, "Custom…" alone did not say which limit is in force
                        action.setText(f"Custom: {format_rate(limit_bps, units)}…")
                    action.setEnabled(can_limit and not state.read_only and not state.blocked)
                    # choosing would do nothing now (or less than it says): why
                    # a schedule's rate: a limit chosen is the plain one, for outside it
                    if state.read_only or state.blocked or spent or state.schedule:
                        action.setToolTip(describe_limit(state, direction, units))
                if not self._model.blocks_unavailable:  # a helper without SetBlocked: no Block
                    # a used-up quota's block alone is not one "Blocked" would lift
                    block = self._block_action(submenu, info.id, direction, state)
                    block.setEnabled(can_limit and not state.read_only)
                    if state.by_quota:
                        block.setToolTip(
                            f"{describe_limit(state, direction, units)} {QUOTA_BLOCK_TIP}"
                        )
            submenu.addSection("Priority")
            self._critical_action(submenu, info.id, can_limit)
        self._title_entries(applications, submenus, markers, rates)
        self.menu.addSeparator()
        pause = self.menu.addAction("Pause all limits")
        pause.setObjectName("pause-all")
        pause.setCheckable(True)
        pause.setChecked(bool(self._paused))
        pause.setEnabled(self._paused is not None and self._status.state is HelperState.CONNECTED)
        pause.setToolTip(PAUSE_UNSUPPORTED if self._paused is None else PAUSE_TOOLTIP)
        pause.triggered.connect(self.pauseRequested)
        self.menu.addAction("Open ChadThrottle", self.openRequested.emit).setObjectName("open")
        self.menu.addAction("Quit", self.quitRequested.emit).setObjectName("quit")

    def _title_entries(self, applications: list[ApplicationInfo], submenus: dict[str, QMenu],
                       markers: dict[str, str], rates: dict[str, str]) -> None:  # fmt: skip
        """Each entry's "name (marker)<tab>rates", its name cut only where the
        menu and its widest submenu beside it would not fit on the screen
        (menu_width.name_room); the whole name on pointing where it is cut."""
        metrics = self.menu.fontMetrics()
        label_room = name_room(
            metrics,
            self.menu.screen().availableGeometry().width(),
            max((metrics.horizontalAdvance(rate) for rate in rates.values()), default=0),
            MENU_NAME_CHARS,
            max((submenu.sizeHint().width() for submenu in submenus.values()), default=0),
        )
        rooms = entry_rooms(
            metrics,
            {info.id: (self._model.shown_name(info.id), markers[info.id]) for info in applications},
            label_room,
        )
        for info in applications:
            whole = self._model.shown_name(info.id)
            name = menu_name(whole, metrics, rooms[info.id], info.id, self._model.tell(info.id))
            action = submenus[info.id].menuAction()
            action.setText(f"{name}{markers[info.id]}\t{rates[info.id]}".rstrip("\t"))
            if name.replace("&&", "&") != whole:  # cut: the whole name on pointing
                action.setToolTip(whole)

    def _block_action(
        self, submenu: QMenu, app_id: str, direction: Direction, state: LimitState
    ) -> QAction:
        """ "Block" (ticked "Blocked" while blocked, among the limits listed:
        choosing it unblocks); "Retry unblock", no tick, while a refused
        unblock is held on, as the row menu says."""
        blocked = block_lifts(state)  # a used-up quota's block alone is not one it lifts
        retry = unblock_retried(state)
        action = submenu.addAction(RETRY_UNBLOCK if retry else "Blocked" if blocked else "Block")
        action.setObjectName(action_name(app_id, direction, BLOCK_LABEL))
        action.setCheckable(not retry)  # a ticked "Retry unblock" would read as done
        action.setChecked(blocked and not retry)
        action.setToolTip(unblock_tip(state, self._model.units) if blocked else BLOCK_TIP)
        action.triggered.connect(
            lambda _c=False: self.blockRequested.emit(app_id, direction.value, not blocked)
        )
        return action

    def _critical_action(self, submenu: QMenu, app_id: str, can_limit: bool) -> QAction:
        """ "Critical", the priority's own word as the row menu and the rules
        dialog say it (until gui36 "Protect this app", "Protected (critical
        priority)": a user who set Critical in the window did not know it
        here); checked while it is critical, when choosing it sets Normal. An
        application of another priority says which (under Xvfb Fetcher, High,
        offered a plain choice: nothing in the tray said High, nor that
        Critical replaces it)."""
        state = self._model.priority_state(app_id)
        critical = state.priority == CRITICAL
        other = not critical and state.priority != NORMAL
        label = LABELS[CRITICAL]
        action = submenu.addAction(f"{label} (now {state.label})" if other else label)
        action.setObjectName(f"quick:{app_id}:{CRITICAL_LABEL}")
        action.setCheckable(True)
        action.setChecked(critical)
        reason = self._model.priority_unavailable or (
            describe_priority(state) if state.read_only else ""
        )
        action.setEnabled(can_limit and not reason)
        now = f"{describe_priority(state)} Choosing Critical replaces it. " if other else ""
        action.setToolTip(reason or (f"{describe_priority(state)} Choose again for Normal priority."
                                     if critical else f"{now}{choice_hint(CRITICAL)} "
                                     "Needs the link capacity (status line)."))  # fmt: skip
        wanted = NORMAL if critical else CRITICAL
        action.triggered.connect(lambda _c=False: self.priorityRequested.emit(app_id, wanted))
        return action

    def _quick_action(
        self,
        submenu: QMenu,
        app_id: str,
        name: str,
        direction: Direction,
        quick: QuickLimit,
        units: UnitSystem,
    ) -> QAction:
        action = submenu.addAction(quick.label)  # round in the units shown: "5 MB/s", "40 Mbit/s"
        action.setObjectName(action_name(app_id, direction, quick.label))
        action.setCheckable(True)
        if quick.rate_bps == CUSTOM:
            action.triggered.connect(lambda _c=False: self._ask_custom(app_id, name, direction))
        else:
            action.triggered.connect(
                lambda _c=False, r=quick.rate_bps: self.limitRequested.emit(
                    app_id, direction.value, r
                )
            )
        return action

    def _ask_custom(self, app_id: str, name: str, direction: Direction, error: str = "") -> None:
        """A non-modal dialog; the window and helper keep running while it is open."""
        word = "download" if direction is Direction.DOWN else "upload"
        dialog = QInputDialog(self._dialog_parent)
        dialog.setWindowTitle("Custom limit")
        units = self._model.units
        dialog.setLabelText(
            f"{error}\n\n" * bool(error)
            + f"Limit {name}'s {word} to (e.g. 500K, 2M, 2 {unit_label(units, 2)}, {NO_LIMIT}):"
        )
        dialog.setTextEchoMode(QLineEdit.EchoMode.Normal)
        dialog.setObjectName(f"custom-limit:{app_id}:{direction.value}")

        def chosen(text: str) -> None:
            try:
                rate = parse_rate(text, units)  # "10M" is 10 Mbit/s in bits mode
            except UnitError as exc:
                self._ask_custom(app_id, name, direction, str(exc))
                return
            self.limitRequested.emit(app_id, direction.value, rate)

        dialog.textValueSelected.connect(chosen)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()

    def _rate(self, info: ApplicationInfo, direction: Direction) -> str:
        """As the row says it: "…" while the helper measures it afresh (no rate yet)."""
        if info.measuring(direction):
            return MEASURING
        return format_rate(info.rate_bps(direction), self._model.units)

    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.openRequested.emit()
