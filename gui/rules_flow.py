"""The rules dialog's traffic with the helper: open it from the row's menu,
fill it from the model and ListSchedules, send what the user asks
(SetSchedule, ClearSchedules, SetBlocked, SetQuota, ClearQuota) off the GUI
thread, and show each answer in the dialog. Plain limits take the window's
own path (the controller's request_limit: shown at once, then confirmed).

Every rule the GUI makes is the viewer's default scope (own, or the
administrator's for root), as the limit fields and the tray do.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable

from chadthrottle.contract import ADMIN_OWNER, Direction, RuleInfo, ScheduleInfo
from chadthrottle.gui.ipc.client_protocol import HelperClientLike
from chadthrottle.gui.ipc.connection import HelperConnection, LimitRequest
from chadthrottle.gui.ipc.worker import Snapshot
from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.block_choice import unblocked_words
from chadthrottle.gui.models.limit_truth import (
    PERIOD_NOW,
    LimitState,
    block_lifts,
    describe_held_quota,
    describe_kept_limit,
    describe_limit,
)
from chadthrottle.gui.models.priority_view import describe_priority
from chadthrottle.gui.priority_flow import PRIORITY_KEY
from chadthrottle.gui.views.rules_dialog import AppRules, RulesDialog
from chadthrottle.units import format_size
from PySide6.QtCore import QObject, QTimer

SCHEDULES_KEY, CHANGE_KEY = "rules:schedules", "rules:change"
# An unblock's answer, keyed apart (CHANGE_KEY:unblock:<direction>:<app id>): once
# done, the dialog says when open connections go on, as the status line does
# after the row menu's (it said "Done." and the download read 0 B/s for 25 s).
UNBLOCK_KEY = f"{CHANGE_KEY}:unblock:"
# A quota set or removed: "Done." at the helper's answer, the quota shown as asked
# until a listing shows it (it said "Done." beside "No quota." for a poll's while,
# walk28); it waited for that listing until gui30, and a poll that failed after the
# change said the poll's failure alone, never "Done.", of a quota the helper had set.
# Each change its own key (QUOTA_KEY:<serial>), its ask kept under it: the worker
# runs each call as its own task, so answers come in any order; paired by order
# until gui31, a refused change answered before a slow one took that one's ask
# and the slow one's success showed the refused quota as asked (review33b G4).
QUOTA_KEY = f"{CHANGE_KEY}:quota:"
READ_BACK_FAILED = "Done: the helper made the quota change. Reading it back failed since:"
# (app id, direction) -> the quota asked (bytes, period), or None: removed.
QuotaAsked = dict[tuple[str, Direction], tuple[int, str] | None]


def _direction(value: str) -> Direction | None:
    return None if value == "both" else Direction(value)


class RulesFlow(QObject):
    def __init__(self, connection: HelperConnection, model: ApplicationsModel, window: QObject,
                 request_limit: Callable[[str, str, int | None], None]) -> None:  # fmt: skip
        super().__init__(window)
        self._connection = connection
        self._model = model
        self._window = window
        self._request_limit = request_limit
        self._owner = ADMIN_OWNER if os.getuid() == 0 else os.getuid()
        self._schedules: tuple[ScheduleInfo, ...] = ()
        self._plain_rules: tuple[RuleInfo, ...] = ()  # ListRules of the last poll: the plain limits
        # Blocks asked for and not yet seen in a listing: shown as asked, so a
        # poll answered before the helper changed does not flip the box back.
        self._blocks_asked: dict[tuple[str, Direction], bool] = {}
        self.dialog: RulesDialog | None = None
        # Quota changes sent, not answered yet (by their call's key), and those
        # answered and not yet seen in a listing: shown as asked, as the blocks above.
        self._quotas_sent: dict[str, QuotaAsked] = {}
        self._quota_serial = 0
        self._quotas_asked: QuotaAsked = {}
        # When a quota change was answered ("Done." said), until a listing asked
        # after it comes; a poll failing before says both (the change made, the
        # reading back failed).
        self._quota_done_at: float | None = None
        window.rulesRequested.connect(self.open)  # type: ignore[attr-defined]
        connection.callFinished.connect(self._on_call_finished)
        connection.applicationsUpdated.connect(self._on_snapshot)
        connection.limitFinished.connect(self._on_limit_finished)
        # Paused or resumed, the helper gone or back: said in the dialog at once (the
        # window's own handlers first: it sets why nothing is enforced), not at the
        # next poll, which does not come while the helper is away.
        connection.statusChanged.connect(self._show_soon)
        connection.pausedChanged.connect(self._show_soon)
        # The dialog's limit requests not answered yet, and the first refusal's words.
        self._limits_asked: set[tuple[str, str]] = set()
        self._limit_refusal = ""

    def open(self, app_id: str) -> RulesDialog:
        """The dialog of one application (one at a time)."""
        old, self.dialog = self.dialog, None
        if old is not None:  # its finished (_forget) finds no dialog: it read None before
            old.close()
            old.deleteLater()
        self.dialog = dialog = RulesDialog(self._rules_of(app_id), self._model.units, self._window)  # type: ignore[arg-type]
        dialog.limitRequested.connect(self._ask_limit)
        dialog.scheduleAdded.connect(
            lambda app, days, start, end, down, up, blocked: self._change(
                lambda c: c.set_schedule(app, days, start, end, down, up, blocked)
            )
        )
        dialog.scheduleRemoved.connect(
            lambda app, name: self._change(lambda c: c.clear_schedules(app, name))
        )
        dialog.blockRequested.connect(self._request_block)
        dialog.quotaRequested.connect(
            lambda app, d, size, period, then: self._ask_quota(
                app,
                d,
                (size, period),
                lambda c: c.set_quota(app, _direction(d), size, period, 0, then),
            )
        )
        dialog.quotaCleared.connect(
            lambda app, d: self._ask_quota(
                app, d, None, lambda c: c.clear_quota(app, _direction(d))
            )
        )
        dialog.priorityRequested.connect(self._window.priorityRequested)  # type: ignore[attr-defined]  # PriorityFlow
        dialog.finished.connect(self._forget)
        dialog.show()
        self._fetch_schedules()
        return dialog

    def _ask_quota(
        self,
        app_id: str,
        direction: str,
        quota: tuple[int, str] | None,
        call: Callable[[HelperClientLike], Awaitable[object]],
    ) -> None:
        """SetQuota or ClearQuota, remembered until its answer (shown as asked then)."""
        directions = tuple(Direction) if direction == "both" else (Direction(direction),)
        self._quota_serial += 1
        key = f"{QUOTA_KEY}{self._quota_serial}"
        self._quotas_sent[key] = {(app_id, d): quota for d in directions}
        self._connection.call(key, call)

    def _ask_limit(self, app_id: str, direction: str, rate_bps: int | None) -> None:
        """The slider's path (shown at once, confirmed by the helper), the
        outcome said in the dialog: it said "Asking the helper…" for good."""
        self._limits_asked.add((app_id, direction))
        self._request_limit(app_id, direction, rate_bps)

    def _on_limit_finished(self, request: LimitRequest, error_name: str, words: str) -> None:
        asked = (request.app_id, request.direction)
        if asked not in self._limits_asked:
            return  # a slider's or the tray's
        self._limits_asked.discard(asked)
        if error_name and not self._limit_refusal:
            self._limit_refusal = f"Not changed: {words}"
        if not self._limits_asked and self.dialog is not None:
            refusal, self._limit_refusal = self._limit_refusal, ""
            self.dialog.show_outcome(refusal or "Done.", error=bool(refusal))

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        self._plain_rules = tuple(snapshot.rules or ())
        done_at, listed = self._quota_done_at, False
        if done_at is not None and (snapshot.asked_at or 0.0) >= done_at:
            self._quotas_asked.clear()  # a listing asked after the answer: the truth again
            self._quota_done_at, listed = None, True
        self._show()
        if (
            listed
            and self.dialog is not None
            and self.dialog.message.text().startswith(READ_BACK_FAILED)
        ):
            self.dialog.show_outcome("Done.")  # the failure said since is over

    def _quotas(self, app_id: str) -> dict[Direction, tuple[int, int, str]]:
        """(budget, left, period) per direction as listed, or as asked where a
        change answered is not listed yet (its left: the budget, for now)."""
        info = self._model.application(app_id)
        quotas = {d: info.quota(d) if info else (0, 0, "") for d in Direction}
        for d in Direction:
            key = (app_id, d)
            if key not in self._quotas_asked:
                continue
            asked, (size, _left, period) = self._quotas_asked[key], quotas[d]
            if (asked is None and not size) or (asked is not None and asked == (size, period)):
                del self._quotas_asked[key]  # the listing shows it
            else:
                quotas[d] = (asked[0], asked[0], asked[1]) if asked else (0, 0, "")
        return quotas

    def _quota_words(self, app_id: str, d: Direction) -> str:
        """What a quota asked and not listed yet says: what is left is not read."""
        asked = self._quotas_asked.get((app_id, d))
        if not asked:
            return ""
        size = format_size(asked[0], self._model.units)
        return f"{size} {PERIOD_NOW.get(asked[1], asked[1])}, set; what is left shows at the next reading"

    def _plain_rate(self, app_id: str, direction: Direction) -> int:
        """The viewer's own plain limit (ListRules), under a schedule that sets it now."""
        return next((r.rate_bps for r in self._plain_rules
                     if r.app_id == app_id and r.direction == direction.value and r.owner == self._owner), 0)  # fmt: skip

    def _held_by_quota(
        self, app_id: str, states: dict[Direction, LimitState]
    ) -> dict[Direction, int]:
        """The directions a used-up quota holds now, at the rate it holds them to
        (0: blocked): not where a schedule sets the rate, nor where the plain limit
        is the lower, nor while nothing is enforced (limits paused, helper away;
        a limit in force but not met is still held): the dialog says "limited to" or
        "blocked until" only of what the helper holds."""
        return {d: s.quota_hold_bps or 0 for d, s in states.items()
                if s.quota_spent and s.held and (s.not_met or not s.problem) and not s.schedule
                and not 0 < self._plain_rate(app_id, d) <= s.rate_bps}  # fmt: skip

    def _request_block(self, app_id: str, direction: str, blocked: bool) -> None:
        self._blocks_asked[(app_id, Direction(direction))] = blocked
        key = CHANGE_KEY if blocked else f"{UNBLOCK_KEY}{direction}:{app_id}"
        self._connection.call(key, lambda c: c.set_blocked(app_id, Direction(direction), blocked))

    def _blocked(self, app_id: str, direction: Direction, listed: bool) -> bool:
        """What a block box shows: the listing, unless a request is on its way."""
        asked = self._blocks_asked.get((app_id, direction))
        if asked is None or asked == listed:
            self._blocks_asked.pop((app_id, direction), None)
            return listed
        return asked

    def _forget(self) -> None:
        self._limits_asked.clear()  # answers to come are for no dialog
        self._quotas_asked.clear()
        self._quota_done_at = None
        self._limit_refusal = ""
        if self.dialog is not None:
            self.dialog.deleteLater()
            self.dialog = None

    def _rules_of(self, app_id: str) -> AppRules:
        info = self._model.application(app_id)
        states = {d: self._model.limit_state(app_id, d) for d in Direction}
        read_only = next(
            (describe_limit(s, d, self._model.units) for d, s in states.items() if s.read_only), ""
        )
        if not self._connection.status.can_limit:
            read_only = self._connection.status.detail or "Rules cannot be changed right now."
        priority = self._model.priority_state(app_id)
        disabled = self._model.priority_unavailable or (
            describe_priority(priority) if priority.read_only else ""
        )
        return AppRules(
            app_id,
            info.name if info else app_id,
            # The plain limit (ListRules) where a schedule, a used-up quota or a block
            # sets the rate now: a quota's 100 KB/s read as an upload limit of the
            # user's own, a block's limit beneath as none.
            limits={
                d: self._plain_rate(app_id, d)
                if s.schedule or s.quota_spent or s.blocked
                else s.rate_bps
                for d, s in states.items()
            },
            scheduled={d: s.schedule for d, s in states.items()},
            held_by_quota=self._held_by_quota(app_id, states),
            quota_switching=frozenset(d for d, s in states.items() if s.quota_switching),
            quota_then={d: s.quota_then_bps for d, s in states.items()},
            quota_words={
                d: words
                for d, s in states.items()
                if (
                    words := self._quota_words(app_id, d)
                    or describe_held_quota(s, self._model.units)
                )
            },
            kept={
                d: describe_kept_limit(s, d, self._plain_rate(app_id, d), self._model.units)
                for d, s in states.items()
            },
            blocked={
                # a used-up quota's block alone ticked the box: unticked, nothing changed
                d: self._blocked(app_id, d, block_lifts(states[d]))
                for d in Direction
            },
            quotas=self._quotas(app_id),
            schedules=tuple(
                s for s in self._schedules if s.app_id == app_id and s.owner == self._owner
            ),
            read_only=read_only,
            not_enforced=self._model.enforcement_problem,
            priority=priority.priority,
            priority_note=describe_priority(priority)
            if priority.priority != "normal" or priority.pending
            else "",
            priority_disabled=disabled,
        )

    def _show(self) -> None:
        if self.dialog is not None:
            self.dialog.show_rules(self._rules_of(self.dialog.rules.app_id))

    def _show_soon(self, _state: object) -> None:
        if self.dialog is not None:
            QTimer.singleShot(0, self, self._show_status)

    def _show_status(self) -> None:
        """The helper's state in the dialog; a poll failing after a quota change
        the helper made says both: the change done, the reading back failed."""
        self._show()
        status = self._connection.status
        if self.dialog is not None and self._quota_done_at is not None and not status.can_limit:
            self.dialog.show_outcome(
                f"{READ_BACK_FAILED} {status.detail}",
                error=True,
            )

    def _fetch_schedules(self) -> None:
        self._connection.call(SCHEDULES_KEY, lambda client: client.list_schedules(), reads=True)

    def _change(self, call: Callable[[HelperClientLike], Awaitable[object]]) -> None:
        self._connection.call(CHANGE_KEY, call)

    def _on_call_finished(self, key: str, result: object, error_name: str, words: str) -> None:
        if key == SCHEDULES_KEY and not error_name:
            self._schedules = tuple(result)  # type: ignore[arg-type]
            self._show()
        elif key.startswith(PRIORITY_KEY) and self.dialog is not None:
            if (
                key == PRIORITY_KEY + self.dialog.rules.app_id
            ):  # the row menu's too: the same answer
                self.dialog.show_outcome(
                    f"Not changed: {words}" if error_name else "Done.", error=bool(error_name)
                )
        elif key.startswith(QUOTA_KEY):
            asked = self._quotas_sent.pop(key, {})
            if self.dialog is None:
                return
            if self.dialog.rules.app_id not in {app_id for app_id, _d in asked}:
                return  # another application's, whose dialog closed: its listing tells
            if error_name:
                self.dialog.show_outcome(words, error=True)
                return
            self._quotas_asked.update(asked)  # shown as asked until a listing shows it
            self._quota_done_at = time.monotonic()
            self._show()
            self.dialog.show_outcome("Done.")
            self._connection.poll_now()
        elif (key == CHANGE_KEY or key.startswith(UNBLOCK_KEY)) and self.dialog is not None:
            if error_name:
                self._blocks_asked.clear()  # refused or lost: the listing is the truth again
                self._show()
            else:
                self._fetch_schedules()
            done = self._unblocked(key) if key.startswith(UNBLOCK_KEY) else "Done."
            self.dialog.show_outcome(words if error_name else done, error=bool(error_name))

    def _unblocked(self, key: str) -> str:
        """What an unblock done says (block_choice.unblocked_words)."""
        direction, _, app_id = key.removeprefix(UNBLOCK_KEY).partition(":")
        return unblocked_words(self._model.shown_name(app_id), Direction(direction))
