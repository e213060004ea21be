"""A snapshot of which process belongs to which application, refreshed once a
second by the engine.

Reading every process's status, command line and cgroup each second costs
about 1% of a core on a desktop; most processes have not changed since the
last second. A known process is re-read only when its executable changed
(exec), when it may be another process under the same pid (the inode of
/proc/PID changed: the kernel hands pids out again, and a user's process
replaced by root's running the same program kept the user's uid until the
next full read), or every FULL_REFRESH_TICKS (a cgroup move by systemd, a uid
change). A pid whose process is another now is reported by take_replaced: the
old process exited.

A lookup of an id the index does not know (refresh_for_lookup) reads the
processes started since /proc was last listed, and checks again those first
read within YOUNG_S (a program just started may exec or be moved into the app
scope its launcher made for it after the index read it), at most once per
LOOKUP_REFRESH_INTERVAL_S however many callers ask; never all of /proc: any
local user may name ids that no application has, as often as answered, and
each such call once cost a full read of /proc (issue 20), then two a second
under a flood (10 ms each with 140 processes, on the engine thread)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from chadthrottle.helper.identity.applications import AppIdentity, identify
from chadthrottle.helper.identity.processes import (
    ProcessInfo,
    all_pids,
    boot_ticks,
    proc_stamp,
    read_cgroup,
    read_exe,
    read_process,
    read_start,
)

FULL_REFRESH_TICKS = 10
# A lookup looks again at most this often (a listing of /proc and the young
# processes' executable and cgroup: about 0.1-0.3 ms here).
LOOKUP_REFRESH_INTERVAL_S = 0.05
# A process first read this recently is checked again by every tick and
# lookup (its executable and cgroup, read again if either changed): a
# launcher moves its child into the app scope after starting it, and the
# index may have read it in between. At most the MAX_YOUNG newest (about
# 10 us each); an older process that moves is seen by a tick's full read
# (FULL_REFRESH_TICKS).
YOUNG_S, MAX_YOUNG = 3.0, 64
# Processes seen to exit, kept with their identity (the most recent this
# many, about 200 bytes each): a forked child announced to a helper that ran
# late may come to be identified after its parent exited too (the BurstBare
# flake, 2026-12-06: 90 of 200 children's bytes on the interface only); also
# one read while exiting (a zombie: no executable, that read names nothing;
# flake30, CI m2: 76 of 200 children lost after such a read).
DEPARTED_KEPT = 4096


@dataclass
class Application:
    identity: AppIdentity
    processes: dict[int, ProcessInfo] = field(default_factory=dict)

    @property
    def uids(self) -> frozenset[int]:
        return frozenset(p.uid for p in self.processes.values())


# A process as last read: with its identity, the stamp of /proc/PID
# (proc_stamp) and its start time (read_start), both taken before it was read
# (None: not known).
Seen = tuple[ProcessInfo, AppIdentity | None, int | None, int | None]
# An identified process seen to exit: its start, identity, and the time it was
# seen gone by (both in read_start's clock ticks after boot).
Departed = tuple[int, AppIdentity, int]


def _replaced(old_start: int | None, start: int | None) -> bool:
    """Whether a pid's process is another than before (both start times known)."""
    return old_start is not None and start is not None and old_start != start


def _exiting(old: Seen, process: ProcessInfo, start: int | None) -> bool:
    """Whether the process last read as old, read again as process, is the
    same one exiting: it had an executable and has none now (a zombie, or
    one whose memory is gone: no exe link, no command line), so this read
    names no application and only the last one says whose it was."""
    return bool(old[0].exe) and not process.exe and not _replaced(old[3], start)


