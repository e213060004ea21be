"""Tracking: which processes hold sockets, whose application each is, and what
each application and interface moved.

The part of the engine that reads /proc (through the application index and
read_process) and the datapath's counters, so that the plan and apply steps
work on what it found. A process that opened its first socket is identified
at once, from /proc while it runs, else from its app scope cgroup or its
parent (the fork lineage), so the bytes of a short-lived process are
attributed. Counters and attribution are per process (layout.owner_key: the
pid and its start): the kernel hands pids out again, and a new process under
an old pid counts apart from the old one, its bytes its own from the first.
Not thread-safe by itself: the engine calls it under its lock, except exits()
(the kernel's side of exits, kept outside the lock).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from chadthrottle.contract import PID_APP_PREFIX, Direction
from chadthrottle.helper.engine.listing import EXITED_VISIBLE_S
from chadthrottle.helper.engine.ports import DatapathPort, LineagePort, UsagePort
from chadthrottle.helper.engine.rates import AppTraffic, CounterSample, RateMeter
from chadthrottle.helper.errors import InvalidArgument, NoSuchApplication
from chadthrottle.helper.identity.applications import AppIdentity, identify
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.processes import (
    ProcessInfo,
    cgroup_id,
    cgroup_path,
    process_exists,
    read_process,
    read_start,
)
from chadthrottle.helper.kernel.layout import owner_key, pid_of

log = logging.getLogger("chadthrottle.engine")

# Processes with sockets that exited before they could be identified (their
# bytes count for their interface, not for an application) are summed up in
# the log at most this often: a test's helper log then says whether bytes
# missing from an application went this way (the BurstBare flake, 2026-12-06).
UNIDENTIFIED_SAID_EVERY_S = 60.0


class Tracking:
    def __init__(
        self,
        index: ApplicationIndex,
        datapath: DatapathPort,
        lineage: LineagePort | None = None,
        usage: UsagePort | None = None,
    ) -> None:
        """lineage: the parents of forked processes (proc_events.py), for
        those that exit before /proc is read; usage: the usage history, fed
        with what the counters say."""
        self.index = index
        self.lineage = lineage
        self._datapath = datapath
        self._usage = usage
        self.meter = RateMeter(owner=self.owner)
        self.known: dict[str, AppIdentity] = {}  # last identity seen per application id
        self.cgroup_paths: dict[int, str | None] = {}  # cgroup id -> path, for exited processes
        # socket owners (owner_key) the datapath told us about, with their identity once known
        self.announced: dict[int, AppIdentity | None] = {}
        # processes (owner_key) known to hold sockets (adopted at start, or
        # announced since): their applications are listed while they run,
        # though nothing moved yet
        self.socket_holders: set[int] = set()
        # since the log last said how many (UNIDENTIFIED_SAID_EVERY_S), by why
        self._unidentified: Counter[str] = Counter()
        self._unidentified_example = ""  # the first of them, in detail
        self._unidentified_said = -math.inf

    @staticmethod
    def read(pid: int, start: int = 0) -> ProcessInfo | None:
        """One process from /proc, None if it is gone (the engine's only
        direct read: the index reads the rest); with start (not 0), None if
        the process under pid now started at another time (the one meant
        exited, and the kernel gave its pid to another)."""
        if start and read_start(pid) != start:
            return None
        return read_process(pid)

    @classmethod
    def process_of(cls, app_id: str) -> ProcessInfo:
        """The process a "pid:N" id names; NoSuchApplication if it is gone."""
        pid_text = app_id[len(PID_APP_PREFIX) :]
        if not pid_text.isdigit():
            raise InvalidArgument(f"not a process id: {pid_text!r}")
        process = cls.read(int(pid_text))
        if process is None:
            raise NoSuchApplication(f"no application has process {pid_text}")
        return process

    def resolve(self, app_id: str, has_rule: bool) -> str:
        """The application id a caller's id names: "pid:N" resolved through
        /proc, any other id as it is while it runs (or has_rule: a stored rule
        names it); NoSuchApplication otherwise. Any other id reads the
        processes started since again first (refresh_for_lookup: at most once
        per LOOKUP_REFRESH_INTERVAL_S however many ask), known or not: a user
        is told "no application of yours" alike for a program someone else
        runs or keeps a rule for and one no one does, and only the unknown one
        was looked up, which timed over D-Bus told them which (review31: 1.2 ms
        in the median of 150 calls each)."""
        if app_id.startswith(PID_APP_PREFIX):
            process = self.process_of(app_id)
            identity = identify(process)
            if identity is None:
                raise NoSuchApplication(f"no application has process {process.pid}")
            self.index.update_process(process)  # it may have moved to its scope since last seen
            return identity.app_id
        self.index.refresh_for_lookup()
        if not has_rule and not self._is_running(app_id):
            raise NoSuchApplication(f"no running application is called {app_id!r}")
        return app_id

    def _is_running(self, app_id: str) -> bool:
        """An application with processes, or a file ("exe:", "script:") that
        processes named otherwise run (an administrator's rule reaches them)."""
        return self.index.application(app_id) is not None or app_id in self.index.renamed_runners()

    def take_new_processes(self) -> None:
        """Read the processes started since the last refresh, and only those
        (ApplicationIndex.take_new_processes): a second process of an
        application being limited, started just before, is limited with the first."""
        self.index.take_new_processes()

    def read_counters(self) -> Sequence[CounterSample]:
        """Every socket owner's counters, in one read: those that exited
        (exits()) and the living (count())."""
        return self._datapath.read_traffic()

    def owner(self, sample: CounterSample) -> int:
        """The process (owner_key) a sample counts: the one its sockets'
        tags name; with no start known there (a socket adopted from a process
        whose start could not be read), the pid's process as last read."""
        start = sample.owner_start
        if not start:
            start = self.index.start_of(sample.owner_tgid) or 0
        return start << 32 | sample.owner_tgid  # owner_key, inline: several calls per sample a tick

    def owner_of_pid(self, pid: int) -> int:
        """The owner_key of the process running under pid (as last read, else now)."""
        return owner_key(pid, self.index.start_of(pid) or read_start(pid) or 0)

    def refresh(self) -> set[int]:
        """Read the processes again; the socket owners (owner_key) that
        exited since the last time: their pid is gone, or another process's
        now (the kernel hands pids out again). Only owners already known
        (attributed, announced, holding sockets): a tick must not retire the
        counters of a process before it is announced."""
        self.index.refresh()
        replaced = self.index.take_replaced()  # for owners of no known start; the rest by start
        known = self.meter.owners() | self.announced.keys() | self.socket_holders
        gone = {owner for owner in known
                if not self._running(owner) or (owner < 1 << 32 and owner in replaced)}  # fmt: skip
        for owner in gone:
            self.announced.pop(owner, None)
        self.socket_holders -= gone
        return gone

    def _running(self, owner: int) -> bool:
        """Whether a socket owner still runs: a process under its pid, with
        its start time (either unknown: any process under its pid)."""
        pid, start = pid_of(owner), owner >> 32
        if not pid:
            return True  # the owner of sockets no process is known to have made: never retired
        seen = self.index.has_seen(pid)  # if not: started since the index listed /proc, or gone
        if not seen and not process_exists(pid):
            return False
        now = self.index.start_of(pid) if seen else read_start(pid)
        return not start or now is None or now == start

    def replaced(self, gone: set[int]) -> set[int]:
        """The pids of gone (refresh()) that another process runs now."""
        return {pid for owner in gone if owner >> 32 and self.index.has_seen(pid := pid_of(owner))}

    def pid_reused(self, pid: int, start: int) -> bool:
        """Whether the process of start under pid is another than the one
        last read there (the kernel handed the pid out again since)."""
        seen = self.index.start_of(pid)
        return bool(start) and seen is not None and seen != start

    def split(
        self, samples: Sequence[CounterSample], gone: set[int]
    ) -> tuple[list[CounterSample], list[CounterSample]]:
        """The samples of owners that exited (their counters to retire), and
        the living's. Owners that exited at an earlier tick are ending again:
        their sockets moved bytes since (queued data, the FIN exchange); only
        where the kernel tagged the start (a sample without one is the pid's
        running process: owner())."""
        earlier = self.meter.exited_owners()
        if not gone and not earlier:
            return [], list(samples)
        ending: list[CounterSample] = []
        living: list[CounterSample] = []
        for sample in samples:
            owner = self.owner(sample)
            late = sample.owner_start and owner in earlier
            (ending if owner in gone or late else living).append(sample)
        return ending, living

    def exits(self, gone: set[int], ending: Sequence[CounterSample]) -> Sequence[CounterSample]:
        """The kernel's side of the exits (call without the engine lock: two
        map operations per exited process, 20-30 ms a tick while one user
        started 1,000 programs a second, during which no call was answered,
        issue 20): ending's final counters (split()). The datapath forgets
        that it announced the pids: a new process under one is announced by
        its start differing, but only where the programs read starts (without
        BTF every start is 0: it is announced only once the pid is forgotten;
        a new process announced already is announced again, which is harmless)."""
        for pid in {pid_of(owner) for owner in gone}:
            self._datapath.forget_owner(pid)
        return self._datapath.retire_owners(list(ending))

    def retire(self, gone: set[int], retired: Sequence[CounterSample]) -> None:
        """Count the exited processes' final bytes, and learn whose the
        running ones are."""
        if self._usage is not None:  # before the meter forgets whose they were
            self._usage.retire(retired, self.meter.owner_of)
        self.meter.retire(gone, retired)
        for app_id, app in self.index.applications().items():
            self.known[app_id] = app.identity
            for pid, process in app.processes.items():
                self.meter.remember(
                    owner_key(pid, self.index.start_of(pid) or 0), app_id, process.uid
                )

    def add_socket_holders(self, pids: set[int]) -> None:
        """Processes that held sockets before the datapath was attached."""
        self.socket_holders |= {self.owner_of_pid(pid) for pid in pids}

    def count(self, living: list[CounterSample], now: float) -> None:
        """The running processes' counters into the rates and the usage history."""
        self.meter.update(living, now, self.socket_holders)
        if self._usage is not None:
            self._usage.update(living, self.meter.owner_of)

    def listed_traffic(self, now: float) -> dict[str, AppTraffic]:
        """What each application moved, with those whose sockets are open and
        quiet (the meter lists those a tick read: RateMeter._list_quiet); one
        no tick has read yet (announced since the last) is listed measuring:
        nothing measured it."""
        traffic = self.meter.apps
        idle = {
            app_id
            for owner in self.socket_holders
            if (app_id := getattr(self.index.identity_of(pid_of(owner)), "app_id", None))
            and app_id not in traffic
        }
        if not idle:
            return traffic
        unread = frozenset(Direction)
        return {
            **{app_id: AppTraffic(last_active=now, measuring=unread) for app_id in idle},
            **traffic,
        }

    def new_owner(
        self, pid: int, cgroup_id: int, process: ProcessInfo | None, start: int = 0
    ) -> AppIdentity | None:
        """A process opened its first socket (process: as read from /proc,
        None if it had exited; start: its start, as the datapath read it, 0
        if not known): its identity, remembered, or None if it cannot be
        told. If it has exited already, its cgroup (as the datapath saw it)
        may still name its app scope, or its parent its program."""
        owner = owner_key(pid, start or self.index.start_of(pid) or 0)
        self.announced[owner] = None
        self.socket_holders.add(owner)
        identity = identify(process) if process else None
        if identity is None and cgroup_id:
            identity = self._identity_of_cgroup(pid, cgroup_id)
        looked: ParentLook | None = None
        if identity is None:
            identity, looked = self._identity_of_parent(pid, start)
        if identity is None:
            why, detail = _why_unnamed(start, looked)
            log.debug("process %d exited before it could be identified: %s (%s)", pid, why, detail)
            if not self._unidentified:
                self._unidentified_example = f"{pid}: {detail}"
            self._unidentified[why] += 1
            return None
        self.announced[owner] = identity
        self.meter.remember(owner, identity.app_id, process.uid if process else None)
        self.known[identity.app_id] = identity
        return identity

    def name_unheard(self, samples: Sequence[CounterSample]) -> int:
        """After announcements were lost (the kernel had no room to keep them:
        core.Engine.note_owners_lost): each owner the counters name that was
        never announced nor read is taken as announced now, as new_owner()
        (no cgroup id: an exited one is named by its parent only); how many.
        Only owners with a start (the programs read one where there is BTF):
        without one, the pid's running process, which refresh() names."""
        known = self.meter.owners() | self.announced.keys() | set(self.meter.exited_owners())
        unheard = {
            (sample.owner_tgid, sample.owner_start)
            for sample in samples
            if sample.owner_tgid and sample.owner_start and self.owner(sample) not in known
        }
        for pid, start in unheard:
            self.new_owner(pid, 0, self.read(pid, start), start)
        if unheard:
            log.info(
                "looked for %d processes whose first socket's announcement was lost", len(unheard)
            )
        return len(unheard)

    def forget_exited(self, now: float, stored: set[str]) -> None:
        """Drop what is kept about applications whose processes all exited,
        once the listing no longer shows them (or their user has too many such,
        rates.EXITED_KEPT_PER_UID), and the paths of cgroups that are gone: a
        storm of short-lived programs must not cost memory, nor time in every
        tick and listing, for ever. stored: the application ids of stored
        rules, kept. Says how many processes could not be identified, at most
        every UNIDENTIFIED_SAID_EVERY_S."""
        if self._unidentified and now >= self._unidentified_said + UNIDENTIFIED_SAID_EVERY_S:
            log.info(
                "%d processes with sockets exited before they could be identified (%s; the "
                "first, %s): their bytes count for their interfaces, not for an application",
                self._unidentified.total(),
                ", ".join(f"{count}: {why}" for why, count in self._unidentified.most_common()),
                self._unidentified_example,
            )
            self._unidentified, self._unidentified_said = Counter(), now
        running = self.index.applications().keys() | {
            i.app_id for i in self.announced.values() if i is not None
        }
        keep = running | stored
        self.meter.forget_exited(now, keep, EXITED_VISIBLE_S)
        forgettable = self.known.keys() - keep - self.meter.apps.keys()
        if forgettable:
            # an application whose exited processes' bytes may still come keeps its name
            forgettable -= self.meter.awaited_apps()
        for app_id in forgettable:
            del self.known[app_id]
        for cgroup, path in list(self.cgroup_paths.items()):
            if path is None or cgroup_id(self._datapath.cgroup_root, path) != cgroup:
                del self.cgroup_paths[cgroup]

    def _identity_of_cgroup(self, pid: int, cgroup: int) -> AppIdentity | None:
        """The app scope identity of a cgroup id, or None if it is no app scope."""
        if cgroup not in self.cgroup_paths:  # a walk of the hierarchy: once per cgroup
            self.cgroup_paths[cgroup] = cgroup_path(self._datapath.cgroup_root, cgroup)
        path = self.cgroup_paths[cgroup]
        if path is None:
            return None
        identity = identify(
            ProcessInfo(pid=pid, ppid=0, uid=0, exe="", argv=(), comm="", cgroup=path)
        )
        return identity if identity is not None and identity.scope else None

    def _identity_of_parent(
        self, pid: int, start: int, generations: int = 8
    ) -> tuple[AppIdentity | None, ParentLook | None]:
        """A forked child that did not exec runs its parent's program: the
        identity of the nearest ancestor that can still be told. start: the
        child's (0: not known). A parent that exited too, before the helper
        came to the child (it ran late: its announcements queued), is told as
        the index last read it, if it can have forked the child. The fork
        events name the parent by pid only: a process under it that started
        after the child got the pid since, and does not name it. With it,
        what was read of the child's own parent (None: no process events),
        which the log tells when nothing named the child."""
        if self.lineage is None:
            return None, None
        first: ParentLook | None = None
        for _ in range(generations):
            parent, why = self.lineage.parent_or_why(pid, start)
            if parent is None:
                return None, first or ParentLook(None, why)
            self.index.read_again_if_execd(parent)  # read as its launcher, before its exec
            indexed, running = self.index.start_of(parent), read_start(parent)
            look = ParentLook(parent, "", indexed, self.index.identity_of(parent), running)
            first = first or look
            under = indexed or running or 0  # as owner_of_pid
            # The index reads each tick: a process that got the pid since (another
            # of the same executable: not read again) and ran at the child's fork
            # is its parent, not the one the index read.
            stale = (
                indexed is not None
                and running is not None
                and indexed != running
                and (not start or running <= start)
            )
            if not stale and (not start or under <= start):
                known = look.indexed_as or self.announced.get(owner_key(parent, under))
                if known is not None:
                    return known, first
            if not start or (read_start(parent) or 0) <= start:
                process = self.index.read_one(parent)  # kept: its departure names the rest
                look.read, look.read_as = True, process
                identity = identify(process) if process is not None else None
                if identity is not None:  # a zombie names nothing: as it was last read, below
                    return identity, first
            departed = self.index.departed_identity(parent, start) if start else None
            if departed is not None:
                return departed, first
            pid, start = parent, 0
        return None, first


@dataclass
class ParentLook:
    """What naming a process by its parent read of that parent: the log's
    reason comes from these reads, not a second look at a later state."""

    parent: int | None  # None: the lineage named none
    why_no_parent: str  # the lineage's reason then ("" when it named one)
    indexed: int | None = None  # the parent's start as the index held it
    indexed_as: AppIdentity | None = None  # and its identity there
    running: int | None = None  # the start of the process under the pid then
    read: bool = False  # whether it was read from /proc (not: it started after the child)
    read_as: ProcessInfo | None = None  # what that read found (None: gone)


def _why_unnamed(start: int, looked: ParentLook | None) -> tuple[str, str]:
    """Why an exited process was named by nothing, and in detail, for the log
    (off the common path: only for those), from what its naming read."""
    if looked is None:
        return "no process events", f"start {start}"
    if looked.parent is None:
        return looked.why_no_parent, f"start {start}"
    process = looked.read_as
    running_as = (
        (process.exe, process.argv[:2], process.cgroup)
        if process
        else ("gone" if looked.read else "not read (started after the child)")
    )
    return "its parent could not be named", (
        f"start {start}, parent {looked.parent}: indexed {looked.indexed} as "
        f"{looked.indexed_as}, running {looked.running} as {running_as}, "
        + ("departed: none that could be its" if start else "departed: not asked (start not known)")
    )
