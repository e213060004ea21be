"""What each limit really is: whose rule, whether the viewer may change it, and
whether it is enforced right now.

A row must never show a limit as in force when it is not (paused, the helper
gone, a device the backend cannot police), nor offer a slider that would only
change the viewer's own rule under an administrator's. Plain data and
functions, so the wording is tested without widgets.
"""

from __future__ import annotations

import functools
import pwd
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypedDict

from chadthrottle.contract import (
    ADMIN_OWNER,
    BLOCK_LEASE_S,
    NOT_ENFORCED,
    NOT_MET,
    PAUSED_PROBLEM,
    ApplicationInfo,
    Direction,
    RuleInfo,
    is_count_unknown,
    is_held_before,
    is_not_met,
    limit_problem_words,
)
from chadthrottle.gui.ipc.state import (
    LEFT_IN_FORCE,
    NOT_INSTALLED_PROBLEM,
    NOT_RUNNING_PROBLEM,
    STOPPED_PROBLEM,
)
from chadthrottle.gui.widgets.rate_width import BLOCKED_TEXT, PENDING_MARK, QUOTA_USED_TEXT
from chadthrottle.units import UnitSystem, format_limit, format_rate, format_size

ROOT_UID = 0
ADMINISTRATOR_NOTE = "set by administrator"
# How the row says the current period of a quota.
PERIOD_NOW = {"day": "today", "week": "this week", "month": "this month"}
PERIOD_NEXT = {"day": "the next day", "week": "next week", "month": "next month"}
PERIOD_BEGAN = {"day": "the day began", "week": "the week began", "month": "the month began"}

# The helper away, what it set off the kernel or not known to hold (not LEFT_IN_FORCE)
_HELPER_OFF = frozenset({STOPPED_PROBLEM, NOT_RUNNING_PROBLEM, NOT_INSTALLED_PROBLEM})


def helper_off(problem: str) -> bool:
    """Whether nothing is enforced because the helper is away (it holds nothing)."""
    return problem in _HELPER_OFF


def quota_counted_since(period: str) -> str:
    """From when a quota's use counts: a quota set now starts at zero, whatever
    the application used before in the period. Said wherever the use is shown:
    a 5 GB daily quota read "4.99 GB of 5 GB left today" on a row whose Today
    column said 1.13 GB, and only the rules dialog (with no quota) said why."""
    return f"counted since it was set or {PERIOD_BEGAN.get(period, f'the {period} began')}"


