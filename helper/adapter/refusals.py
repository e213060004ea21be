"""What a caller's failed and refused calls cost the helper: little.

A local user may call the helper as often as the bus lets it, over as many
connections as it lets it (256 a user on the system bus); every call is still
authorized, but a caller whose calls keep failing must neither take the
helper's time from other callers nor fill its memory or its log. A caller is
a uid, not a connection: what is counted and held is counted and held per
user (CallerUids says whose each connection is). Parts:

- FailureBudget counts each user's failed calls over the last second; the
  service paces a user that spent it (its calls start one per
  FAILURE_DELAY_S, before any work, instead of each doing its work and waiting
  after). The answers are the same, only later; a user that stops failing
  is served at once again a second later.
- WaitingCalls holds a paced user's calls until they start (or a
  connection's until the bus said whose it is), bounded in number and in
  bytes (a call may carry 32 MiB on the system bus), and with every other
  queue of its kind in a WaitingTotal, which holds the bounds of that kind
  (WaitingBounds): one admission for both kinds (WaitingCalls.keep).
- RefusalLog writes the first refusal of a sender at once and counts the rest:
  one line per sender per INTERVAL_S with how many of which were refused. One
  INFO line per refused call took 3.6% of the helper's samples under a flood
  of 500 refused calls a second (py-spy), and filled the journal. A sender is
  a connection, and a user may open 256 (each with its own unique name): past
  FIRSTS_PER_INTERVAL senders written at once within INTERVAL_S, the new
  ones' refusals are counted together, one line when that interval ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from dbus_fast import Message, Variant

MAX_SENDERS = 4096  # users (FailureBudget) or senders (RefusalLog) at once at the most
# Connections whose uid is remembered: a user's past this many forget their
# oldest (the bus allows 256 a user), and all users' past MAX_CONNECTIONS.
MAX_CONNECTIONS_PER_UID, MAX_CONNECTIONS = 512, 16384


class CallerUids:
    """Whose each connection (unique bus name) is, as the bus said; bounded
    per uid, so that one user's connections never push out another's. A
    forgotten connection is only asked about again."""

    def __init__(self) -> None:
        self._uids: dict[str, int] = {}
        self._senders: dict[int, dict[str, None]] = {}  # uid -> its connections, oldest first

    def __len__(self) -> int:
        return len(self._uids)

    def get(self, sender: str) -> int | None:
        return self._uids.get(sender)

    def remember(self, sender: str, uid: int) -> None:
        if sender in self._uids:
            return
        senders = self._senders.setdefault(uid, {})
        if len(senders) >= MAX_CONNECTIONS_PER_UID:
            self.forget(next(iter(senders)))
        if len(self._uids) >= MAX_CONNECTIONS:
            self.forget(next(iter(self._uids)))
        self._uids[sender] = uid
        self._senders.setdefault(uid, {})[sender] = None

    def forget(self, sender: str) -> None:
        uid = self._uids.pop(sender, None)
        if uid is None:
            return
        senders = self._senders[uid]
        del senders[sender]
        if not senders:
            del self._senders[uid]


class FailureBudget:
    """Failed calls per user (uid) within the last second."""

    def __init__(self, per_s: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_s = per_s
        self._clock = clock
        self._failed: dict[int, list[float]] = {}  # uid -> its last per_s failures

    def failed(self, uid: int) -> bool:
        """Count one more failed call of uid; whether it failed more than
        per_s times within the last second (with this one)."""
        now = self._clock()
        if len(self._failed) >= MAX_SENDERS and uid not in self._failed:
            self._failed = {u: at for u, at in self._failed.items() if at[-1] > now - 1.0}
            if len(self._failed) >= MAX_SENDERS:  # only users the bus lets exist: the oldest goes
                del self._failed[min(self._failed, key=lambda u: self._failed[u][-1])]
        recent = [at for at in self._failed.get(uid, ()) if at > now - 1.0] + [now]
        self._failed[uid] = recent[-self._per_s :]
        return len(recent) > self._per_s

    def spent(self, uid: int) -> bool:
        """Whether uid failed per_s times within the last second."""
        recent = self._failed.get(uid)
        if not recent:
            return False
        if recent[-1] <= self._clock() - 1.0:
            del self._failed[uid]
            return False
        return len(recent) >= self._per_s and recent[0] > self._clock() - 1.0


def arguments_size(value: object) -> int:
    """About how many bytes a call's arguments hold: text and byte strings by
    their length, anything else 8 a value. A paced call waits whole, and the
    system bus lets one carry 32 MiB (max_message_size)."""
    if isinstance(value, (str, bytes, bytearray)):
        return len(value)
    if isinstance(value, (list, tuple)):
        return 8 + sum(arguments_size(item) for item in value)
    if isinstance(value, dict):
        return 8 + sum(arguments_size(k) + arguments_size(v) for k, v in value.items())
    if isinstance(value, Variant):
        return 8 + arguments_size(value.value)
    return 8


@dataclass(frozen=True)
class Refusal:
    """How a call past a bound of what waits is answered, unread: its D-Bus
    error and text, and whose waiting calls it was over (for the log)."""

    whose: str
    error: str
    text: str


@dataclass(frozen=True)
class WaitingBounds:
    """What the waiting calls of one kind may hold: each queue (a user's, a
    connection's) and all of them together, in calls and in bytes
    (arguments_size); and how a call past either is refused."""

    calls: int
    bytes: int
    total_calls: int
    total_bytes: int
    over_one: Refusal
    over_all: Refusal


class WaitingTotal:
    """How many calls, and how many bytes of them, wait in all queues of one
    kind (every user's, or every connection's), and the bounds they are held to."""

    def __init__(self, bounds: WaitingBounds) -> None:
        self.bounds = bounds
        self.calls = self.bytes = 0

    def queue(self) -> WaitingCalls:
        """An empty queue of this kind, within its bounds and counted here."""
        return WaitingCalls(self.bounds.calls, self.bounds.bytes, self)


class WaitingCalls:
    """One user's calls not started yet (or one connection's, until the bus
    said whose it is), in order, bounded by how many and by how much they
    hold (arguments_size); counted in total too."""

    def __init__(self, max_calls: int, max_bytes: int, total: WaitingTotal) -> None:
        self._calls: deque[tuple[Message, int]] = deque()
        self.max_calls, self.max_bytes = max_calls, max_bytes
        self._total = total
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._calls)

    def fits(self, size: int) -> bool:
        """Whether a call of size bytes fits within this queue's own bounds."""
        return len(self._calls) < self.max_calls and self.bytes + size <= self.max_bytes

    def keep(self, message: Message) -> Refusal | None:
        """Keep message to start later, if it fits within this queue's bounds
        and within what all queues of its kind may hold; else how it is
        refused (it is not kept)."""
        size, total = arguments_size(message.body), self._total
        if not self.fits(size):
            return total.bounds.over_one
        if total.calls >= total.bounds.total_calls or total.bytes + size > total.bounds.total_bytes:
            return total.bounds.over_all
        self.add(message, size)
        return None

    def add(self, message: Message, size: int) -> None:
        """Keep message to start later (keep(): the bounds checked)."""
        self._calls.append((message, size))
        self._count(1, size)

    def pop(self) -> Message:
        message, size = self._calls.popleft()
        self._count(-1, -size)
        return message

    def clear(self) -> list[Message]:
        """Forget every call waiting; returns them."""
        self._count(-len(self._calls), -self.bytes)
        calls, self._calls = [m for m, _ in self._calls], deque()
        return calls

    def drop(self, sender: str) -> None:
        """Forget the calls of one connection (it left the bus: no answer can reach it)."""
        kept = deque(call for call in self._calls if call[0].sender != sender)
        self._count(len(kept) - len(self._calls), sum(size for _, size in kept) - self.bytes)
        self._calls = kept

    def _count(self, calls: int, size: int) -> None:
        self.bytes += size
        self._total.calls += calls
        self._total.bytes += size


