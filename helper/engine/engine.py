"""The engine: what the user asked for, reconciled with the kernel once a second
and at once on every change.

It keeps the limit table (per application identity, never per PID) and the
lock, and runs the steps its parts hold: tracking (tracking.py: processes,
socket owners and counters, the only /proc reads), the pure plan (plan.py: the
classes, caps and tags the table wants) and the apply step (apply.py, which
owns what the kernel holds). A change that the kernel refuses is rolled back:
the table and the kernel go back to how they were, and the caller gets the
reason. Its ports are in ports.py; docs/architecture.md has the map.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo

from chadthrottle.contract import (
    ADMIN_OWNER,
    MAX_RATE_BPS,
    MIN_RATE_BPS,
    PID_APP_PREFIX,
    ApplicationInfo,
    BackendInfo,
    ConnectionInfo,
    Direction,
    InterfaceInfo,
    LinkShapingInfo,
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
from chadthrottle.helper.engine.apply import Apply
from chadthrottle.helper.engine.limits import Limit, LimitTable, LinkSetting
from chadthrottle.helper.engine.link_plan import (
    LinkFacts,
    capacities,
    link_facts,
    priority_problem,
    shaping_info,
)
from chadthrottle.helper.engine.listing import build_listing
from chadthrottle.helper.engine.observed import connection_rows, interface_rows
from chadthrottle.helper.engine.overshoot import OvershootWatch
from chadthrottle.helper.engine.plan import prioritized, rule_of
from chadthrottle.helper.engine.ports import (
    DatapathPort,
    LineagePort,
    NamespacePort,
    ShaperPort,
    UsagePort,
)
from chadthrottle.helper.engine.rtt import RttWatch, elsewhere_of
from chadthrottle.helper.engine.rule_edits import ChangeBatch
from chadthrottle.helper.engine.rule_listing import RuleListing
from chadthrottle.helper.engine.schedules import local_zone
from chadthrottle.helper.engine.tracking import Tracking
from chadthrottle.helper.errors import HelperError
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.program_files import program_is_gone
from chadthrottle.helper.kernel.namespaces import NamespaceDirectory
from chadthrottle.priority import Priority
from chadthrottle.usage_contract import UsageResolution, UsageRow

log = logging.getLogger("chadthrottle.engine")

# A download limit clamps the receive window of the application's TCP sockets
# (socket_tagging.receive_window_bytes) only where the backend queues: the
# clamp keeps the sender's excess in the queue short. The ebpf policer has no
# queue and drops, and there the clamp measured worse, not better.
# A download limit landing on a running download clamps the windows first and
# limits once the senders have spent the old windows (the kernel never takes
# one back: megabytes at full speed, which the leaf queue would mostly drop,
# and recovering took seconds). How long that takes is the kernel side's
# estimate (socket_tagging.old_window_drain_s), within bounds. The numbers:
# docs/backends.md, "Clamping the receive window".
WINDOW_DRAIN_MIN_S, WINDOW_DRAIN_MAX_S = 0.05, 0.5
# A user's rule for a program whose file is gone is dropped (docs/helper.md,
# "Rules and their owners"); checked this often.
EXPIRY_CHECK_S = 60.0
# With schedules, a tick lands this long after each wall-clock minute (a
# clock read a hair early would still see the minute before).
MINUTE_TICK_LATE_S = 0.005
# What quotas used is stored with the rules at most this often (and at once
# when a period begins or a quota is spent), while it changes: a stop or a
# SIGKILL forgets at most this long of counting (and up to a tick), which a
# restart then gives back to the budget. A write folds into the saver's next
# (rule_store.BackgroundSaver) and costs an fsync, ~2 ms, off the engine thread.
QUOTA_SAVE_S = 2.0
PAUSED_PROBLEM = "limits are paused"
# Round-trip times are measured only while ListApplications was called within this long.
RTT_WATCHED_S = 10.0


class Engine:
    def __init__(
        self,
        datapath: DatapathPort,
        shaper: ShaperPort,
        index: ApplicationIndex,
        backends: Callable[[set[Direction]], list[BackendInfo]],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rules: LimitTable | None = None,
        save_rules: Callable[[LimitTable], None] = lambda table: None,
        namespaces: NamespacePort | None = None,
        lineage: LineagePort | None = None,
        usage: UsagePort | None = None,
        wall_clock: Callable[[], float] = time.time,
        zone: tzinfo | None = None,
    ) -> None:
        """rules: the stored limits to start from (applied on the first tick);
        save_rules: stores the table after each change, raising HelperError if
        it cannot (the change is then undone); namespaces: names the network
        namespaces of interface counters; lineage: the parents of forked
        processes (proc_events.py), for those that exit before /proc is read;
        usage: the usage history, fed each tick; wall_clock (unix seconds) and
        zone (default: the machine's) say which schedules are active."""
        self._datapath = datapath
        self._shaper = shaper
        self._index = index
        self._backends = backends
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.RLock()
        self._wall_clock = wall_clock
        self._zone = zone or local_zone()
        self._limits = rules.copy() if rules is not None else LimitTable()
        self._limits.activate(self._local_now())
        self._save_rules = save_rules
        self._applier = Apply(datapath, shaper, index)  # plans made real in the kernel
        self._namespaces = namespaces or NamespaceDirectory()
        self._usage = usage
        self._tracking = Tracking(index, datapath, lineage, usage)  # processes and counters
        self._expiry_checked_at = float("-inf")
        self._apply_error = ""  # why the kernel refused the last plan, "" when it did not
        self._overshoot = OvershootWatch()  # limits measured as not met
        self._quota_saved_at = float("-inf")
        self._estimated: dict[Direction, int] = {}  # set_estimated_capacity's, while estimated
        self._rtt = RttWatch()
        self._listed_at = float("-inf")  # the last ListApplications: rtt only while looked at

    # --- the EngineApi ------------------------------------------------------------

    def list_applications(self, viewer: Viewer = ADMIN_VIEWER) -> list[ApplicationInfo]:
        with self._lock:
            self._listed_at = self._clock()
            rules: dict[str, dict[int, dict[Direction, Limit]]] = {}
            for (app_id, owner), limits in self._limits.items():
                rules.setdefault(app_id, {})[owner] = limits
            traffic = self._tracking.listed_traffic(self._clock())
            facts, rtt = self._link_facts(), self._rtt
            uid = (
                None if viewer.sees_all else viewer.uid
            )  # other users' sockets are not the viewer's to read

            def priority_view(app_id: str, priority: Priority) -> tuple[str, int]:
                rtt_us, elsewhere = rtt.seen_by(app_id, uid)
                if priority is Priority.NORMAL:
                    return "", rtt_us
                app = self._index.application(
                    app_id
                )  # given a priority since the last measure: read now
                if app_id not in rtt.measured and app is not None:
                    elsewhere = elsewhere_of(pid for pid, process in app.processes.items()
                                             if uid is None or process.uid == uid)  # fmt: skip
                return priority_problem(facts, elsewhere), rtt_us

            meter, not_met = (
                self._tracking.meter,
                self._overshoot.not_met(self._tracking.meter.apps),
            )
            return build_listing(self._index.applications(), traffic, rules, self._clock(), viewer,
                                 self._tracking.known, self._problems(), not_met, meter.by_uid,
                                 self._rule_listing().held, PAUSED_PROBLEM if self._limits.paused else "", priority_view)  # fmt: skip

    def list_rules(self) -> list[RuleInfo]:
        with self._lock:
            return self._rule_listing().rules()

    def list_schedules(self) -> list[ScheduleInfo]:
        with self._lock:
            return self._rule_listing().schedules()

    def _rule_listing(self) -> RuleListing:
        gates = getattr(self._datapath, "gates", None)
        return RuleListing(self._limits, self._applier.gating, gates, self._local_now())

    def next_tick_in(self, interval_s: float) -> float:
        """How long until the next tick: interval_s, or less to land just after
        the wall clock's next minute when that comes sooner and schedules exist,
        so a schedule switches on its minute rather than up to a tick later."""
        with self._lock:
            if not self._limits.schedule_items():
                return interval_s
        to_minute = 60.0 - self._local_now().timestamp() % 60.0  # zones are whole minutes off UTC
        return min(interval_s, to_minute + MINUTE_TICK_LATE_S)

    def _local_now(self) -> datetime:
        """The wall clock in the local zone, for schedules."""
        return datetime.fromtimestamp(self._wall_clock(), self._zone)

    def _problems(self) -> dict[Direction, str]:
        """Per direction, why its limits are not (wholly) enforced now."""
        if self._limits.paused:
            return {direction: PAUSED_PROBLEM for direction in Direction}
        gaps = self._shaper.enforcement_gaps()
        problems = {direction: "; ".join(reasons) for direction, reasons in gaps.items() if reasons}
        if self._apply_error:
            for direction in Direction:
                problems[direction] = "; ".join(
                    filter(None, [problems.get(direction), self._apply_error])
                )
        return problems

    def list_connections(self, app_id: str, uid: int | None = None) -> list[ConnectionInfo]:
        """The application's connections; with uid, only those of that user's processes."""
        with self._lock:
            app = self._index.application(app_id)
            pids = (
                [pid for pid, process in app.processes.items() if uid is None or process.uid == uid]
                if app
                else []
            )
        return connection_rows(pids)  # reads /proc and the sockets: unlocked

    def list_interfaces(self) -> list[InterfaceInfo]:
        with self._lock:
            interfaces = dict(self._tracking.meter.interfaces)
        return interface_rows(interfaces, self._namespaces)  # enters namespaces: unlocked

    def list_backends(self) -> list[BackendInfo]:
        with self._lock:
            return self._backends(self._shaper.active_directions())

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
            edits: list[tuple[int, Callable[[LimitTable], None]]] = []
            checks = ChangeBatch(self._limits, self._zone, lambda: self._local_now().date())
            for change in changes:
                try:
                    resolved = self._resolve_id(change.app_id)
                    edits.append((len(outcomes), checks.edit_for(change, resolved)))
                    outcomes.append(resolved)
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
                self._change(batch, clamped)
            except HelperError as error:
                if len(edits) == 1:
                    outcomes[edits[0][0]] = error
                else:
                    for position, edit in edits:
                        try:
                            self._change(edit)
                        except HelperError as alone:
                            outcomes[position] = alone
            log.debug("applied %d limit changes (%d refused)", len(changes),
                      sum(isinstance(outcome, HelperError) for outcome in outcomes))  # fmt: skip
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
            except HelperError:
                self._estimated = estimated
                raise
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
            if self._limits.link.estimate and self._capacities() != self._applier.hold.linked():
                try:
                    self._apply()
                except HelperError as error:
                    log.error("could not follow the estimated link capacity: %s", error)

    def link_shaping(self) -> LinkShapingInfo:
        with self._lock:
            facts = self._link_facts()
            interfaces = self._shaper.link_interfaces() if facts.shaping else []
            return shaping_info(self._limits, facts, interfaces)

    def _capacities(self) -> dict[Direction, int]:
        return capacities(self._limits.link, self._estimated, self._limits.paused)

    def _link_facts(self) -> LinkFacts:
        paused = PAUSED_PROBLEM if self._limits.paused else ""
        return link_facts(self._limits, self._estimated, self._shaper, paused, self._apply_error)

    def _apply_link(self) -> None:
        """Give each direction's shaper the capacity in force (applied at its next reconcile)."""
        self._applier.link(self._capacities())

    def usage(
        self, app_id: str, since: int, until: int, resolution: UsageResolution, viewer: Viewer
    ) -> list[UsageRow]:
        """The usage history (thread-safe, without the engine lock: it reads
        SQLite, and ticks and calls go on meanwhile)."""
        if self._usage is None:
            raise HelperError("this helper keeps no usage history")
        return self._usage.query(app_id, since, until, resolution, viewer)

    # --- running ------------------------------------------------------------------

    def tick(self) -> None:
        """Once a second: follow processes, interfaces and counters."""
        with self._lock:
            samples, now = self._tracking.read_counters(), self._clock()
            gone = self._tracking.refresh()
        retired = self._tracking.exits(gone, samples)  # without the lock (issue 20)
        with self._lock:
            self._tracking.retire(gone, retired)
            if self._limits.activate(self._local_now()):
                log.info(
                    "schedules changed the limits in force (%s)",
                    self._local_now().strftime("%a %H:%M %Z"),
                )
            try:
                self._apply_link()
                self._apply_classes()
            except HelperError as error:  # e.g. an interface came back with a foreign qdisc
                if self._apply_error != str(error):
                    log.error("could not keep the limits in place: %s", error)
                self._apply_error = str(error)
            self._applier.caps(self._limits)
            self._apply_gates()  # a new quota period, a quota spent; the leases renewed
            self._applier.tags(self._limits)  # new processes of limited apps, whatever classes did
            self._applier.release_unused(self._limits)
            self._expire_user_rules(now)
            living = [s for s in samples if s.owner_tgid not in gone]
            self._tracking.count(living, now)
            by_slot = self._shaper.sent_up_bytes()
            self._tracking.meter.use_shaped_uploads(
                self._applier.wholly_shaped_uploads(self._limits, by_slot), now
            )
            self._overshoot.watch(self._applier.live(self._limits), self._index,
                                  self._tracking.meter.apps, self._applier.gating)  # fmt: skip
            self._tracking.forget_exited(now, {app_id for app_id, _ in self._limits.stored_keys()})
        self._measure_rtt()

    def _measure_rtt(self) -> None:
        """The round-trip times of applications with a priority, every RttWatch.every_s, off the lock,
        while a client lists applications (RTT_WATCHED_S): a dump costs ~3 ms (bench/rtt_cost.py).
        Where their sockets are is noted whether or not anyone looks: the first
        listing (a one-shot chadthrottle-ctl list) must already say what is not ordered."""
        if not self._rtt.due():
            return
        with self._lock:
            apps, uids = prioritized(self._index, self._limits)
        if apps or self._rtt.rtt_us or self._rtt.elsewhere:
            self._rtt.measure(apps, rtt=self._clock() - self._listed_at <= RTT_WATCHED_S, uids=uids)

    def note_new_owner(self, pid: int, cgroup_id: int = 0) -> None:
        """A process opened its first socket: learn whose it is now, while it
        still runs, so the bytes of a short-lived process are attributed, and
        a new process of a limited application is limited at once. If it has
        exited already, its cgroup (as the datapath saw it) may still name its
        app scope."""
        # Read before taking the lock (a storm of new processes must not hold
        # it); a tick cannot retire the pid's counters before it is announced.
        process = self._tracking.read(pid)
        with self._lock:  # the rest: a tick must not retire the pid's counters before it is known
            identity = self._tracking.new_owner(pid, cgroup_id, process)
            if identity is None:
                return
            key = rule_of(self._limits, identity, process.uid if process else None)
            if key is not None and self._applier.hold.slot_of_process(pid) is None:
                slot = self._applier.slots.acquire(key)
                self._applier.hold.reserve_process(pid, slot)  # its rule is live now: classes first
                try:
                    self._apply_classes()
                    self._applier.caps(self._limits)
                    self._apply_gates()
                except HelperError as error:
                    self._applier.hold.unreserve_process(pid)  # fail open: untagged, unlimited
                    self._apply_error = str(error)
                    log.error("could not limit process %d of %s: %s", pid, identity.app_id, error)
                    return
                self._applier.hold.tag_process(pid, slot)

    def note_socket_holders(self, pids: set[int]) -> None:
        """Processes that held sockets before the datapath was attached: listed
        while they run, though their sockets may stay quiet for minutes."""
        with self._lock:
            self._tracking.socket_holders |= pids

    def has_limits(self) -> bool:
        with self._lock:
            return len(self._limits) > 0 or not self._limits.link.is_off

    # --- plan and apply -----------------------------------------------------------

    def _resolve_id(self, app_id: str) -> str:
        return self._tracking.resolve(app_id, self._limits.has_app(app_id))

    def _change(
        self, edit: Callable[[LimitTable], None], clamped: dict[int, float] | None = None
    ) -> None:
        """clamped: the pids _shrink_windows_first clamped for this edit; if it
        is refused, their windows go back to what the old table holds them to."""
        before = self._limits.copy()
        edit(self._limits)
        try:
            self._apply()
            self._save_rules(self._limits)
        except HelperError:
            self._limits = before
            self._apply_quietly()
            self._applier.hold.unclamp(clamped or {})
            raise

    def _apply_quietly(self) -> None:
        try:
            self._apply()
        except HelperError as error:
            log.error("rollback incomplete: %s", error)

    def _apply(self) -> None:
        """Classes first, then tags: a tagged packet always finds its class
        (and a newly tagged socket its caps)."""
        self._apply_link()
        self._apply_classes()
        self._applier.caps(self._limits)
        self._apply_gates()
        self._applier.tags(self._limits)
        self._applier.release_unused(self._limits)

    def _apply_gates(self) -> None:
        """Blocks and quotas (Apply.gates); what the quotas used is stored at
        most every QUOTA_SAVE_S, at once when a period began or a quota was spent."""
        changed, turned = self._applier.gates(self._limits, self._local_now())
        now = self._clock()
        if changed and (turned or now - self._quota_saved_at >= QUOTA_SAVE_S):
            self._quota_saved_at = now
            try:  # a restart goes on counting the period, not from zero
                self._save_rules(self._limits)
            except HelperError as error:
                log.error("could not store what the quotas used: %s", error)

    def _apply_classes(self) -> None:
        self._applier.classes(self._limits)
        self._apply_error = ""

    def _shrink_windows_first(self, edit: Callable[[LimitTable], None]) -> dict[int, float]:
        """Clamp now the windows of running downloads that the table, once
        edited, holds tighter than they are held (see WINDOW_DRAIN_MIN_S)."""
        planned = self._limits.copy()
        edit(planned)
        return self._applier.shrink_windows_first(planned)

    def _wait_for_old_windows(self, clamped: dict[int, float]) -> None:
        """Without the engine lock: ticks, reads and new processes go on."""
        if clamped:
            self._sleep(min(max(WINDOW_DRAIN_MIN_S, max(clamped.values())), WINDOW_DRAIN_MAX_S))

    def _expire_user_rules(self, now: float) -> None:
        """Drop users' rules for programs whose file no longer exists (an
        administrator's rules stay until an administrator clears them)."""
        if now - self._expiry_checked_at < EXPIRY_CHECK_S:
            return
        self._expiry_checked_at = now
        gone = [
            key
            for key in self._limits.stored_keys()
            if key[1] != ADMIN_OWNER and program_is_gone(key[0])
        ]
        if not gone:
            return

        def edit(table: LimitTable) -> None:
            for key in gone:
                table.drop(key)

        try:
            self._change(edit)
        except HelperError as error:
            log.error("could not drop the rules of programs that are gone: %s", error)
            return
        for app_id, owner in gone:
            log.info("dropped uid %d's rule for %s: the program no longer exists", owner, app_id)