@dataclass(frozen=True)
class LimitState:
    """One limit as a row shows it."""

    rate_bps: int  # shown: a pending request, else the helper's; 0 = none
    owner_note: str = ""  # "" for the viewer's own rule (or none), else whose it is
    read_only: bool = False  # an administrator's rule over a viewer who is not root
    problem: str = ""  # why it is not enforced now, or that it is not met; "" when held and met
    own_rate_bps: int = 0  # the viewer's own rule that the administrator's outranks
    pending: bool = False  # asked for, not confirmed yet
    blocked: bool = (
        False  # no data passes (a block, or a quota spent that blocks): never shown as a rate
    )
    quota_bytes: int = 0  # the quota's budget per period, 0 without a quota
    quota_left_bytes: int = 0
    quota_period: str = ""  # day, week, month
    # what the quota holds the direction to once used up (bytes/s, 0 blocks), as
    # ListRules says; None when no listed rule says (an older helper, not listed yet)
    quota_then_bps: int | None = None
    schedule: str = ""  # the schedule that sets it now ("mon-fri 09:00-17:00"), "" none
    # blocked by its used-up quota alone, no block rule listed (ListRules): no
    # "Unblock" lifts it; it ends with the period, or, where the quota then limits
    # (quota_switching), once the helper has set that rate (the helper lists both as blocked)
    by_quota: bool = False
    reach: str = ""  # how it holds in each namespace of the app's processes, "" on one shaped path
    # the window's: the quota line says its sizes as the rates beside it
    units: UnitSystem = UnitSystem.BYTES_DECIMAL
    # the helper's words where its quota's count could not be read (contract.COUNT_UNKNOWN):
    # held as last set (in force), only what is left not known. Not a problem: it
    # read "Not enforced: ... the kernel holds it" and "4.00 GB left today" as known
    count_unknown: str = ""

    @property
    def enforced(self) -> bool:
        return (self.rate_bps > 0 or self.blocked) and not self.problem

    @property
    def not_met(self) -> bool:
        """Enforced, but the application was measured above it for seconds."""
        return is_not_met(self.problem)

    @property
    def held(self) -> bool:
        """Something holds this direction: a rate or a block."""
        return self.rate_bps > 0 or self.blocked

    @property
    def holding(self) -> bool:
        """What is set holds now: no problem, enforced and not met, a killed
        helper's rate limit the kernel keeps (LEFT_IN_FORCE) or a block the
        kernel's gate keeps until a lease lapses (held_on)."""
        return not self.problem or self.not_met or self.held_on or self.problem == LEFT_IN_FORCE

    @property
    def held_on(self) -> bool:
        """Blocked by what the kernel's gate held before a write it refused (an
        unblock, a quota lifted or its new period), until that lease lapses
        (helper: Gating.truth, lapses_in_s): no data passes now. The pane said "block set.
        Not enforced: ...: traffic flows." and the tray "not enforced" of it."""
        return self.blocked and is_held_before(self.problem)

    @property
    def quota_not_holding(self) -> bool:
        """Blocked by its used-up quota alone while nothing enforces it (paused,
        the helper away): its cell read "Blocked" over "not enforced", as a block
        of the user's own does, which they never set."""
        return (
            self.blocked and self.by_quota and bool(self.problem)
            and not self.not_met and not self.held_on
        )  # fmt: skip

    @property
    def quota_spent(self) -> bool:
        return self.quota_bytes > 0 and self.quota_left_bytes <= 0

    @property
    def quota_paused(self) -> bool:
        """A quota while limits are paused: it counts nothing and holds nothing
        (docs/helper.md, "Paused, outranked"); its sentence says so itself."""
        return bool(self.quota_bytes) and self.problem == PAUSED_PROBLEM

    @property
    def quota_helper_off(self) -> bool:
        """A quota while the helper is away having taken what it set off the
        kernel (or not known to hold it): it holds nothing until it runs again.
        Under Xvfb the pane read "limited to 100 KB/s until the next day" beside
        "Not enforced: the helper stopped" (walk26)."""
        return bool(self.quota_bytes) and self.problem in _HELPER_OFF

    @property
    def quota_switching(self) -> bool:
        """Blocked by its used-up quota on the way to the rate the quota then
        holds it to: the kernel refuses its traffic until the helper's next tick
        or two have set that rate (helper: Gating.truth), and the helper lists it
        blocked meanwhile. Not a block the user set: the cell read a plain
        "Blocked" for that moment, the row menu offered "Unblock upload"."""
        return (
            self.blocked and self.by_quota and bool(self.quota_then_bps) and not self.held_on
        )  # held on after a refused write, its gate is not renewed: it opens, not to the rate

    @property
    def quota_hold_bps(self) -> int | None:
        """What a used-up quota holds the direction to (bytes/s, 0: blocked),
        None where that is not known. Beneath a block of one's own it is the
        quota's own rate (ListRules): under Xvfb such a block read as the
        quota's, "blocked until the next day", a block that lasts."""
        if self.blocked and self.quota_then_bps:  # its own block's, or on its way to it
            return self.quota_then_bps
        return self.rate_bps if self.blocked or self.rate_bps else self.quota_then_bps

    @property
    def quota_lines(self) -> tuple[str, ...]:
        """What the row shows of the quota under the limit, longest first (the
        cell takes the first that fits): "1.2 GB left today", "1.2 GB left";
        spent, "quota used up today" (the cell says Blocked or the rate)."""
        if not self.quota_bytes:
            return ()
        when = PERIOD_NOW.get(self.quota_period, f"this {self.quota_period}")
        if self.quota_spent:
            return f"quota used up {when}", "quota used up", "quota used"
        if self.count_unknown:  # as last read, stale: not said as known
            return "quota left not known", "left not known"
        left = format_size(self.quota_left_bytes, self.units)
        return f"{left} left {when}", f"{left} left"

    @property
    def problem_lines(self) -> tuple[str, ...]:
        """What the row says under a limit that is not enforced or not met,
        longest first: the amber value and its sign said it only to whoever
        pointed at them (seen under Xvfb on a real not-met limit). A quota alone
        too: one not holding read "4.00 GB left today", as one that counts."""
        if not self.problem or not (self.held or self.quota_bytes):
            return ()
        if self.held_on:  # it holds, for now: what the user asked for was refused
            return ("kernel refused the change", "change refused", "refused")
        if self.problem == LEFT_IN_FORCE and self.rate_bps > 0 and not self.blocked:
            # a killed helper's rate limit: the kernel keeps it (a block, a quota lapse)
            return ("left in force", "in force")
        if self.not_met:
            return ("limit not met", "not met")
        if not self.held:  # a quota alone: "none" over a bare "not enforced" said not what (gui31)
            return ("quota not enforced", "not enforced")
        return ("not enforced",)

    @property
    def note_is_problem(self) -> bool:
        """Whether the line under the limit says why it is not held: always when
        nothing enforces it (paused under Xvfb, a used-up quota's cell read
        "Blocked" over "quota used up today" while its traffic flowed); when it
        is enforced but not met, only where no quota's line takes the place."""
        return bool(self.problem_lines) and (not self.quota_lines or not self.not_met)

    @property
    def note_lines(self) -> tuple[str, ...]:
        """The line under the limit: why nothing enforces it, else the quota's,
        else why it is not met (note_is_problem)."""
        return self.problem_lines if self.note_is_problem else self.quota_lines


