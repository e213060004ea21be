"""What a caller's failed and refused calls cost the helper: little.

A local user may call the helper as often as the bus lets it; every call is
still authorized, but a caller whose calls keep failing must neither take the
helper's time from other callers nor fill its log. Two parts:

- FailureBudget counts each sender's failed calls over the last second; the
  service paces a sender that spent it (its calls start one per
  FAILURE_DELAY_S, before any work, instead of each doing its work and waiting
  after). The answers are the same, only later; a sender that stops failing
  is served at once again a second later.
- WaitingCalls holds a paced sender's calls until they start, bounded in
  number and in bytes (a call may carry 32 MiB on the system bus).
- RefusalLog writes the first refusal of a sender at once and counts the rest:
  one line per sender per INTERVAL_S with how many of which were refused. One
  INFO line per refused call took 3.6% of the helper's samples under a flood
  of 500 refused calls a second (py-spy), and filled the journal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from dbus_fast import Message, Variant

MAX_SENDERS = 4096  # beyond this many senders at once the oldest are forgotten


class FailureBudget:
    """Failed calls per sender (unique bus name) within the last second."""

    def __init__(self, per_s: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_s = per_s
        self._clock = clock
        self._failed: dict[str, list[float]] = {}  # sender -> its last per_s failures

    def failed(self, sender: str) -> bool:
        """Count one more failed call of sender; whether it failed more than
        per_s times within the last second (with this one)."""
        now = self._clock()
        if len(self._failed) >= MAX_SENDERS and sender not in self._failed:
            self._failed = {s: at for s, at in self._failed.items() if at[-1] > now - 1.0}
            if len(self._failed) >= MAX_SENDERS:
                self._failed.clear()
        recent = [at for at in self._failed.get(sender, ()) if at > now - 1.0] + [now]
        self._failed[sender] = recent[-self._per_s :]
        return len(recent) > self._per_s

    def spent(self, sender: str) -> bool:
        """Whether sender failed per_s times within the last second."""
        recent = self._failed.get(sender)
        if not recent:
            return False
        if recent[-1] <= self._clock() - 1.0:
            del self._failed[sender]
            return False
        return len(recent) >= self._per_s and recent[0] > self._clock() - 1.0

    def forget(self, sender: str) -> None:
        self._failed.pop(sender, None)


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


class WaitingCalls:
    """A paced sender's calls not started yet, in order, bounded by how many
    and by how much they hold (arguments_size): past either, add refuses."""

    def __init__(self, max_calls: int, max_bytes: int) -> None:
        self._calls: deque[tuple[Message, int]] = deque()
        self._max_calls, self._max_bytes = max_calls, max_bytes
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._calls)

    def add(self, message: Message) -> bool:
        """Keep message to start later; False (nothing kept) past the bounds."""
        size = arguments_size(message.body)
        if len(self._calls) >= self._max_calls or self.bytes + size > self._max_bytes:
            return False
        self._calls.append((message, size))
        self.bytes += size
        return True

    def pop(self) -> Message:
        message, size = self._calls.popleft()
        self.bytes -= size
        return message

    def clear(self) -> list[Message]:
        """Forget every call waiting; returns them."""
        calls, self._calls, self.bytes = [m for m, _ in self._calls], deque(), 0
        return calls


@dataclass
class _Window:
    counts: Counter[str] = field(default_factory=Counter)
    timer: asyncio.TimerHandle | None = None


class RefusalLog:
    """Refused calls in the log, one line per sender per INTERVAL_S: the first
    at once (who, what), the rest as a count per kind when the interval ends.
    Every refusal is in the log, as a line or in a count."""

    INTERVAL_S = 10.0

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._windows: dict[str, _Window] = {}

    def refused(self, sender: str, what: str) -> None:
        """One refused call of sender; what says which (method and action)."""
        window = self._windows.get(sender)
        if window is not None:
            window.counts[what] += 1
            return
        if len(self._windows) >= MAX_SENDERS:
            self.flush()
        self._log.info("denied %s to %s", what, sender)
        window = self._windows[sender] = _Window()
        window.timer = asyncio.get_running_loop().call_later(
            self.INTERVAL_S, self._end, sender, f"in the last {self.INTERVAL_S:g} s"
        )

    def ended(self, sender: str) -> None:
        """sender left the bus: write its count now."""
        self._end(sender, "before it left the bus")

    def flush(self) -> None:
        """Write every count now (the helper stops, or too many senders)."""
        for sender in list(self._windows):
            self._end(sender, "so far")

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
