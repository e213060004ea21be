"""The engine: what the user asked for, reconciled with the kernel once a second
and at once on every change.

It keeps the limit table per application identity, never per PID. This module
answers the EngineApi (api.py): listings, limit changes in batches, pause,
the link capacity. The state, the change transaction and the tick are the
core's (core.py); tracking (tracking.py: processes, socket owners, counters),
the pure plan (plan.py) and the apply step (apply.py, which owns what the
kernel holds) are its parts, and ports.py names what they need from the
world. docs/architecture.md has the map.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from chadthrottle.contract import (
    ADMIN_OWNER,
    MAX_RATE_BPS,
    MIN_RATE_BPS,
    PAUSED_PROBLEM,
    PID_APP_PREFIX,
    ApplicationInfo,
    BackendInfo,
    ConnectionInfo,
    Direction,
    InterfaceInfo,
    LinkShapingInfo,
    ProcessTraffic,
    RuleInfo,
    ScheduleInfo,
)
from chadthrottle.helper.engine.api import (
    ADMIN_VIEWER,
    ChangeOutcome,
    LimitChange,
    ResolvedApplication,
    Viewer,
)
from chadthrottle.helper.engine.core import EngineCore
from chadthrottle.helper.engine.limits import Limit, LimitTable, LinkSetting
from chadthrottle.helper.engine.link_plan import (
    priority_problem,
    shaping_info,
)
from chadthrottle.helper.engine.listing import build_listing
from chadthrottle.helper.engine.observed import connection_rows, interface_rows, process_rows
from chadthrottle.helper.engine.rates import AppTraffic
from chadthrottle.helper.engine.rtt import elsewhere_of
from chadthrottle.helper.engine.rule_edits import ChangeBatch
from chadthrottle.helper.engine.rule_listing import RuleListing
from chadthrottle.helper.engine.snapshot import Looked, RunningProcess, Snapshot
from chadthrottle.helper.engine.tracking import Tracking
from chadthrottle.helper.errors import HelperError
from chadthrottle.helper.kernel.internet_route import off_link
from chadthrottle.helper.kernel.layout import CounterSample, owner_key
from chadthrottle.priority import Priority
from chadthrottle.usage_contract import UsageResolution, UsageRow

log = logging.getLogger("chadthrottle.engine")


def pending_walks_by_slot(pending: dict[int, int], viewer_pids: set[int] | None) -> dict[int, int]:
    """slot -> how many processes (the viewer's: None, everyone's) have
    open sockets still waiting to be tagged with it (pending_walks.py)."""
    counts: dict[int, int] = {}
    for tgid, slot in pending.items():
        if viewer_pids is None or tgid in viewer_pids:
            counts[slot] = counts.get(slot, 0) + 1
    return counts


def walks_pending_text(processes: int) -> str:
    """What a limit's reach says while first tags' walks wait."""
    if not processes:
        return ""
    return (f"the open sockets of {processes} of its processes are not held to it yet "
            "(their descriptors are walked a bounded time each tick)")  # fmt: skip


Answer = TypeVar("Answer")
# The users whose listings each publish makes before they ask (_first_callers):
# those who log in (Debian's UID_MIN), at most this many.
FIRST_UID, FIRST_CALLERS = 1000, 8


@dataclass(frozen=True)
class _Shared:
    """What every viewer's listing reads alike, made once per publish: the
    traffic, the rules (app id -> owner -> limits), each user's running
    applications and processes, and each application's processes (the
    snapshot's, for ListConnections and ListProcesses)."""

    traffic: Mapping[str, AppTraffic]
    rules: Mapping[str, dict[int, dict[Direction, Limit]]]
    users: Mapping[int, tuple[set[str], set[int]]]
    running: Mapping[str, tuple[RunningProcess, ...]]

    def apps_of(self, uid: int) -> set[str]:
        return self.users.get(uid, (set(), set()))[0]

    def pids_of(self, uid: int) -> set[int]:
        return self.users.get(uid, (set(), set()))[1]