class _Quota(TypedDict, total=False):
    """LimitState's quota fields, passed on together."""

    quota_bytes: int
    quota_left_bytes: int
    quota_period: str
    quota_then_bps: int | None
    units: UnitSystem
    count_unknown: str


@functools.lru_cache(maxsize=256)
def user_name(uid: int) -> str:
    """The login name of uid, or "uid N" when the system has none. Asked of
    the system once per uid: it runs on the GUI thread for every row with
    another user's rule at every poll, and a directory service (LDAP, sssd)
    can take its time to answer (walk28)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return f"uid {uid}"


def owner_note(owner: int, viewer_uid: int) -> str:
    """Whose rule: quiet ("") when it is the viewer's own. Root's rules are the
    administrator's, so an administrator rule is root's own."""
    if owner == ADMIN_OWNER:
        return "" if viewer_uid == ROOT_UID else ADMINISTRATOR_NOTE
    if owner == viewer_uid:
        return ""
    return f"set by {user_name(owner)}"


def own_rule_rate(
    rules: Iterable[RuleInfo], app_id: str, direction: Direction, viewer_uid: int
) -> int:
    """The viewer's own stored rule for this limit (0 for none), from ListRules."""
    for rule in rules:
        if rule.app_id == app_id and rule.direction == direction.value and rule.owner == viewer_uid:
            return rule.rate_bps
    return 0


def own_limit_rate(
    rules: Iterable[RuleInfo], app_id: str, direction: Direction, viewer_uid: int
) -> int:
    """The viewer's own stored limit (ListRules; root's rules are the
    administrator's), 0 for none: also where a block or a used-up quota holds
    the direction now and the row shows no rate of it."""
    owner = ADMIN_OWNER if viewer_uid == ROOT_UID else viewer_uid
    return own_rule_rate(rules, app_id, direction, owner)


def _problem(own: str, enforcement_problem: str) -> str:
    """The helper's reason for one limit, or what keeps every limit from being
    enforced when there is no such reason or it was only "not met"."""
    return enforcement_problem if enforcement_problem and (not own or is_not_met(own)) else own


