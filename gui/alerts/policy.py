"""Which alerts to show, and when: pure logic, fed with what the GUI polls.

Events are found by comparing each ListApplications snapshot with the last
one (a limit measured above itself, a quota used up, an application never
seen before) and the helper's status (it stopped answering). They are not
shown one by one: each kind waits at least HOLD_S after its last alert, and
everything of that kind that happened meanwhile is said in one alert
("Firefox, curl and 3 more"). So a storm of new programs costs one
notification a minute, not one each.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import Enum

from chadthrottle.app_names import names_apart
from chadthrottle.contract import (
    ADMIN_OWNER,
    PAUSED_PROBLEM,
    QUOTA_PERIODS,
    ApplicationInfo,
    Direction,
    RuleInfo,
    is_count_unknown,
    is_not_met,
)
from chadthrottle.gui.alerts.told import Told
from chadthrottle.gui.models.limit_truth import PERIOD_NEXT  # the window's words for it
from chadthrottle.quota_period import period_began

# At most one alert of a kind this often (seconds).
HOLD_S = 60.0
# Names said in one alert; the rest are counted.
NAMES_SHOWN = 3
# Applications remembered as seen (for "first time"); the oldest are forgotten.
MAX_KNOWN = 5000


class AlertKind(Enum):
    FIRST_USE = "first-use"
    QUOTA_REACHED = "quota-reached"
    LIMIT_NOT_MET = "limit-not-met"  # enforced, but measured above it
    LIMIT_NOT_ENFORCED = "limit-not-enforced"  # a path the helper cannot hold
    HELPER_STOPPED = "helper-stopped"


TITLES: dict[AlertKind, tuple[str, str]] = {  # (one, several)
    AlertKind.FIRST_USE: (
        "{} uses the network for the first time",
        "{} use the network for the first time",
    ),
    AlertKind.QUOTA_REACHED: ("{} used up its data quota", "{} used up their data quotas"),
    AlertKind.LIMIT_NOT_MET: (
        "The limit of {} is not being met",
        "The limits of {} are not being met",
    ),
    AlertKind.LIMIT_NOT_ENFORCED: (
        "The limit of {} is not enforced",
        "The limits of {} are not enforced",
    ),
    AlertKind.HELPER_STOPPED: (
        "The ChadThrottle helper stopped",
        "The ChadThrottle helper stopped",
    ),
}


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    summary: str
    body: str


@dataclass(frozen=True)
class AlertSwitches:
    """Which kinds the user wants (settings dialog); first use is off by default.
    One switch, limit_not_met, covers a limit not met and one not enforced."""

    first_use: bool = False
    quota_reached: bool = True
    limit_not_met: bool = True
    helper_stopped: bool = True

    def wants(self, kind: AlertKind) -> bool:
        return {AlertKind.FIRST_USE: self.first_use, AlertKind.QUOTA_REACHED: self.quota_reached,
                AlertKind.LIMIT_NOT_MET: self.limit_not_met,
                AlertKind.LIMIT_NOT_ENFORCED: self.limit_not_met, AlertKind.HELPER_STOPPED: self.helper_stopped}[kind]  # fmt: skip


def group_names(names: list[str]) -> str:
    """ "a", "a and b", "a, b and c", "a, b, c and 2 more"."""
    if len(names) <= 1:
        return "".join(names)
    if len(names) <= NAMES_SHOWN:
        return f"{', '.join(names[:-1])} and {names[-1]}"
    return f"{', '.join(names[:NAMES_SHOWN])} and {len(names) - NAMES_SHOWN} more"


def _limit_alert(app: ApplicationInfo, direction: Direction) -> AlertKind | None:
    """What the listing says of a limit that is not held: measured above 1.15x
    of it for 5 s (not met), or not enforced (a foreign filter, the kernel
    refused); None when it is held. Pausing them all is the user's own doing,
    not news."""
    problem = app.limit_problem(direction)
    if not problem or problem == PAUSED_PROBLEM or app.limit_bps(direction) <= 0:
        return None
    if is_count_unknown(problem):  # its quota held as last set: the limit holds
        return None
    return AlertKind.LIMIT_NOT_MET if is_not_met(problem) else AlertKind.LIMIT_NOT_ENFORCED


def _quota_used_up(app: ApplicationInfo, direction: Direction) -> bool:
    """A quota set and none left (an older helper sends no quota: budget 0)."""
    budget, left, _period = app.quota(direction)
    return budget > 0 and left == 0


def _has_rules(app: ApplicationInfo) -> bool:
    """Whether anything below can be news: most applications have no limit and
    no quota, and this runs for each of them every second."""
    return bool(
        app.down_limit_bps or app.up_limit_bps or app.down_quota_bytes or app.up_quota_bytes
    )


_DIRECTIONS = tuple(Direction)


def _quota_words(app: ApplicationInfo, direction: Direction, rules: Iterable[RuleInfo]) -> str:
    """What one used-up quota does, for its alert. It said "What the rule says
    happens at the quota is in force until the period ends." (walk26): which
    way, what happens and until when were left to guess; then "blocked or
    slowed down, as the quota says" (walk28: the rule said block, the window
    said Blocked). The listed rule (ListRules) says which; the listing cannot
    (at the moment it is spent a quota that then limits is listed blocked for
    a tick or two). The rate is the window's to say in its units."""
    period = app.quota(direction)[2]
    until = PERIOD_NEXT.get(period, f"the next {period}" if period else "its period ends")
    word = "download" if direction is Direction.DOWN else "upload"
    rule = _quota_rule(rules, app, direction)
    if rule is None:  # an older helper lists no rules: both are possible
        return f"Its {word} is now blocked or slowed down, as the quota says, until {until}."
    if rule.quota_then_bps == 0:
        return f"Its {word} is now blocked until {until}."
    return f"Its {word} is now slowed down to its quota's rate until {until}."


