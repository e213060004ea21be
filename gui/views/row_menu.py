"""The right-click (and Menu key / Shift+F10) menu of an application's row.

Only what the helper can do is offered: the application's rules (the rules
dialog: limits, schedules, block and quota), quick limits in the units shown,
clearing the rate limits (a block, quota or schedule stays, and it says so),
Block / Unblock per direction (SetBlocked, as the tray's Block; left out with
a helper that has no blocks), its priority (Critical / High / Normal / Low;
disabled, saying why, with a helper older than priorities), copying the id
and showing the connections.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable

from chadthrottle.app_names import name_of_apart, name_with_id
from chadthrottle.contract import MIN_RATE_BPS, Direction
from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.block_choice import BLOCK_TIP, unblock_label, unblock_tip
from chadthrottle.gui.models.limit_truth import QUOTA_BLOCK_TIP, block_lifts, describe_limit
from chadthrottle.gui.models.priority_view import LABELS, choice_hint, describe_priority
from chadthrottle.gui.tray.quick_limits import CUSTOM, checked_label, quick_limits
from chadthrottle.gui.views.menu_heading import add_heading
from chadthrottle.units import UnitSystem, format_rate
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu, QWidget

DIRECTION_TITLES = {Direction.DOWN: "Limit download", Direction.UP: "Limit upload"}

LimitSink = Callable[[str, str, object], None]  # app id, "down"/"up", bytes/s or None
PrioritySink = Callable[[str, str], None]  # app id, "critical"/"high"/"normal"/"low"
BlockSink = Callable[[str, str, bool], None]  # app id, "down"/"up", True: block, False: unblock
BLOCK_TITLES = {Direction.DOWN: "download", Direction.UP: "upload"}


# It removes the rate limits alone (ClearLimit): a block, a quota and schedules
# stay. "Clear limits" left them and read as if it had lifted them (walk26).
CLEAR_RATE_LIMITS = "Clear rate limits"
CLEAR_NOTHING = "Nothing to remove: no rate limit of yours is set on it, schedules aside."
CLEAR_KEEPS = (
    "Blocks, data quotas and schedules stay: Unblock below, Rules… for quotas and schedules."
)


def _clears(model: ApplicationsModel, app_id: str, direction: Direction) -> bool:
    """A rate limit of the viewer's own that ClearLimit removes: not a rate a
    schedule sets now with no plain limit beneath (clearing changed nothing)."""
    state = model.limit_state(app_id, direction)
    if state.schedule and not model.own_limit(app_id, direction):
        return False
    return model.has_own_limit(app_id, direction)


def clear_tip(model: ApplicationsModel, app_id: str, removable: bool = True) -> str:
    """What "Clear rate limits" removes, and what stays of this application's
    now; not removable (greyed): why first (it said only what it removes)."""
    stays = []
    for direction in Direction:
        state, way = model.limit_state(app_id, direction), BLOCK_TITLES[direction]
        if block_lifts(state):
            stays.append(f"{way} blocked")
        if state.quota_bytes:
            stays.append(f"{way} quota")
        if state.schedule:
            stays.append(f"{way} schedule {state.schedule}")
    now = [f"Stays now: {', '.join(stays)}."] if stays else []
    # plain tooltips do not wrap: one line of it ran 1,150 px wide at 1x (Xvfb, words28)
    why = [] if removable else [CLEAR_NOTHING]
    parts = [*why, "Removes the download and upload rate limits you set.", CLEAR_KEEPS, *now]
    return "\n".join(textwrap.fill(part, 72) for part in parts)


def menu_limits(units: UnitSystem) -> list[tuple[str, int | None]]:
    """The tray's quick limits without "Custom…" (the row's own field is for that)
    and without the tray's smallest limit (the slider's Home reaches it)."""
    return [
        (q.label, q.rate_bps)
        for q in quick_limits(units)
        if q.rate_bps not in (CUSTOM, MIN_RATE_BPS)
    ]


def build_row_menu(
    model: ApplicationsModel,
    app_id: str,
    can_limit: bool,
    set_limit: LimitSink,
    copy_id: Callable[[str], None],
    show_connections: Callable[[str], None],
    parent: QWidget | None = None,
    open_rules: Callable[[str], None] | None = None,
    set_priority: PrioritySink | None = None,
    set_blocked: BlockSink | None = None,
) -> QMenu:
    """A menu for one application; each action's objectName says what it is
    (``edit-rules``, ``limit:down:5 MB/s``, ``clear-limits``, ``block:down``,
    ``priority:critical``, ``copy-id``, ``show-connections``)."""
    name = model.shown_name(app_id)  # "name (id)" beside another of its name, as the list
    menu = QMenu(parent)
    menu.setObjectName(f"row-menu:{app_id}")
    menu.setTitle(name)
    menu.setToolTipsVisible(True)
    # Whose menu this is: everything below acts on app_id, not on a row number.
    whose = name if name_of_apart(name, app_id) is not None else name_with_id(name, app_id)
    add_heading(menu, name, f"Everything here acts on {whose}.", app_id, model.tell(app_id))
    units = model.units
    if open_rules is not None:
        rules = menu.addAction("Rules…", lambda: open_rules(app_id))
        rules.setObjectName("edit-rules")
        rules.setToolTip("Limits, schedules, block and data quota of this application")
        menu.addSeparator()
    for direction in Direction:
        state = model.limit_state(app_id, direction)
        # A used-up quota holds the rate checked below: said, as the tray says it
        # (under Xvfb the row menu checked Harbor Browser's "100 KB/s", a limit
        # never set, and nothing said it was the quota's).
        spent = " (quota used up)" if state.quota_spent else ""
        submenu = menu.addMenu(DIRECTION_TITLES[direction] + spent)
        submenu.setObjectName(f"limit:{direction.value}")
        submenu.setToolTipsVisible(True)
        limit_bps = model.effective_limit(app_id, direction)
        current = checked_label(limit_bps, units)
        # One of them, drawn as radio items as in the tray (they were check boxes);
        # none while blocked, when they are greyed as the tray's and the row's field are.
        group = QActionGroup(submenu)
        choices = menu_limits(units)
        if limit_bps and not state.blocked and current not in {label for label, _ in choices}:
            # the limit in force is none of them: it is the one checked (none was,
            # under Xvfb, beside Fetcher's 2.00 MB/s: read as no limit at all)
            choices = [(f"Custom: {format_rate(limit_bps, units)}", limit_bps), *choices]
            current = choices[0][0]
        for label, rate in choices:
            action = QAction(label, group, checkable=True,
                             checked=label == current and not state.blocked)  # fmt: skip
            action.setObjectName(f"limit:{direction.value}:{label}")
            action.setEnabled(can_limit and not state.read_only and not state.blocked)
            # choosing does nothing now, or less; or, under a schedule, applies outside it
            if state.read_only or state.blocked or spent or state.schedule:
                action.setToolTip(describe_limit(state, direction, units))
            action.triggered.connect(
                lambda _c=False, d=direction, r=rate: set_limit(app_id, d.value, r)
            )
            submenu.addAction(action)
    clear = menu.addAction(CLEAR_RATE_LIMITS)
    clear.setObjectName("clear-limits")
    removable = any(_clears(model, app_id, d) for d in Direction)
    clear.setEnabled(can_limit and removable)
    clear.setToolTip(clear_tip(model, app_id, removable))

    def clear_both() -> None:
        for direction in Direction:
            if _clears(model, app_id, direction):
                set_limit(app_id, direction.value, None)

    clear.triggered.connect(clear_both)
    if set_blocked is not None and not model.blocks_unavailable:
        add_block_actions(menu, model, app_id, can_limit, set_blocked)
    if set_priority is not None:
        add_priority_menu(menu, model, app_id, can_limit, set_priority)
    menu.addSeparator()
    menu.addAction("Show connections", lambda: show_connections(app_id)).setObjectName(
        "show-connections"
    )
    menu.addAction("Copy application id", lambda: copy_id(app_id)).setObjectName("copy-id")
    return menu


def add_priority_menu(menu: QMenu, model: ApplicationsModel, app_id: str, can_limit: bool,
                      set_priority: PrioritySink) -> QMenu:  # fmt: skip
    """ "Priority" with the four levels, the one shown checked; disabled, with
    the reason as its tooltip, when choosing could do nothing."""
    state = model.priority_state(app_id)
    submenu = menu.addMenu("Priority")
    submenu.setObjectName("priority")
    submenu.setToolTipsVisible(True)
    reason = model.priority_unavailable or (describe_priority(state) if state.read_only else "")
    submenu.menuAction().setToolTip(reason or describe_priority(state))
    group = QActionGroup(submenu)  # one of four: drawn as radio items
    for value, label in LABELS.items():
        action = QAction(label, group, checkable=True, checked=value == state.priority)
        action.setObjectName(f"priority:{value}")
        action.setEnabled(can_limit and not reason)
        action.setToolTip(reason or choice_hint(value))
        action.triggered.connect(lambda _c=False, v=value: set_priority(app_id, v))
        submenu.addAction(action)
    submenu.setEnabled(not model.priority_unavailable)
    return submenu


def add_block_actions(menu: QMenu, model: ApplicationsModel, app_id: str, can_limit: bool,
                      set_blocked: BlockSink) -> None:  # fmt: skip
    """ "Block download" / "Block upload", reading "Unblock …" while blocked:
    what choosing it does, no tick (under Xvfb at 2x a ticked "Unblock
    download" read as unblocked already; the row says Blocked). Disabled where
    a limit would be (helper away, an administrator's rule). No confirmation:
    the tray's Block asks none, and unblocking undoes it. SetBlocked for one's
    own applications asks for no password (polkit's limit-own), so no
    administrator note."""
    for direction in Direction:
        state = model.limit_state(app_id, direction)
        blocked = block_lifts(state)  # a used-up quota's block is not one to unblock
        title = BLOCK_TITLES[direction]
        # held on after a refused unblock: "Retry unblock upload", saying why
        action = menu.addAction(f"{unblock_label(state)} {title}" if blocked else f"Block {title}")
        action.setObjectName(f"block:{direction.value}")
        action.setEnabled(can_limit and not state.read_only)
        action.setToolTip(
            describe_limit(state, direction, model.units)
            if state.read_only
            else unblock_tip(state, model.units)
            if blocked
            else f"{describe_limit(state, direction, model.units)} {QUOTA_BLOCK_TIP}"
            if state.by_quota
            else BLOCK_TIP
        )
        action.triggered.connect(
            lambda _c=False, d=direction, b=blocked: set_blocked(app_id, d.value, not b)
        )