def limit_state(
    info: ApplicationInfo,
    direction: Direction,
    viewer_uid: int,
    pending: int | None = None,
    rules: Iterable[RuleInfo] = (),
    enforcement_problem: str = "",
    units: UnitSystem = UnitSystem.BYTES_DECIMAL,
) -> LimitState:
    """The truth about one limit. enforcement_problem is what keeps every limit
    from being enforced (the helper is not running, limits are paused); the
    helper's own reason for this limit wins over it, unless that reason is that
    it was not met: that says it was enforced, no longer so."""
    rules = tuple(rules)  # read twice below
    helper_rate = info.limit_bps(direction)
    budget, left, period = info.quota(direction)
    quota: _Quota = (
        {"quota_bytes": budget, "quota_left_bytes": left, "quota_period": period, "units": units,
         "quota_then_bps": quota_then(rules, info.id, direction, budget, period)}
        if budget
        else {}
    )  # fmt: skip
    schedule = info.down_schedule if direction is Direction.DOWN else info.up_schedule
    owner = info.limit_owner(direction)
    read_only = owner == ADMIN_OWNER and viewer_uid != ROOT_UID
    listed = info.limit_problem(direction)
    count_unknown = listed if is_count_unknown(listed) else ""  # held: not a problem
    problem = _problem("" if count_unknown else listed, enforcement_problem)
    if count_unknown and budget:
        quota["count_unknown"] = count_unknown
    # Blocked wins over a limit asked for meanwhile (cleared from the row menu,
    # typed in the rules dialog): no data passes whatever the limit beneath.
    if info.blocked(direction):
        by_quota = bool(budget) and left <= 0 and quota.get("quota_then_bps") is not None and not schedule and not any(
            rule.blocked for rule in rules if (rule.app_id, rule.direction) == (info.id, direction.value)
        )  # fmt: skip
        return LimitState(0, owner_note(owner, viewer_uid), read_only, problem, blocked=True, schedule=schedule,
                          by_quota=by_quota, **quota)  # fmt: skip
    if pending is not None:
        # The viewer's own request: theirs, and not known to be in force yet.
        return LimitState(
            pending, pending=True, problem=enforcement_problem if pending else "", **quota
        )
    if problem and helper_rate <= 0 and not schedule and _block_rule(rules, info, direction):
        # A block the kernel does not hold (its gate refused, the lease lapsed: the
        # helper lists it open, as the kernel holds it) is still the rule, written
        # again at each tick: a block set, not holding, as a paused one. The row
        # read no limit and its menu offered "Block upload", the problem unsaid.
        return LimitState(0, owner_note(owner, viewer_uid), read_only, problem, blocked=True,
                          schedule=schedule, **quota)  # fmt: skip
    if helper_rate <= 0:  # a quota alone is not enforced either while nothing is, nor
        # where the helper says its gate does not hold (it was dropped, the quota said fine)
        return LimitState(0, problem=problem if budget else "", **quota)
    if (
        (problem in _HELPER_OFF or problem == PAUSED_PROBLEM)
        and budget
        and left <= 0
        and not schedule
    ):
        # A used-up quota's rate, which nothing holds now (the helper away, limits
        # paused), is no limit the user set: the cell read "100 KB/s ⚠ not enforced"
        # (gui31b). The rule's own limit, not enforced, where one is set; else none
        # over "quota not enforced". Unchanged where no listed rule says.
        plain = _plain_rate(rules, info, direction, budget, owner)
        if plain is not None and plain != helper_rate:
            if not plain:
                return LimitState(0, problem=problem, **quota)
            helper_rate = plain
    own = own_rule_rate(rules, info.id, direction, viewer_uid) if read_only else 0
    return LimitState(helper_rate, owner_note(owner, viewer_uid), read_only, problem, own, schedule=schedule,
                      reach=info.limit_reach(direction), **quota)  # fmt: skip


def _plain_rate(rules: Iterable[RuleInfo], info: ApplicationInfo, direction: Direction, budget: int,
                owner: int) -> int | None:  # fmt: skip
    """The plain limit of the listed rule that holds this quota (its owner's
    first), 0 for none; None where no listed rule has the quota."""
    found = [rule for rule in rules if (rule.app_id, rule.direction) == (info.id, direction.value)
             and rule.quota_bytes == budget]  # fmt: skip
    found.sort(key=lambda rule: rule.owner != owner)
    return found[0].rate_bps if found else None


def _block_rule(rules: Iterable[RuleInfo], info: ApplicationInfo, direction: Direction) -> bool:
    """Whether the listed rule shown blocks this direction (ListRules)."""
    key = (info.id, direction.value, info.limit_owner(direction))
    return any(rule.blocked for rule in rules if (rule.app_id, rule.direction, rule.owner) == key)


def quota_then(
    rules: Iterable[RuleInfo], app_id: str, direction: Direction, budget: int, period: str
) -> int | None:
    """What the quota shown holds the direction to once used up (bytes/s, 0
    blocks), from the listed rule with that quota; None when none is listed."""
    for rule in rules:
        if (rule.app_id, rule.direction, rule.quota_bytes, rule.quota_period) == (
            app_id, direction.value, budget, period
        ):  # fmt: skip
            return rule.quota_then_bps
    return None


def describe_quota(state: LimitState, units: UnitSystem, unbroken: bool = False) -> str:
    """The quota in a sentence, and where the kernel's count of it could not be
    read, the helper's words for that (LimitState.count_unknown)."""
    said = _describe_quota(state, units, unbroken)
    if not (said and state.count_unknown):
        return said
    return f"{said}; {state.count_unknown}"


