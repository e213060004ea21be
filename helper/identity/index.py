"""A snapshot of which process belongs to which application, refreshed once a
second by the engine.

Reading every process's status, command line and cgroup each second costs
about 1% of a core on a desktop; most processes have not changed since the
last second. A known process is re-read only when its executable changed
(exec) or every FULL_REFRESH_TICKS (a cgroup move by systemd, a uid change)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from chadthrottle.helper.identity.applications import AppIdentity, identify
from chadthrottle.helper.identity.processes import ProcessInfo, all_pids, read_exe, read_process

FULL_REFRESH_TICKS = 10


@dataclass
class Application:
    identity: AppIdentity
    processes: dict[int, ProcessInfo] = field(default_factory=dict)

    @property
    def uids(self) -> frozenset[int]:
        return frozenset(p.uid for p in self.processes.values())


class ApplicationIndex:
    def __init__(
        self,
        list_pids: Callable[[], Iterable[int]] = all_pids,
        read: Callable[[int], ProcessInfo | None] = read_process,
        read_exe: Callable[[int], str | None] = read_exe,
    ) -> None:
        self._list_pids = list_pids
        self._read = read
        self._read_exe = read_exe
        self._by_pid: dict[int, AppIdentity] = {}
        self._apps: dict[str, Application] = {}
        self._seen: dict[int, tuple[ProcessInfo, AppIdentity | None]] = {}
        self._ticks = 0

    def refresh(self, *, full: bool = False, reread: Iterable[int] = ()) -> None:
        """Follow processes that came and went. A process already seen is read
        again only when its executable changed (every FULL_REFRESH_TICKS-th
        refresh reads all, full=True too, reread those pids): one moved to
        another cgroup keeps its old identity until then."""
        self._ticks += 1
        full = full or self._ticks % FULL_REFRESH_TICKS == 0
        fresh = set(reread)
        by_pid: dict[int, AppIdentity] = {}
        apps: dict[str, Application] = {}
        seen: dict[int, tuple[ProcessInfo, AppIdentity | None]] = {}
        for pid in self._list_pids():
            known = None if full or pid in fresh else self._seen.get(pid)
            # A kernel thread has no executable to read (None here, "" once read):
            # the same, or every kernel thread would be read in full each second.
            if known is None or (self._read_exe(pid) or "") != known[0].exe:
                process = self._read(pid)
                known = (process, identify(process)) if process is not None else None
            if known is None:
                continue
            seen[pid] = known
            process, identity = known
            if identity is None:
                continue
            by_pid[pid] = identity
            apps.setdefault(identity.app_id, Application(identity)).processes[pid] = process
        self._by_pid, self._apps, self._seen = by_pid, apps, seen

    def all_pids(self) -> set[int]:
        return set(self._by_pid)

    def identity_of(self, pid: int) -> AppIdentity | None:
        return self._by_pid.get(pid)

    def application(self, app_id: str) -> Application | None:
        return self._apps.get(app_id)

    def applications(self) -> dict[str, Application]:
        return self._apps

    def pids_by_app(self) -> dict[str, set[int]]:
        result: dict[str, set[int]] = defaultdict(set)
        for pid, identity in self._by_pid.items():
            result[identity.app_id].add(pid)
        return result
