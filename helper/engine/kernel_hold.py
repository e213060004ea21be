"""The apply step: what this engine has written to the kernel, and the writes
that bring it to a plan (plan.py).

One owner for what the kernel holds (which slot each process and app scope
is tagged with, the caps each slot's sockets are held to, the link capacity
each direction's shaper was given) so the engine can compare a plan with it,
write only the difference, and put back what a refused change clamped.
Not thread-safe by itself: the engine calls it under its lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.ports import DatapathPort, ShaperPort
from chadthrottle.helper.identity.processes import cgroup_id
from chadthrottle.helper.kernel.htb import Classes
from chadthrottle.helper.kernel.layout import NO_CAPS, SocketCaps
from chadthrottle.helper.kernel.priority_classes import LinkShaping

log = logging.getLogger("chadthrottle.engine")

# The first hook on an uplink adds a clsact, whose graft drops what the uplink
# sends for a moment (docs/backends.md, "Adding a clsact drops the uplink's
# packets for a moment"). A limited application's TCP then resent what it lost
# through its new limit, and its peer's reads came 1-5 s late. So after a
# reconcile whose clsact dropped packets (the uplink's tx_dropped rose), the
# newly tagged processes with TCP data sent and not yet acknowledged are held
# back (graft_waits) until it is acknowledged (what was lost resent at full
# speed: about two round trips), or for GRAFT_WAIT_RTTS of their sockets' largest
# smoothed round trip plus GRAFT_WAIT_SLACK_S, at most GRAFT_WAIT_MAX_S: then
# they are tagged all the same (fails open). The engine polls the sockets off its
# lock and its callers' thread (EngineCore._wait_out_grafts); until 2026-12-04
# the wait was at most 0.2 s, under the lock, on the thread that serves every
# D-Bus call, and it ended before the resends were acknowledged on paths of
# 100 ms or more. A graft can cost the sender a whole window: the reset frees what
# the uplink's qdisc held, TCP small queues wake the sender, and it sends what
# its window allows into the noop qdisc at once (205-224 segments in 4 of 155
# landings under load, 2026-12-06). TCP finds them a round trip later and
# resends them in rounds, at the pace of the acknowledgements that come back
# (proportional rate reduction). On a 150 ms path they were all acknowledged
# 0.76 s after the call, about five round trips; 3 round trips (at most 0.6 s)
# tagged such a sender with 133-159 segments still lost.
GRAFT_WAIT_RTTS, GRAFT_WAIT_SLACK_S, GRAFT_WAIT_MAX_S = 6, 0.02, 1.0
GRAFT_POLL_S = 0.005


def graft_wait_s(rtt_us: int) -> float:
    """How long a process waits for a graft's losses to be resent, from its
    sockets' largest smoothed round trip (us; 0: none read)."""
    return min(GRAFT_WAIT_MAX_S, GRAFT_WAIT_RTTS * rtt_us / 1e6 + GRAFT_WAIT_SLACK_S)


@dataclass(frozen=True)
class GraftWait:
    """A process held back from its tag: the slot it waits for, its sockets'
    marks (socket_tagging.sends_unacked) and when it is tagged regardless."""

    slot: int
    marks: dict[int, int]
    until: float