def _describe_quota(state: LimitState, units: UnitSystem, unbroken: bool = False) -> str:
    """The quota in a sentence: "1.2 GB of 5 GB left today", or once spent
    what holds the direction until the next period ("" without a quota);
    unbroken: its rate kept on one line (a wrapped dialog line parted "100" and "KB/s").
    While nothing holds it (limits paused, the helper away) the helper lists
    no rate: what the quota holds it to is the rule's (ListRules). Paused,
    under Xvfb, a quota that then limits to 100 KB/s read "blocked"."""
    if not state.quota_bytes:
        return ""
    period = state.quota_period
    now = PERIOD_NOW.get(period, f"this {period}")  # "today", as the row's line says
    if not state.quota_spent and state.count_unknown:  # what is left as last read: stale
        return f"{format_size(state.quota_bytes, units)} {now}"
    if not state.quota_spent:
        # paused, in short: "... left today, counted since it was set or the day
        # began. Not enforced: limits are paused." said twice what it was not
        counted = (
            "not counted while limits are paused"
            if state.quota_paused
            else quota_counted_since(period)
        )
        return (
            f"{format_size(state.quota_left_bytes, units)} of {format_size(state.quota_bytes, units)} left {now}"
            f", {counted}"
        )
    used = f"all {format_size(state.quota_bytes, units)} used {now}"
    then = state.quota_hold_bps  # beneath a block of one's own: the quota's (the block said apart)
    if then is None:  # what holds it is not known
        return f"{used}; not enforced while limits are paused" if state.quota_paused else used
    until = PERIOD_NEXT.get(period, "the next " + period)
    if state.held_on:  # the kernel keeps its old gate shut for now (the problem says how long)
        # it read "limited to 100 KB/s until the next day" beside "blocked: no data passes"
        rate = (
            f", not yet at its {format_rate(then, units, unbroken=unbroken)} until {until}"
            if then
            else ""
        )
        return f"{used}: blocked for now{rate}"
    if state.quota_switching:  # blocked for a tick or two: not yet at the rate
        return f"{used}: {quota_holds(format_rate(then, units, unbroken=unbroken), True)} until {until}"
    held = quota_holds(format_rate(then, units, unbroken=unbroken) if then else "")
    if state.quota_paused:  # what holds it once they resume, not now
        return f"{used}; {held} until {until} once limits resume"
    if state.quota_helper_off:  # likewise, once the helper runs again
        return f"{used}; {held} until {until} once the helper runs again"
    return f"{used}: {held} until {until}"


def quota_holds(rate: str, switching: bool = False) -> str:
    """What a used-up quota does to its direction, in the one wording the detail
    pane and the rules dialog share: "limited to 100 KB/s", "switching to …" (the
    kernel blocks it a tick or two meanwhile), "blocked" for no rate. The dialog
    said "held to" where the pane said "limited to" (gui31b G3)."""
    if not rate:
        return "blocked"
    return f"{'switching to' if switching else 'limited to'} {rate}"


def describe_held_quota(state: LimitState, units: UnitSystem) -> str:
    """A used-up quota held on after a change the kernel refused (LimitState.held_on),
    in the pane's words: what holds it now and why ("" otherwise). The rules dialog
    said only "all 20.0 MB used today" of one (gui22's walk), as if nothing held it;
    and of one whose count could not be read, what was left at the last read."""
    if state.quota_bytes and state.count_unknown:
        return describe_quota(state, units, unbroken=True)
    if not (state.quota_spent and state.held_on):
        return ""
    return (
        f"{describe_quota(state, units, unbroken=True)}. {describe_problem(state.problem, units)}"
    )


# How the helper words a rate it measured (helper/engine/overshoot.py: decimal
# MB/s, two decimals), said again in the units the window shows.
_HELPER_MEASURED = re.compile(r"measured (\d+(?:\.\d+)?) MB/s")


def in_units(reason: str, units: UnitSystem) -> str:
    """The helper's reason with its measured rate in ``units``: "measured 9.10
    MB/s" read "measured 72.8 Mbit/s" in bits beside rows that say Mbit/s."""
    return _HELPER_MEASURED.sub(
        lambda m: f"measured {format_rate(float(m.group(1)) * 1e6, units)}", reason
    )


