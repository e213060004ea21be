"""A snapshot of which process belongs to which application, refreshed once a
second by the engine."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from chadthrottle.helper.identity.applications import AppIdentity, identify
from chadthrottle.helper.identity.processes import ProcessInfo, all_pids, read_process


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
    ) -> None:
        self._list_pids = list_pids
        self._read = read
        self._by_pid: dict[int, AppIdentity] = {}
        self._apps: dict[str, Application] = {}

    def refresh(self) -> None:
        by_pid: dict[int, AppIdentity] = {}
        apps: dict[str, Application] = {}
        for pid in self._list_pids():
            process = self._read(pid)
            if process is None:
                continue
            identity = identify(process)
            if identity is None:
                continue
            by_pid[pid] = identity
            apps.setdefault(identity.app_id, Application(identity)).processes[pid] = process
        self._by_pid, self._apps = by_pid, apps

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
