"""The apply step: a rule table made real in the kernel.

For the table in force it takes the plan (plan.py: live rules, classes, caps,
tags) and writes what differs from what the kernel holds (kernel_hold.py),
in the order that keeps every packet accounted: classes and caps before
gates (the tick writes gates first, so classes follow a quota's turn in the
same tick: core.EngineCore.tick; a spent quota's gate opens only once the
shaper has its then-rate either way, gating.py), gates before tags (a newly
tagged socket finds its class, its caps and its gate shut), slots of rules no
longer live released last. It owns the
slots and the gates' state (gating.py), so nothing else gives out a slot or
writes a gate. Not thread-safe by itself: the engine calls it under its lock.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.activity import ActivityWatch
from chadthrottle.helper.engine.gating import Gating
from chadthrottle.helper.engine.kernel_hold import KernelHold
from chadthrottle.helper.engine.limits import LimitTable, RuleKey, SlotAllocator
from chadthrottle.helper.engine.plan import (
    FAIR_IDLE_S,
    FAIR_OWNER,
    LiveRules,
    Reach,
    download_window_bps,
    fair_shares,
    live_rules,
    reached_pids,
    wanted_caps,
    wanted_classes,
    wanted_tags,
)
from chadthrottle.helper.engine.ports import DatapathPort, ShaperPort
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.kernel.pending_walks import WALK_BUDGET_S


@dataclass(frozen=True)
class ClampedWindows:
    """A process's receive windows clamped ahead of a download limit: for
    window_bps on the wire; its senders' old windows estimated to take drain_s
    (socket_tagging.old_window_drain_s)."""

    drain_s: float
    window_bps: int
    made_by: int | None = None  # a user's rule: only that user's sockets were clamped


@dataclass
class _Plan:
    """One apply's reading of a table (Apply.one_plan): its live rules (None:
    not read yet) and each rule's reached processes, read once."""

    table: LimitTable
    live: LiveRules | None = None
    reached: dict[RuleKey, list[int]] = field(default_factory=dict)