# A rate limit a killed helper left: the kernel keeps it as last set, so not "Not enforced".
KILLED_LIMIT = (
    "Left in force: the helper stopped unexpectedly; the kernel keeps a rate limit as last "
    f"set until it starts again, and lets a block's or quota's traffic through within {BLOCK_LEASE_S:g} s"
)


def describe_problem(problem: str, units: UnitSystem = UnitSystem.BYTES_DECIMAL) -> str:
    """ "Not met: measured 9.10 MB/s, ..." for a limit enforced but measured
    above it, else "Not enforced: <why>"."""
    if is_held_before(problem):  # the kernel blocks for now: not "Not enforced"
        return problem[:1].upper() + problem[1:]
    if problem == LEFT_IN_FORCE:  # a killed helper's: the kernel keeps it (gui25)
        return KILLED_LIMIT
    words, reason = limit_problem_words(problem)
    return f"{words.capitalize()}: {in_units(reason, units)}"


def what_a_block_leaves(direction: Direction) -> str:
    """What a block of direction leaves of the other way (docs/helper.md,
    "Block and quotas"), for the blocked cell's tooltip: the kernel lets TCP's
    bare acknowledgements through, counted in the blocked direction, so TCP
    the other way goes on (a 1 MB/s TCP upload kept its rate through a
    download block on the real helper); a UDP protocol's replies (QUIC's
    acknowledgements) are packets like any other, refused."""
    blocked, other = (
        ("download", "uploads") if direction is Direction.DOWN else ("upload", "downloads")
    )
    return (
        f"Bare TCP acknowledgements still pass (counted in its {blocked}), so its TCP {other} "
        f"go on; QUIC and other UDP {other} that wait for replies stall."
    )


# What a rate under a limit in force counts: what the limit let through, bare TCP
# acknowledgements passing it uncounted (docs/backends.md, "A limited upload leaves
# the application's downloads alone"). Under Xvfb a server that only received read
# "Up 0 B/s" under an upload limit while its ACKs went out at about 19 KB/s.
LIMITED_RATE = (
    "what its limit lets through. Bare TCP acknowledgements pass it and are not counted "
    "here (they are in Today's bytes)."
)


def limited_rate_tooltip(direction: Direction) -> str:
    """A rate cell's tooltip while a limit in force holds its direction."""
    word = "Download" if direction is Direction.DOWN else "Upload"
    return f"{word} under its limit: {LIMITED_RATE}"


def block_lifts(state: LimitState) -> bool:
    """Whether "Unblock" lifts what blocks this direction: not a used-up
    quota's block alone (under Xvfb the row menu said "Unblock upload", the
    tray "Blocked" and the rules dialog ticked "Block upload" for one; choosing
    them changed nothing, and the dialog's box then stayed unticked beside a
    row that still said Blocked)."""
    return state.blocked and not state.by_quota


QUOTA_BLOCK_TIP = "Blocking it here keeps it blocked after that too."


def describe_kept_limit(
    state: LimitState, direction: Direction, own_bps: int, units: UnitSystem
) -> str:
    """The viewer's own limit (ListRules) kept beneath a block, in the one
    sentence the detail pane and the rules dialog both say ("" where none):
    the pane said only that a used-up quota blocked the upload, as if no limit
    of one's own were left, while the dialog's field showed it."""
    if not (state.blocked and own_bps > 0) or state.quota_switching:
        return ""  # switching: the rates then held are listed in a tick or two
    word = "download" if direction is Direction.DOWN else "upload"
    kept = f"Your {word} limit of {format_rate(own_bps, units, unbroken=True)} is kept"
    if state.by_quota:  # the quota's block alone: it ends with the period
        until = PERIOD_NEXT.get(state.quota_period, f"the next {state.quota_period}")
        return f"{kept}: it applies again from {until}, when the quota's block ends."
    if state.quota_spent:  # a block of one's own over a used-up quota: the quota holds too
        return f"{kept} beneath the block."
    return f"{kept}: it applies again once the {word} is unblocked."


def _quota_alone_paused(state: LimitState) -> bool:
    """Paused or the helper away, what is listed of a direction is its used-up
    quota's alone: its block (no block rule listed), or its then-rate (no lower
    limit of one's own). With the helper stopped the pane read "Upload: limit
    100 KB/s set. Not enforced: ..." of a quota's rate, a limit never set (gui30)."""
    away = state.quota_paused or state.quota_helper_off
    if not (away and state.quota_spent) or state.schedule:
        return False
    # its rate: as listed, or none where limit_state took it from the cell (gui31b)
    return state.by_quota or (not state.blocked and state.rate_bps in (0, state.quota_then_bps))


