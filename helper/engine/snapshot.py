"""What the read calls answer, published whole by the engine after each tick
and each change: ListApplications, ListBackends, ListRules, ListSchedules,
GetLimitsPaused and GetLinkShaping answer from it on the bus's own thread,
ListConnections, ListProcesses and ListInterfaces from it on a thread of
their own, without the engine thread or the engine lock.

Until snap32 (2026-12-07) each read queued on the engine thread behind a
change's own work and took the engine lock behind a tick's walks: root's
reads waited 0.12-0.14 s median, 0.26 s at most, while a user changed its
rules on a program of many descriptors (docs/benchmarks/helper-calls.md).

A snapshot is never changed once made: the engine makes a new one under its
lock and swaps the reference (one assignment), so a reader sees one whole
publish or the one before. A write call publishes before it returns, so a
read after its reply shows it (read-your-writes); ticks publish once a second.
Listings depend on who looks (a user sees their own processes' traffic and
namespaces), so they are made for the viewers who asked lately (Lookers),
and for the likely first callers: root and each user running an
application (engine._first_callers, snap33), whose first call then waits
for no walk; any other viewer not in the snapshot yet is answered on the
engine thread once, and from the next publish on from the snapshot. A
user's listing is made over their own applications and rules only
(listing.shown_to), and a write call makes anew only its callers' listings
and those of viewers who see all (an administrator's rule, a pause or the
link: everyone's); the others keep theirs until the next tick. A user's
write makes in those only its applications' rows, the others kept from
the last publish (engine._patched_listing, snap34). At 1,000
running applications with traffic and 64 viewers a publish took ~1.07 s
and 112 MB before snap32b, ~35 ms and 3.7 MB after
(docs/benchmarks/helper-calls.md).

ListConnections, ListProcesses and ListInterfaces are not answered at each
publish: what they are worked out from is (each application's processes,
the rates' inputs, the interfaces' traffic), and the adapter works them
out at the call off the engine thread and lock (snap33): a connection
listing reads /proc and sockets in numbers its caller chooses, and
processes' rows are asked for a few open rows, not every application's.
They are as fresh as the last tick or change, as the listing they detail.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import NamedTuple

from chadthrottle.contract import (
    ApplicationInfo,
    BackendInfo,
    LinkShapingInfo,
    RuleInfo,
    ScheduleInfo,
)
from chadthrottle.helper.engine.api import Viewer
from chadthrottle.helper.engine.rates import AppTraffic, InterfaceKey, RatesView

# A viewer's listing is made at each publish while they asked within this
# long (the window polls every second; a CLI's one-shot list is not kept up).
LOOKED_S = 10.0
# At most this many viewers' listings of each kind per publish (each costs a
# listing's work every tick); more are answered on the engine thread.
MOST_LOOKERS = 64


class RunningProcess(NamedTuple):
    """A running process of an application, as the engine last read it."""

    pid: int
    uid: int
    comm: str
    start: int  # its start (owner_start; 0: not read), its owner key with the pid


def _empty() -> Mapping[str, tuple[RunningProcess, ...]]:
    return MappingProxyType({})


class Looked(Enum):
    """The viewer-dependent reads a snapshot holds per viewer."""

    APPLICATIONS = "applications"
    BACKENDS = "backends"


@dataclass(frozen=True)
class Snapshot:
    """The read calls' answers as of one publish (never changed after)."""

    rules: tuple[RuleInfo, ...]
    schedules: tuple[ScheduleInfo, ...]
    paused: bool
    link_shaping: LinkShapingInfo
    applications: Mapping[Viewer, tuple[ApplicationInfo, ...]]
    backends: Mapping[Viewer, tuple[BackendInfo, ...]]
    # What ListConnections, ListProcesses and ListInterfaces are worked out
    # from at the call, off the engine lock (snap33): each running
    # application's processes, the rates' inputs, every interface's traffic
    # (the meter's dict of the tick, never changed after). Not answers made
    # at each publish: a connection listing reads /proc and the sockets (a
    # caller's 19,000 descriptors: 1.7 s), and rows per process are asked
    # for a few open rows, not every application's.
    running: Mapping[str, tuple[RunningProcess, ...]] = field(default_factory=_empty)
    rates: RatesView | None = None
    interfaces: Mapping[InterfaceKey, AppTraffic] = field(default_factory=dict)


class Lookers:
    """Who asked for each viewer-dependent read lately, noted from any thread
    (a small lock of its own, held for a dict update only: never the engine's)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._asked: dict[Looked, dict[Viewer, float]] = {kind: {} for kind in Looked}

    def note(self, kind: Looked, viewer: Viewer) -> None:
        with self._lock:
            asked = self._asked[kind]
            if viewer in asked or len(asked) < MOST_LOOKERS:
                asked[viewer] = self._clock()

    def current(self, kind: Looked) -> list[Viewer]:
        """The viewers who asked within LOOKED_S (those before are forgotten)."""
        now = self._clock()
        with self._lock:
            asked = self._asked[kind]
            for viewer in [v for v, at in asked.items() if now - at > LOOKED_S]:
                del asked[viewer]
            return list(asked)
