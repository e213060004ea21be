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
# reconcile whose clsact dropped packets (the uplink's tx_dropped rose), tags
# wait until every byte the newly tagged processes' TCP sockets had sent is
# acknowledged (what was lost resent at full speed: about two round trips),
# polled every GRAFT_POLL_S for at most GRAFT_WAIT_MAX_S, under the engine's
# lock: the limit still lands within its 0.5 s.
GRAFT_WAIT_MAX_S, GRAFT_POLL_S = 0.2, 0.005


class KernelHold:
    def __init__(
        self,
        datapath: DatapathPort,
        shaper: ShaperPort,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._datapath = datapath
        self._shaper = shaper
        self._clock, self._sleep = clock, sleep
        self._grafted = False  # the last reconcile's clsact dropped packets (GRAFT_WAIT_MAX_S)
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

    def classes(self, wanted: dict[Direction, Classes], limited: Mapping[int, int]) -> None:
        """The shaper's classes; tc shapes in each network namespace of the
        limited processes (pid -> slot), and divides a limit between them."""
        self._shaper.shape_namespaces_of(limited)
        try:
            self._shaper.reconcile(wanted)
        finally:
            self._grafted = self._shaper.lossy_grafts() > 0

    def caps(self, wanted: dict[int, SocketCaps]) -> None:
        """Each slot's socket caps as wanted; a slot no longer wanted is uncapped."""
        for slot in set(self._capped_slots) - set(wanted):
            self._datapath.set_slot_caps(slot, NO_CAPS)
            del self._capped_slots[slot]
        for slot, caps in wanted.items():
            if self._capped_slots.get(slot) != caps:
                self._datapath.set_slot_caps(slot, caps)
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
                if pid in alive:
                    self._datapath.set_process_slot(pid, 0)  # untag its open sockets
                else:
                    self._datapath.forget_process(pid)
                del self._process_slots[pid]
        newly = [pid for pid, slot in wanted_pids.items() if self._process_slots.get(pid) != slot]
        if self._grafted and newly:
            self._wait_for_graft_losses(newly)
        self._grafted = False
        for pid, slot in wanted_pids.items():
            if self._process_slots.get(pid) != slot:
                tagged = self._datapath.set_process_slot(pid, slot)
                log.debug("pid %d -> slot %d (%d open sockets)", pid, slot, tagged)
                self._process_slots[pid] = slot
        for scope_id in set(self._cgroup_slots) - set(wanted_cgroups):
            self._datapath.set_cgroup_slot(scope_id, 0)
            del self._cgroup_slots[scope_id]
        for scope_id, slot in wanted_cgroups.items():
            if self._cgroup_slots.get(scope_id) != slot:
                self._datapath.set_cgroup_slot(scope_id, slot)
                self._cgroup_slots[scope_id] = slot

    def _wait_for_graft_losses(self, pids: Collection[int]) -> None:
        """Until the data pids' TCP sockets have sent so far is acknowledged,
        for at most GRAFT_WAIT_MAX_S: what a graft dropped is then resent
        before the limit, at full speed (see GRAFT_WAIT_MAX_S)."""
        began = self._clock()
        marks = {pid: left for pid in pids if (left := self._datapath.sends_unacked(pid))}
        while marks and self._clock() - began < GRAFT_WAIT_MAX_S:
            self._sleep(GRAFT_POLL_S)
            marks = {pid: left for pid, sent in marks.items()
                     if (left := self._datapath.sends_unacked(pid, sent))}  # fmt: skip
        log.debug("a clsact's graft dropped packets: tags waited %.0f ms for sent data to be acknowledged (%d processes still not)",
                  (self._clock() - began) * 1000, len(marks))  # fmt: skip

    def reserve_process(self, pid: int, slot: int) -> None:
        """Count a new process as tagged before its classes exist (its rule is
        then live); tag_process writes the tag once they do."""
        self._process_slots[pid] = slot

    def unreserve_process(self, pid: int) -> None:
        """Its classes could not be made: it stays untagged (fail open)."""
        del self._process_slots[pid]

    def tag_process(self, pid: int, slot: int) -> None:
        self._datapath.set_process_slot(pid, slot)

    def clamp_windows(self, pid: int, wire_bps: int, made_by: int | None = None) -> float | None:
        """Clamp a process's receive windows now (made_by: of the sockets
        that uid made); how long its old ones may still take (None: nothing
        to wait for)."""
        return self._datapath.clamp_windows(pid, wire_bps, made_by)

    def old_windows_left(
        self, pid: int, wire_bps: int, idle_ms: int, made_by: int | None = None
    ) -> bool | None:
        """Whether a sender of pid's clamped downloads (made_by: of the
        sockets that uid made, those clamped) may still send its old window
        (None: the kernel does not say). Reads only the sockets: the engine
        calls it without its lock, while it waits."""
        return self._datapath.old_windows_left(pid, wire_bps, idle_ms, made_by)

    def unclamp(self, pids: Collection[int], made_by: Mapping[int, int] | None = None) -> None:
        """Put the windows of processes clamped ahead of a refused change back
        to what their slot holds them to (made_by: pid -> the uid whose
        sockets were clamped)."""
        for pid in pids:
            self._datapath.clamp_windows(pid, self.window_held_to(self._process_slots.get(pid)),
                                         (made_by or {}).get(pid))  # fmt: skip