def describe_limit(state: LimitState, direction: Direction, units: UnitSystem) -> str:
    """The sentences a tooltip or the detail pane gives about one limit."""
    word = "Download" if direction is Direction.DOWN else "Upload"
    quota = f" Quota: {describe_quota(state, units)}." if state.quota_bytes else ""
    if state.schedule:  # a limit changed here is the plain one: it applies outside the schedule
        quota = f" Set by the schedule {state.schedule} while it runs; a limit set here applies outside it.{quota}"
    if (state.quota_switching and not state.problem) or _quota_alone_paused(state):
        # not a block or a limit the user set: the quota's. Paused, it read "Upload:
        # block set. Quota: all 1.00 MB used today: blocked until the next day. Not
        # enforced: limits are paused: traffic flows." (or "limit 100 KB/s set")
        whose = f", {state.owner_note}" if state.owner_note else ""
        return f"{word} quota{whose}: {describe_quota(state, units)}."
    if state.blocked:
        whose = f", {state.owner_note}" if state.owner_note else ""
        if state.problem and not state.not_met and not state.held_on:
            # A block the kernel does not hold now (paused, the helper away: a dead
            # helper's lapses within seconds). Not "blocked: no data passes" and
            # then "Not enforced" (seen paused under Xvfb): set, and not holding.
            return (f"{word}: block set{whose}.{quota} "
                    f"{describe_problem(state.problem, units)}: traffic flows.")  # fmt: skip
        text = f"{word}: blocked{whose}: no data passes, open connections included.{quota}"
        if state.problem:
            text += f" {describe_problem(state.problem, units)}."
        return text
    if state.rate_bps <= 0:  # a quota's own problem: nothing is enforced now
        said = state.problem and not state.quota_paused  # paused: the quota's sentence says it
        problem = f" {describe_problem(state.problem, units)}." if said else ""
        return f"{word}: no limit.{quota}{problem}"
    rate = format_rate(state.rate_bps, units)
    if state.read_only:
        own = f" of {format_rate(state.own_rate_bps, units)}" if state.own_rate_bps else ""
        text = f"{word}: limited by the administrator to {rate}; your own limit{own} applies when they remove it."
    elif state.owner_note:
        text = (f"{word}: limited to {rate}, {state.owner_note}. A limit you set here applies to every "
                "user's processes and outranks theirs.")  # fmt: skip
    elif state.pending:
        text = f"{word}: {rate} asked for, not confirmed yet."
    elif state.problem and not state.not_met:
        # Not "limited to 1.00 MB/s. Not enforced: limits are paused." beside a
        # row moving 146 MB/s (seen under Xvfb): set, and not holding.
        text = f"{word}: limit {rate} set."
    else:
        text = f"{word}: limited to {rate}."
    if state.problem:
        text += f" {describe_problem(state.problem, units)}."
    elif state.reach:  # over several namespaces, or one tc cannot shape
        text += f" How it holds: {state.reach}."
    return text + quota


# The kind of a block the kernel holds on after refusing a change (LimitState.held_on)
CHANGE_REFUSED = "change refused"


