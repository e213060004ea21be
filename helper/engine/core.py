"""The engine's core: the rule table, the lock, the change transaction and the
tick, over its parts (tracking.py, plan.py, apply.py).

A change is applied and stored, or rolled back with the caller told why: the
table and the kernel go back to how they were. The tick, once a second (and
just after the minute while schedules exist), follows processes and counters
(tracking), puts schedules in and out of force, applies the table again (an
interface that came back, a new quota period, new processes of limited
applications) and drops users' rules for programs that are gone. engine.py
answers the EngineApi over it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, tzinfo

from chadthrottle.contract import ADMIN_OWNER, PAUSED_PROBLEM, BackendInfo, Direction
from chadthrottle.helper.engine.api import Viewer
from chadthrottle.helper.engine.apply import Apply, ClampedWindows
from chadthrottle.helper.engine.closing_lock import ClosingLock
from chadthrottle.helper.engine.crossed import DevicesCrossed, ForwardedClassed
from chadthrottle.helper.engine.kernel_hold import GRAFT_POLL_S
from chadthrottle.helper.engine.limits import (
    LimitTable,
    RuleKey,
    gates_changed,
    priority_of,
    rules_changed,
)
from chadthrottle.helper.engine.link_plan import LinkFacts, capacities, link_facts
from chadthrottle.helper.engine.overshoot import OvershootWatch
from chadthrottle.helper.engine.plan import (
    bytes_moved_here,
    prioritized,
    rule_of,
    socket_namespaces,
)
from chadthrottle.helper.engine.ports import (
    DatapathPort,
    LineagePort,
    NamespacePort,
    ShaperPort,
    UsagePort,
)
from chadthrottle.helper.engine.rtt import RttWatch
from chadthrottle.helper.engine.schedules import local_zone
from chadthrottle.helper.engine.snapshot import Lookers, Snapshot
from chadthrottle.helper.engine.tracking import Tracking
from chadthrottle.helper.errors import EngineClosed, HelperError, KernelError
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.program_files import program_is_gone
from chadthrottle.helper.kernel.namespaces import NamespaceDirectory
from chadthrottle.helper.kernel.pending_walks import WALK_BUDGET_S
from chadthrottle.priority import Priority

log = logging.getLogger("chadthrottle.engine")

# A download limit clamps the receive window of the application's TCP sockets
# (socket_tagging.receive_window_bytes) only where the backend queues: the
# clamp keeps the sender's excess in the queue short. The ebpf policer has no
# queue and drops, and there the clamp measured worse, not better.
# A download limit landing on a running download clamps the windows first and
# limits once the senders have spent the old windows (the kernel never takes
# one back: megabytes at full speed, which the leaf queue would mostly drop,
# and recovering took seconds). It asks the sockets every WINDOW_POLL_S
# whether their advertised windows came down to the clamp
# (socket_tagging.old_windows_left), for at most WINDOW_DRAIN_MAX_S; sockets
# that received nothing for that long are not waited for. Where the kernel
# does not say, it waits the estimate (socket_tagging.old_window_drain_s),
# within bounds. The numbers: docs/backends.md, "Clamping the receive window".
WINDOW_DRAIN_MIN_S, WINDOW_DRAIN_MAX_S = 0.05, 0.5
WINDOW_POLL_S = 0.01
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
# Round-trip times are measured only while ListApplications was called within this long.
RTT_WATCHED_S = 10.0


# keep_leases_between_ticks renews nothing once the tick thread showed no work
# (a tick's end, a process's round trips read) for this long: a hung tick
# thread lets the blocks lapse within it and a lease (until review29, 60 s
# after the last tick however busy it was). One step of it, a process's whole
# descriptor table, took 4 s at 524,288 descriptors (rights28).
TICK_SILENCE_S = 10.0


class EngineCore:
    """The engine's state under one lock (docs/architecture.md, "Threads"):
    the table, its parts, and the steps that change the kernel from it."""

    def __init__(
        self,
        datapath: DatapathPort,
        shaper: ShaperPort,
        index: ApplicationIndex,
        backends: Callable[..., list[BackendInfo]],
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
        zone (default: the machine's) say which schedules are active;
        backends(active directions[, viewer_pids]): ListBackends' entries, with
        viewer_pids (a user's processes) naming only their namespaces."""
        self._datapath = datapath
        self._shaper = shaper
        self._index = index
        self._backends = backends
        self._clock = clock
        self._sleep = sleep
        self._lock = ClosingLock()  # every kernel write under it; shut by close (closing_lock.py)
        self._wall_clock = wall_clock
        self._zone = zone or local_zone()
        self._limits = rules.copy() if rules is not None else LimitTable()
        self._limits.activate(self._local_now())
        self._save_rules = save_rules
        self._applier = Apply(datapath, shaper, index, clock)  # plans made real in the kernel
        datapath.set_between_walks(self._keep_leases)
        self._namespaces = namespaces or NamespaceDirectory()
        self._usage = usage
        self._tracking = Tracking(index, datapath, lineage, usage)  # processes and counters
        self._expiry_checked_at = float("-inf")
        self._apply_error = ""  # why the kernel refused the last plan, "" when it did not
        self._restored = False  # the first tick put the stored rules in force (tick)
        self._overshoot = OvershootWatch()  # limits measured as not met
        self._quota_saved_at = float("-inf")
        self._gates_turned: set[tuple[str, Direction]] = set()  # _take_gates_turned
        self._estimated: dict[Direction, int] = {}  # set_estimated_capacity's, while estimated
        self._rtt = RttWatch()
        # when the tick thread last showed work: its locked part ended, or a
        # process's round trips were read off the lock (keep_leases_between_ticks)
        self._ticked_at = clock()
        # CLOCK_MONOTONIC ns: the new-owner thread read every announcement made
        # before it (note_owners_read); the counters listed were read after
        # that (counted_through_ns, API 9). Ints written whole across threads.
        self._owners_read_ns = 0
        self._counted_through_ns = 0
        # announcements the kernel could keep nowhere (note_owners_lost), and
        # how many of them a tick has looked for since: while they differ, the
        # new-owner thread's word is not taken (note_owners_read)
        self._owners_lost = 0
        self._owners_lost_looked_for = 0
        self._crossed = DevicesCrossed()  # the devices each application's bytes crossed lately
        self._forwarded = ForwardedClassed()  # where a container's priority is classed (crossed.py)
        self._listed_at = float("-inf")  # the last ListApplications: rtt only while looked at
        # the read calls' answers, swapped whole after each tick and change (snapshot.py)
        self._snapshot: Snapshot | None = None
        self._lookers = Lookers(clock)  # whose listings each publish makes
        self._publish_error = ""  # why the last publish failed, "" when it did not
        self._graft_waiter: threading.Thread | None = None  # _wait_out_grafts, while it runs
        self._graft_waits_stopped = False
        self._applier.on_graft_wait = self._start_graft_waiter

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

    def prioritized_slots(self) -> dict[int, str]:
        """slot -> app id of every rule with a priority (not normal)."""
        slots = {}
        for key, limits in self._limits.items():
            slot = self._applier.slots.slot_of(key)
            if slot is not None and priority_of(limits) is not Priority.NORMAL:
                slots[slot] = key[0]
        return slots

    def tick(self) -> None:
        """Once a second: follow processes, interfaces and counters."""
        owners_read_ns = self._owners_read_ns  # before the counters: what they are read after
        lost = self._owners_lost
        with self._lock:
            samples, now = self._tracking.read_counters(), self._clock()
            if lost != self._owners_lost_looked_for:  # before refresh(): the exited ones retire now
                self._tracking.name_unheard(samples)
                self._owners_lost_looked_for = lost
            gone = self._tracking.refresh()
            ending, living = self._tracking.split(samples, gone)
            for pid in self._tracking.replaced(gone):  # tagged afresh below if wanted
                self._applier.hold.process_replaced(pid)
        retired = self._tracking.exits(gone, ending)  # without the lock (issue 20)
        with self._lock:
            self._tracking.retire(gone, retired)
            self._shaper.note_socket_namespaces(
                socket_namespaces(samples, self._applier.hold.slot_of_process)
            )
            # a schedule switching restarts the rate windows it changes (below)
            in_force = self._limits.enforced() if self._limits.schedule_items() else []
            switched = self._limits.activate(self._local_now())
            if switched:
                log.info(
                    "schedules changed the limits in force (%s)",
                    self._local_now().strftime("%a %H:%M %Z"),
                )
            # Gates first: a new quota period or a quota spent, as the classes and
            # caps below then see it. After them, a throttled quota's new period
            # kept its then-rate's class and window clamp one more tick, while
            # the listing said it was whole again. A spent quota's gate still
            # opens only a tick after the classes gave its then-rate (Gating).
            with self._applier.one_plan(self._limits):  # one reading of the rules' processes
                self._apply_gates()  # a new quota period, a quota spent; the leases renewed
                try:
                    self._apply_link()
                    self._apply_classes()
                except HelperError as error:  # e.g. an interface came back with a foreign qdisc
                    if self._apply_error != str(error):
                        log.error("could not keep the limits in place: %s", error)
                    self._apply_error = str(error)
                self._applier.caps(self._limits)
                # new processes of limited apps, whatever classes did
                self._applier.tags(self._limits)
            self._applier.release_unused(self._limits)
            self._expire_user_rules(now)
            self._tracking.count(living, now)
            # The gates saw a quota spent (or whole again) after this tick's
            # counts: from them. A switch, and the rules the start restored
            # (its first tick: a clean stop lifted them, a killed helper's
            # gates lapsed), came in force after them, with the gates, classes
            # and tags written above: from counts read now, as after a change.
            # From this tick's, the bytes between read and write (0.03-0.11 s
            # at a start here) were listed for two ticks as passing the rules
            # (restart36: a blocked download at 130-520 KB/s after a restart).
            changed = rules_changed(in_force, self._limits.enforced()) if switched else set()
            if not self._restored:
                changed |= rules_changed([], self._limits.enforced())
                self._restored = True
            self._tracking.meter.restart(self._take_gates_turned(), living, now)
            self._restart_rates(changed)
            moved = bytes_moved_here(
                living, self._tracking.meter.owner_of, self._namespaces.own_cookie
            )
            self._applier.note_active(moved, now)
            self._crossed.note(
                living, self._tracking.meter.owner_of, self._namespaces.own_cookie, now
            )
            self._forwarded.note(self._datapath.forwarded_matches(self.prioritized_slots()), now)
            for direction in Direction:
                # timed when read, not at the tick's start: the work between
                # (classes, caps, tags) takes long on a loaded machine, and a
                # count stamped early read over the limit (1.33 times in CI)
                by_slot, read_at = self._shaper.sent_bytes(direction), self._clock()
                self._tracking.meter.use_shaped(
                    direction,
                    self._applier.wholly_shaped(self._limits, direction, by_slot),
                    read_at,
                )
            self._overshoot.watch(self._applier.live(self._limits), self._index,
                                  self._tracking.meter.apps, self._applier.gating)  # fmt: skip
            self._tracking.forget_exited(now, {app_id for app_id, _ in self._limits.stored_keys()})
            self._ticked_at = self._clock()
            self._counted_through_ns = owners_read_ns
            self._publish()
        self._measure_rtt()

    def _publish(self, fresh: Callable[[Viewer], bool] | None = None) -> None:
        """Under the lock, after a tick or a change: the read calls' snapshot
        (the Engine makes it: engine.py); fresh: whose listings are made anew
        (None: everyone's)."""

    def note_owners_read(self, began_ns: int) -> None:
        """From the new-owner thread: every process's first socket announced
        before began_ns (CLOCK_MONOTONIC) was read and its process named
        (a poll that began then consumed the ring buffer, level-triggered, to
        empty, and the process events after it). The next tick's counters are
        read after that: the listing says so (counted_through_ns), so that a
        client knows a late helper from a settled one by the helper's word,
        not by its numbers standing still (docs/benchmarks/flakes.md, bare32)."""
        if self._owners_lost == self._owners_lost_looked_for:
            self._owners_read_ns = max(self._owners_read_ns, began_ns)

    def note_owners_lost(self, count: int) -> None:
        """From the new-owner thread: count processes' first sockets were
        announced where the helper cannot read them (the ring buffer and its
        overflow map were full: new_owners.py). The next tick looks for their
        bytes' owners in its counters (Tracking.name_unheard); until it has,
        no later poll is vouched for (note_owners_read), so counted_through_ns
        stays before the loss."""
        self._owners_lost += count

    def follow_links(self) -> None:
        """Interfaces came, went or changed (link events): the shapers follow
        now rather than at the next tick (docs/backends.md, "Following
        interfaces"). Only the classes: processes and counters keep the tick."""
        with self._lock:
            try:
                self._apply_classes()
            except HelperError as error:
                if self._apply_error != str(error):
                    log.error("could not keep the limits in place: %s", error)
                self._apply_error = str(error)
            self._publish()  # the link's interfaces and what keeps it from shaping

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
            self._rtt.measure(apps, rtt=self._clock() - self._listed_at <= RTT_WATCHED_S,
                              uids=uids, progress=self._tick_working)  # fmt: skip

    def _tick_working(self) -> None:
        """The tick thread is at work off the lock (RttWatch.measure, after
        each process and each namespace's dump): not stuck, so the leases are
        kept between its late ticks (keep_leases_between_ticks). A float
        written whole: read by the new-owner thread without the lock."""
        self._ticked_at = self._clock()

    def note_new_owner(self, pid: int, cgroup_id: int = 0, start: int = 0) -> None:
        """A process opened its first socket: learn whose it is now, while it
        still runs, so the bytes of a short-lived process are attributed, and
        a new process of a limited application is limited at once. If it has
        exited already, its cgroup (as the datapath saw it) may still name its
        app scope. start: the process's start as the datapath read it (0: not
        known); another process under its pid by now is not it."""
        # Read before taking the lock (a storm of new processes must not hold
        # it); a tick cannot retire the pid's counters before it is announced.
        process = self._tracking.read(pid, start)
        with self._lock:  # the rest: a tick must not retire the pid's counters before it is known
            identity = self._tracking.new_owner(pid, cgroup_id, process, start)
            if identity is None:
                return
            # under a pid handed out again, what the old process was tagged with is not its
            if self._tracking.pid_reused(pid, start):
                self._applier.hold.process_replaced(pid)
            key = rule_of(self._limits, identity, process.uid if process else None)
            slot = self._applier.reserve(pid, key) if key is not None else None
            if slot is not None:  # its rule is live now: its classes first, then its tag
                try:
                    with self._applier.one_plan(self._limits):
                        self._apply_classes()
                        self._applier.caps(self._limits)
                        self._apply_gates()
                except HelperError as error:
                    self._applier.unreserve(pid)  # fail open: untagged, unlimited
                    self._apply_error = str(error)
                    log.error("could not limit process %d of %s: %s", pid, identity.app_id, error)
                    return
                self._applier.tag(pid, slot, start)
                # a quota the gates saw turn here turned now: its rates restart
                # now, not at the next tick (listed meanwhile at the rate before)
                self._restart_rates(self._take_gates_turned())

    def note_socket_holders(self, pids: set[int]) -> None:
        """Processes that held sockets before the datapath was attached: listed
        while they run, though their sockets may stay quiet for minutes."""
        with self._lock:
            self._tracking.add_socket_holders(pids)

    def has_limits(self) -> bool:
        with self._lock:
            return len(self._limits) > 0 or not self._limits.link.is_off

    def keep_leases_between_ticks(self) -> None:
        """From a thread other than the tick's (the new-owner watcher's, every
        half second at most): the gates' leases renewed when due while the
        ticks run late. The tick thread does work off the lock whose size a
        user chooses (the round trips of a program of theirs given "low":
        every 2 s, each of its processes' descriptor tables read), and a
        prioritized program of 40 processes of 19,000 descriptors let an
        administrator's block on another application pass 233 KB in 20 s
        (rights28). Not once the tick thread showed no work for
        TICK_SILENCE_S (_tick_working): a helper whose tick thread is stuck
        fails open, as one that is gone."""
        if self._clock() - self._ticked_at > TICK_SILENCE_S:
            return
        if not self._applier.gating.renew_due():  # no lock taken for nothing
            return
        with self._lock:
            self._keep_leases()

    def _keep_leases(self) -> None:
        """Between walks of processes' descriptors, under the lock (the
        datapath calls it): the gates' leases renewed when due, so a stretch
        of walks a user can make as long as they like (many forks of a
        program holding many descriptors) lets no block or quota lapse."""
        try:
            gates = self._datapath.gates
        except KernelError:  # closed: nothing to renew
            return
        if gates is not None:
            self._applier.gating.renew_if_due(gates)

    def _resolve_id(self, app_id: str) -> str:
        return self._tracking.resolve(app_id, self._limits.has_app(app_id))

    def _change(self, edit: Callable[[LimitTable], None], clamped: Collection[int] = (),
                asked: bool = False) -> None:  # fmt: skip
        """clamped: the pids _shrink_windows_first clamped for this edit; if it
        is refused, their windows go back to what the old table holds them to.
        asked: a caller's own rules (apply_changes), refused where the kernel
        did not take their block or quota; a resume or a link setting goes on
        past such a gate, as a tick does, and lists it. A change of blocks or
        quotas writes its gates first, and is refused before its classes and
        caps are written: until 2026-12-06 a refused quota's then-rate class and
        caps were in the kernel until the rollback. A quota spent at once that
        then throttles still opens its gate to its then-rate in the same change
        (_apply writes the gates again once the classes have it).
        Any failure undoes the edit, not only a HelperError: an unexpected one
        (the caller is told the call failed) must not leave the change in force."""
        before = self._limits.copy()
        edit(self._limits)
        changed = rules_changed(before.enforced(), self._limits.enforced())
        gated = gates_changed(before.enforced(), self._limits.enforced()) if asked else set()
        shaped = self._applier.gating.shaped_at_then()
        try:
            if gated:  # its gates before anything else: a refused change shaped nothing
                self._apply_gates(store=False)
                self._refuse_unwritten_gates(gated, before)
            # stored below once taken, never while refusable; the namespaces of
            # the processes limited already are the tick's to read again
            self._apply(store_quotas=False, restat=False)
            self._refuse_unwritten_gates(gated, before)
            self._save_rules(self._limits)
        except Exception:
            self._limits = before
            if gated:
                self._undo_gates(shaped)
            self._apply_quietly()
            self._applier.unclamp(clamped)
            raise
        self._restart_rates(changed | self._take_gates_turned())

    def _undo_gates(self, shaped: frozenset[tuple[RuleKey, Direction]]) -> None:
        """A refused change's gates, written first (_change), back as the old
        table holds them before anything else: until 2026-12-06 the rollback
        wrote the old classes first, and where tc refused those too (a foreign
        root qdisc refuses every reconcile) the refused block held until the
        next tick, listed as not there, and a refused unblock let the blocked
        traffic through, listed as blocked. shaped: the used-up quotas whose
        then-rate the shaper held before the change, and holds still (it took
        no classes): their gates stay open to it."""
        self._applier.gating.shaper_holds_then_rates(shaped)
        try:
            self._apply_gates(store=False)
        except Exception:  # the caller hears the first failure; _apply_quietly tries again
            log.exception("rollback of the gates incomplete")

    def _refuse_unwritten_gates(self, changed: set[tuple[RuleKey, Direction]],
                                kept: LimitTable) -> None:  # fmt: skip
        """A change whose block or quota the kernel did not take is refused
        (a tick goes on past such a gate, and lists it: Gating._write).
        changed: the rules' directions whose block or quota the change
        changed; one that leaves them as they were (a rate, a priority) is
        taken beside a gate the kernel keeps refusing (until 2026-12-06 it was
        refused too: after one refused unblock, every later change of that
        direction was). Only the rule whose gate failed is refused: each rule
        has its own gates (until 2026-12-06 any rule's failing gate of the
        application and direction refused it: another user's refused yours).
        Gating.failed holds only live rules (their processes tagged): one
        the change takes out (lifted, dropped, outranked) has its processes
        untagged, so its gate, refused or not, holds none of their sockets,
        and the change is taken (until 2026-12-06 refused all the same).
        kept: the table in force once the change is refused (its rates hold
        beneath a lapsing gate; Gating.refusal)."""
        gating = self._applier.gating
        for key, direction in gating.failed:
            if (key, direction) in changed:
                rated = direction in gating.rated(key, kept.get(key))
                held = key in {live for live, _limits in self._applier.live(kept)}
                raise KernelError(gating.refusal(key, direction, rated, held))

    def _restart_rates(self, changed: set[tuple[str, Direction]]) -> None:
        """(application, direction)s whose rules in force just changed: their rates are
        measured from now on (RateMeter.restart), read from the counters now.
        A failed read costs only that: the rules are in force already."""
        if not changed:
            return
        try:
            samples = self._tracking.read_counters()
        except (HelperError, OSError) as error:
            log.warning("rates of changed rules not restarted: %s", error)
            return
        self._tracking.meter.restart(changed, samples, self._clock())

    def _apply_quietly(self) -> None:
        try:
            self._apply()
        except HelperError as error:
            log.error("rollback incomplete: %s", error)
        except Exception:  # the first failure is the caller's to hear; this one is logged
            log.exception("rollback incomplete")

    def _apply(self, store_quotas: bool = True, restat: bool = True) -> None:
        """Classes first, then tags: a tagged packet always finds its class
        (and a newly tagged socket its caps). store_quotas: False while an edit
        may still be refused (_change stores the table once it is taken).
        restat: the shaper reads every limited process's namespace again (else
        the new ones': Apply.classes). One plan for the classes to the tags
        (Apply.one_plan)."""
        self._apply_link()
        with self._applier.one_plan(self._limits):
            self._apply_classes(restat)
            self._applier.caps(self._limits)
            self._apply_gates(store_quotas)
            self._applier.tags(self._limits)
        self._applier.release_unused(self._limits)

    def _apply_link(self) -> None:
        """Give each direction's shaper the capacity in force (applied at its next reconcile)."""
        self._applier.link(self._capacities())

    def _apply_classes(self, restat: bool = True) -> None:
        self._applier.classes(self._limits, restat)
        self._apply_error = ""

    def _apply_gates(self, store: bool = True) -> None:
        """Blocks and quotas (Apply.gates); what the quotas used is stored at
        most every QUOTA_SAVE_S, at once when a period began or a quota was spent.
        store: False within an edit not yet taken (_change): it stored the edited
        table, so a change then refused (a gate the kernel refused) was in force
        after a restart (until 2026-12-06)."""
        changed, turned, turned_apps = self._applier.gates(self._limits, self._local_now())
        self._gates_turned |= turned_apps
        now = self._clock()
        if store and changed and (turned or now - self._quota_saved_at >= QUOTA_SAVE_S):
            self._quota_saved_at = now
            try:  # a restart goes on counting the period, not from zero
                self._save_rules(self._limits)
            except HelperError as error:
                log.error("could not store what the quotas used: %s", error)

    def _take_gates_turned(self) -> set[tuple[str, Direction]]:
        """The (application, direction)s a quota holds otherwise since the last call (spent,
        whole again, at its then-rate: _apply_gates), whose rates restart: a
        quota spent was listed at the mean of the seconds before for two ticks
        (the window's), where a block set by hand read nothing the tick after."""
        turned, self._gates_turned = self._gates_turned, set()
        return turned

    def _shrink_windows_first(
        self, edit: Callable[[LimitTable], None]
    ) -> dict[int, ClampedWindows]:
        """Clamp now the windows of running downloads that the table, once
        edited, holds tighter than they are held (see WINDOW_DRAIN_MIN_S)."""
        planned = self._limits.copy()
        edit(planned)
        return self._applier.shrink_windows_first(planned)

    def _wait_for_old_windows(self, clamped: Mapping[int, ClampedWindows]) -> None:
        """Until no clamped sender may still send its old window, for at most
        WINDOW_DRAIN_MAX_S (or the estimate, where the kernel does not say).
        Without the engine lock: ticks, reads and new processes go on."""
        if not clamped:
            return
        idle_ms = round(WINDOW_DRAIN_MAX_S * 1000)
        pending = dict(clamped)
        walked = 0.0  # each ask walks the process's descriptors: WALK_BUDGET_S in all
        for _ in range(round(WINDOW_DRAIN_MAX_S / WINDOW_POLL_S)):
            left: dict[int, bool | None] = {}
            for pid, c in pending.items():
                asked = time.monotonic()
                left[pid] = self._applier.old_windows_left(pid, c, idle_ms,
                                                           asked + WALK_BUDGET_S - walked)  # fmt: skip
                walked += time.monotonic() - asked
                if walked >= WALK_BUDGET_S:  # a user's many descriptors: no longer
                    return  # (the engine's one thread serves every call meanwhile)
            if None in left.values():
                estimate = max(c.drain_s for c in clamped.values())
                self._sleep(min(max(WINDOW_DRAIN_MIN_S, estimate), WINDOW_DRAIN_MAX_S))
                return
            pending = {pid: c for pid, c in pending.items() if left[pid]}
            if not pending:
                return
            self._sleep(WINDOW_POLL_S)

    def _start_graft_waiter(self) -> None:
        """Under the lock: processes are held back from their tags for a clsact
        graft's losses (kernel_hold.GRAFT_WAIT_RTTS); a thread waits them out."""
        if self._graft_waiter is None and not self._graft_waits_stopped:
            self._graft_waiter = threading.Thread(
                target=self._wait_out_grafts, name="graft-wait", daemon=True
            )
            self._graft_waiter.start()

    def _wait_out_grafts(self) -> None:
        """Tag each held-back process once its sockets' sent data is
        acknowledged or its wait ran out. The sockets are polled off the lock
        and off the thread that serves D-Bus calls, so listings, other limits
        and ticks go on meanwhile (until 2026-12-04 the wait held both, up to
        0.2 s). Any failure tags them all the same (fails open)."""
        hold = self._applier.hold
        try:
            while True:
                with self._lock:
                    waits = hold.graft_waits()
                    if not waits or self._graft_waits_stopped:
                        self._graft_waiter = None
                        return
                    left_s = hold.graft_wait_left_s()
                acked = {pid for pid, wait in waits.items()
                         if not self._datapath.sends_unacked(pid, wait.marks)}  # fmt: skip
                if acked or left_s <= 0:
                    with self._lock:
                        if self._graft_waits_stopped:  # closing: tag nothing (stop_graft_waits)
                            self._graft_waiter = None
                            return
                        hold.graft_done(acked)
                        self._applier.tags(self._limits)
                else:
                    self._sleep(min(GRAFT_POLL_S, left_s))
        except EngineClosed:  # the engine closed while this polled: it tags nothing
            return
        except Exception:
            log.exception("waiting for a clsact graft's losses failed: tagging now")
            with self._lock:
                hold.graft_done(hold.graft_waits())
                self._graft_waiter = None
                if not self._graft_waits_stopped:
                    self._applier.tags(self._limits)

    def stop_graft_waits(self) -> None:
        """On close, before the kernel objects go: processes still held back
        stay untagged, and a waiter polling off the lock tags nothing after
        this (it would cap sockets after close lifted the caps)."""
        with self._lock:
            self._graft_waits_stopped = True
            self._applier.hold.graft_done(self._applier.hold.graft_waits())

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

    def _capacities(self) -> dict[Direction, int]:
        return capacities(self._limits.link, self._estimated, self._limits.paused)

    def _link_facts(self) -> LinkFacts:
        paused = PAUSED_PROBLEM if self._limits.paused else ""
        return link_facts(self._limits, self._estimated, self._shaper, paused, self._apply_error)

    def _problems(self, viewer_pids: Collection[int] | None = None) -> dict[Direction, str]:
        """Per direction, why its limits are not (wholly) enforced now
        (viewer_pids: a user's processes, whose namespaces alone are named)."""
        if self._limits.paused:
            return {direction: PAUSED_PROBLEM for direction in Direction}
        gaps = self._shaper.enforcement_gaps(viewer_pids)
        problems = {direction: "; ".join(reasons) for direction, reasons in gaps.items() if reasons}
        if self._apply_error:
            for direction in Direction:
                problems[direction] = "; ".join(
                    filter(None, [problems.get(direction), self._apply_error])
                )
        return problems