@dataclass
class _Window:
    counts: Counter[str] = field(default_factory=Counter)
    timer: asyncio.TimerHandle | None = None


class RefusalLog:
    """Refused calls in the log, one line per sender per INTERVAL_S: the first
    at once (who, what), the rest as a count per kind when the interval ends.
    At most FIRSTS_PER_INTERVAL senders within INTERVAL_S are written at once:
    the refusals of senders new past them are counted together (how many
    calls of which, of how many senders, of which users), one line when the
    interval of the first of them ends: one user's flood of connections cannot
    hide whose the others' refusals were. Every refusal is in the log, as a
    line or in a count."""

    INTERVAL_S = 10.0
    # a flood of new connections, one refused call each, wrote a line each
    FIRSTS_PER_INTERVAL = 10

    def __init__(self, log: logging.Logger, whose: Callable[[str], int | None]) -> None:
        """whose: the uid of a sender, if known (CallerUids.get)."""
        self._log, self._whose = log, whose
        self._windows: dict[str, _Window] = {}
        self._firsts: deque[float] = deque()  # when the latest senders were written at once
        self._folded = _Window()  # the refusals of senders past those, counted together
        self._folded_senders: set[str] = set()
        self._folded_uids: Counter[str] = Counter()  # the folded calls by user

    def refused(self, sender: str, what: str) -> None:
        """One refused call of sender; what says which (method and action)."""
        window = self._windows.get(sender)
        if window is not None:
            window.counts[what] += 1
            return
        loop = asyncio.get_running_loop()
        if sender in self._folded_senders or not self._may_write_first(loop.time()):
            self._fold(sender, what, loop)
            return
        if len(self._windows) >= MAX_SENDERS:
            self.flush()
        self._firsts.append(loop.time())
        self._log.info("denied %s to %s", what, sender)
        window = self._windows[sender] = _Window()
        window.timer = loop.call_later(
            self.INTERVAL_S, self._end, sender, f"in the last {self.INTERVAL_S:g} s"
        )

    def _may_write_first(self, now: float) -> bool:
        """Whether fewer than FIRSTS_PER_INTERVAL senders were written at once within INTERVAL_S."""
        while self._firsts and self._firsts[0] <= now - self.INTERVAL_S:
            self._firsts.popleft()
        return len(self._firsts) < self.FIRSTS_PER_INTERVAL

    def _fold(self, sender: str, what: str, loop: asyncio.AbstractEventLoop) -> None:
        """Count a refusal of a sender past FIRSTS_PER_INTERVAL with the others'."""
        if sender not in self._folded_senders and len(self._folded_senders) >= MAX_SENDERS:
            self._end_folded("so far")
        self._folded_senders.add(sender)
        self._folded.counts[what] += 1
        uid = self._whose(sender)
        self._folded_uids["not identified" if uid is None else f"uid {uid}"] += 1
        if self._folded.timer is None:
            self._folded.timer = loop.call_later(
                self.INTERVAL_S, self._end_folded, f"in the last {self.INTERVAL_S:g} s"
            )

    def _end_folded(self, within: str) -> None:
        folded, senders, uids = self._folded, len(self._folded_senders), self._folded_uids
        self._folded, self._folded_senders, self._folded_uids = _Window(), set(), Counter()
        if folded.timer is not None:
            folded.timer.cancel()
        if folded.counts:
            kinds = ", ".join(f"{what} x{count}" for what, count in folded.counts.most_common())
            users = ", ".join(f"{whose} x{count}" for whose, count in uids.most_common())
            self._log.info("denied %d more calls to %d more senders %s (past %d senders a %g s"
                           " written one by one): %s; calls of %s", folded.counts.total(), senders,
                           within, self.FIRSTS_PER_INTERVAL, self.INTERVAL_S, kinds,
                           users)  # fmt: skip

    def ended(self, sender: str) -> None:
        """sender left the bus: write its count now."""
        self._end(sender, "before it left the bus")

    def flush(self) -> None:
        """Write every count now (the helper stops, or too many senders)."""
        for sender in list(self._windows):
            self._end(sender, "so far")
        self._end_folded("so far")

    def _end(self, sender: str, within: str) -> None:
        window = self._windows.pop(sender, None)
        if window is None:
            return
        if window.timer is not None:
            window.timer.cancel()
        if window.counts:
            kinds = ", ".join(f"{what} x{count}" for what, count in window.counts.most_common())
            self._log.info("denied %d more calls to %s %s: %s", window.counts.total(), sender,
                           within, kinds)  # fmt: skip