@dataclass(frozen=True)
class LimitTally:
    """How many limits are enforced and met, and which are not and why."""

    enforced: int = 0
    not_enforced: tuple[str, ...] = ()  # "Firefox download: limits are paused"
    not_met: tuple[str, ...] = ()  # "Firefox download: measured 9.10 MB/s, ..."
    # held on after a change the kernel refused: blocked now, not for long (the
    # status line said "1 not enforced" of a block that held)
    refused: tuple[str, ...] = ()
    # the ways a block or a quota holds now: the kernel's gates hold them, no backend's
    # classes, so the helper lists no backend active for them (the status line read
    # "Ready to enforce" beside a Blocked row)
    gated: frozenset[Direction] = frozenset()
    # of not_enforced, the rate limits a killed helper left in the kernel (LEFT_IN_FORCE):
    # they hold; its blocks and quotas, which lapse, do not count here
    left: int = 0
    # of enforced, the blocks a block rule holds (not a used-up quota's): "Clear
    # rate limits" does not lift them, so they are not said as limits (walk26 shot 15
    # read "2 limits active" of a 60 KB/s limit and a block)
    blocks: int = 0
    # of enforced, the directions a quota counts or holds (spent: blocked or at its
    # rate): said as quotas, not limits, which "Clear rate limits" would lift (walk26)
    quotas: int = 0
    # of enforced, the directions held to a rate of a limit (not a used-up quota's)
    limits: int = 0

    @property
    def active(self) -> str:
        """What is enforced, by kind: "1 limit, 1 block, 1 quota", "2 blocks",
        "0 limits"; a direction with a limit and a quota counts in both."""
        kinds = ((self.limits, "limit"), (self.blocks, "block"), (self.quotas, "quota"))
        return ", ".join(_count(n, word) for n, word in kinds if n) or _count(0, "limit")

    @property
    def total(self) -> int:
        return self.enforced + len(self.not_enforced) + len(self.not_met) + len(self.refused)

    @property
    def problems(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(NOT_MET, NOT_ENFORCED or CHANGE_REFUSED, the limits of that kind), the kinds there are."""
        kinds = (
            (NOT_MET, self.not_met),
            (NOT_ENFORCED, self.not_enforced),
            (CHANGE_REFUSED, self.refused),
        )
        return tuple((words, names) for words, names in kinds if names)


def tally(
    states: Iterable[tuple[str, Direction, LimitState]],
    units: UnitSystem = UnitSystem.BYTES_DECIMAL,
) -> LimitTally:
    """Count (application name, direction, state) triples."""
    enforced = 0
    not_enforced: list[str] = []
    not_met: list[str] = []
    refused: list[str] = []
    gated: set[Direction] = set()
    left = blocks = quotas = limits = 0
    for name, direction, state in states:
        if gates_hold(state):
            gated.add(direction)
        if not (state.held or state.quota_bytes):  # a quota alone is a limit too
            continue
        if state.problem:  # no kind is counted as active
            word = "download" if direction is Direction.DOWN else "upload"
            reason = in_units(limit_problem_words(state.problem)[1], units)
            kind = refused if state.held_on else not_met if state.not_met else not_enforced
            kind.append(f"{name} {word}: {reason}")
            left += state.problem_lines[:1] == ("left in force",)
        else:
            enforced += 1
            blocks += state.blocked and not state.by_quota
            quotas += bool(state.quota_bytes)
            limits += state.rate_bps > 0 and not state.blocked and not state.quota_spent
    return LimitTally(
        enforced,
        tuple(not_enforced),
        tuple(not_met),
        tuple(refused),
        frozenset(gated),
        left,
        blocks,
        quotas,
        limits,
    )


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'s' * (number != 1)}"


def gates_hold(state: LimitState) -> bool:
    """Whether the kernel's gate holds this direction now: a block (one held on
    after a refused change too), or a quota that counts (not paused, nothing wrong)."""
    if state.pending:
        return False
    if state.blocked:
        return not state.problem or state.held_on
    return bool(state.quota_bytes) and not state.problem


def shown_value(state: LimitState, units: UnitSystem) -> str:
    """A limit cell's value as it is painted: the limit ("…" after it while asked
    for), or a blocked direction's word (blocked_value)."""
    if state.blocked:
        return blocked_value(state, units)
    return format_limit(state.rate_bps, units) + (PENDING_MARK if state.pending else "")


def blocked_value(state: LimitState, units: UnitSystem) -> str:
    """What a blocked direction's value says: "Blocked", or where a used-up
    quota is switching to its rate ("100 KB/s…", LimitState.quota_switching)
    that rate on its way, as a limit asked for reads: not a block the user set;
    nor, paused, "Quota used" (LimitState.quota_not_holding): read "Blocked"
    over "not enforced", it said a block the user never set."""
    if state.quota_switching and state.quota_then_bps:
        return format_limit(state.quota_then_bps, units) + PENDING_MARK
    return QUOTA_USED_TEXT if state.quota_not_holding else BLOCKED_TEXT


def spoken_value(state: LimitState, units: UnitSystem) -> str:
    """What a screen reader says of a limit cell: its value and the line under it
    as painted ("Blocked", "1.00 MB/s, not enforced"). It read the bare limit,
    "none", of a cell painted "Blocked" (gui34)."""
    value = shown_value(state, units)
    return f"{value}, {state.note_lines[0]}" if state.note_lines else value
