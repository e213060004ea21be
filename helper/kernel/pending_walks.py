"""The descriptor walks of newly tagged processes, bounded per call.

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

First tags wait, and so do caps changes (a new rate's pacing, a download
limit's window clamp: a user may change their own rule's rate as often as they
like, and each change capped every process's sockets again, in the call). A
retag or an untag still walks at once (a slot must not be given to another
rule while sockets still carry it).
"""

from __future__ import annotations

import os
from array import array
from dataclasses import dataclass, field
from itertools import chain, zip_longest

from chadthrottle.helper.kernel.accept_queue import WalkSeen
from chadthrottle.helper.kernel.layout import NO_CAPS, SocketCaps

# Walking per call (a tick, a change, a new socket owner): about 12,000
# non-socket descriptors here (rights28: 150 ms for 19,000).
WALK_BUDGET_S = 0.1


@dataclass
class PendingWalk:
    """A process whose open sockets wait to be tagged with slot (capped_only:
    tagged already, held to the slot's caps anew): the one that started at
    start (another under its pid is not walked), from next_fd up; was: the
    caps its sockets may hold (lifted if the slot's now are none); seen
    gathers its listeners' queues over a tag walk's parts."""

    tgid: int
    start: int
    slot: int
    uid: int  # whose turn it takes (the process's owner)
    next_fd: int = 0
    listed: array[int] | None = None  # its table as its first part listed it (WalkCursor)
    was: SocketCaps = NO_CAPS
    capped_only: bool = False
    seen: WalkSeen = field(default_factory=WalkSeen)


class PendingWalks:
    def __init__(self) -> None:
        self._walks: dict[int, PendingWalk] = {}  # tgid -> its walk, in the order added
        self._last_first = -1  # the uid served first in the last round

    def add(self, tgid: int, start: int, slot: int, uid: int | None = None) -> None:
        """A walk of tgid's descriptors, after any already waiting of its user's;
        uid: the process's owner (None: read from /proc; gone: root's turn)."""
        self._walks.pop(tgid, None)
        if uid is None:
            try:
                uid = os.stat(f"/proc/{tgid}").st_uid
            except OSError:
                uid = 0
        self._walks[tgid] = PendingWalk(tgid, start, slot, uid)

    def recap(self, tgid: int, start: int, slot: int, was: SocketCaps, uid: int | None) -> None:
        """The slot's caps changed from was: tgid's sockets are capped anew,
        from its first descriptor (a tag walk waiting goes on as one, from
        there, so the part it did is capped too)."""
        walk = self._walks.get(tgid)
        if walk is None:
            self.add(tgid, start, slot, uid)
            walk = self._walks[tgid]
            walk.capped_only = True
        walk.next_fd, walk.listed = 0, None  # listed again: a whole pass anew
        walk.was = SocketCaps(max(walk.was.pacing_bps, was.pacing_bps),
                              max(walk.was.window_bps, was.window_bps))  # fmt: skip

    def drop(self, tgid: int) -> PendingWalk | None:
        return self._walks.pop(tgid, None)

    def slots(self) -> dict[int, int]:
        """tgid -> the slot its open sockets wait for."""
        return {tgid: walk.slot for tgid, walk in self._walks.items()}

    def __len__(self) -> int:
        return len(self._walks)

    def in_turn(self) -> list[PendingWalk]:
        """Every waiting walk, users in turn: one of each user's (oldest
        first), then the next of each, and so on; the user who went first
        last time goes after the others this time (so a walk cut at the
        budget is not always the first)."""
        by_uid: dict[int, list[PendingWalk]] = {}
        for walk in self._walks.values():
            by_uid.setdefault(walk.uid, []).append(walk)
        uids = sorted(by_uid)
        after = [uid for uid in uids if uid > self._last_first]
        order = after + [uid for uid in uids if uid <= self._last_first]
        if order:
            self._last_first = order[0]
        rounds = zip_longest(*(by_uid[uid] for uid in order))
        return [walk for walk in chain.from_iterable(rounds) if walk is not None]
