"""The descriptor walks the engine sets off, bounded per call.

A process a rule (or a fair share) reaches from now on gets its slot for new
sockets at once (one map write: slot_by_tgid), but its open sockets only when
its descriptor table is walked (socket_tagging.tag_open_sockets), and the
engine walks under its lock. A user chooses how many descriptors a process
holds (up to their RLIMIT_NOFILE, 524,288 by systemd's default) and how many
new processes there are: a limited program holding 19,000 descriptors and
forking a child every 50 ms held the lock 2.2 s a tick, and root's calls
waited that long (rights28). So these walks wait here, and each call walks
for at most WALK_BUDGET_S, users in turn (one user's backlog does not hold
up another's), a cut walk going on from the descriptor where it stopped.
What waits is said in the rule's reach (Engine.list_applications).

Every walk the engine sets off waits so: a first tag, a retag (the rule's
slot changes) and an untag (a cleared rule), a caps change (a new rate's
pacing, a download limit's window clamp, a divided limit's shares: a user may
change their own rule as often as they like, and each change capped every
process's sockets again, in the call), a walk again for connections
accepted since a walk (accept_queue), the give-back of an administrator's
slot's sockets another made when a user's rule takes a process over, and
the windows put back after a refused change (Datapath.unclamp_windows). A retag's or an untag's sockets carry
the old slot until walked: that slot is draining (draining_slots) until the
walk ends, and the engine gives it to no other rule meanwhile
(apply.Apply.release_unused); a process gone before its walk ended may have
left a child holding them, so its user's processes are swept first (sweep).
A socket in no table a walk read (passed to another user's process over a
unix socket, inherited across a setuid exec, waiting in an accept queue)
may carry a slot its walks no longer drain: before the engine gives a slot
to another rule, every process is swept for it and the sockets' tags are
dumped (vet; Datapath.release_ready), the slot draining until a dump finds
it on none (rights31). A socket kept in flight (sent over a unix socket,
never received) is found by every dump, in no table: every process is swept
again for it only at a flight wait doubling to again_max_s, not at every
dump (dumped; rights31b), and a user's slots held so count against their
bound on rules (Apply.held_cleared). Sockets walked nowhere yet keep the
caps they had (was): a killed helper's successor lifts them (owed_text,
parse_owed: the record Datapath keeps in /run).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain, zip_longest
from pathlib import Path

from chadthrottle.helper.identity.processes import read_start
from chadthrottle.helper.kernel.accept_queue import WalkSeen
from chadthrottle.helper.kernel.kept_record import keep_text
from chadthrottle.helper.kernel.layout import NO_CAPS, SocketCaps
from chadthrottle.helper.kernel.ownership import RUN_DIR

log = logging.getLogger("chadthrottle.kernel.pending_walks")

# Walking per call (a tick, a change, a new socket owner): about 12,000
# non-socket descriptors here (rights28: 150 ms for 19,000).
WALK_BUDGET_S = 0.1
# A slot let go that a dump found still on a socket (waiting to be accepted,
# passed on after its sweep, in flight): dumped again this much later, the
# wait doubling while the dumps find only what they found before, up to
# VET_AGAIN_MAX_S; the tables swept again for a carrier found in a file
# (some table, or in flight) only when it is one not swept for yet, else
# once per flight wait (doubling to VET_AGAIN_MAX_S: a socket in flight
# received since is retagged that late), for every such slot at once.
VET_AGAIN_S = 1.0
VET_AGAIN_MAX_S = 64.0


@dataclass
class PendingWalk:
    """A process whose open sockets wait to be tagged with slot (capped_only:
    tagged already, held to the slot's caps anew): the one that started at
    start (another under its pid is not walked), from next_fd up; was: the
    caps its sockets may hold (lifted if the slot's now are none); seen
    gathers its listeners' queues over a tag walk's parts; draining: the
    other slots its open sockets may carry until it ends (a retag's, an
    untag's: 0 is the slot of none)."""

    tgid: int
    start: int
    slot: int
    turn_uid: int  # whose turn it takes (the rule's user, else the process's owner)
    made_by: int | None = None  # only the sockets a process of that uid made (socket_tagging)
    next_fd: int = 0
    was: SocketCaps = NO_CAPS
    capped_only: bool = False
    seen: WalkSeen = field(default_factory=WalkSeen)
    draining: frozenset[int] = frozenset()
    again: bool = False  # a walk again for accepted connections: notes no accept queues
    recap_done: bool = False  # the caps changed while it walked: the part it did, capped anew
    sweep: frozenset[int] = frozenset()  # only sockets carrying these: retagged with slot
    sweep_after: frozenset[int] = frozenset()  # a sweep of its whole table for these, after it
    vet: bool = False  # its sweeps look at every socket, whoever made it (vet)
    asked: float = field(default_factory=time.monotonic)  # when it was added (its wait, logged)


def record_of(instance: str) -> Path | None:
    """Where a helper keeps the caps its walks owe (None: a datapath of no helper)."""
    return RUN_DIR / f"walks-{instance}.owed" if instance else None


class PendingWalks:
    def __init__(self, record: Path | None = None) -> None:
        """record: where owed() is kept for a successor (record_of)."""
        self._walks: dict[int, PendingWalk] = {}  # tgid -> its walk, in the order added
        self._last_first = -1  # the uid served first in the last round
        self._record = record
        self._saved: str | None = None  # what the record holds (None: not known: written)
        # slot -> when (monotonic) a dump of the sockets' tags may next say
        # whether any still carries it (vet): draining until one says none
        self._vetting: dict[int, float] = {}
        self._clean: set[int] = set()  # vetted slots a dump found on no socket
        # slot -> the cookies of the sockets in a file carrying it a dump found,
        # every table swept for them since (found again: in flight, or passed on
        # behind a sweep: swept for again only at the flight wait)
        self._seen: dict[int, set[int]] = {}
        self._wait: dict[int, float] = {}  # slot -> its dumps' back-off
        self._in_flight: set[int] = set()  # slots only carriers already swept for carry
        self._flight_wait = 2 * VET_AGAIN_S
        self._flight_due = 0.0
        self.again_max_s = VET_AGAIN_MAX_S  # the longest wait between dumps, and sweeps

    def save(self) -> None:
        """Keep owed() in the record, if it changed: a helper killed mid-walk
        leaves its successor the caps to lift (resume). Not kept: logged,
        the walks go on (fail open)."""
        text = owed_text(self.owed())
        if self._record is None or text == self._saved:
            return
        try:
            keep_text(self._record, text)
            self._saved = text
        except OSError as error:
            log.warning("could not keep the walks' owed caps in %s: %s", self._record, error)

    def forget_owed(self) -> None:
        """Everything owed was lifted (a clean close): nothing kept."""
        self._walks.clear()
        self._vetting.clear()
        self._clean.clear()
        self._seen.clear()
        self._wait.clear()
        self._in_flight.clear()
        self.save()

    def resume(self) -> int:
        """The caps a killed predecessor's walks owed, on processes still
        running (the same start): walked here to lift them (slot 0: its tags
        went with its maps; a rule that still holds tags them anew, and its
        walk then takes these over). How many."""
        if self._record is None:
            return 0
        try:
            owed = parse_owed(self._record.read_text())
        except OSError:
            return 0
        resumed = 0
        for tgid, start, was, made_by in owed:
            if (read_start(tgid) or 0) == start and tgid not in self._walks:
                walk = self.add(tgid, start, 0, made_by, made_by=made_by)
                walk.was, walk.capped_only = was, True
                resumed += 1
        self.save()
        return resumed

    def add(self, tgid: int, start: int, slot: int, turn_uid: int | None = None, *,
            made_by: int | None = None, draining: Iterable[int] = (),
            again: bool = False) -> PendingWalk:  # fmt: skip
        """A walk of tgid's descriptors, after any already waiting of its turn's
        user; turn_uid: None, the process's owner (read from /proc; gone:
        root's turn). A walk waiting for tgid is replaced: its slot and
        draining ones drain on in the new one (its sockets may carry them),
        and the caps its sockets may hold are lifted by it."""
        waited = self._walks.pop(tgid, None)
        if turn_uid is None:
            try:
                turn_uid = os.stat(f"/proc/{tgid}").st_uid
            except OSError:
                turn_uid = 0
        carried = set(draining)
        was = NO_CAPS
        if waited is not None:
            carried |= waited.draining | {waited.slot}
            was = waited.was
        walk = PendingWalk(tgid, start, slot, turn_uid, made_by, was=was, again=again,
                           draining=frozenset(carried - {slot, 0}))  # fmt: skip
        self._walks[tgid] = walk
        return walk

    def recap(self, tgid: int, start: int, slot: int, was: SocketCaps, turn_uid: int | None,
              made_by: int | None = None, *, from_fd: int = 0) -> None:  # fmt: skip
        """The slot's caps changed from was: tgid's sockets are capped anew
        (from_fd: those from that descriptor up; a walk cut where the
        borrowed sockets' closer was full capped those below). A walk
        under way goes on from where it is (restarted, caps that change
        every tick would keep a large table's tag from ever ending) and then
        caps the part it did (ended)."""
        walk = self._walks.get(tgid)
        if walk is None:
            walk = self.add(tgid, start, slot, turn_uid, made_by=made_by)
            walk.capped_only, walk.next_fd = True, from_fd
        elif walk.next_fd or walk.sweep:  # a sweep sets no caps
            walk.recap_done = True
        walk.was = widest(walk.was, was)

    def sweep(self, gone: PendingWalk, processes: Iterable[tuple[int, int, int]]) -> None:
        """gone's process exited before its walk ended: a child may hold its
        sockets, carrying the slots it drained. Each process of its user
        (tgid, start, the slot it is tagged with) has those sockets, and
        only those, retagged (retag_carrying), the slots draining until
        then. A walk waiting for one of them drains them too and is not
        restarted (exits in a stream would keep it from ending): a tag walk
        retags what it has still to read (what it read carries its slot), a
        sweep sweeps the rest for them too, and a sweep of the whole table
        follows where it does not retag (sweep_after, ended)."""
        carried = gone.draining
        if not carried:
            return
        for tgid, start, slot in processes:
            walk = self._walks.get(tgid)
            if walk is None:
                walk = self.add(tgid, start, slot, gone.turn_uid, made_by=gone.made_by,
                                draining=carried)  # fmt: skip
                walk.sweep = carried
                continue
            walk.draining |= carried - {walk.slot, 0}
            if walk.sweep:
                walk.sweep |= carried
            if walk.sweep or walk.capped_only:
                walk.sweep_after |= carried

    def vet(self, slots: Iterable[int], processes: Iterable[tuple[int, int, int]]) -> None:
        """slots' walks ended and no process is tagged with them: a socket
        may still carry one in a table no walk read (passed to another
        user's process over a unix socket, or inherited across a setuid
        exec) or in an accept queue. Every process (tgid, start, its slot)
        is swept for them (any socket carrying one: retagged with the
        holder's slot where its rule may take that socket, else none), and
        they drain until a dump of the tags finds none (dump_due)."""
        carried = frozenset(slots) - {0}
        if not carried:
            return
        for slot in carried:
            self._vetting[slot] = 0.0
        for tgid, start, slot in processes:
            walk = self._walks.get(tgid)
            if walk is None:
                walk = self.add(tgid, start, slot, made_by=None, draining=carried)
                walk.sweep, walk.vet = carried, True
                continue
            walk.draining |= carried - {walk.slot, 0}
            walk.vet = True
            if walk.sweep:
                walk.sweep |= carried
            walk.sweep_after |= carried

    def dump_due(self, now: float) -> set[int]:
        """The vetted slots no walk drains now, if the dump of one is due, or
        the flight wait ended (its sweep follows the dump: dumped): each dump
        looks at all of them (one dump, whoever's slots they are)."""
        walked = self.walk_draining()
        waiting = {slot: due for slot, due in self._vetting.items() if slot not in walked}
        flight = bool(self._in_flight & set(waiting)) and now >= self._flight_due
        return set(waiting) if flight or any(due <= now for due in waiting.values()) else set()

    def vetted(self, slot: int, again_at: float | None = None) -> None:
        """A dump found no socket carrying slot (again_at None): it drains no
        more (clean); else its next dump is due at again_at."""
        if again_at is None:
            self._vetting.pop(slot, None)
            self._forget_found(slot)
            self._clean.add(slot)
        else:
            self._vetting[slot] = again_at

    def dumped(self, slots: Iterable[int], in_file: Mapping[int, set[int]], queued: set[int],
               failed: bool, now: float) -> set[int]:  # fmt: skip
        """A dump of slots' tags ended: in_file: slot -> the cookies of the
        sockets carrying it that have a file (in some table, or in flight:
        the dump cannot tell), queued: the slots a connection waiting in an
        accept queue carries (no file), failed: not every namespace read.
        A slot found on none is clean; else dumped again later (its wait
        doubling while nothing new is found). The slots whose tables are
        swept again now (vet): those carried by a socket in a file not swept
        for yet, and, once per flight wait, every slot only such sockets
        carry (one received since is in a table now: retagged)."""
        sweep: set[int] = set()
        for slot in slots:
            if slot not in self._vetting:
                continue  # given to a process or a scope meanwhile (forget_vet)
            found = in_file.get(slot, set())
            if not failed and not found and slot not in queued:
                self.vetted(slot)
                continue
            if not found:
                self._in_flight.discard(slot)
            seen = self._seen.setdefault(slot, set())
            if not failed:
                seen &= found  # gone ones: a cookie is never another socket's
            if found - seen:
                seen |= found
                self._in_flight.discard(slot)
                self._wait[slot] = VET_AGAIN_S
                sweep.add(slot)
            else:
                if found:
                    self._start_flight(slot, now)
                if self._vetting[slot] > now:
                    continue  # dumped early, with a slot that was due: its wait stands
                wait = self._wait.get(slot)
                self._wait[slot] = VET_AGAIN_S if wait is None or failed else min(
                    2 * wait, self.again_max_s)  # fmt: skip
            self._vetting[slot] = now + self._wait[slot]
        if self._in_flight and now >= self._flight_due:
            sweep |= self._in_flight
            self._flight_wait = min(2 * self._flight_wait, self.again_max_s)
            self._flight_due = now + self._flight_wait
        return sweep

    def _start_flight(self, slot: int, now: float) -> None:
        if not self._in_flight:  # the first: its sweep after a flight wait
            self._flight_wait = 2 * VET_AGAIN_S
            self._flight_due = now + self._flight_wait
        self._in_flight.add(slot)

    def in_flight(self) -> set[int]:
        """The vetted slots only sockets every table was swept for carry."""
        return set(self._in_flight)

    def _forget_found(self, slot: int) -> None:
        self._seen.pop(slot, None)
        self._wait.pop(slot, None)
        self._in_flight.discard(slot)

    def vetting(self) -> set[int]:
        return set(self._vetting)

    def forget_vet(self, slot: int) -> None:
        """slot is given to a process or a scope again: a dump's word on it
        is void (let go later, it is vetted anew), and the sweeps for it
        are not owed (a rule cleared and set again in turn would otherwise
        sweep every table once per clear)."""
        self._forget_found(slot)
        if self._vetting.pop(slot, None) is None:
            self._clean.discard(slot)
            return
        self._clean.discard(slot)
        for walk in [walk for walk in self._walks.values() if walk.vet]:
            swept = bool(walk.sweep)
            walk.sweep, walk.sweep_after = walk.sweep - {slot}, walk.sweep_after - {slot}
            walk.draining -= {slot}
            if swept and not walk.sweep and not walk.sweep_after:
                self.drop(walk.tgid)  # a sweep for it alone

    def clean(self, slot: int) -> bool:
        """Whether a dump found slot on no socket since it was vetted (once:
        a slot given out again is vetted anew when it is let go)."""
        if slot in self._clean:
            self._clean.discard(slot)
            return True
        return False

    def ended(self, walk: PendingWalk) -> bool:
        """Its walk read its whole table: dropped, or, if the caps changed
        meanwhile, on as a caps pass from its first descriptor (its tags are
        done: it drains no slot now). Whether it is done."""
        if walk.sweep_after:  # then a sweep of its table (sweep), still draining
            walk.sweep, walk.sweep_after, walk.capped_only = walk.sweep_after, frozenset(), False
        elif walk.recap_done:
            walk.recap_done, walk.capped_only = False, True
            walk.sweep, walk.draining = frozenset(), frozenset()
        else:
            self.drop(walk.tgid)
            return True
        walk.next_fd = 0
        return False

    def drop(self, tgid: int) -> PendingWalk | None:
        return self._walks.pop(tgid, None)

    def get(self, tgid: int) -> PendingWalk | None:
        return self._walks.get(tgid)

    def walk_draining(self) -> set[int]:
        """The slots some walk's open sockets may still carry, besides the
        slot it tags them with."""
        return {slot for walk in self._walks.values() for slot in walk.draining}

    def draining_slots(self) -> set[int]:
        """The slots some socket may still carry (walk_draining, vet): none
        may go to another rule until then."""
        return self.walk_draining() | set(self._vetting)

    def owed(self) -> list[tuple[int, int, SocketCaps, int | None]]:
        """(tgid, start, caps its unwalked sockets may hold, made_by) of the
        walks that may have caps to lift: what a successor must redo."""
        return [(w.tgid, w.start, w.was, w.made_by) for w in self._walks.values()
                if w.was != NO_CAPS]  # fmt: skip

    def slots(self) -> dict[int, int]:
        """tgid -> the slot its open sockets wait for."""
        return {tgid: walk.slot for tgid, walk in self._walks.items()}

    def __len__(self) -> int:
        return len(self._walks)

    def in_turn(self) -> list[PendingWalk]:
        """Every waiting walk, users in turn: one of each user's, then the
        next of each, and so on; the user who went first last time goes
        after the others this time (so a walk cut at the budget is not
        always the first). A user's walks go oldest first, its sweeps (sweep,
        vet: they only drain old slots) in turn with the rest (a tag makes a
        limit hold): a gone process's sweep of all root's processes held a
        root rule's new tag seconds behind it (walk34), and a user forking
        new tags cannot hold its sweeps back for ever either."""
        walks: dict[int, list[PendingWalk]] = {}
        sweeps: dict[int, list[PendingWalk]] = {}
        for walk in self._walks.values():
            (sweeps if walk.sweep else walks).setdefault(walk.turn_uid, []).append(walk)
        by_uid = {uid: [walk for pair in zip_longest(walks.get(uid, []), sweeps.get(uid, []))
                        for walk in pair if walk is not None]
                  for uid in set(walks) | set(sweeps)}  # fmt: skip
        uids = sorted(by_uid)
        after = [uid for uid in uids if uid > self._last_first]
        order = after + [uid for uid in uids if uid <= self._last_first]
        if order:
            self._last_first = order[0]
        rounds = zip_longest(*(by_uid[uid] for uid in order))
        return [walk for walk in chain.from_iterable(rounds) if walk is not None]


def widest(a: SocketCaps, b: SocketCaps) -> SocketCaps:
    """Each cap either may hold (both lifted where the new ones have none)."""
    return SocketCaps(max(a.pacing_bps, b.pacing_bps), max(a.window_bps, b.window_bps))


def owed_text(owed: Iterable[tuple[int, int, SocketCaps, int | None]]) -> str:
    """PendingWalks.owed as lines of "tgid start pacing_bps window_bps made_by" (-1: None)."""
    return "".join(f"{tgid} {start} {caps.pacing_bps} {caps.window_bps} "
                   f"{-1 if made_by is None else made_by}\n"
                   for tgid, start, caps, made_by in owed)  # fmt: skip


def parse_owed(text: str) -> list[tuple[int, int, SocketCaps, int | None]]:
    """owed_text's lines back; a line that is not five integers is skipped
    (a record cut by a crash loses only its last line)."""
    owed = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 5 or not all(f.lstrip("-").isdigit() for f in fields):
            continue
        tgid, start, pacing, window, made_by = (int(f) for f in fields)
        if tgid > 0 and start >= 0 and pacing >= 0 and window >= 0 and made_by >= -1:
            owed.append((tgid, start, SocketCaps(pacing, window), None if made_by < 0 else made_by))
    return owed
