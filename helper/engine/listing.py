"""What ListApplications shows: running applications with traffic, limited
ones, and for a short while those whose processes all exited (with their
totals, so short-lived programs do not vanish before anyone sees them)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from chadthrottle.contract import ADMIN_OWNER, ApplicationInfo, Direction
from chadthrottle.helper.engine.api import Viewer
from chadthrottle.helper.engine.limits import Limit, priority_of
from chadthrottle.helper.engine.rates import AppTraffic, UidKey
from chadthrottle.helper.engine.rule_view import shown_rule
from chadthrottle.helper.identity.applications import AppIdentity
from chadthrottle.helper.identity.index import Application
from chadthrottle.priority import Priority

EXITED_VISIBLE_S = 60.0


@dataclass(frozen=True)
class DirectionHeld:
    """What one direction of a rule holds now, as listed."""

    rate_bps: int = 0  # the rate in force; 0 while blocked
    blocked: bool = False
    quota_bytes: int = 0
    quota_left_bytes: int = 0
    quota_period: str = ""
    schedule: str = ""  # the schedule that sets it now, "" none
    problem: str = ""  # why the kernel does not hold its gate (a write refused), "" when it does


NOT_HELD = DirectionHeld()
# (rule, its limits) -> what each of its directions holds now
GateView = Callable[[tuple[str, int], Mapping[Direction, Limit]], Mapping[Direction, DirectionHeld]]
# (rule, direction) -> how its limit holds in each namespace of its processes ("" simply)
ReachView = Callable[[tuple[str, int], Direction], str]
# (app id, its shown rule's priority) -> (why that priority is not in force, "" when it is; rtt in us, 0 unknown)
PriorityView = Callable[[str, Priority], tuple[str, int]]


def _rate(limits: Mapping[Direction, Limit], direction: Direction) -> int:
    limit = limits.get(direction)
    return limit.rate_bps if limit is not None and not limit.blocked else 0


def _fallback_name(app_id: str) -> str:
    return app_id.split(":", 1)[-1].rsplit("/", 1)[-1]


def shown_to(viewer: Viewer, app: ApplicationInfo) -> bool:
    """Whether a listing row is the viewer's to see: every row for a viewer
    who sees all; else the applications wholly the viewer's own (every process
    of the viewer's uid; build_listing has already cut those several users run
    down to the viewer's processes and traffic), and those not running on
    which the viewer has a rule (a rate, a block, a quota or a priority:
    those are listed with no rate). The one rule the adapter and the
    snapshot's listings (visible_only) both follow."""
    if viewer.sees_all:
        return True
    return bool(
        (app.uids and set(app.uids) == {viewer.uid})
        or (not app.pids and viewer.uid in (app.down_limit_owner, app.up_limit_owner)
            and (app.down_limit_bps or app.up_limit_bps or app.down_blocked or app.up_blocked
                 or app.down_quota_bytes or app.up_quota_bytes or app.priority != "normal"))
    )  # fmt: skip


def _may_be_shown(viewer: Viewer, uids: frozenset[int], pids: tuple[int, ...], owner: int) -> bool:
    """Before a row's work: False only for rows shown_to would drop (another
    user's application, or one not running with no rule of the viewer's)."""
    return viewer.sees_all or uids == {viewer.uid} or (not pids and owner == viewer.uid)