def _quota_rule(rules: Iterable[RuleInfo], app: ApplicationInfo, direction: Direction) -> RuleInfo | None:  # fmt: skip
    """The listed rule of the listed quota (an administrator's is the one in
    force); None when no listed rule says (an older helper)."""
    budget, _left, period = app.quota(direction)
    found = [rule for rule in rules if rule.app_id == app.id and rule.direction == direction.value
             and rule.quota_bytes == budget and rule.quota_period == period]  # fmt: skip
    found.sort(key=lambda rule: rule.owner != ADMIN_OWNER)
    return found[0] if found else None


def _reset_minute(rules: Iterable[RuleInfo], app: ApplicationInfo, direction: Direction) -> int:
    """When the listed quota's periods begin (ListRules). 0, midnight, when no
    listed rule says (an older helper): the GUI sets none other."""
    rule = _quota_rule(rules, app, direction)
    return rule.quota_reset_minute if rule is not None else 0


def _told(app: ApplicationInfo, direction: Direction, rules: Iterable[RuleInfo], now: datetime,
          zone: tzinfo | None = None) -> Told | None:  # fmt: skip
    """The used-up quota as it is kept once told; None for a period the GUI
    does not know (a newer helper's), which is told at each start, as before.
    zone: the helper's, where its day does not begin at the GUI's midnight
    (helper_zone.py): the period is the one the helper counts the quota in;
    a helper of API 8 says when it began (ListRules quota_period_start)."""
    budget, _left, period = app.quota(direction)
    if period not in QUOTA_PERIODS:
        return None
    rule = _quota_rule(rules, app, direction)
    if rule is not None and rule.quota_period_start:  # API 8: the helper says it
        return Told(app.id, direction.value, period, budget, rule.quota_period_start)
    began = period_began(period, _reset_minute(rules, app, direction), now, zone)
    return Told(app.id, direction.value, period, budget, int(began.timestamp()))