class ApplicationIndex:
    def __init__(
        self,
        list_pids: Callable[[], Iterable[int]] = all_pids,
        read: Callable[[int], ProcessInfo | None] = read_process,
        read_exe: Callable[[int], str | None] = read_exe,
        clock: Callable[[], float] = time.monotonic,
        stamp: Callable[[int], int | None] = proc_stamp,
        read_start: Callable[[int], int | None] = read_start,
        read_cgroup: Callable[[int], str | None] = read_cgroup,
        boot_ticks: Callable[[], int] = boot_ticks,
    ) -> None:
        self._list_pids = list_pids
        self._read = read
        self._read_exe = read_exe
        self._stamp = stamp
        self._read_start = read_start
        self._read_cgroup = read_cgroup
        self._boot_ticks = boot_ticks
        self._clock = clock
        self._looked_at = -math.inf  # the last refresh_for_lookup that looked
        self._born: dict[int, float] = {}  # pid -> when first read, oldest first (YOUNG_S)
        self._by_pid: dict[int, AppIdentity] = {}
        self._apps: dict[str, Application] = {}
        self._seen: dict[int, Seen] = {}
        self._replaced: set[int] = set()  # pids whose process is another now (take_replaced)
        self._departed: OrderedDict[int, Departed] = OrderedDict()  # pid -> its last exited one's
        # file id -> processes running that file that another identity names
        # (an administrator's rule on the file id reaches them too)
        self._renamed: dict[str, dict[int, ProcessInfo]] = {}
        self._ticks = 0

    def refresh(self, *, full: bool = False, reread: Iterable[int] = ()) -> None:
        """Follow processes that came and went. A process already seen is read
        again only when its executable changed (every FULL_REFRESH_TICKS-th
        refresh reads all, full=True too, reread those pids): one moved to
        another cgroup keeps its old identity until then."""
        self._ticks += 1
        self._scan(full or self._ticks % FULL_REFRESH_TICKS == 0, set(reread))
        self._recheck_young(self._clock())  # moved into its app scope since it was first read

    def refresh_for_lookup(self) -> bool:
        """For a lookup of an id the index does not know: read the processes
        started since /proc was last listed (take_new_processes) and check the
        young ones again (YOUNG_S), unless that was done less than
        LOOKUP_REFRESH_INTERVAL_S ago; never every process. True if it looked."""
        now = self._clock()
        if now < self._looked_at + LOOKUP_REFRESH_INTERVAL_S:
            return False
        self._looked_at = now
        self.take_new_processes()
        self._recheck_young(now)
        return True

    def _recheck_young(self, now: float) -> None:
        """Read again the processes first read within YOUNG_S (the newest
        MAX_YOUNG) whose executable or cgroup changed since."""
        while self._born and next(iter(self._born.values())) <= now - YOUNG_S:
            del self._born[next(iter(self._born))]
        for pid in list(reversed(self._born))[:MAX_YOUNG]:
            seen = self._seen.get(pid)
            if seen is None:
                continue
            process = seen[0]
            exe, cgroup = self._read_exe(pid) or "", self._read_cgroup(pid)
            if exe != process.exe or cgroup != process.cgroup:
                self._read_kept(pid, seen)

    def read_again_if_execd(self, pid: int) -> None:
        """Read pid again, alone, if its executable changed since the index
        read it (one readlink otherwise): a program started just before a
        tick may have been read as its launcher (nsenter, a shell) before its
        exec, and named so until the next tick; a child it forked since, and
        that exited before the helper read it, runs its program (flake30).
        A parent that exec'd after forking the child names it by its new
        program (docs/accounting.md)."""
        seen = self._seen.get(pid)
        exe = self._read_exe(pid) if seen is not None else None
        if seen is None or exe is None or exe == seen[0].exe:
            return  # not read, gone (or a zombie: no executable), or the same program
        self._read_kept(pid, seen)

    def read_one(self, pid: int) -> ProcessInfo | None:
        """Read pid alone now and keep it, as a tick would (its stamp and start
        taken before the read): a parent read to name a child between two ticks
        is then known to the index, and, once a tick sees it gone, departed
        (departed_identity). A short-lived parent no tick saw named the
        children the helper came to after it exited by nothing (BlipsBare: a
        script forking 200 children in under a second, the helper behind)."""
        return self._read_kept(pid)

    def _read_kept(self, pid: int, was: Seen | None = None) -> ProcessInfo | None:
        """Read pid now and keep what was read (None: gone), its stamp and
        start taken before the read: a process given the pid during the read
        shows at the next tick (another stamp). was: as the index last read
        the pid: if another process runs under it now, nothing is read (the
        next listing or tick takes it)."""
        stamp, start = self._stamp(pid), self._read_start(pid)
        if was is not None and _replaced(was[3], start):
            return None
        process = self._read(pid)
        if process is not None:
            self.update_process(process, (stamp, start))
        return process

    def _first_read(self, pid: int) -> None:
        self._born.pop(pid, None)
        self._born[pid] = self._clock()
        if len(self._born) > 4 * MAX_YOUNG:  # a burst of starts: only the newest are checked
            del self._born[next(iter(self._born))]

    def _listing(self) -> list[int]:
        return list(self._list_pids())

    def take_new_processes(self) -> int:
        """Read the processes started since the last refresh, and only those: a
        limit set now must reach a process the next tick would first see (it
        ran unlimited for up to a second). Returns how many were taken."""
        taken = 0
        for pid in self._listing():
            if pid not in self._seen and self._read_kept(pid) is not None:
                taken += 1
        return taken

    def take_replaced(self) -> set[int]:
        """The pids whose process was found to be another since the last call
        (the old one exited, a new one got its pid): the caller sees them exit."""
        replaced, self._replaced = self._replaced, set()
        return replaced

    def update_process(
        self, process: ProcessInfo, marks: tuple[int | None, int | None] | None = None
    ) -> None:
        """Take one process just read as it is now (a "pid:N" lookup: it may
        have moved to its app scope since the index read it), without reading
        any other. marks: its stamp and start time taken before it was read
        (None: taken now, after it: a pid handed to another process between
        the read and now is then seen at the next full refresh only)."""
        pid, identity = process.pid, identify(process)
        seen = self._seen.get(pid)
        if marks is None:
            stamp = self._stamp(pid)
            same = seen is not None and stamp is not None and stamp == seen[2]
            marks = (stamp, seen[3] if same and seen is not None else self._read_start(pid))
        stamp, start = marks
        if seen is not None and (_replaced(seen[3], start) or _exiting(seen, process, start)):
            if _replaced(seen[3], start):
                self._replaced.add(pid)
            self._depart(pid, seen, self._boot_ticks())
        old = self._by_pid.pop(pid, None)
        if old is not None and (app := self._apps.get(old.app_id)) is not None:
            app.processes.pop(pid, None)
            if not app.processes:
                del self._apps[old.app_id]
        if old is not None and (renamed := self._renamed.get(old.file_id)) is not None:
            renamed.pop(pid, None)
            if not renamed:
                del self._renamed[old.file_id]
        if seen is None or _replaced(seen[3], start):
            self._first_read(pid)
        self._seen[pid] = (process, identity, stamp, start)
        if identity is not None:
            self._add(pid, process, identity, self._by_pid, self._apps, self._renamed)

    @staticmethod
    def _add(pid: int, process: ProcessInfo, identity: AppIdentity, by_pid: dict[int, AppIdentity],
             apps: dict[str, Application], renamed: dict[str, dict[int, ProcessInfo]]) -> None:  # fmt: skip
        by_pid[pid] = identity
        apps.setdefault(identity.app_id, Application(identity)).processes[pid] = process
        if identity.file_id and identity.file_id != identity.app_id:
            renamed.setdefault(identity.file_id, {})[pid] = process

    def _scan(self, full: bool, fresh: set[int]) -> None:
        by_pid: dict[int, AppIdentity] = {}
        apps: dict[str, Application] = {}
        renamed: dict[str, dict[int, ProcessInfo]] = {}
        seen: dict[int, Seen] = {}
        for pid in self._listing():
            old = self._seen.get(pid)
            known = None if full or pid in fresh else old
            # before reading: a process replaced while being read shows next time
            stamp = self._stamp(pid)
            # A kernel thread has no executable to read (None here, "" once read):
            # the same, or every kernel thread would be read in full each second.
            if known is None or stamp != known[2] or (self._read_exe(pid) or "") != known[0].exe:
                # the same stamp, the same process: its start time is known (an exec keeps it)
                same = old is not None and stamp is not None and stamp == old[2]
                start = old[3] if same and old is not None else self._read_start(pid)
                process = self._read(pid)
                known = (process, identify(process), stamp, start) if process is not None else None
                # read exiting: whose it was is kept for the children it forked
                if known is not None and old is not None and _exiting(old, known[0], start):
                    self._depart(pid, old, self._boot_ticks())
                if known is not None and old is not None and _replaced(old[3], start):
                    self._replaced.add(pid)
                    self._first_read(pid)
                elif known is not None and old is None and self._seen:  # not the first scan's
                    self._first_read(pid)
            if known is None:
                continue
            seen[pid] = known
            process, identity, _, _ = known
            if identity is None:
                continue
            self._add(pid, process, identity, by_pid, apps, renamed)
        now = self._boot_ticks()
        for pid, old in self._seen.items():
            if pid not in seen or _replaced(old[3], seen[pid][3]):
                self._depart(pid, old, now)
        self._by_pid, self._apps, self._seen, self._renamed = by_pid, apps, seen, renamed

    def _depart(self, pid: int, seen: Seen, gone_by: int) -> None:
        """Keep an identified process that exited (departed_identity): when a
        tick sees it gone, or read it exiting (_exiting: what it was read as
        then names nothing, and a later departure of that read keeps none)."""
        _, identity, _, start = seen
        if identity is None or start is None:
            return
        self._departed.pop(pid, None)
        self._departed[pid] = (start, identity, gone_by)
        if len(self._departed) > DEPARTED_KEPT:
            self._departed.popitem(last=False)

    def departed_identity(self, pid: int, child_start: int) -> AppIdentity | None:
        """The identity of the process last seen under pid, which exited, if it
        can be the parent of a process that started at child_start (read_start's
        ticks): it started no later, and was seen gone no earlier (a process
        forked after that had another parent under the pid, handed out again).
        None if none such was seen."""
        departed = self._departed.get(pid)
        if departed is None:
            return None
        start, identity, gone_by = departed
        return identity if start <= child_start <= gone_by else None

    def all_pids(self) -> set[int]:
        return set(self._by_pid)

    def has_seen(self, pid: int) -> bool:
        """Whether a process ran under pid when last read (identified or not)."""
        return pid in self._seen

    def start_of(self, pid: int) -> int | None:
        """The start time (read_start) of the process last read under pid;
        None if there was none, or it could not be read."""
        seen = self._seen.get(pid)
        return None if seen is None else seen[3]

    def identity_of(self, pid: int) -> AppIdentity | None:
        return self._by_pid.get(pid)

    def application(self, app_id: str) -> Application | None:
        return self._apps.get(app_id)

    def applications(self) -> dict[str, Application]:
        return self._apps

    def renamed_runners(self) -> dict[str, dict[int, ProcessInfo]]:
        """file id -> the processes that run that file ("exe:" or "script:")
        but have another identity (a service's, a desktop app's, a snap's...)."""
        return self._renamed

    def pids_by_app(self) -> dict[str, set[int]]:
        result: dict[str, set[int]] = defaultdict(set)
        for pid, identity in self._by_pid.items():
            result[identity.app_id].add(pid)
        return result