class Apply:
    def __init__(self, datapath: DatapathPort, shaper: ShaperPort, index: ApplicationIndex,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        """clock: CLOCK_MONOTONIC's seconds (the gates' leases run on it)."""
        self._datapath = datapath
        self._shaper = shaper
        self._index = index
        # what this engine wrote to the kernel
        self.hold = KernelHold(datapath, shaper, start_of=index.start_of)
        # called (under the engine lock) when tags() left processes held back
        # for a clsact graft's losses (kernel_hold.GRAFT_WAIT_RTTS)
        self.on_graft_wait: Callable[[], None] = lambda: None
        self.slots = SlotAllocator()
        self.gating = Gating(clock)  # blocks and quotas
        self._clamped_for: dict[int, int] = {}  # pid -> uid, of the last shrink_windows_first
        self._activity = ActivityWatch(FAIR_IDLE_S)  # which applications use the link (note_active)
        self._plan: _Plan | None = None  # within one_plan

    def linked(self) -> dict[Direction, int]:
        """The link capacity each direction's shaper was given."""
        return self.hold.linked()

    def reserve(self, pid: int, key: RuleKey) -> int | None:
        """A new socket owner under a rule: its slot, counted as tagged so its
        rule is live for the classes made before its tag (tag()); None if it
        is tagged already."""
        if self.hold.slot_of_process(pid) is not None:
            return None
        slot = self.slots.acquire(key)
        self.hold.reserve_process(pid, slot)
        return slot

    def unreserve(self, pid: int) -> None:
        """Its classes could not be made: it stays untagged (fail open)."""
        self.hold.unreserve_process(pid)

    def tag(self, pid: int, slot: int, start: int = 0) -> None:
        self._declare_owners()
        self.hold.tag_process(pid, slot, start)

    def _declare_owners(self) -> None:
        """The slots of users' rules, with their owners: such a slot takes
        over only the open sockets its owner's processes made (a socket is
        shared by every process holding it: a user's rule on their process
        held root's upload on a socket root passed it)."""
        self._datapath.set_slot_owners({slot: uid for key in self.slots.rules()
                                        if (uid := _user_of(key)) is not None
                                        and (slot := self.slots.slot_of(key)) is not None})  # fmt: skip

    def unclamp(self, clamped: Collection[int]) -> None:
        """Windows clamped ahead of a refused change go back to what their slot holds."""
        self.hold.unclamp(clamped, self._clamped_for)

    def old_windows_left(self, pid: int, clamped: ClampedWindows, idle_ms: int,
                         deadline: float | None = None) -> bool | None:  # fmt: skip
        """Whether a sender of pid's downloads may still send its old window
        (deadline, monotonic: its walk stops there)."""
        return self.hold.old_windows_left(pid, clamped.window_bps, idle_ms, clamped.made_by,
                                          deadline)  # fmt: skip

    @contextlib.contextmanager
    def one_plan(self, table: LimitTable) -> Iterator[None]:
        """Within it, live() and reached() of table are read once and kept:
        the classes, caps, gates and tags of one apply read the same rules,
        processes and tags (nothing between them changes the index, the
        table's rules or a tag: tags() reads them before it tags), where each
        read them anew: five passes over every rule and its processes per
        write call, however little it changed (snap35). Not over
        release_unused: the tags it follows change what is live."""
        self._plan = _Plan(table)
        try:
            yield
        finally:
            self._plan = None

    def _planned(self, table: LimitTable) -> _Plan | None:
        plan = self._plan
        return plan if plan is not None and plan.table is table else None

    def reached(self, table: LimitTable, key: RuleKey) -> list[int]:
        """The running processes key reaches in table (plan.reached_pids);
        not to be changed by the caller (kept within one_plan)."""
        plan = self._planned(table)
        if plan is None:
            return reached_pids(self._index, table, key)
        if key not in plan.reached:
            plan.reached[key] = reached_pids(self._index, table, key)
        return plan.reached[key]

    def _reach(self, table: LimitTable) -> Reach:
        return lambda key: self.reached(table, key)

    def live(self, table: LimitTable) -> LiveRules:
        """The rules that get slots, classes and tags now (plan.live_rules)."""
        plan = self._planned(table)
        if plan is not None and plan.live is not None:
            return plan.live
        tagged_slots = self.hold.tagged_slots()
        tagged = [key for key in self.slots.rules() if self.slots.slot_of(key) in tagged_slots]
        live = live_rules(self._index, table, tagged, bool(self.hold.linked()), self._reach(table))
        if plan is not None:
            plan.live = live
        return live

    def note_active(self, moved: dict[str, int], now: float) -> None:
        """Each application's bytes moved (not loopback) since the helper
        started: those moving at least activity.ACTIVE_BPS are active now
        (for fair_shares), not those that sent a byte."""
        self._activity.note(moved, now)

    def fair(self, table: LimitTable, live: LiveRules) -> dict[RuleKey, list[int]]:
        """Under a link, each active application's processes without a rule
        (plan.fair_shares); none without a link: nothing changes then."""
        if not self.hold.linked() or table.paused:
            return {}
        return fair_shares(self._index, table, live, self._activity.active_at, self._reach(table))

    def downloads_queue(self) -> bool:
        """Whether the download backend queues (tc) rather than drops (the policer)."""
        return self._shaper.queues(Direction.DOWN)

    def link(self, capacities: dict[Direction, int]) -> None:
        self.hold.link(capacities)
        if self._plan is not None:
            self._plan.live = None  # a priority alone is live only under a link (live_rules)

    def classes(self, table: LimitTable, restat: bool = True) -> None:
        """restat: the shaper reads every limited process's network namespace
        again (a tick), else only the new ones' (a write call)."""
        live = self.live(table)
        # fair shares' processes are not limited ones: the link tree is in the helper's namespace only
        fair = self.fair(table, live)
        wanted = wanted_classes(
            live, self.slots.acquire, self.gating, self.hold.linked().keys(), fair
        )
        limited: dict[int, int] = {}  # pid -> slot
        tagged = self.hold.pids_by_slot()  # once: per rule it was a pass over every tagged pid
        for key, _limits in live:  # running, and tagged since the last refresh (note_new_owner)
            slot = self.slots.acquire(key)
            for pid in {*self.reached(table, key), *tagged.get(slot, ())}:
                limited[pid] = slot
        self.hold.classes(wanted, limited, restat)

    def caps(self, table: LimitTable) -> None:
        live = self.live(table)
        self._declare_owners()
        self.hold.caps(wanted_caps(live, self.slots.acquire, self.gating, self.downloads_queue()))

    def gates(
        self, table: LimitTable, local_now: datetime
    ) -> tuple[bool, bool, set[tuple[str, Direction]]]:
        """Blocks and quotas into the kernel, and their leases renewed
        (gates.py); (whether the quotas' use in the table changed, whether a
        period began or a quota was spent, the (application, direction)s a quota holds
        otherwise now: Gating.apply). A datapath without gates has none to
        write."""
        gates = self._datapath.gates
        if gates is None:
            return False, False, set()
        live = [(key, self.slots.acquire(key), limits) for key, limits in self.live(table)]
        used_before = dict(table.quota_use)
        turned, turned_apps = self.gating.apply(live, local_now, gates, table.quota_use)
        return table.quota_use != used_before, turned, turned_apps

    def tags(self, table: LimitTable) -> None:
        live = self.live(table)
        wanted_pids, scopes = wanted_tags(
            self._index, table, live, self.slots.acquire, self._reach(table)
        )
        for key, pids in self.fair(table, live).items():  # no app scope: a rule's processes only
            wanted_pids.update((pid, self.slots.acquire(key)) for pid in pids)
        alive = {pid for pids in self._index.pids_by_app().values() for pid in pids}
        self._declare_owners()
        self.hold.tags(wanted_pids, scopes, alive)
        if self.hold.graft_waits():
            self.on_graft_wait()

    def release_unused(self, table: LimitTable) -> None:
        live = self.live(table)
        limited = {key for key, _ in live} | self.fair(table, live).keys()
        letting_go: dict[RuleKey, int] = {}
        for key in self.slots.rules() - limited:
            slot = self.slots.slot_of(key)
            if slot is None:
                self.slots.release(key)
            elif not self.gating.holds_slot(slot):
                letting_go[key] = slot
        # a slot goes to another rule only once no socket carries it (passed on, or
        # not walked yet): DatapathPort.release_ready
        ready = self._datapath.release_ready(set(letting_go.values()))
        for key, slot in letting_go.items():
            if slot in ready:
                self.slots.release(key)

    def held_cleared(self, owner: int, table: LimitTable) -> set[RuleKey]:
        """owner's rules cleared whose slots are still held: a socket may
        carry them (in flight in a unix socket, passed on, waiting to be
        accepted, not walked yet: release_unused). They count against the
        user's bound on rules (ChangeBatch): slots are every user's, and one
        user's sockets kept in flight would otherwise hold slots without end."""
        return {key for key in self.slots.rules() if key[1] == owner and not table.is_stored(key)}

    def shrink_windows_first(self, planned: LimitTable) -> dict[int, ClampedWindows]:
        """Clamp now the windows of running downloads that the planned table
        holds tighter than they are held, for WALK_BUDGET_S at most (a user
        chooses how many descriptors their processes hold; those not reached
        are clamped by the walks after the change, and the rule's reach says
        so meanwhile); what was clamped, by pid (core.WINDOW_DRAIN_MIN_S)."""
        clamped: dict[int, ClampedWindows] = {}
        self._clamped_for = {}
        deadline = time.monotonic() + WALK_BUDGET_S
        for key, limits in planned.enforced():
            window_bps = download_window_bps(limits, self.downloads_queue())
            if not window_bps:
                continue
            slot = self.slots.slot_of(key)
            held_to = self.hold.window_held_to(slot)
            for pid in self.reached(planned, key):
                if slot and self.hold.slot_of_process(pid) == slot and 0 < held_to <= window_bps:
                    continue  # held to this limit or a lower one already: nothing to spend
                if time.monotonic() >= deadline:
                    return clamped  # the rest clamped by their walks after the change
                drain_s = self.hold.clamp_windows(pid, window_bps, _user_of(key), deadline)
                if (uid := _user_of(key)) is not None:
                    self._clamped_for[pid] = uid
                if drain_s is not None:
                    clamped[pid] = ClampedWindows(drain_s, window_bps, _user_of(key))
        return clamped

    def wholly_shaped(
        self, table: LimitTable, direction: Direction, by_slot: Mapping[int, int]
    ) -> dict[str, int]:
        """app id -> bytes its limit of direction let through, for applications
        whose every process is under that one rule (another user's unlimited
        processes of the same program never pass through it) and whose rule
        holds direction at a rate, its gate open. Under a link a rule has a class in each
        direction also for a priority alone or for the other direction's limit:
        that class passes none of the application's pure ACKs nor its traffic
        in other namespaces, and its count as the rate read a limited
        downloader's upload and a critical far end's at 0 while they sent.
        Nor does a rate's class beneath a closed gate (a block, a spent quota):
        the gate passes only bare ACKs, which bypass the class, so a blocked
        upload beside a TCP download read 0 from it (2026-12-06) while its
        counters held the ACKs the gate let through; its rate comes from them."""
        shaped: dict[str, int] = {}
        for key in self.slots.rules():
            slot, app = self.slots.slot_of(key), self._index.application(key[0])
            if key[1] == FAIR_OWNER or slot is None or slot not in by_slot or app is None:
                continue  # a fair share is no limit
            if table.outranked(key) or direction not in self.gating.rated(key, table.get(key)):
                continue
            if direction in self.gating.closed(key, table.get(key)):
                continue
            if set(self.reached(table, key)) == app.processes.keys():
                shaped[key[0]] = by_slot[slot]
        return shaped


def _user_of(key: RuleKey) -> int | None:
    """The uid of a user's rule; None for an administrator's and a fair share."""
    return key[1] if key[1] >= 0 else None
