"""The rules of one application: its limits, schedules, block and data quota.

Opened from the row's context menu ("Rules…"). Three tabs, so it fits a
1366x768 screen at twice the scale (683x384 logical pixels). It only asks:
each button emits what the user wants as a signal, and the flow
(gui/rules_flow.py) sends it to the helper and shows the answer here with
show_outcome(). What it can check itself (a rate or size that does not
parse, no day ticked, from equal to to) it says at once and sends nothing;
everything else the helper checks and names (an overlap, a time the clocks
skip).
"""

from __future__ import annotations

import functools
import textwrap
from dataclasses import dataclass, field

from chadthrottle.contract import PAUSED_PROBLEM, QUOTA_PERIODS, Direction, ScheduleInfo
from chadthrottle.gui.models.block_choice import RESUME_AFTER_UNBLOCK
from chadthrottle.gui.models.limit_truth import (
    PERIOD_NEXT,
    PERIOD_NOW,
    helper_off,
    quota_counted_since,
    quota_holds,
)
from chadthrottle.gui.models.priority_view import LABELS, choice_hint
from chadthrottle.gui.widgets.limit_slider import error_colour
from chadthrottle.units import (
    NO_LIMIT,
    UnitError,
    UnitSystem,
    format_rate,
    format_size,
    parse_rate,
    parse_size,
)
from PySide6.QtCore import QEvent, QObject, QSize, Qt, QTime, Signal
from PySide6.QtGui import QKeyEvent, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTabWidget,
    QTimeEdit,
    QVBoxLayout,
    QWidget,
)

DAY_LABELS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DAY_NAMES = (
    "mon",
    "tue",
    "wed",
    "thu",
    "fri",
    "sat",
    "sun",
)  # the helper's (helper/engine/schedules.py)
DIRECTION_LABELS = {Direction.DOWN: "Download", Direction.UP: "Upload"}
QUOTA_DIRECTIONS = (("Download", "down"), ("Upload", "up"), ("Each direction", "both"))
THEN_BLOCK = "block"


@dataclass(frozen=True)
class AppRules:
    """What the dialog shows of one application: the viewer's own rule."""

    app_id: str
    name: str
    limits: dict[Direction, int] = field(default_factory=dict)  # the plain limits, bytes/s, 0 none
    scheduled: dict[Direction, str] = field(
        default_factory=dict
    )  # the schedule setting a direction now
    blocked: dict[Direction, bool] = field(default_factory=dict)
    quotas: dict[Direction, tuple[int, int, str]] = field(
        default_factory=dict
    )  # bytes, left, period
    # a direction whose quota is used up: the rate it holds it to now (bytes/s, 0 blocked)
    held_by_quota: dict[Direction, int] = field(default_factory=dict)
    # of those, the ones on their way to that rate: the kernel blocks them for a
    # tick or two meanwhile (LimitState.quota_switching), not held to it yet
    quota_switching: frozenset[Direction] = frozenset()
    # what each quota does once used up (ListRules): bytes/s, 0 blocks; None not known
    quota_then: dict[Direction, int | None] = field(default_factory=dict)
    # a used-up quota held on after a refused change, or one whose count could not be
    # read: the pane's words (describe_held_quota), said instead of what is left
    quota_words: dict[Direction, str] = field(default_factory=dict)
    # a limit of the viewer's own kept beneath a block, said as the detail pane says it
    kept: dict[Direction, str] = field(default_factory=dict)
    schedules: tuple[ScheduleInfo, ...] = ()
    read_only: str = ""  # why the viewer cannot change them ("" when they can)
    # why nothing set here is enforced now (limits paused, the helper away), "" when it may be
    not_enforced: str = ""
    priority: str = "normal"  # shown: the viewer's request on its way, else the helper's
    priority_note: str = ""  # describe_priority's sentence (whose, not in force and why)
    priority_disabled: str = ""  # why the priority cannot be changed here ("" when it can)