def _first_callers(shared: _Shared) -> list[Viewer]:
    """Viewers whose listings a publish makes though they did not ask lately,
    so that their first call answers from the snapshot and waits for no
    walk (snap33): root, and the users who log in (uid FIRST_UID and up,
    the lowest FIRST_CALLERS of them) running an application, as not seeing
    all. Any other viewer (a system user, a user running nothing, one whom
    polkit lets see all) is answered on the engine thread once, as before.
    Each costs a listing of its rows every tick: at 1,000 applications of
    50 users all 50 tripled a publish (docs/benchmarks/helper-calls.md)."""
    users = sorted(uid for uid in shared.users if uid >= FIRST_UID)[:FIRST_CALLERS]
    return [ADMIN_VIEWER, *(Viewer(uid, sees_all=False) for uid in users)]


# What every row of a viewer's listing says alike (Engine._listing_basis).
_Basis = tuple[tuple[tuple[str, str], ...], bool, int]


def _none(viewer: Viewer) -> bool:
    """No caller waits: listings follow at the next tick."""
    return False


class Engine(EngineCore):
    """The EngineApi (api.py) over the core: listings, changes and the link,
    each under the engine lock, with the kernel reads that take long outside
    it; the read calls' answers published after each tick and change
    (snapshot.py), for the adapter to answer without the lock."""

    # each listed viewer's _listing_basis as of the last publish (snap34)
    _listing_bases: Mapping[Viewer, _Basis] = MappingProxyType({})

    def published(self) -> Snapshot | None:
        """The read calls' answers as of the last tick or change, without
        the engine lock (snapshot.py); None before the first tick's, and once
        the engine closed (the calls are then told the helper is stopping)."""
        snapshot = self._snapshot
        return None if self._lock.closed else snapshot

    def looking(self, kind: Looked, viewer: Viewer) -> None:
        """A viewer asks for a viewer-dependent read: made at each publish
        while they keep asking (from any thread, without the engine lock)."""
        self._lookers.note(kind, viewer)
        if kind is Looked.APPLICATIONS:
            self._listed_at = self._clock()  # a float written whole: rtt while looked at

    def _publish(
        self, fresh: Callable[[Viewer], bool] | None = None, changed: Collection[str] | None = None
    ) -> None:
        """Under the lock, after a tick or a change: the read calls' answers
        made now and swapped in whole. If they cannot be made, reads go to
        the engine thread (and hear why there) until a publish succeeds.
        fresh: after a write call, the viewers whose listings are made anew
        (the callers' and those who see all); the others keep the last
        publish's until the next tick (each listing costs its rows: snap32b).
        changed: the applications whose rules the write call changed: a fresh
        viewer's listing has their rows made anew and keeps the others of the
        last publish (_patched_listing), not every row (snap34)."""
        try:
            facts = self._link_facts()
            interfaces = self._shaper.link_interfaces() if facts.shaping else []
            listing = self._rule_listing()
            last, shared = self._snapshot, self._shared()
            viewers = _first_callers(shared)
            bases = dict(self._listing_bases) if last is not None else {}
            meter = self._tracking.meter
            snapshot = Snapshot(
                rules=tuple(listing.rules()),
                schedules=tuple(listing.schedules()),
                paused=self._limits.paused,
                link_shaping=shaping_info(self._limits, facts, interfaces),
                applications=self._per_viewer(Looked.APPLICATIONS, viewers, last.applications if last else None,
                                              fresh, lambda viewer: self._patched_listing(viewer, shared, changed, bases)),
                backends=self._per_viewer(Looked.BACKENDS, viewers, last.backends if last else None, fresh,
                                          lambda viewer: tuple(self._backends_of(viewer, shared))),
                running=shared.running,
                rates=meter.view(),
                interfaces=meter.interfaces,  # made anew each tick, never changed after
            )  # fmt: skip
        except Exception as error:
            if str(error) != self._publish_error:
                log.warning("read calls answered on the engine thread: no snapshot (%s)", error)
            self._publish_error, self._snapshot = str(error), None
            return
        self._listing_bases = {viewer: bases[viewer] for viewer in snapshot.applications}
        self._publish_error, self._snapshot = "", snapshot

    def _patched_listing(
        self,
        viewer: Viewer,
        shared: _Shared,
        changed: Collection[str] | None,
        bases: dict[Viewer, _Basis],
    ) -> tuple[ApplicationInfo, ...]:
        """A viewer's listing for a publish: after a write call (changed: its
        applications), the last publish's with the changed applications'
        rows made anew, as a whole listing would make them; else (a tick, or
        what every row says changed: the problems, the pause, the counts'
        word) made whole. Until snap34 each write made its caller's and
        root's whole: every row's gates, reach and problems, a cost that grew
        with the rules (a user's SetLimit at 256 rules ~0.1-0.5 s, most of
        it listings). Rows not changed are as of the last publish, as a
        viewer not fresh keeps all of theirs until the next tick."""
        basis = bases[viewer] = self._listing_basis(viewer, shared)
        problems = {Direction(value): text for value, text in basis[0]}  # read once (snap35)
        snapshot = self._snapshot
        before = None if changed is None or snapshot is None else snapshot.applications.get(viewer)
        if changed is None or before is None or self._listing_bases.get(viewer) != basis:
            return tuple(self._listing(viewer, True, shared, problems=problems))
        rows = {row.id: row for row in before if row.id not in changed}
        made = self._listing(viewer, True, shared, changed, problems)
        rows.update((row.id, row) for row in made)
        return tuple(rows[app_id] for app_id in sorted(rows))

    def _listing_basis(self, viewer: Viewer, shared: _Shared) -> _Basis:
        """What every row of a viewer's listing says alike: a row kept from
        the last publish is not kept where it changed."""
        viewer_pids = None if viewer.sees_all else shared.pids_of(viewer.uid)
        problems = self._problems(viewer_pids)
        return (tuple(sorted((d.value, text) for d, text in problems.items())),
                self._limits.paused, self._counted_through_ns)  # fmt: skip

    def _per_viewer(
        self,
        kind: Looked,
        first_callers: Sequence[Viewer],
        last: Mapping[Viewer, Answer] | None,
        fresh: Callable[[Viewer], bool] | None,
        make: Callable[[Viewer], Answer],
    ) -> Mapping[Viewer, Answer]:
        """Each current looker's answer, and each likely first caller's
        (_first_callers): made now, or the last publish's for a viewer not
        fresh (one absent there is made now)."""
        answers: dict[Viewer, Answer] = {}
        for viewer in dict.fromkeys([*self._lookers.current(kind), *first_callers]):
            kept = None if fresh is None or fresh(viewer) or last is None else last.get(viewer)
            answers[viewer] = make(viewer) if kept is None else kept
        return MappingProxyType(answers)

    def list_applications(self, viewer: Viewer = ADMIN_VIEWER) -> list[ApplicationInfo]:
        """On the engine thread, under the lock: a viewer the snapshot does
        not list yet (published from the next publish on)."""
        with self._lock:
            self.looking(Looked.APPLICATIONS, viewer)
            return self._listing(viewer)

    def _shared(self) -> _Shared:
        """What every viewer's listing reads alike, made once per publish."""
        rules: dict[str, dict[int, dict[Direction, Limit]]] = {}
        for (app_id, owner), limits in self._limits.items():
            rules.setdefault(app_id, {})[owner] = limits
        for app_id, owner in self._applier.gating.lapsing_rules():  # a gate holds on: listed
            rules.setdefault(app_id, {}).setdefault(owner, {})
        users: dict[int, tuple[set[str], set[int]]] = {}
        running: dict[str, tuple[RunningProcess, ...]] = {}
        start_of = self._index.start_of
        for app_id, app in self._index.applications().items():
            for pid, process in app.processes.items():
                apps, pids = users.setdefault(process.uid, (set(), set()))
                apps.add(app_id)
                pids.add(pid)
            running[app_id] = tuple(
                RunningProcess(pid, process.uid, process.comm, start_of(pid) or 0)
                for pid, process in app.processes.items()
            )
        return _Shared(self._tracking.listed_traffic(self._clock()), rules, users,
                       MappingProxyType(running))  # fmt: skip

    def _listing(
        self,
        viewer: Viewer,
        visible_only: bool = False,
        shared: _Shared | None = None,
        of: Collection[str] | None = None,
        problems: Mapping[Direction, str] | None = None,
    ) -> list[ApplicationInfo]:
        """ListApplications' answer for viewer, made now (the lock held);
        visible_only: only the rows the viewer may see (listing.shown_to),
        made over the viewer's applications and rules alone, else the
        adapter cuts them; of: only these applications' rows (None: all);
        problems: the viewer's _problems as the publish read them for its
        basis (None: read here; each read asks every namespace's gaps)."""
        shared = shared or self._shared()
        rules, traffic = shared.rules, shared.traffic
        facts, rtt = self._link_facts(), self._rtt
        linked = self._shaper.link_interfaces() if facts.shaping else []
        # other users' sockets are not the viewer's to read
        uid = None if viewer.sees_all else viewer.uid

        prioritized = self.prioritized_slots()

        def priority_view(app_id: str, priority: Priority) -> tuple[str, int]:
            rtt_us, elsewhere = rtt.seen_by(app_id, uid)
            if priority is Priority.NORMAL:
                return "", rtt_us
            app = self._index.application(app_id)  # a priority since the last measure
            if app_id not in rtt.measured and app is not None:
                elsewhere = elsewhere_of(pid for pid, process in app.processes.items()
                                         if uid is None or process.uid == uid)  # fmt: skip
            astray = off_link(self._crossed.of(app_id, uid), linked) if facts.shaping else []
            forwarded = self._forwarded.of(
                slot for slot, app in prioritized.items() if app == app_id
            )
            return priority_problem(facts, elsewhere, astray, linked, forwarded), rtt_us

        viewer_pids = None if uid is None else shared.pids_of(uid)
        only = None if uid is None or not visible_only else shared.apps_of(uid) | set(rules)
        if of is not None:
            only = set(of) if only is None else only & set(of)
        reaches: dict[Direction, dict[int, str]] = {}  # read at the first rated row (every slot's)

        waiting = pending_walks_by_slot(self._datapath.pending_walks(), viewer_pids)

        def reach(key: tuple[str, int], direction: Direction) -> str:
            slot = self._applier.slots.slot_of(key)
            if slot is None:
                return ""
            if direction not in reaches:
                reaches[direction] = self._shaper.limit_reach(direction, viewer_pids)
            said = [reaches[direction].get(slot, ""), walks_pending_text(waiting.get(slot, 0))]
            return "; ".join(text for text in said if text)

        meter = self._tracking.meter
        not_met = self._overshoot.not_met(meter.apps)
        return build_listing(self._index.applications(), traffic, rules, self._clock(), viewer,
                             self._tracking.known, self._problems(viewer_pids) if problems is None else problems,
                             not_met, meter.by_uid,
                             self._rule_listing().held, PAUSED_PROBLEM if self._limits.paused else "", priority_view, reach,
                             counted_through_ns=self._counted_through_ns, visible_only=visible_only, only=only)  # fmt: skip

    def list_rules(self) -> list[RuleInfo]:
        with self._lock:
            return self._rule_listing().rules()

    def list_schedules(self) -> list[ScheduleInfo]:
        with self._lock:
            return self._rule_listing().schedules()

    def _rule_listing(self) -> RuleListing:
        gates = self._datapath.gates
        return RuleListing(self._limits, self._applier.gating, gates, self._local_now())

    def list_connections(self, app_id: str, uid: int | None = None) -> list[ConnectionInfo]:
        """The application's connections; with uid, only those of that user's
        processes. Its processes as of the last publish (snap33: a tick's walks
        hold the lock), else (one started since, or not running) read under
        the lock."""
        running = self._published_processes(app_id)
        if running is not None:
            pids = [p.pid for p in running if uid is None or p.uid == uid]
        else:
            with self._lock:
                app = self._index.application(app_id)
                pids = [pid for pid, process in (app.processes.items() if app else ())
                        if uid is None or process.uid == uid]  # fmt: skip
        return connection_rows(pids)  # reads /proc and the sockets: unlocked

    def list_processes(self, app_id: str, uid: int | None = None) -> list[ProcessTraffic]:
        """The application's running processes with their own rates; with uid,
        only that user's (worked out on demand: docs/accounting.md). From the
        last publish's processes and counters, without the lock (snap33),
        else (an application started since, or not running) under it."""
        snapshot = self.published()  # once: its processes with its own rates
        running = None if snapshot is None else snapshot.running.get(app_id)
        if snapshot is None or snapshot.rates is None or running is None:
            with self._lock:
                app = self._index.application(app_id)
                names = {pid: process.comm for pid, process in (app.processes.items() if app else ())
                         if uid is None or process.uid == uid}  # fmt: skip
                owners = {self._tracking.owner_of_pid(pid): pid for pid in names}
                by_owner = self._tracking.meter.process_traffic(app_id, owners)
        else:
            processes = [p for p in running if uid is None or p.uid == uid]
            names = {p.pid: p.comm for p in processes}
            owners = {owner_key(p.pid, p.start): p.pid for p in processes}
            starts = {p.pid: p.start for p in processes}

            def owner_of(sample: CounterSample) -> int:  # as Tracking.owner, for these pids
                tgid = sample.owner_tgid
                return owner_key(tgid, sample.owner_start or starts.get(tgid, 0))

            by_owner = snapshot.rates.process_traffic(app_id, owners, owner_of)
        traffic = {owners[owner]: counted for owner, counted in by_owner.items()}
        return process_rows(names, traffic)

    def _published_processes(self, app_id: str) -> tuple[RunningProcess, ...] | None:
        """The application's processes as of the last publish; None when it
        was not running then (its caller reads the engine's own, locked)."""
        snapshot = self.published()
        return None if snapshot is None else snapshot.running.get(app_id)

    def list_interfaces(self) -> list[InterfaceInfo]:
        """Every interface's traffic of the last publish (snap33), else under the lock."""
        snapshot = self.published()
        if snapshot is not None:
            interfaces = dict(snapshot.interfaces)
        else:
            with self._lock:
                interfaces = dict(self._tracking.meter.interfaces)
        return interface_rows(interfaces, self._namespaces)  # enters namespaces: unlocked

    def list_backends(self, viewer: Viewer = ADMIN_VIEWER) -> list[BackendInfo]:
        with self._lock:
            self.looking(Looked.BACKENDS, viewer)
            return self._backends_of(viewer)

    def _backends_of(self, viewer: Viewer, shared: _Shared | None = None) -> list[BackendInfo]:
        active = self._shaper.active_directions()
        if viewer.sees_all:
            return self._backends(active)
        return self._backends(
            active, shared.pids_of(viewer.uid) if shared else self._pids_of(viewer.uid)
        )

    def _pids_of(self, uid: int) -> set[int]:
        """A user's processes: the namespaces a user is told of are theirs
        (limit_reach.seen_by); an administrator's limit spans everyone's."""
        return {pid for app in self._index.applications().values()
                for pid, process in app.processes.items() if process.uid == uid}  # fmt: skip

    def resolve_application(self, app_id: str) -> ResolvedApplication:
        with self._lock:
            pid_uid = None
            if app_id.startswith(PID_APP_PREFIX):
                pid_uid = Tracking.process_of(app_id).uid
            resolved = self._resolve_id(app_id)
            app = self._index.application(resolved)
            return ResolvedApplication(
                resolved,
                app.uids if app else frozenset(),
                self._limits.rule_owners(resolved),
                pid_uid,
            )

    def apply_changes(self, changes: Sequence[LimitChange]) -> list[ChangeOutcome]:
        """All changes in one kernel update: a burst of calls costs one reconcile,
        not one each. If the kernel refuses the update, every change is undone
        and tried again alone, so each caller learns about its own change only."""
        with self._lock:
            outcomes: list[ChangeOutcome] = []
            changed: set[str] = set()  # the applications whose rules the changes edit
            edits: list[tuple[int, Callable[[LimitTable], None]]] = []
            checks = ChangeBatch(self._limits, self._zone, lambda: self._local_now().date(),
                                 lambda owner: self._applier.held_cleared(owner, self._limits))  # fmt: skip
            for change in changes:
                try:
                    resolved = self._resolve_id(change.app_id)
                    edits.append((len(outcomes), checks.edit_for(change, resolved)))
                    outcomes.append(resolved)
                    changed.add(resolved)
                except HelperError as error:
                    outcomes.append(error)
            if not edits:
                return outcomes

            def batch(table: LimitTable) -> None:
                for _, edit in edits:
                    edit(table)

            self._tracking.take_new_processes()  # limited with the first, not a tick later
            clamped = self._shrink_windows_first(batch)
        self._wait_for_old_windows(clamped)
        with self._lock:
            try:
                self._change(batch, clamped, asked=True)
            except HelperError as error:
                if len(edits) == 1:
                    outcomes[edits[0][0]] = error
                else:
                    for position, edit in edits:
                        try:
                            self._change(edit, asked=True)
                        except HelperError as alone:
                            outcomes[position] = alone
            log.debug("applied %d limit changes (%d refused)", len(changes),
                      sum(isinstance(outcome, HelperError) for outcome in outcomes))  # fmt: skip
            owners = {change.owner for change in changes}
            # before the callers' replies: a read after one shows it (their own
            # listing and the rules; those who see all see every change). An
            # administrator's rule outranks users' rules: every listing anew
            # (its caller may be one whom polkit lets see all only on asking).
            # Their rows alone made anew (snap34): a write's cost follows what it changed.
            if ADMIN_OWNER in owners:
                self._publish()
            else:
                self._publish(lambda viewer: viewer.sees_all or viewer.uid in owners,
                              changed)  # fmt: skip
            return outcomes

    def set_limits_paused(self, paused: bool) -> None:
        """Stop enforcing every limit (kept and listed), or enforce them again."""

        def edit(table: LimitTable) -> None:
            table.set_paused(paused)

        with self._lock:
            if self._limits.paused == paused:
                return
            clamped = self._shrink_windows_first(edit)
        self._wait_for_old_windows(clamped)
        with self._lock:
            if self._limits.paused == paused:
                return
            self._change(edit, clamped)
            self._publish()  # every listing says paused (or not): its caller's too
            log.info(
                "%s all limits (%d applications)",
                "paused" if paused else "resumed",
                len(self._limits.items()),
            )

    def limits_paused(self) -> bool:
        with self._lock:
            return self._limits.paused

    def set_link_capacity(self, down_bps: int, up_bps: int, estimate: bool) -> None:
        """Stored with the rules; a new setting starts any estimate afresh."""
        setting = LinkSetting(down_bps, up_bps, estimate)

        def edit(table: LimitTable) -> None:
            table.link = setting

        with self._lock:
            if setting == self._limits.link:
                return
            estimated, self._estimated = self._estimated, {}
            try:
                self._change(edit)
            except Exception:  # undone as _change undoes the table
                self._estimated = estimated
                raise
            self._publish()  # every listing's link problems: its caller's too
            log.info(
                "link capacity: down %d B/s, up %d B/s (0: not shaped), estimate %s",
                down_bps,
                up_bps,
                estimate,
            )

    def set_estimated_capacity(self, direction: Direction, bps: int | None) -> None:
        """The seam of the capacity estimate (capacity_estimate.py): its latest
        estimate of a direction, None for none yet. Used only while the stored
        setting asks for estimation; the link tree follows at once."""
        with self._lock:
            if bps:  # within the bounds a caller may set (a wild estimate must not reach tc)
                self._estimated[direction] = min(max(int(bps), MIN_RATE_BPS), MAX_RATE_BPS)
            else:
                self._estimated.pop(direction, None)
            if self._limits.link.estimate and self._capacities() != self._applier.linked():
                try:
                    self._apply()
                except HelperError as error:
                    log.error("could not follow the estimated link capacity: %s", error)
                # a quota the gates saw turn in it turned now, not at the next tick
                self._restart_rates(self._take_gates_turned())
                self._publish(_none)  # GetLinkShaping says the capacity followed

    def link_shaping(self) -> LinkShapingInfo:
        with self._lock:
            facts = self._link_facts()
            interfaces = self._shaper.link_interfaces() if facts.shaping else []
            return shaping_info(self._limits, facts, interfaces)

    def usage(
        self, app_id: str, since: int, until: int, resolution: UsageResolution, viewer: Viewer
    ) -> list[UsageRow]:
        """The usage history (thread-safe, without the engine lock: it reads
        SQLite, and ticks and calls go on meanwhile)."""
        if self._usage is None:
            raise HelperError("this helper keeps no usage history")
        return self._usage.query(app_id, since, until, resolution, viewer)
