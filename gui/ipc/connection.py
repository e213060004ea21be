"""HelperConnection: the GUI thread's handle on the helper.

It starts the worker thread, turns the worker's signals into state (owned
here, in the GUI thread) and re-emits what views need. Nothing here blocks:
``set_limit`` returns at once and its outcome arrives as ``limitFinished``.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence

from chadthrottle.contract import BOTH_DIRECTIONS, ErrorName
from chadthrottle.gui.ipc.client_protocol import ClientFactory, HelperClientLike
from chadthrottle.gui.ipc.error_text import describe_error
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.ipc.status_logic import Observations, derive_status, last_stop_seen
from chadthrottle.gui.ipc.worker import HelperWorker, Snapshot, WorkerSignals
from chadthrottle.helper_run_state import LastStop
from chadthrottle.usage_contract import UsageResolution
from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LimitRequest:
    """One limit change the user asked for, echoed back with its outcome."""

    request_id: int
    app_id: str
    direction: str  # "down", "up" or "both" (clearing only)
    rate_bps: int | None  # None: clear


class HelperConnection(QObject):
    """Owns the worker thread and the helper state; emits results as signals."""

    statusChanged = Signal(object)  # HelperStatus
    applicationsUpdated = Signal(object)  # Snapshot
    backendsUpdated = Signal(object)  # tuple[BackendInfo, ...]
    # request, error name ("" on success), words for the user ("" on success)
    limitFinished = Signal(object, str, str)
    connectionsUpdated = Signal(str, object, float)  # app id, list[ConnectionInfo], came at
    processesUpdated = Signal(str, object)  # app id, list[ProcessTraffic] (from API 6 helpers)
    pausedChanged = Signal(object)  # bool, or None when the helper cannot pause limits
    # paused as asked, error name ("" on success), words for the user ("" on success)
    pauseFinished = Signal(bool, str, str)
    # GetUsage answered: the asker's key, rows (None: the helper has no GetUsage), error name ("" on success)
    usageFetched = Signal(str, object, str)
    # call() answered: the asker's key, the result, error name ("" on success), words for the user
    callFinished = Signal(str, object, str, str)

    def __init__(
        self,
        client_factory: ClientFactory,
        refresh_interval_s: float = 1.0,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._signals = WorkerSignals(self)
        self._worker = HelperWorker(client_factory, self._signals, refresh_interval_s)
        self._seen = Observations()
        self._status = derive_status(self._seen)
        self._pending: dict[int, LimitRequest] = {}
        self._request_ids = itertools.count(1)
        self._signals.applications.connect(self._on_applications)
        self._signals.backends.connect(self._on_backends)
        self._signals.lastStop.connect(self._on_last_stop)
        self._signals.pollFailed.connect(self._on_poll_failed)
        self._signals.limitDone.connect(self._on_limit_done)
        self._signals.limitFailed.connect(self._on_limit_failed)
        self._signals.connections.connect(self.connectionsUpdated)
        self._signals.processes.connect(self.processesUpdated)
        self._signals.paused.connect(self._on_paused)
        self._signals.pauseDone.connect(self._on_pause_done)
        self._signals.usage.connect(self.usageFetched)
        self._signals.callDone.connect(self._on_call_done)
        self._limits_paused: bool | None = None

    # --- public API -------------------------------------------------------------------

    @property
    def status(self) -> HelperStatus:
        return self._status

    @property
    def backends(self) -> tuple[object, ...]:
        return self._seen.backends

    @property
    def limits_paused(self) -> bool | None:
        """Whether the helper has every limit paused; None: unknown or unsupported."""
        return self._limits_paused

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        """Stop the worker thread; safe to call twice and before start()."""
        self._worker.stop()

    def set_refresh_interval(self, interval_s: float) -> None:
        self._worker.set_interval(interval_s)

    def watch_connections(self, app_ids: Sequence[str]) -> None:
        """Poll the open connections of these applications too (empty to stop)."""
        self._worker.watch_connections(app_ids)

    def watch_processes(self, app_ids: Sequence[str]) -> None:
        """Poll these applications' processes' rates too, with their connections
        (the expanded rows; empty to stop)."""
        self._worker.watch_processes(app_ids)

    def retry(self) -> None:
        """The user asked to try again: forget a limit denial and poll now."""
        self._observe(limit_denied=False)
        self._worker.wake()

    def poll_now(self) -> None:
        """Poll now, not at the next tick: a change's effect is shown at once."""
        self._worker.wake()

    def set_limit(self, app_id: str, direction: str, rate_bps: int | None) -> LimitRequest:
        """Ask the helper to set (or, for None, clear) a limit. Never blocks."""
        if rate_bps is None and not direction:
            direction = BOTH_DIRECTIONS
        request = LimitRequest(next(self._request_ids), app_id, direction, rate_bps)
        self._pending[request.request_id] = request
        log.info("limit request %d: %s %s -> %s", request.request_id, app_id, direction, rate_bps)
        self._worker.request_limit(request.request_id, app_id, direction, rate_bps)
        return request

    def set_limits_paused(self, paused: bool) -> None:
        """Ask the helper to pause (or resume) every limit. Never blocks; the
        outcome comes as pauseFinished, the new state as pausedChanged."""
        log.info("%s all limits", "pausing" if paused else "resuming")
        self._worker.request_pause(paused)

    def call(
        self, key: str, call: Callable[[HelperClientLike], Awaitable[object]], reads: bool = False
    ) -> None:
        """Run call(client) off the GUI thread; the outcome comes as callFinished(key, ...).
        A change (not ``reads``) that succeeds has the backends read at the next poll."""
        self._worker.request_call(key, call, reads)

    def _on_call_done(self, key: str, result: object, error_name: str, message: str) -> None:
        self.callFinished.emit(
            key, result, error_name, describe_error(error_name, message).words if error_name else ""
        )

    def fetch_usage(
        self, key: str, app_id: str, since: int, until: int, resolution: UsageResolution
    ) -> None:
        """Ask for usage history off the GUI thread; the answer comes as usageFetched(key, ...)."""
        self._worker.request_usage(key, app_id, since, until, resolution)

    # --- worker results (queued into the GUI thread) ----------------------------------

    def _on_applications(self, snapshot: Snapshot) -> None:
        # answering: how an earlier helper ended says nothing of the next time it goes
        self._observe(poll_error_name=None, has_polled_ok=True, last_stop=LastStop.UNKNOWN)
        self.applicationsUpdated.emit(snapshot)

    def _on_backends(self, backends: list[object]) -> None:
        self._observe(backends=tuple(backends))
        self.backendsUpdated.emit(self._seen.backends)

    def _on_poll_failed(self, error_name: str, message: str) -> None:
        if error_name != self._seen.poll_error_name:
            log.info("helper unavailable: %s (%s)", error_name, message)
        self._observe(poll_error_name=error_name)

    def _on_last_stop(self, found: LastStop) -> None:
        last_stop = last_stop_seen(self._seen, found) if isinstance(found, LastStop) else None
        if last_stop is not None and last_stop is not self._seen.last_stop:
            log.info("the helper's run record says: %s", last_stop.value)
            self._observe(last_stop=last_stop)

    def _on_limit_done(self, request_id: int, resolved_app_id: str) -> None:
        request = self._pending.pop(request_id, None)
        if request is not None:
            self.limitFinished.emit(request, "", "")

    def _on_limit_failed(self, request_id: int, error_name: str, message: str) -> None:
        request = self._pending.pop(request_id, None)
        if error_name == ErrorName.NOT_AUTHORIZED.value:
            self._observe(limit_denied=True)
        elif describe_error(error_name).state is HelperState.NOT_RUNNING:
            self._worker.wake()
        if request is not None:
            self.limitFinished.emit(request, error_name, describe_error(error_name, message).words)

    def _on_paused(self, paused: bool | None) -> None:
        if paused != self._limits_paused:
            self._limits_paused = paused
            self.pausedChanged.emit(paused)

    def _on_pause_done(self, paused: bool, error_name: str, message: str) -> None:
        words = describe_error(error_name, message).words if error_name else ""
        self.pauseFinished.emit(paused, error_name, words)

    def _observe(self, **changes: object) -> None:
        self._seen = dataclasses.replace(self._seen, **changes)  # type: ignore[arg-type]
        status = derive_status(self._seen)
        if status != self._status:
            self._status = status
            self.statusChanged.emit(status)