SCHEDULE_ROWS_WANTED = 4  # the schedules' list asks room for this many lines


class ScheduleList(QListWidget):
    """The schedules, asking room for a few: Qt's default (256 px) made the
    Schedules tab the dialog's tallest by far; it takes what the dialog has."""

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        wanted = self.fontMetrics().lineSpacing() * SCHEDULE_ROWS_WANTED + 2 * self.frameWidth()
        return QSize(hint.width(), min(hint.height(), wanted))


class RulesDialog(QDialog):
    limitRequested = Signal(
        str, str, object
    )  # app id, "down"/"up", bytes/s or None (as MainWindow's)
    # app id, days, from, to, down, up (bytes/s, 0 none), blocked ("", "down", "up", "both")
    scheduleAdded = Signal(str, str, str, str, object, object, str)
    scheduleRemoved = Signal(str, str)  # app id, schedule name
    blockRequested = Signal(str, str, bool)  # app id, "down"/"up", blocked
    quotaRequested = Signal(
        str, str, object, str, object
    )  # app id, "down"/"up"/"both", bytes, period, then bytes/s (0 block)
    quotaCleared = Signal(str, str)  # app id, "down"/"up"/"both"
    priorityRequested = Signal(str, str)  # app id, "critical"/"high"/"normal"/"low"

    def __init__(self, rules: AppRules, units: UnitSystem, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(f"rulesDialog:{rules.app_id}")
        self.setWindowTitle(f"Rules of {rules.name}")
        self.units = units
        self.rules = rules
        self._read_only_said = ""  # the reason shown under the tabs that nothing can be changed
        self.tabs = QTabWidget(self)
        self.tabs.setAccessibleName(f"Rules of {rules.name}")  # it takes the focus: announce it
        pages = (self._limits_tab(), self._schedules_tab(), self._gates_tab())
        for page, name in zip(pages, ("&Limits", "&Schedules", "&Block and quota"), strict=True):
            self.tabs.addTab(page, name)
            # every tab counts in the dialog's size, shown or not (_fit_height)
            policy = page.sizePolicy()
            policy.setRetainSizeWhenHidden(True)
            page.setSizePolicy(policy)
        self.message = QLabel(self)
        self.message.setObjectName("rulesMessage")
        self.message.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        title = QLabel(
            f"<b>{_escape(rules.name)}</b> <span style='color:gray'>{_escape(rules.app_id)}</span>",
            self,
        )
        title.setWordWrap(True)
        layout.addWidget(title)
        # Above the tabs, so every tab is read under it: paused, under Xvfb, the
        # dialog showed "Upload limit: 1.00 MB/s" as if it held, and said nothing.
        self.enforcement_note = QLabel(self)
        self.enforcement_note.setObjectName("enforcementNote")
        self.enforcement_note.setWordWrap(True)
        self.enforcement_note.hide()
        layout.addWidget(self.enforcement_note)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.message)
        layout.addWidget(buttons)
        # Enter presses the button of the tab shown. Qt made the first button in
        # the focus chain (Apply limits) the dialog's default for every tab:
        # hidden on the others, Enter after typing a quota's amount or a
        # schedule's rate did nothing.
        self._tab_buttons = (self.apply_limits, self.add_schedule, self.set_quota)
        self.tabs.currentChanged.connect(self._default_for_tab)
        self._default_for_tab(self.tabs.currentIndex())
        # In the schedules' list Enter is not "add another": the list passes it on.
        self.schedule_list.installEventFilter(self)
        # The one direction with a quota, chosen: on "Download" beside an upload quota
        # (under Xvfb) its Remove quota was grey, as if there were none to remove.
        with_quota = [d for d, (size, _left, _period) in rules.quotas.items() if size]
        if len(with_quota) == 1:
            self.quota_direction.setCurrentIndex(self.quota_direction.findData(with_quota[0].value))
        self.show_rules(rules)
        self._fill_quota_form()
        self.quota_direction.currentIndexChanged.connect(lambda _i: self._fill_quota_form())

    # --- tabs ---------------------------------------------------------------------------

    def _limits_tab(self) -> QWidget:
        tab = QWidget(self)
        form = QFormLayout(tab)
        self.limit_edits: dict[Direction, QLineEdit] = {}
        for direction in Direction:
            edit = QLineEdit(tab)
            edit.setObjectName(f"limit:{direction.value}")
            edit.setPlaceholderText(NO_LIMIT)
            edit.setAccessibleName(f"{DIRECTION_LABELS[direction]} limit")
            self.limit_edits[direction] = edit
            form.addRow(f"{DIRECTION_LABELS[direction]} limit:", edit)
        self.apply_limits = QPushButton("Apply limits", tab)
        self.apply_limits.setObjectName("applyLimits")
        self.apply_limits.clicked.connect(self._on_apply_limits)
        hint = QLabel(
            f"Empty: {NO_LIMIT} (no limit). E.g. 500K, 2M; in the units the window shows.", tab
        )
        hint.setWordWrap(True)
        form.addRow(hint)
        self.scheduled_note = QLabel(tab)
        self.scheduled_note.setObjectName("scheduledNote")
        self.scheduled_note.setWordWrap(True)
        form.addRow(self.scheduled_note)
        button_row = QHBoxLayout()
        button_row.addStretch(1)
        button_row.addWidget(self.apply_limits)
        form.addRow(button_row)
        self.priority = QComboBox(tab)
        self.priority.setObjectName("priority")
        self.priority.setAccessibleName("Priority")
        for value, label in LABELS.items():
            self.priority.addItem(label, value)
            self.priority.setItemData(
                self.priority.count() - 1, choice_hint(value), Qt.ItemDataRole.ToolTipRole
            )
        self.priority.activated.connect(self._on_priority)
        form.addRow("&Priority:", self.priority)  # sent when chosen, not by Apply limits
        self.priority_note = QLabel(tab)
        self.priority_note.setObjectName("priorityNote")
        self.priority_note.setWordWrap(True)
        form.addRow(self.priority_note)
        return tab

    def _schedules_tab(self) -> QWidget:
        tab = QWidget(self)
        layout = QVBoxLayout(tab)
        self.schedule_list = ScheduleList(tab)
        self.schedule_list.setObjectName("schedules")
        self.schedule_list.setAccessibleName("Schedules")
        self.schedule_list.setWordWrap(True)  # at 2x a schedule's line is wider than the list
        self.schedule_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.remove_schedule = QPushButton("Remove", tab)
        self.remove_schedule.setObjectName("removeSchedule")
        self.remove_schedule.clicked.connect(self._on_remove_schedule)
        self.remove_schedule.setEnabled(False)  # until a schedule is chosen in the list
        self.schedule_list.currentRowChanged.connect(
            lambda row: self.remove_schedule.setEnabled(row >= 0)
        )
        top = QHBoxLayout()
        top.addWidget(self.schedule_list, 1)
        top.addWidget(self.remove_schedule)
        layout.addLayout(top, 1)
        days = QHBoxLayout()
        self.day_boxes = []
        for label, name in zip(DAY_LABELS, DAY_NAMES, strict=True):
            box = QCheckBox(label, tab)
            box.setObjectName(f"day:{name}")
            box.setChecked(name not in ("sat", "sun"))
            days.addWidget(box)
            self.day_boxes.append(box)
        layout.addLayout(days)
        grid = QGridLayout()
        self.schedule_from, self.schedule_to = (
            QTimeEdit(QTime(9, 0), tab),
            QTimeEdit(QTime(17, 0), tab),
        )
        for edit, name in ((self.schedule_from, "from"), (self.schedule_to, "to")):
            edit.setDisplayFormat("HH:mm")
            edit.setObjectName(f"schedule:{name}")
        self.schedule_rates = {d: QLineEdit(tab) for d in Direction}
        self.schedule_blocks = {d: QCheckBox("block", tab) for d in Direction}
        for direction, rate_edit in self.schedule_rates.items():
            rate_edit.setObjectName(f"schedule:{direction.value}")
            rate_edit.setPlaceholderText(NO_LIMIT)  # the one word for it (walk28: "not limited")
            box = self.schedule_blocks[direction]
            box.setObjectName(f"schedule:block:{direction.value}")
            box.setToolTip(
                f"Block {DIRECTION_LABELS[direction].lower()} while the schedule is active"
            )
            box.toggled.connect(lambda on, e=rate_edit: e.setEnabled(not on))
        grid.addWidget(QLabel("From", tab), 0, 0)
        grid.addWidget(self.schedule_from, 0, 1)
        grid.addWidget(QLabel("to", tab), 0, 2)
        grid.addWidget(self.schedule_to, 0, 3)
        for row, direction in (
            (1, Direction.DOWN),
            (2, Direction.UP),
        ):  # a row each: at 2x two did not fit
            rate_row = QHBoxLayout()
            rate_row.addWidget(self.schedule_rates[direction], 1)
            rate_row.addWidget(self.schedule_blocks[direction])
            grid.addWidget(QLabel("Down" if direction is Direction.DOWN else "Up", tab), row, 0)
            grid.addLayout(rate_row, row, 1, 1, 3)
        self.add_schedule = QPushButton("Add schedule", tab)
        self.add_schedule.setObjectName("addSchedule")
        self.add_schedule.clicked.connect(self._on_add_schedule)
        grid.addWidget(self.add_schedule, 0, 4)
        layout.addLayout(grid)
        return tab

    def _gates_tab(self) -> QWidget:
        tab = QWidget(self)
        layout = QVBoxLayout(tab)
        blocks = QHBoxLayout()
        self.block_boxes: dict[Direction, QCheckBox] = {}
        for direction in Direction:
            box = QCheckBox(f"Block {DIRECTION_LABELS[direction].lower()}", tab)
            box.setObjectName(f"block:{direction.value}")
            box.setToolTip(  # plain tooltips do not wrap: 1,150 px wide at 1x (Xvfb)
                "No packet passes, open connections included.\n"
                + textwrap.fill(f"Unticked: unblocked. {RESUME_AFTER_UNBLOCK}", 72)
            )
            box.clicked.connect(
                lambda on, d=direction: self.blockRequested.emit(self.rules.app_id, d.value, on)
            )
            blocks.addWidget(box)
            self.block_boxes[direction] = box
        layout.addLayout(blocks)
        form = QFormLayout()
        self.quota_direction, self.quota_period, self.quota_then = (
            QComboBox(tab),
            QComboBox(tab),
            QComboBox(tab),
        )
        for label, value in QUOTA_DIRECTIONS:
            self.quota_direction.addItem(label, value)
        for period in QUOTA_PERIODS:
            self.quota_period.addItem(f"per {period}", period)
        self.quota_then.addItem("block it", THEN_BLOCK)
        self.quota_then.addItem("limit it to…", "limit")
        self.quota_size, self.quota_then_rate = QLineEdit(tab), QLineEdit(tab)
        self.quota_size.setObjectName("quota:size")
        self.quota_size.setPlaceholderText("e.g. 5GB")
        self.quota_then_rate.setObjectName("quota:then")
        self.quota_then_rate.setPlaceholderText("e.g. 100K")
        self.quota_then.currentIndexChanged.connect(
            lambda _i: self.quota_then_rate.setEnabled(self._then_limits())
        )
        self.quota_then_rate.setEnabled(False)
        self.quota_direction.currentIndexChanged.connect(lambda _i: self._fit_clear_quota())
        amount = QHBoxLayout()
        amount.addWidget(self.quota_size)
        amount.addWidget(self.quota_period)
        then = QHBoxLayout()
        then.addWidget(self.quota_then)
        then.addWidget(self.quota_then_rate)
        form.addRow("Quota for:", self.quota_direction)
        form.addRow("Amount:", amount)
        form.addRow("When used up:", then)
        layout.addLayout(form)
        self.quota_state = QLabel(tab)
        self.quota_state.setObjectName("quotaState")
        self.quota_state.setWordWrap(True)  # two quotas, each saying from when it counts
        layout.addWidget(self.quota_state)
        buttons = QHBoxLayout()
        self.set_quota, self.clear_quota = (
            QPushButton("Set quota", tab),
            QPushButton("Remove quota", tab),
        )
        self.set_quota.setObjectName("setQuota")
        self.clear_quota.setObjectName("clearQuota")
        self.set_quota.setToolTip("Set again, a quota keeps what this period used")
        self.clear_quota.setToolTip(
            "Forgets what this period used: a quota set again counts from zero"
        )
        self.set_quota.clicked.connect(self._on_set_quota)
        self.clear_quota.clicked.connect(
            lambda: self.quotaCleared.emit(self.rules.app_id, self.quota_direction.currentData())
        )
        buttons.addWidget(self.set_quota)
        buttons.addWidget(self.clear_quota)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        layout.addStretch(1)
        return tab

    # --- showing ------------------------------------------------------------------------

    def show_rules(self, rules: AppRules) -> None:
        """Show the rule as the helper has it now (each poll): a field the user
        is typing in, and the schedule they selected, are left as they are."""
        shown_schedules, self.rules = self.rules.schedules, rules
        for direction, edit in self.limit_edits.items():
            rate = rules.limits.get(direction, 0)
            if not edit.isModified():
                edit.setText(format_rate(rate, self.units) if rate else "")
        self.scheduled_note.setText(" ".join([
            *(f"The schedule {name} sets the {DIRECTION_LABELS[d].lower()} limit now; the one here applies outside it."
              for d, name in rules.scheduled.items() if name),
            *(self._held_by_quota(d, rate) for d, rate in rules.held_by_quota.items()),
            *(note for note in rules.kept.values() if note),
            # a block and no limit of one's own beneath: this tab said only "no limit"
            *(f"The {DIRECTION_LABELS[d].lower()} is blocked (Block and quota): a limit set here applies once it is unblocked."
              for d, blocked in rules.blocked.items()
              if blocked and not rules.kept.get(d) and d not in rules.held_by_quota)]))  # fmt: skip
        self.priority.setCurrentIndex(max(0, self.priority.findData(rules.priority)))
        self.priority.setEnabled(not (rules.priority_disabled or rules.read_only))
        self.priority.setToolTip(rules.priority_disabled or rules.read_only or rules.priority_note)
        self.priority_note.setText(rules.priority_disabled or rules.priority_note)
        if rules.schedules != shown_schedules or self.schedule_list.count() != len(rules.schedules):
            self._show_schedules(rules.schedules)
        for direction, box in self.block_boxes.items():
            box.setChecked(rules.blocked.get(direction, False))
        size_text = functools.partial(format_size, units=self.units)
        quotas = [f"{DIRECTION_LABELS[d]}: " + (rules.quota_words.get(d) or (f"{size_text(left)} of {size_text(size)} left {when(period)}, {quota_counted_since(period)}" if left
                                                else f"all {size_text(size)} used {when(period)}{self._holds(d, period)}"))
                  for d, (size, left, period) in rules.quotas.items() if size]  # fmt: skip
        # Said before one is set: a 2 GB daily quota on an application that read 58 GB
        # today said "1.99 GB of 2 GB left today", and nothing said why. Each quota a
        # sentence, as every other line here: two were one, joined by ";", without a stop.
        self.quota_state.setText(
            " ".join(f"{quota}." for quota in quotas)
            or "No quota. A new quota counts from when it is set."
        )
        for widget in (self.apply_limits, self.add_schedule, self.set_quota, self.clear_quota,
                       *self.block_boxes.values()):  # fmt: skip
            widget.setEnabled(not rules.read_only)
            widget.setToolTip(rules.read_only or widget.toolTip())
        self._fit_clear_quota()
        note = not_enforced_words(rules.not_enforced, changeable=not rules.read_only)
        self.enforcement_note.setText(note)
        self.enforcement_note.setStyleSheet(f"color: {error_colour(self.palette())}")
        self.enforcement_note.setVisible(bool(note))
        if self.isVisible():  # a note that came with this poll may need more room
            self._fit_height()
        # Said when it begins (not again each poll, over an answer shown since),
        # and taken back when changes can be made again (the helper back).
        # The helper away: the note above says both (the message line said it again,
        # "The helper stopped — its limits are off.", gui31b); the fields' tooltips keep it.
        said_above = bool(note) and helper_off(rules.not_enforced)
        if rules.read_only and rules.read_only != self._read_only_said and not said_above:
            self.show_outcome(rules.read_only, error=True)
        elif not rules.read_only and self._read_only_said == self.message.text():
            self.show_outcome("")
        self._read_only_said = rules.read_only

    def _fit_clear_quota(self) -> None:
        """Remove quota only where the direction chosen has one to remove."""
        chosen = self.quota_direction.currentData()
        directions = tuple(Direction) if chosen == "both" else (Direction(chosen),)
        has = any(self.rules.quotas.get(d, (0, 0, ""))[0] for d in directions)
        self.clear_quota.setEnabled(has and not self.rules.read_only)

    def _show_schedules(self, schedules: tuple[ScheduleInfo, ...]) -> None:
        self.schedule_list.clear()
        for schedule in schedules:
            rates = ", ".join(f"{name} {'blocked' if blocked else format_rate(rate, self.units)}"
                              for name, rate, blocked in (("down", schedule.down_bps, schedule.down_blocked),
                                                          ("up", schedule.up_bps, schedule.up_blocked))
                              if rate or blocked)  # fmt: skip
            item = QListWidgetItem(
                f"{schedule.name}  ·  {rates}{'  ·  active now' if schedule.active else ''}"
            )
            item.setData(0x0100, schedule.name)  # Qt.UserRole
            self.schedule_list.addItem(item)
        self.remove_schedule.setEnabled(False)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._fit_height()

    def _default_for_tab(self, index: int) -> None:
        for tab, button in enumerate(self._tab_buttons):
            button.setDefault(tab == index)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.schedule_list
            and isinstance(event, QKeyEvent)
            and event.type() == QEvent.Type.KeyPress
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        ):
            return True  # taken here: nothing to do on a schedule (Remove is its button)
        return super().eventFilter(watched, event)

    def _fit_height(self) -> None:
        """As tall as its lines need, within the screen: Qt gives a new window at most
        two thirds of the screen's height, and at 2x on 1366x768 (256 of 384 px) that
        left the dialog its least, where the wrapped notes were squeezed into each
        other ("Empty: no limit" cut, the quota's line without its end). Every tab
        counts, shown or not: sized for the one shown, it grew at the next poll
        after another was opened (320 to 371 px at 2x, 334 to 442 at 1x)."""
        screen = self.screen().availableGeometry()
        frame = max(0, self.frameGeometry().height() - self.height())
        wanted = min(self.sizeHint().height(), screen.height() - frame)
        if self.height() < wanted:
            self.resize(self.width(), wanted)

    def _holds(self, direction: Direction, period: str) -> str:
        """What a used-up quota holds its direction to, beside its Block box (the
        box is a block of one's own: the quota's is not ticked there)."""
        if direction not in self.rules.held_by_quota:
            return ""
        rate_bps = self.rules.held_by_quota[direction]
        rate = format_rate(rate_bps, self.units, unbroken=True)
        # on its way: the kernel blocks it until the helper has set that rate
        # (a tick or two), as the pane says it (quota_holds)
        held = quota_holds(rate if rate_bps else "", direction in self.rules.quota_switching)
        return f": {held} until {PERIOD_NEXT.get(period, f'the next {period}')}"

    def _held_by_quota(self, direction: Direction, rate_bps: int) -> str:
        """What a used-up quota does to the direction now, and what a limit here adds."""
        word = DIRECTION_LABELS[direction].lower()
        period = self.rules.quotas.get(direction, (0, 0, ""))[2]
        until = PERIOD_NEXT.get(period, f"the next {period}")
        if not rate_bps:
            return f"The {word} quota is used up: the {word} is blocked until {until}."
        rate = format_rate(rate_bps, self.units, unbroken=True)  # "97.7" and "KiB/s" parted at 1x
        held = quota_holds(rate, direction in self.rules.quota_switching)
        return (f"The {word} quota is used up: the {word} is {held} until {until}; "
                "a limit here holds too where it is lower.")  # fmt: skip

    def show_outcome(self, text: str, error: bool = False) -> None:
        """One line under the tabs: what the helper said, or what is wrong here."""
        self.message.setText(text)
        self.message.setStyleSheet(f"color: {error_colour(self.palette())}" if error else "")

    # --- asking -------------------------------------------------------------------------

    def _rate(self, edit: QLineEdit, what: str) -> int | bool | None:
        """bytes/s, None (empty: none), or False after saying what is wrong."""
        text = edit.text().strip()
        if not text:
            return None
        try:
            return parse_rate(text, self.units)
        except UnitError as error:
            self.show_outcome(f"{what}: {error}", error=True)
            edit.setFocus()
            return False

    def _on_apply_limits(self) -> None:
        wanted = {
            d: self._rate(edit, f"{DIRECTION_LABELS[d]} limit")
            for d, edit in self.limit_edits.items()
        }
        if any(rate is False for rate in wanted.values()):
            return
        changed = [
            (d, rate) for d, rate in wanted.items() if (rate or 0) != self.rules.limits.get(d, 0)
        ]
        for direction in wanted:
            self.limit_edits[direction].setModified(False)  # follows the helper again
        # Said before asking: an answer may come at once (no helper), and was
        # then covered by "Asking…", which stayed (RulesFlow says the outcome).
        self.show_outcome("Asking the helper…" if changed else "No change to apply.")
        for direction, rate in changed:
            self.limitRequested.emit(self.rules.app_id, direction.value, rate)

    def _on_priority(self, row: int) -> None:
        value = str(self.priority.itemData(row))
        if value != self.rules.priority:
            self.show_outcome("Asking the helper…")
            self.priorityRequested.emit(self.rules.app_id, value)

    def chosen_days(self) -> str:
        return ",".join(
            name for name, box in zip(DAY_NAMES, self.day_boxes, strict=True) if box.isChecked()
        )

    def _on_add_schedule(self) -> None:
        days = self.chosen_days()
        start, end = (
            edit.time().toString("HH:mm") for edit in (self.schedule_from, self.schedule_to)
        )
        blocked = [d for d, box in self.schedule_blocks.items() if box.isChecked()]
        rates = {d: None if d in blocked else self._rate(edit, f"Scheduled {DIRECTION_LABELS[d].lower()}")
                 for d, edit in self.schedule_rates.items()}  # fmt: skip
        if any(rate is False for rate in rates.values()):
            return
        if not days:
            self.show_outcome("Tick at least one day.", error=True)
        elif start == end:
            self.show_outcome(
                "From and to are the same time: for all day, set a plain limit instead.", error=True
            )
        elif not any(rates.values()) and not blocked:
            self.show_outcome(
                "Give a download or an upload rate for the schedule, or block.", error=True
            )
        else:
            which = "both" if len(blocked) == 2 else blocked[0].value if blocked else ""
            self.scheduleAdded.emit(self.rules.app_id, days, start, end,
                                    rates[Direction.DOWN] or 0, rates[Direction.UP] or 0, which)  # fmt: skip
            self.show_outcome("Asking the helper…")

    def _on_remove_schedule(self) -> None:
        item = self.schedule_list.currentItem()
        if item is not None:
            self.scheduleRemoved.emit(self.rules.app_id, str(item.data(0x0100)))
            self.show_outcome("Asking the helper…")

    def _fill_quota_form(self) -> None:
        """The form as the quota in force of the direction chosen: under Xvfb it
        read an empty amount and "block it" beside "held to 100 KB/s", and a new
        amount set with it would have turned that limit into a block unasked.
        Exact (parse_size and parse_rate read back the same bytes in any units);
        what the user typed is left."""
        if self.quota_size.isModified() or self.quota_then_rate.isModified():
            return
        chosen = self.quota_direction.currentData()
        directions = list(Direction) if chosen == "both" else [Direction(chosen)]
        quotas = {(self.rules.quotas.get(d, (0, 0, ""))[::2], self.rules.quota_then.get(d))
                  for d in directions}  # fmt: skip
        if len(quotas) != 1:
            return  # each direction its own: nothing one form could say
        ((size, period), then) = quotas.pop()
        if not size or then is None:
            return
        self.quota_size.setText(_exact(size, _SIZE_SCALES))
        self.quota_period.setCurrentIndex(max(0, self.quota_period.findData(period)))
        self.quota_then.setCurrentIndex(self.quota_then.findData("limit" if then else THEN_BLOCK))
        self.quota_then_rate.setText(_exact(then, _RATE_SCALES) if then else "")

    def _then_limits(self) -> bool:
        return self.quota_then.currentData() != THEN_BLOCK

    def _on_set_quota(self) -> None:
        try:
            size = parse_size(self.quota_size.text())
        except UnitError as error:
            self.show_outcome(f"Quota: {error}", error=True)
            return
        then = self._rate(self.quota_then_rate, "When used up") if self._then_limits() else None
        if then is False or (self._then_limits() and then is None):
            if then is None:
                self.show_outcome("When used up: give the rate to limit it to.", error=True)
            return
        self.quotaRequested.emit(self.rules.app_id, self.quota_direction.currentData(), size,
                                 self.quota_period.currentData(), then or 0)  # fmt: skip
        self.show_outcome("Asking the helper…")