def build_listing(
    running: Mapping[str, Application],
    traffic: Mapping[str, AppTraffic],
    rules: Mapping[str, dict[int, dict[Direction, Limit]]],
    now: float,
    viewer: Viewer,
    known: Mapping[str, AppIdentity] | None = None,
    problems: Mapping[Direction, str] | None = None,
    app_problems: Mapping[tuple[str, Direction], str] | None = None,
    shares: Mapping[UidKey, AppTraffic] | None = None,
    gates: GateView | None = None,
    paused_problem: str = "",
    priorities: PriorityView | None = None,
    reach: ReachView | None = None,
    *,
    counted_through_ns: int = 0,
    visible_only: bool = False,
    only: Collection[str] | None = None,
) -> list[ApplicationInfo]:
    """rules: app id -> owner -> limits; known: the last identity seen of
    applications that may have exited, so they keep their name and icon;
    problems: why limits of a direction are not enforced now (paused, a
    device the helper cannot shape), shown on every limit of that direction;
    app_problems: those of one application's limit (measured above it);
    shares: each user's traffic of applications several users run. A viewer
    who may not see every user's processes is shown, of such an application,
    only their own processes and their own traffic. gates: what each shown
    rule's directions hold now (blocked, quota, the rate in force); a blocked
    direction is listed with no rate, and what keeps a block or a quota alone
    from being enforced is only paused_problem (limits paused): the backends'
    gaps are about rates. priorities: the priority's problem and the rtt.
    reach: how a rated limit holds in each namespace (not while paused).
    counted_through_ns: the tick's word that its counts follow every
    announcement before it (EngineCore.note_owners_read). visible_only: only
    the rows shown_to keeps, the others not made (a user's listing in the
    snapshot costs its own rows, not every application's: snap32b); only:
    the application ids to consider (None: all), the viewer's and the rules'."""
    known = known or {}
    shares = shares or {}
    problems = problems or {}
    app_problems = app_problems or {}

    def problem(
        app_id: str, direction: Direction, limits: Mapping[Direction, Limit], held: DirectionHeld
    ) -> str:
        if direction not in limits:
            return held.problem  # nothing asked: "" unless a gate still holds an old setting
        if limits[direction].priority_only:
            return ""  # no limit but a priority: its problem is priority_problem
        if (
            gates is not None and not held.rate_bps
        ):  # a block or a quota alone: the gates hold it on every
            return paused_problem or held.problem  # path, whatever the backends can shape
        return "; ".join(
            filter(
                None,
                [
                    held.problem,
                    problems.get(direction, ""),
                    app_problems.get((app_id, direction), ""),
                ],
            )
        )

    def reach_of(key: tuple[str, int], limits: Mapping[Direction, Limit], held: DirectionHeld,
                 direction: Direction) -> str:  # fmt: skip
        rated = held.rate_bps if gates is not None else _rate(limits, direction)
        return reach(key, direction) if reach is not None and rated and not paused_problem else ""

    listing = []
    listed = (set(traffic) | set(rules) if only is None
              else {app_id for app_id in only if app_id in traffic or app_id in rules})  # fmt: skip
    for app_id in sorted(listed):
        app = running.get(app_id)
        counters = traffic.get(app_id, AppTraffic())
        uids = app.uids if app else frozenset()
        pids = tuple(sorted(app.processes)) if app else ()
        if app is not None and not viewer.sees_all and len(uids) > 1 and viewer.uid in uids:
            counters = shares.get((app_id, viewer.uid), AppTraffic())
            uids = frozenset({viewer.uid})
            pids = tuple(
                sorted(pid for pid, process in app.processes.items() if process.uid == viewer.uid)
            )
        shown = shown_rule(rules.get(app_id, {}), viewer, uids)
        if app is None and shown is None and now - counters.last_active > EXITED_VISIBLE_S:
            continue
        owner, limits = shown if shown is not None else (ADMIN_OWNER, {})
        if visible_only and not _may_be_shown(viewer, uids, pids, owner):
            continue
        held = gates((app_id, owner), limits) if gates is not None and shown is not None else {}
        down, up = held.get(Direction.DOWN, NOT_HELD), held.get(Direction.UP, NOT_HELD)
        identity = app.identity if app else known.get(app_id)
        priority = priority_of(dict(limits))
        priority_problem, rtt_us = (
            priorities(app_id, priority) if priorities is not None else ("", 0)
        )
        row = ApplicationInfo(
            id=app_id,
            name=identity.name if identity else _fallback_name(app_id),
            icon=identity.icon if identity else "",
            uids=tuple(sorted(uids)),
            pids=pids,
            down_bps=counters.down_bps,
            up_bps=counters.up_bps,
            rx_bytes=counters.rx_bytes,
            tx_bytes=counters.tx_bytes,
            down_limit_bps=down.rate_bps if gates is not None else _rate(limits, Direction.DOWN),
            up_limit_bps=up.rate_bps if gates is not None else _rate(limits, Direction.UP),
            loopback_down_bps=counters.loopback_down_bps,
            loopback_up_bps=counters.loopback_up_bps,
            down_measuring=Direction.DOWN in counters.measuring,
            up_measuring=Direction.UP in counters.measuring,
            running=app is not None,
            down_limit_owner=owner,
            up_limit_owner=owner,
            down_limit_problem=problem(app_id, Direction.DOWN, limits, down),
            up_limit_problem=problem(app_id, Direction.UP, limits, up),
            down_blocked=down.blocked,
            up_blocked=up.blocked,
            down_quota_bytes=down.quota_bytes,
            up_quota_bytes=up.quota_bytes,
            down_quota_left_bytes=down.quota_left_bytes,
            up_quota_left_bytes=up.quota_left_bytes,
            down_quota_period=down.quota_period,
            up_quota_period=up.quota_period,
            down_schedule=down.schedule,
            up_schedule=up.schedule,
            priority=priority.value,
            priority_owner=owner,
            priority_problem=priority_problem,
            rtt_us=rtt_us,
            down_limit_reach=reach_of((app_id, owner), limits, down, Direction.DOWN),
            up_limit_reach=reach_of((app_id, owner), limits, up, Direction.UP),
            counted_through_ns=counted_through_ns,
        )
        if not visible_only or shown_to(viewer, row):
            listing.append(row)
    return listing
