"""Limit changes handed to the engine in batches.

A change costs a reconcile with the kernel (netlink round trips, about a
millisecond), so one engine call per SetLimit capped the helper at a few
hundred calls a second. Here a change waits in a queue; the engine thread takes
everything queued at the moment it gets to it and applies it as one update. A
lone call is not delayed (its batch starts at once), and under load the batches
grow by themselves while the previous one is being applied.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

from chadthrottle.helper.adapter.engine_thread import EngineThread
from chadthrottle.helper.engine.api import ChangeOutcome, LimitChange

Waiting = tuple[LimitChange, "asyncio.Future[str]"]


class ChangeBatcher:
    def __init__(
        self, engine_thread: EngineThread, apply: Callable[[Sequence[LimitChange]], list[ChangeOutcome]]
    ) -> None:
        self._engine_thread = engine_thread
        self._apply = apply
        self._lock = threading.Lock()  # the queue is filled on the loop and taken on the engine thread
        self._queue: list[Waiting] = []
        self._scheduled = False

    async def submit(self, change: LimitChange) -> str:
        """The resolved application id once the change is in force; raises the
        HelperError that refused it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        with self._lock:
            self._queue.append((change, future))
            start = not self._scheduled
            self._scheduled = True
        if start:
            loop.create_task(self._run_batch())
        return await future

    async def _run_batch(self) -> None:
        try:
            batch, outcomes = await self._engine_thread.run(self._take_and_apply)
        except Exception as error:  # never reached the engine thread (e.g. the helper is stopping)
            with self._lock:
                batch, self._queue, self._scheduled = self._queue, [], False
            outcomes = error
        for index, (_change, future) in enumerate(batch):
            if future.done():
                continue  # its caller gave up
            outcome = outcomes if isinstance(outcomes, Exception) else outcomes[index]
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def _take_and_apply(self) -> tuple[list[Waiting], list[ChangeOutcome] | Exception]:
        """On the engine thread: everything queued now, in one engine call; an
        unexpected error fails the whole batch (each caller gets a generic failure)."""
        with self._lock:
            batch, self._queue = self._queue, []
            self._scheduled = False
        try:
            return batch, self._apply([change for change, _ in batch])
        except Exception as error:
            return batch, error