_SIZE_SCALES = (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3),
                 ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10), ("", 1))  # fmt: skip
_RATE_SCALES = (("GB/s", 10**9), ("MB/s", 10**6), ("KB/s", 10**3), ("B/s", 1))


def _exact(amount: int, scales: tuple[tuple[str, int], ...]) -> str:
    """An amount as the fields read it back exactly: "1MB", "100 KB/s", "1234567"
    (the window's units round: 20 MB read back as 19.1 MiB was 20,027,802 bytes)."""
    for suffix, factor in scales:
        if amount % factor == 0:
            space = " " if "/" in suffix else ""
            return f"{amount // factor}{space}{suffix}"
    return str(amount)


def not_enforced_words(reason: str, changeable: bool = True) -> str:
    """The line above the tabs while nothing set here is enforced ("" otherwise);
    with the helper away, also that nothing can be changed (said once, here)."""
    if not reason:
        return ""
    if reason == PAUSED_PROBLEM:
        return ("Limits are paused: nothing set here is enforced until they are resumed "
                "(Resume limits, in the window or the tray's menu).")  # fmt: skip
    if not changeable and helper_off(reason):
        return f"Nothing set here is enforced or can be changed now: {reason}."
    return f"Nothing set here is enforced now: {reason}."


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def when(period: str) -> str:
    """ "today", "this week", "this month": as the row's quota line says it."""
    return PERIOD_NOW.get(period, f"this {period}")
