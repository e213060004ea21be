"""The engine: what the user asked for, reconciled with the kernel once a second
and at once on every change.

It keeps the limit table (per application identity, never per PID), turns it
into a plan (the HTB classes wanted per direction, the slot wanted per process
and app scope) and applies the plan through the kernel ports. A change that the
kernel refuses is rolled back: the table and the kernel go back to how they
were, and the caller gets the reason.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from chadthrottle.contract import (
    PID_APP_PREFIX,
    ApplicationInfo,
    BackendInfo,
    ConnectionInfo,
    Direction,
    InterfaceInfo,
)
from chadthrottle.helper.engine.api import ResolvedApplication
from chadthrottle.helper.engine.limits import Limit, LimitTable, SlotAllocator
from chadthrottle.helper.engine.listing import build_listing
from chadthrottle.helper.engine.rates import LOOPBACK_IFINDEX, CounterSample, RateMeter
from chadthrottle.helper.errors import HelperError, InvalidArgument, NoSuchApplication
from chadthrottle.helper.identity.applications import AppIdentity, identify
from chadthrottle.helper.identity.connections import connections_of
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.processes import cgroup_id, read_process
from chadthrottle.helper.kernel.htb import ClassSpec, Classes

log = logging.getLogger("chadthrottle.engine")


class DatapathPort(Protocol):
    cgroup_root: Path

    def set_process_slot(self, tgid: int, app_slot: int) -> int: ...
    def forget_process(self, tgid: int) -> None: ...
    def forget_owner(self, tgid: int) -> None: ...
    def set_cgroup_slot(self, cgroup_id: int, app_slot: int) -> None: ...
    def read_traffic(self) -> list[CounterSample]: ...


class ShaperPort(Protocol):
    def reconcile(self, wanted: dict[Direction, Classes]) -> None: ...
    def active_directions(self) -> set[Direction]: ...
    def sent_up_bytes(self) -> dict[int, int]: ...


class Engine:
    def __init__(
        self,
        datapath: DatapathPort,
        shaper: ShaperPort,
        index: ApplicationIndex,
        backends: Callable[[set[Direction]], list[BackendInfo]],
        clock: Callable[[], float] = time.monotonic,
        rules: LimitTable | None = None,
        save_rules: Callable[[LimitTable], None] = lambda table: None,
    ) -> None:
        """rules: the stored limits to start from (applied on the first tick);
        save_rules: stores the table after each change, raising HelperError if
        it cannot (the change is then undone)."""
        self._datapath = datapath
        self._shaper = shaper
        self._index = index
        self._backends = backends
        self._clock = clock
        self._lock = threading.RLock()
        self._limits = rules.copy() if rules is not None else LimitTable()
        self._save_rules = save_rules
        self._slots = SlotAllocator()
        self._process_slots: dict[int, int] = {}  # tgid -> slot written to the datapath
        self._cgroup_slots: dict[int, int] = {}  # app scope cgroup id -> slot
        self._meter = RateMeter()
        self._known: dict[str, AppIdentity] = {}  # last identity seen per application id

    # --- the EngineApi ------------------------------------------------------------

    def list_applications(self) -> list[ApplicationInfo]:
        with self._lock:
            limits = {app_id: limits for app_id, limits in self._limits.items()}
            return build_listing(self._index.applications(), self._meter.apps, limits, self._clock(), self._known)

    def list_connections(self, app_id: str) -> list[ConnectionInfo]:
        with self._lock:
            app = self._index.application(app_id)
            pids = list(app.processes) if app else []
        return [ConnectionInfo(c.protocol, c.local, c.remote, c.state, c.pid) for c in connections_of(pids)]

    def list_interfaces(self) -> list[InterfaceInfo]:
        names = {index: name for index, name in socket.if_nameindex()}  # the helper's namespace
        with self._lock:
            return [
                InterfaceInfo(
                    name=names.get(ifindex, ""), ifindex=ifindex, loopback=ifindex == LOOPBACK_IFINDEX,
                    rx_bytes=traffic.rx_bytes, tx_bytes=traffic.tx_bytes,
                    down_bps=traffic.down_bps, up_bps=traffic.up_bps,
                )
                for ifindex, traffic in sorted(self._meter.interfaces.items())
            ]

    def list_backends(self) -> list[BackendInfo]:
        with self._lock:
            return self._backends(self._shaper.active_directions())

    def resolve_application(self, app_id: str) -> ResolvedApplication:
        with self._lock:
            resolved = self._resolve_id(app_id)
            app = self._index.application(resolved)
            return ResolvedApplication(resolved, app.uids if app else frozenset())

    def set_limit(self, app_id: str, direction: Direction, rate_bps: int, burst_bytes: int) -> str:
        with self._lock:
            resolved = self._resolve_id(app_id)
            limit = Limit.with_default_burst(rate_bps, burst_bytes)
            self._change(lambda table: table.set(resolved, direction, limit))
            log.info("limit %s %s %d B/s (burst %d B)", resolved, direction.value, rate_bps, limit.burst_bytes)
            return resolved

    def clear_limit(self, app_id: str, directions: tuple[Direction, ...]) -> str:
        with self._lock:
            resolved = self._resolve_id(app_id)
            self._change(lambda table: table.clear(resolved, directions))
            log.info("cleared %s %s", resolved, "+".join(d.value for d in directions))
            return resolved

    def set_limits_paused(self, paused: bool) -> None:
        """Stop enforcing every limit (kept and listed), or enforce them again."""
        with self._lock:
            if self._limits.paused == paused:
                return
            self._change(lambda table: table.set_paused(paused))
            log.info("%s all limits (%d applications)", "paused" if paused else "resumed", len(self._limits.items()))

    def limits_paused(self) -> bool:
        with self._lock:
            return self._limits.paused

    # --- running ------------------------------------------------------------------

    def tick(self) -> None:
        """Once a second: follow processes, interfaces and counters."""
        with self._lock:
            before = self._index.all_pids()
            self._index.refresh()
            for pid in before - self._index.all_pids():
                self._datapath.forget_owner(pid)  # a reused pid is announced again
            for app_id, app in self._index.applications().items():
                self._known[app_id] = app.identity
                for pid in app.processes:
                    self._meter.remember(pid, app_id)
            try:
                self._apply_classes()
            except HelperError as error:  # e.g. an interface came back with a foreign qdisc
                log.error("could not keep the limits in place: %s", error)
            self._apply_tags()  # new processes of limited applications, whatever the classes did
            self._release_unused_slots()
            now = self._clock()
            self._meter.update(self._datapath.read_traffic(), now)
            by_slot = self._shaper.sent_up_bytes()
            self._meter.use_shaped_uploads(
                {app_id: by_slot[slot] for app_id in self._slots.apps() if (slot := self._slots.slot_of(app_id)) in by_slot},
                now,
            )

    def note_new_owner(self, pid: int) -> None:
        """A process opened its first socket: learn whose it is now, while it
        still runs, so the bytes of a short-lived process are attributed, and
        a new process of a limited application is limited at once."""
        process = read_process(pid)
        identity = identify(process) if process else None
        if identity is None:
            return
        with self._lock:
            self._meter.remember(pid, identity.app_id)
            self._known[identity.app_id] = identity
            if identity.app_id in self._limits and not self._limits.paused and pid not in self._process_slots:
                slot = self._slots.acquire(identity.app_id)
                self._datapath.set_process_slot(pid, slot)
                self._process_slots[pid] = slot

    def has_limits(self) -> bool:
        with self._lock:
            return bool(self._limits.items())

    # --- plan and apply -----------------------------------------------------------

    def _resolve_id(self, app_id: str) -> str:
        if app_id.startswith(PID_APP_PREFIX):
            pid_text = app_id[len(PID_APP_PREFIX):]
            if not pid_text.isdigit():
                raise InvalidArgument(f"not a process id: {pid_text!r}")
            process = read_process(int(pid_text))
            identity = identify(process) if process else None
            if identity is None:
                raise NoSuchApplication(f"no application has process {pid_text}")
            self._index.refresh()
            return identity.app_id
        if self._index.application(app_id) is None and app_id not in self._limits:
            self._index.refresh()
            if self._index.application(app_id) is None:
                raise NoSuchApplication(f"no running application is called {app_id!r}")
        return app_id

    def _change(self, edit: Callable[[LimitTable], None]) -> None:
        before = self._limits.copy()
        edit(self._limits)
        try:
            self._apply()
            self._save_rules(self._limits)
        except HelperError:
            self._limits = before
            self._apply_quietly()
            raise

    def _apply_quietly(self) -> None:
        try:
            self._apply()
        except HelperError as error:
            log.error("rollback incomplete: %s", error)

    def _apply(self) -> None:
        """Classes first, then tags: a tagged packet always finds its class."""
        self._apply_classes()
        self._apply_tags()
        self._release_unused_slots()

    def _apply_classes(self) -> None:
        wanted: dict[Direction, Classes] = {Direction.UP: {}, Direction.DOWN: {}}
        for app_id, limits in self._limits.enforced():
            slot = self._slots.acquire(app_id)
            for direction, limit in limits.items():
                wanted[direction][slot] = ClassSpec(limit.rate_bps, limit.burst_bytes)
        self._shaper.reconcile(wanted)

    def _release_unused_slots(self) -> None:
        limited = {app_id for app_id, _ in self._limits.enforced()}
        for app_id in self._slots.apps() - limited:
            self._slots.release(app_id)

    def _apply_tags(self) -> None:
        wanted_pids: dict[int, int] = {}
        wanted_cgroups: dict[int, int] = {}
        for app_id, _limits in self._limits.enforced():
            slot = self._slots.acquire(app_id)
            app = self._index.application(app_id)
            if app is None:
                continue  # not running: its rule waits for it
            for pid in app.processes:
                wanted_pids[pid] = slot
            if app.identity.scope:
                scope_id = cgroup_id(self._datapath.cgroup_root, app.identity.scope)
                if scope_id is not None:
                    wanted_cgroups[scope_id] = slot
        alive = {pid for pids in self._index.pids_by_app().values() for pid in pids}
        for pid in list(self._process_slots):
            if pid not in wanted_pids:
                if pid in alive:
                    self._datapath.set_process_slot(pid, 0)  # untag its open sockets
                else:
                    self._datapath.forget_process(pid)
                del self._process_slots[pid]
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
