"""The asyncio side of the helper connection, run in its own thread.

This code owns the D-Bus client and nothing else: it polls, it performs the
limit requests it is handed, and it reports every outcome by emitting a Qt
signal. It never touches GUI state; the GUI thread decides what results mean.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from chadthrottle.contract import BOTH_DIRECTIONS, ApplicationInfo, Direction, RuleInfo
from chadthrottle.gui.ipc.client_protocol import ClientFactory, HelperClientLike
from chadthrottle.gui.ipc.error_text import (
    BUS_UNAVAILABLE,
    UNEXPECTED,
    describe_error,
    error_name_of,
)
from chadthrottle.gui.ipc.process_names import ProcessNames
from chadthrottle.gui.ipc.state import HelperState
from chadthrottle.helper_run_state import LastStop
from chadthrottle.usage_contract import UsageResolution
from PySide6.QtCore import QObject, Signal, SignalInstance

log = logging.getLogger(__name__)

BACKENDS_EVERY_N_POLLS = 10
MAX_RETRY_DELAY_S = 5.0
# The helper off the bus while its process lives (its run record: stopping, or
# starting): asked again this soon, so "its limits are off" comes once it is.
STOPPING_RETRY_S = 0.25
NOT_AUTHORIZED_RETRY_DELAY_S = 30.0
CALL_TIMEOUT_S = 30.0  # an interactive polkit prompt may take a while
# How long quitting waits for the thread: cancelling calls in flight and closing
# the bus connection takes milliseconds; a user who chose Quit waits no longer.
STOP_TIMEOUT_S = 1.0
# A cancel can be lost: Python 3.11's asyncio.wait_for returns the answer of a
# call that completed in the loop turn its task was cancelled in (CPython
# gh-86296, fixed in 3.12), and the poll loop went on after stop() gave up on
# it (flake31). So quitting cancels again this often until each task ended.
CANCEL_AGAIN_S = 0.02
# After these the bus connection itself is suspect and is made again.
# A helper from before SetLimitsPaused answers this: pausing is then unsupported.
UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"
_RECONNECT_ON = frozenset(
    {
        BUS_UNAVAILABLE,
        UNEXPECTED,
        "org.freedesktop.DBus.Error.Disconnected",
        "org.freedesktop.DBus.Error.NoServer",
    }
)


@dataclass(frozen=True)
class Snapshot:
    """One ListApplications result plus what the worker learnt around it."""

    applications: tuple[ApplicationInfo, ...]
    process_names: dict[int, str] = field(default_factory=dict)
    received_at: float = 0.0  # time.monotonic()
    # ListRules: whose rules exist, the viewer's own under an administrator's
    # among them; None from a helper older than rule owners.
    rules: tuple[RuleInfo, ...] | None = None
    # When the poll was sent (time.monotonic()): an answer to it may predate a
    # limit the helper confirmed after that (ApplicationsModel keeps the confirmed one).
    asked_at: float | None = None


def measuring_where_ruled(
    applications: Sequence[ApplicationInfo], rules: Sequence[RuleInfo] | None
) -> list[ApplicationInfo]:
    """The listing with every direction a pause or a resume changes marked
    measuring (its rate not known), as the helper lists one whose rules in
    force just changed: a limit, block, quota, schedule or priority on it, or
    a stored rule (ListRules). Under Xvfb a poll sent before "Resume limits"
    and answered after it listed a rate measured with nothing held."""
    ruled = {(rule.app_id, rule.direction) for rule in rules or ()}

    def changed(app: ApplicationInfo, direction: Direction) -> bool:
        return bool(app.limit_bps(direction) > 0 or app.blocked(direction) or app.quota(direction)[0]
                    or (app.down_schedule if direction is Direction.DOWN else app.up_schedule)
                    or app.priority != "normal" or (app.id, direction.value) in ruled)  # fmt: skip

    return [
        dataclasses.replace(
            app,
            down_measuring=app.down_measuring or changed(app, Direction.DOWN),
            up_measuring=app.up_measuring or changed(app, Direction.UP),
        )
        for app in applications
    ]


class WorkerSignals(QObject):
    """Signals the worker emits; created in (and delivered to) the GUI thread."""

    applications = Signal(object)  # Snapshot
    backends = Signal(object)  # list[BackendInfo]
    pollFailed = Signal(str, str)  # error name, message
    limitDone = Signal(int, str)  # request id, resolved app id
    limitFailed = Signal(int, str, str)  # request id, error name, message
    # app id, list[ConnectionInfo], when the answer came (time.monotonic(), this
    # thread): a rate is over the time between the helper's answers, not between
    # the GUI thread's turns to them (ConnectionRates)
    connections = Signal(str, object, float)
    # app id, list[ProcessTraffic] (API 6; never from older helpers)
    processes = Signal(str, object)
    paused = Signal(object)  # bool, or None: the helper cannot pause limits
    pauseDone = Signal(bool, str, str)  # paused as asked, error name ("" on success), message
    # GetUsage: the asker's key, the rows (None: the helper has no GetUsage), error name ("" on success)
    usage = Signal(str, object, str)
    # request_call: the asker's key, the call's result, error name ("" on success), message
    callDone = Signal(str, object, str, str)
    # the helper is gone: how it ended, from its run record (a LastStop), sent before pollFailed
    lastStop = Signal(object)


class HelperWorker:
    """Polls the helper and runs limit requests on a private event loop."""

    def __init__(
        self, client_factory: ClientFactory, signals: WorkerSignals, interval_s: float
    ) -> None:
        self._client_factory = client_factory
        self._signals = signals
        self._interval_s = interval_s
        # Made by start(): a worker that never starts (a window built and
        # dropped) holds no loop. An unclosed one warned from its finalizer at
        # whatever ran then: inside ast.parse, under pytest's warnings-as-errors,
        # the nested traceback broke the parse (SystemError, tests/gui).
        self._loop: asyncio.AbstractEventLoop
        # A daemon: quitting must never wait on the helper. stop() still ends it
        # cleanly; a thread stuck past that is left to die with the process.
        self._thread = threading.Thread(
            target=self._run, name="chadthrottle-helper-ipc", daemon=True
        )
        self._wake: asyncio.Event | None = None
        self._main_task: asyncio.Task[None] | None = None
        self._client: HelperClientLike | None = None
        self._connecting = asyncio.Lock()
        self._process_names = ProcessNames()
        self._stopping = False
        # The applications whose connections are polled too: the selected one and
        # the expanded rows, never every application.
        self._connections_of: tuple[str, ...] = ()
        # Whose processes' rates are polled with their connections: the expanded rows.
        self._processes_of: tuple[str, ...] = ()
        # Whose last ListConnections answered (worker thread only): one failed call
        # then keeps that answer shown rather than sending on "none".
        self._connections_answered: set[str] = set()
        # False once the helper answered ListProcesses with UnknownMethod (API < 6).
        self._processes_listed = True
        # When SetLimitsPaused last succeeded: a poll sent before it may answer the old state.
        self._paused_set_at = float("-inf")
        # Which backends hold the limits changes with a pause: read them again at the
        # next poll (read every few polls, "Backend: tc, ebpf" stayed ~10 s after Resume).
        self._backends_due = False
        self._paused_seen: bool | None = None

    # --- called from the GUI thread -------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread.start()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Cancel everything, close the bus connection, join the thread."""
        if not self._thread.is_alive():
            return
        self._stopping = True
        self._loop.call_soon_threadsafe(self._cancel_main)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            frame = sys._current_frames().get(self._thread.ident or 0)
            where = "".join(traceback.format_stack(frame)) if frame is not None else "?"
            log.warning("helper IPC thread did not stop within %.1f s, at:\n%s", timeout_s, where)

    def set_interval(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self.wake()

    def wake(self) -> None:
        """Poll now instead of waiting out the current delay."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._set_wake)

    def watch_connections(self, app_ids: Sequence[str]) -> None:
        """Also poll these applications' connections; fetch those new to the list now."""
        wanted = tuple(dict.fromkeys(app_id for app_id in app_ids if app_id))
        new = [app_id for app_id in wanted if app_id not in self._connections_of]
        self._connections_of = wanted
        if new and self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._fetch_new_connections(new), self._loop)

    def watch_processes(self, app_ids: Sequence[str]) -> None:
        """Also poll these applications' processes' rates (they must be watched
        for connections too); fetch those new to the list now."""
        wanted = tuple(dict.fromkeys(app_id for app_id in app_ids if app_id))
        new = [app_id for app_id in wanted if app_id not in self._processes_of]
        self._processes_of = wanted
        if new and self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._fetch_new_processes(new), self._loop)

    def request_limit(
        self, request_id: int, app_id: str, direction: str, rate_bps: int | None
    ) -> None:
        """Queue SetLimit (or ClearLimit for None); the outcome comes as a signal."""
        if not self._thread.is_alive():
            self._signals.limitFailed.emit(request_id, BUS_UNAVAILABLE, "not connected")
            return
        asyncio.run_coroutine_threadsafe(
            self._change_limit(request_id, app_id, direction, rate_bps), self._loop
        )

    def request_pause(self, paused: bool) -> None:
        """Queue SetLimitsPaused; the outcome comes as pauseDone."""
        if not self._thread.is_alive():
            self._signals.pauseDone.emit(paused, BUS_UNAVAILABLE, "not connected")
            return
        asyncio.run_coroutine_threadsafe(self._set_paused(paused), self._loop)

    def request_call(
        self, key: str, call: Callable[[HelperClientLike], Awaitable[object]], reads: bool = False
    ) -> None:
        """Queue one call on the helper client (the rules dialog's schedules,
        blocks and quotas); its result comes as callDone under ``key``."""
        if not self._thread.is_alive():
            self._signals.callDone.emit(key, None, BUS_UNAVAILABLE, "not connected")
            return
        asyncio.run_coroutine_threadsafe(self._call(key, call, reads), self._loop)

    def request_usage(
        self, key: str, app_id: str, since: int, until: int, resolution: UsageResolution
    ) -> None:
        """Queue GetUsage; the rows come as the usage signal, under ``key``."""
        if not self._thread.is_alive():
            self._signals.usage.emit(key, [], BUS_UNAVAILABLE)
            return
        asyncio.run_coroutine_threadsafe(
            self._get_usage(key, app_id, since, until, resolution), self._loop
        )

    # --- the worker thread ------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._main_task = self._loop.create_task(self._poll_forever())
            self._loop.run_until_complete(self._main_task)
        except asyncio.CancelledError:
            pass
        finally:
            # the calls first: cancelled, none fails over to a new connection
            self._loop.run_until_complete(self._cancel_the_rest())
            self._loop.run_until_complete(self._close_client())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def _cancel_main(self) -> None:
        """Cancel the poll loop, and again until it ended (CANCEL_AGAIN_S)."""
        task = self._main_task
        if task is not None and not task.done():
            task.cancel()
            self._loop.call_later(CANCEL_AGAIN_S, self._cancel_main)

    @staticmethod
    async def _cancel_the_rest() -> None:
        """Cancel every other task (fetches, limit requests, calls), again until
        each ended (CANCEL_AGAIN_S); what they raised is read, not warned of."""
        this, seen = asyncio.current_task(), set()
        while tasks := [task for task in asyncio.all_tasks() if task is not this]:
            seen.update(tasks)
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=CANCEL_AGAIN_S)
        for task in seen:
            if not task.cancelled():
                task.exception()

    def _set_wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _poll_forever(self) -> None:
        self._wake = asyncio.Event()
        polls = 0
        retry_delay_s = self._interval_s
        while True:
            started = time.monotonic()
            # A wake from here on asks for a poll after this one (its answer may
            # predate what woke it); _sleep no longer clears it (walk28).
            self._wake.clear()
            try:
                client = await self._ensure_client()
                if polls % BACKENDS_EVERY_N_POLLS == 0 or self._backends_due:
                    self._backends_due = False
                    backends = await asyncio.wait_for(client.list_backends(), CALL_TIMEOUT_S)
                    self._emit(self._signals.backends, list(backends))
                asked_at = time.monotonic()
                # Each call timed, the gather awaited as it is: a wait_for around
                # the gather left its CancelledError unread at a quit mid-poll
                # ("_GatheringFuture exception was never retrieved", a traceback).
                applications, paused, rules = await asyncio.gather(
                    asyncio.wait_for(client.list_applications(), CALL_TIMEOUT_S),
                    asyncio.wait_for(self._limits_paused(client), CALL_TIMEOUT_S),
                    asyncio.wait_for(self._rules(client), CALL_TIMEOUT_S),
                )
                if asked_at <= self._paused_set_at:
                    # Sent before a pause or a resume the helper confirmed since: perhaps
                    # answered before it, its rates are not those under the rules now.
                    applications = measuring_where_ruled(applications, rules)
                names = self._process_names.resolve(pid for app in applications for pid in app.pids)
                self._emit(
                    self._signals.applications,
                    Snapshot(tuple(applications), names, time.monotonic(), rules, asked_at),
                )
                if (
                    asked_at > self._paused_set_at
                ):  # else: perhaps answered before the pause changed
                    self._emit(self._signals.paused, paused)
                    if paused != self._paused_seen:  # paused elsewhere too (a CLI, another window)
                        self._backends_due = self._paused_seen is not None or self._backends_due
                        self._paused_seen = paused
                await self._poll_connections(client)
                polls += 1
                delay_s = self._interval_s - (time.monotonic() - started)
                retry_delay_s = self._interval_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure is reported, none is fatal
                name = error_name_of(exc)
                log.debug("poll failed: %s: %s", name, exc)
                found = self._say_last_stop(name)
                self._emit(self._signals.pollFailed, name, str(exc))
                if name in _RECONNECT_ON:
                    await self._close_client()
                polls = 0  # re-read backends once the helper is back
                if describe_error(name).state is HelperState.NOT_AUTHORIZED:
                    delay_s = NOT_AUTHORIZED_RETRY_DELAY_S
                elif found is LastStop.RUNNING:
                    # off the bus, its process alive: stopping (or starting). How it
                    # ends is said within this, not after a backed-off 1-5 s.
                    delay_s = min(retry_delay_s, STOPPING_RETRY_S)
                else:
                    delay_s = retry_delay_s
                    retry_delay_s = min(retry_delay_s * 2, MAX_RETRY_DELAY_S)
            await self._sleep(max(0.05, delay_s))

    def _say_last_stop(self, error_name: str) -> LastStop | None:
        """Read the gone helper's run record here, off the GUI thread (a file and
        its lock, well under a millisecond): stopped cleanly, or killed. None: not read."""
        read = getattr(self._client_factory, "last_stop", None)
        if read is None or describe_error(error_name).state is HelperState.NOT_AUTHORIZED:
            return None
        try:
            found = read()
        except Exception:  # never a reason to stop polling
            log.exception("reading the helper's run record failed")
            return None
        self._emit(self._signals.lastStop, found)
        return found if isinstance(found, LastStop) else None

    async def _limits_paused(self, client: HelperClientLike) -> bool | None:
        """Whether limits are paused; None from a helper that cannot pause."""
        try:
            return await client.get_limits_paused()
        except Exception as exc:
            if error_name_of(exc) == UNKNOWN_METHOD:
                return None
            raise

    async def _rules(self, client: HelperClientLike) -> tuple[RuleInfo, ...] | None:
        """The stored rules; None from a helper that cannot list them."""
        try:
            return tuple(await client.list_rules())
        except Exception as exc:
            if error_name_of(exc) == UNKNOWN_METHOD:
                return None
            raise

    async def _poll_connections(self, client: HelperClientLike) -> None:
        """One ListConnections per watched application, concurrently."""
        await asyncio.gather(
            *(self._fetch_connections(client, app_id) for app_id in self._connections_of)
        )

    async def _client_for_fetch(self, what: str) -> HelperClientLike | None:
        """The client for fetching a row's details now; None (logged) while
        the helper is absent, which the poll loop reports."""
        try:
            return await self._ensure_client()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("%s: %s", what, exc)
            return None

    async def _fetch_new_connections(self, app_ids: list[str]) -> None:
        """A row was just expanded or selected: its connections now, not at the next poll."""
        if (client := await self._client_for_fetch("connections")) is not None:
            await asyncio.gather(*(self._fetch_connections(client, app_id) for app_id in app_ids))

    async def _fetch_new_processes(self, app_ids: list[str]) -> None:
        """A row was just expanded: its processes' rates now, not at the next poll."""
        client = await self._client_for_fetch("processes")
        if client is not None and self._processes_listed:
            await asyncio.gather(*(self._fetch_processes(client, app_id) for app_id in app_ids))

    async def _fetch_connections(self, client: HelperClientLike, app_id: str) -> None:
        """The application's connections and, for an expanded row, its processes' rates."""
        if self._processes_listed and app_id in self._processes_of:
            await asyncio.gather(
                self._fetch_sockets(client, app_id), self._fetch_processes(client, app_id)
            )
        else:
            await self._fetch_sockets(client, app_id)

    async def _fetch_sockets(self, client: HelperClientLike, app_id: str) -> None:
        try:
            connections = await asyncio.wait_for(client.list_connections(app_id), CALL_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an application that just exited, or not ours to see
            received_at = time.monotonic()
            log.debug("connections of %s: %s", app_id, exc)
            if app_id in self._connections_answered:
                # One failure (a call that timed out, a busy helper) is not an answer
                # that every socket closed: the last answer stays a poll longer, so
                # a live connection's row does not vanish for one poll. Again, "none".
                self._connections_answered.discard(app_id)
                return
            connections = []
        else:
            received_at = time.monotonic()
            self._connections_answered.add(app_id)
        if app_id in self._connections_of:  # still wanted
            self._emit(self._signals.connections, app_id, list(connections), received_at)

    async def _fetch_processes(self, client: HelperClientLike, app_id: str) -> None:
        try:
            processes = await asyncio.wait_for(client.list_processes(app_id), CALL_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # exited, not ours to see, or a helper older than API 6
            if error_name_of(exc) == UNKNOWN_METHOD:
                self._processes_listed = False
            log.debug("processes of %s: %s", app_id, exc)
            processes = []
        if app_id in self._processes_of:  # still wanted
            self._emit(self._signals.processes, app_id, list(processes))

    async def _sleep(self, delay_s: float) -> None:
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay_s)

    async def _ensure_client(self) -> HelperClientLike:
        async with self._connecting:  # polls, limit requests and fetches share one connection
            if self._client is None:
                client = self._client_factory()
                await asyncio.wait_for(client.connect(), CALL_TIMEOUT_S)
                self._client = client
                log.info("connected to the system bus")
            return self._client

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        self._processes_listed = True  # the next helper may be newer
        if client is None:
            return
        try:
            result = client.close()
            if inspect.isawaitable(result):
                await asyncio.wait_for(result, 2.0)
        except Exception as exc:  # closing a dead connection may fail; that is fine
            log.debug("closing the client: %s", exc)

    async def _change_limit(
        self, request_id: int, app_id: str, direction: str, rate_bps: int | None
    ) -> None:
        try:
            client = await self._ensure_client()
            if rate_bps is None:
                which = None if direction in ("", BOTH_DIRECTIONS) else Direction(direction)
                resolved = await client.clear_limit(app_id, which)
            else:
                resolved = await client.set_limit(app_id, Direction(direction), rate_bps, 0)
            # "Enforcing ▼" stood ~10 s beside a new upload limit in force (gui34): the
            # backends' directions are read at the next poll, not the 10th
            self._backends_due = True
            self._emit(self._signals.limitDone, request_id, str(resolved))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            name = error_name_of(exc)
            log.info("limit request %d for %s failed: %s: %s", request_id, app_id, name, exc)
            self._emit(self._signals.limitFailed, request_id, name, str(exc))

    async def _call(
        self, key: str, call: Callable[[HelperClientLike], Awaitable[object]], reads: bool = False
    ) -> None:
        try:
            client = await self._ensure_client()
            result = await asyncio.wait_for(call(client), CALL_TIMEOUT_S)
            # which directions a backend holds may change with it: read at the next poll
            self._backends_due = self._backends_due or not reads
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            name = error_name_of(exc)
            log.info("call %s failed: %s: %s", key, name, exc)
            self._emit(self._signals.callDone, key, None, name, str(exc))
            return
        self._emit(self._signals.callDone, key, result, "", "")

    async def _set_paused(self, paused: bool) -> None:
        try:
            client = await self._ensure_client()
            await client.set_limits_paused(paused)
            self._paused_set_at = time.monotonic()
            self._backends_due = True
            # Poll now: the helper answers a change after publishing its listing, so
            # the rows say what it holds at once. After a Resume they read "not
            # enforced" (the listing asked while paused) until the next tick (gui32).
            self._set_wake()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            name = error_name_of(exc)
            log.info("%s limits failed: %s: %s", "pausing" if paused else "resuming", name, exc)
            self._emit(self._signals.pauseDone, paused, name, str(exc))
            return
        self._emit(self._signals.paused, paused)
        self._emit(self._signals.pauseDone, paused, "", "")

    async def _get_usage(
        self, key: str, app_id: str, since: int, until: int, resolution: UsageResolution
    ) -> None:
        try:
            client = await self._ensure_client()
            rows = await asyncio.wait_for(
                client.get_usage(app_id, since, until, resolution), CALL_TIMEOUT_S
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an older helper (UnknownMethod), or one away: the asker says so
            name = error_name_of(exc)
            log.debug("usage %s: %s: %s", key, name, exc)
            self._emit(self._signals.usage, key, None if name == UNKNOWN_METHOD else [], name)
            return
        self._emit(self._signals.usage, key, rows, "")

    def _emit(self, signal: SignalInstance, *args: object) -> None:
        # After stop() the receivers may be going away; say nothing more.
        if self._stopping:
            return
        try:
            signal.emit(*args)
        except RuntimeError:  # the receiving QObject is gone: the GUI is going away
            self._stopping = True