class KernelHold:
    def __init__(
        self,
        datapath: DatapathPort,
        shaper: ShaperPort,
        clock: Callable[[], float] = time.monotonic,
        start_of: Callable[[int], int | None] = lambda pid: None,
    ) -> None:
        """start_of: the start of the process identified under a pid (the
        index's, as of the last tick; None: not known), the one a tag is for."""
        self._datapath = datapath
        self._shaper = shaper
        self._clock = clock
        self._start_of = start_of
        self._grafted = False  # the last reconcile's clsact dropped packets (GRAFT_WAIT_MAX_S)
        self._graft_waits: dict[int, GraftWait] = {}  # tgid -> held back from its tag
        self._process_slots: dict[int, int] = {}  # tgid -> slot written to the datapath
        self._cgroup_slots: dict[int, int] = {}  # app scope cgroup id -> slot
        self._capped_slots: dict[int, SocketCaps] = {}  # slot -> socket caps written
        self._linked: dict[Direction, int] = {}  # the capacity each direction's shaper was given

    # --- what it holds ------------------------------------------------------------

    def linked(self) -> dict[Direction, int]:
        """The link capacity each direction's shaper was given (set_link)."""
        return dict(self._linked)

    def slot_of_process(self, pid: int) -> int | None:
        return self._process_slots.get(pid)

    def tagged_slots(self) -> set[int]:
        """The slots some process is tagged with."""
        return set(self._process_slots.values())

    def pids_tagged(self, slot: int) -> set[int]:
        return {pid for pid, tagged in self._process_slots.items() if tagged == slot}

    def pids_by_slot(self) -> dict[int, set[int]]:
        """slot -> the processes tagged with it (pids_tagged of every slot, in one pass)."""
        by_slot: dict[int, set[int]] = {}
        for pid, slot in self._process_slots.items():
            by_slot.setdefault(slot, set()).add(pid)
        return by_slot

    def window_held_to(self, slot: int | None) -> int:
        """The wire rate a slot's receive windows are clamped for now (0: none)."""
        return self._capped_slots.get(slot, NO_CAPS).window_bps if slot else 0

    # --- writes -------------------------------------------------------------------

    def link(self, wanted: dict[Direction, int]) -> None:
        """Give each direction's shaper the capacity in force (applied at its next reconcile)."""
        for direction in Direction:
            if wanted.get(direction) != self._linked.get(direction):
                capacity = wanted.get(direction)
                self._shaper.set_link(direction, LinkShaping(capacity) if capacity else None)
                if capacity:
                    self._linked[direction] = capacity
                else:
                    self._linked.pop(direction, None)

    def classes(self, wanted: dict[Direction, Classes], limited: Mapping[int, int],
                restat: bool = True) -> None:  # fmt: skip
        """The shaper's classes; tc shapes in each network namespace of the
        limited processes (pid -> slot), and divides a limit between them
        (restat: every process's namespace read again, else only new ones')."""
        self._shaper.shape_namespaces_of(limited, restat)
        try:
            self._shaper.reconcile(wanted)
        finally:
            self._grafted = self._shaper.lossy_grafts() > 0

    def caps(self, wanted: dict[int, SocketCaps]) -> None:
        """Each slot's socket caps as wanted; a slot no longer wanted is uncapped."""
        for slot in set(self._capped_slots) - set(wanted):
            self._datapath.set_slot_caps(slot, NO_CAPS, later=True)
            del self._capped_slots[slot]
        for slot, caps in wanted.items():
            if self._capped_slots.get(slot) != caps:
                self._datapath.set_slot_caps(slot, caps, later=True)  # walked by tags()
                self._capped_slots[slot] = caps

    def tags(
        self, wanted_pids: dict[int, int], wanted_scopes: dict[str, int], alive: set[int]
    ) -> None:
        """Processes and app scopes tagged as wanted; a process no longer
        wanted is untagged if alive, else forgotten by the datapath."""
        wanted_cgroups: dict[int, int] = {}
        for scope, slot in wanted_scopes.items():
            scope_id = cgroup_id(self._datapath.cgroup_root, scope)
            if scope_id is not None:
                wanted_cgroups[scope_id] = slot
        for pid in list(self._process_slots):
            if pid not in wanted_pids:
                if pid in alive:  # its open sockets untagged by walk_pending (its slot drains)
                    self._datapath.set_process_slot(pid, 0, later=True)
                else:
                    self._datapath.forget_process(pid)
                del self._process_slots[pid]
        now = self._clock()
        for pid, wait in list(self._graft_waits.items()):
            if wanted_pids.get(pid) != wait.slot or now >= wait.until:
                del self._graft_waits[pid]  # wanted otherwise now, or waited long enough: fail open
        newly = [pid for pid, slot in wanted_pids.items()
                 if self._process_slots.get(pid) != slot and pid not in self._graft_waits]  # fmt: skip
        if self._grafted and newly:
            self._hold_back(newly, wanted_pids, now)
        self._grafted = False
        for pid, slot in wanted_pids.items():
            if self._process_slots.get(pid) != slot and pid not in self._graft_waits:
                tagged = self._datapath.set_process_slot(
                    pid, slot, self._start_of(pid) or 0, later=True
                )
                log.debug("pid %d -> slot %d (%d open sockets)", pid, slot, tagged)
                self._process_slots[pid] = slot
        self._datapath.walk_pending()  # (un)tags' and caps' open sockets, for a bounded time
        self._datapath.tag_accepted()  # what waited in an accept queue at a walk, once accepted
        for scope_id in set(self._cgroup_slots) - set(wanted_cgroups):
            self._datapath.set_cgroup_slot(scope_id, 0)
            del self._cgroup_slots[scope_id]
        for scope_id, slot in wanted_cgroups.items():
            if self._cgroup_slots.get(scope_id) != slot:
                self._datapath.set_cgroup_slot(scope_id, slot)
                self._cgroup_slots[scope_id] = slot

    def _hold_back(self, pids: Collection[int], wanted: Mapping[int, int], now: float) -> None:
        """Hold back from their tags the processes whose TCP sockets have data
        sent and not yet acknowledged (see GRAFT_WAIT_RTTS)."""
        for pid in pids:
            marks = self._datapath.sends_unacked(pid)
            if marks:
                wait_s = graft_wait_s(self._datapath.sends_rtt_us(pid, marks))
                self._graft_waits[pid] = GraftWait(wanted[pid], marks, now + wait_s)
                log.debug("a clsact's graft dropped packets: pid %d tagged once its %d sockets' sent data is acknowledged (at most %.0f ms)",
                          pid, len(marks), wait_s * 1000)  # fmt: skip

    def graft_waits(self) -> dict[int, GraftWait]:
        """The processes held back from their tags now (a copy: read off the lock)."""
        return dict(self._graft_waits)

    def graft_wait_left_s(self) -> float:
        """Until the first held-back process is tagged regardless (0: due now)."""
        return max(0.0, min(w.until for w in self._graft_waits.values()) - self._clock())

    def graft_done(self, pids: Collection[int]) -> None:
        """These processes' sent data was acknowledged (or their wait ran out):
        the next tags() tags them."""
        for pid in pids:
            self._graft_waits.pop(pid, None)

    def process_replaced(self, pid: int) -> None:
        """Another process runs under pid now (the old one exited): the
        datapath gives the old one's slot to no new socket of it
        (struct owned_slot's start), so the pid is untagged here and tagged
        afresh (tags(), tag_process) if the new process is wanted too."""
        if self._process_slots.pop(pid, None) is not None:
            self._datapath.forget_process(pid)

    def reserve_process(self, pid: int, slot: int) -> None:
        """Count a new process as tagged before its classes exist (its rule is
        then live); tag_process writes the tag once they do."""
        self._process_slots[pid] = slot

    def unreserve_process(self, pid: int) -> None:
        """Its classes could not be made: it stays untagged (fail open)."""
        del self._process_slots[pid]

    def tag_process(self, pid: int, slot: int, start: int = 0) -> None:
        """start: the process's, as its first socket announced it (0: not known)."""
        self._datapath.set_process_slot(pid, slot, start, later=True)
        self._datapath.walk_pending()

    def clamp_windows(self, pid: int, wire_bps: int, made_by: int | None = None,
                      deadline: float | None = None) -> float | None:  # fmt: skip
        """Clamp a process's receive windows now (made_by: of the sockets
        that uid made; deadline: monotonic, the walk stops there); how long
        its old ones may still take (None: nothing to wait for)."""
        return self._datapath.clamp_windows(pid, wire_bps, made_by, deadline)

    def old_windows_left(
        self, pid: int, wire_bps: int, idle_ms: int, made_by: int | None = None,
        deadline: float | None = None,
    ) -> bool | None:  # fmt: skip
        """Whether a sender of pid's clamped downloads (made_by: of the
        sockets that uid made, those clamped) may still send its old window
        (None: the kernel does not say). Reads only the sockets: the engine
        calls it without its lock, while it waits."""
        return self._datapath.old_windows_left(pid, wire_bps, idle_ms, made_by, deadline)

    def unclamp(self, pids: Collection[int], made_by: Mapping[int, int] | None = None) -> None:
        """Put the windows of processes clamped ahead of a refused change back
        to what their slot holds them to (made_by: pid -> the uid whose
        sockets were clamped), by walk_pending, bounded per call (a user
        chooses how many descriptors their processes hold)."""
        for pid in pids:
            self._datapath.unclamp_windows(pid, self.window_held_to(self._process_slots.get(pid)),
                                           (made_by or {}).get(pid))  # fmt: skip
        self._datapath.walk_pending()