class AlertPolicy:
    """Turns observations into grouped, rate-limited alerts."""

    def __init__(self, known: Iterable[str] | None, clock: Callable[[], float] = time.monotonic,
                 hold_s: float = HOLD_S, told: Iterable[Told] = (),
                 wall: Callable[[], datetime] = lambda: datetime.now().astimezone()) -> None:  # fmt: skip
        """known: ids of applications seen before (None: nothing stored yet,
        so the first snapshot is learnt without alerts, not announced whole).
        told: used-up quotas alerted before (told.py), not told again in their period."""
        self._known: dict[str, None] = dict.fromkeys(known or ())
        self._learning = known is None
        self._clock = clock
        self._hold_s = hold_s
        self._pending: dict[AlertKind, dict[str, str]] = {
            kind: {} for kind in AlertKind
        }  # id -> name
        self._last_sent: dict[AlertKind, float] = {}
        self._unheld: set[tuple[str, Direction, AlertKind]] = (
            set()
        )  # limits not met or not enforced
        # (id, direction) -> the used-up quota seen at the last snapshot
        self._used_up: dict[tuple[str, Direction], Told | None] = {}
        self._told: set[Told] = set(told)
        self._telling: dict[str, list[Told]] = {}  # id -> its quotas in the pending alert
        self._wall = wall
        # The helper's zone for a quota's period, None: the GUI's own (helper_zone.py)
        self.period_zone: tzinfo | None = None
        self.told_changed = False
        self._quota_words: dict[str, str] = {}  # id -> what its used-up quota does now
        self._helper_up = False
        self.known_changed = False

    @property
    def known(self) -> list[str]:
        return list(self._known)

    @property
    def told(self) -> set[Told]:
        return set(self._told)

    def observe_applications(self, apps: Iterable[ApplicationInfo], rules: Iterable[RuleInfo] | None = None) -> None:  # fmt: skip
        """rules: ListRules of the same poll (when a quota's periods begin)."""
        unheld: set[tuple[str, Direction, AlertKind]] = set()
        used_up: dict[tuple[str, Direction], Told | None] = {}
        listed, now = tuple(rules or ()), self._wall()
        apps = tuple(apps)
        # "name (id)" beside another of its name, as the window says it: an alert
        # "python3.11 used up its data quota" said not which of two (words29)
        names = names_apart({app.id: app.name or app.id for app in apps})
        for app in apps:
            if app.id not in self._known and (app.rx_bytes or app.tx_bytes):
                self._known[app.id] = None
                self.known_changed = True
                if not self._learning:
                    self._pending[AlertKind.FIRST_USE][app.id] = names[app.id]
            if not _has_rules(app):
                continue
            for direction in _DIRECTIONS:
                kind = _limit_alert(app, direction)
                if kind is not None:
                    unheld.add((app.id, direction, kind))
                    if (app.id, direction, kind) not in self._unheld:
                        self._pending[kind][app.id] = names[app.id]
                if _quota_used_up(app, direction):
                    key, told = (
                        (app.id, direction),
                        _told(app, direction, listed, now, self.period_zone),
                    )
                    used_up[key] = told
                    new = key not in self._used_up or self._used_up[key] != told  # or a new period
                    if new and told not in self._told:  # at a start: told in an earlier one?
                        self._pending[AlertKind.QUOTA_REACHED][app.id] = names[app.id]
                        self._quota_words[app.id] = _quota_words(app, direction, listed)
                        if told is not None:
                            self._telling.setdefault(app.id, []).append(told)
                elif app.quota(direction)[0] and self._forget(app.id, direction):
                    self.told_changed = True  # whole again: its next use-up is news
        self._unheld, self._used_up = unheld, used_up
        self._learning = False
        self._helper_up = True
        while len(self._known) > MAX_KNOWN:
            del self._known[next(iter(self._known))]

    def _forget(self, app_id: str, direction: Direction) -> bool:
        """Drop what was told of a quota seen with bytes left (cleared and set
        again, or a new period); whether anything was."""
        gone = {t for t in self._told if t.app_id == app_id and t.direction == direction.value}
        self._told -= gone
        return bool(gone)

    def observe_helper(self, answering: bool, detail: str = "") -> None:
        """The helper answers (a snapshot came) or not: an alert when it stops."""
        if self._helper_up and not answering:
            self._pending[AlertKind.HELPER_STOPPED]["helper"] = (
                detail or "Limits stay in force until it comes back."
            )
        self._helper_up = answering

    def due(self, switches: AlertSwitches) -> list[Alert]:
        """The alerts to show now: one per kind whose hold has passed, grouping
        everything of that kind since its last alert. Kinds switched off are dropped."""
        now, alerts = self._clock(), []
        for kind, pending in self._pending.items():
            if not pending:
                continue
            if not switches.wants(kind):
                pending.clear()
                if kind is AlertKind.QUOTA_REACHED:
                    self._telling.clear()
                continue
            if now - self._last_sent.get(kind, float("-inf")) < self._hold_s:
                continue
            alert = self._alert(kind, list(pending.values()))
            if kind is AlertKind.QUOTA_REACHED and len(pending) == 1:  # said of it alone
                said = self._quota_words.get(next(iter(pending)), "")
                alert = Alert(kind, alert.summary, said or alert.body)
            alerts.append(alert)
            if kind is AlertKind.QUOTA_REACHED:
                self._quota_words.clear()
                for quotas in self._telling.values():
                    self._told.update(quotas)
                self.told_changed = self.told_changed or bool(self._telling)
                self._telling.clear()
            pending.clear()
            self._last_sent[kind] = now
        return alerts

    @staticmethod
    def _alert(kind: AlertKind, names: list[str]) -> Alert:
        if kind is AlertKind.HELPER_STOPPED:
            return Alert(kind, TITLES[kind][0], names[-1])
        one, several = TITLES[kind]
        summary = (one if len(names) == 1 else several).format(group_names(names))
        body = {
            AlertKind.FIRST_USE: "ChadThrottle had not seen it before. You can limit it from its row.",
            AlertKind.QUOTA_REACHED: "Each is blocked or slowed down, as its quota says, until its "
            "quota's period ends; the window says which.",
            AlertKind.LIMIT_NOT_MET: "The limit is enforced, but traffic was measured above 1.15 times "
            "it for 5 s; the row says how much.",
            AlertKind.LIMIT_NOT_ENFORCED: "ChadThrottle cannot hold it on all of the traffic right now, "
            "so some may pass above it; the row says why.",
        }[kind]
        return Alert(kind, summary, body)
