"""Engine calls handed to the engine thread in batches.

Every trip to the engine thread costs a thread hand-over and a wake-up of the
event loop, and a limit change costs a reconcile with the kernel (netlink
round trips), so one engine call per D-Bus call capped the helper at a few
hundred calls a second. Here a call waits in a queue; the engine thread takes
everything queued at the moment it gets to it and handles it in one job. A
lone call is not delayed (its batch starts at once); under load the batches
grow by themselves while the previous one is being handled.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from chadthrottle.helper.adapter.engine_thread import EngineThread

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    def __init__(
        self,
        engine_thread: EngineThread,
        handle: Callable[[Sequence[Item]], Sequence[Result | Exception]],
    ) -> None:
        """handle runs on the engine thread: one outcome per item, in order; an
        Exception outcome is raised to that item's caller alone."""
        self._engine_thread = engine_thread
        self._handle = handle
        self._lock = (
            threading.Lock()
        )  # the queue is filled on the loop and taken on the engine thread
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._scheduled = False
        # The loop keeps only weak references to tasks: a batch must not be
        # collected while its callers wait on its futures.
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        with self._lock:
            self._queue.append((item, future))
            start = not self._scheduled
            self._scheduled = True
        if start:
            task = loop.create_task(self._run_batch())
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return await future

    async def _run_batch(self) -> None:
        try:
            batch, outcomes = await self._engine_thread.run(self._take_and_handle)
        except Exception as error:  # never reached the engine thread (e.g. the helper is stopping)
            with self._lock:
                batch, self._queue, self._scheduled = self._queue, [], False
            outcomes = error
        for index, (_item, future) in enumerate(batch):
            if future.done():
                continue  # its caller gave up
            outcome = outcomes if isinstance(outcomes, Exception) else outcomes[index]
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def _take_and_handle(
        self,
    ) -> tuple[list[tuple[Item, asyncio.Future[Result]]], Sequence[Result | Exception] | Exception]:
        """On the engine thread: everything queued now, in one job; an unexpected
        error fails the whole batch (each caller gets a generic failure)."""
        with self._lock:
            batch, self._queue = self._queue, []
            self._scheduled = False
        try:
            return batch, self._handle([item for item, _ in batch])
        except Exception as error:
            return batch, error


def one_by_one(
    function: Callable[[Item], Result],
) -> Callable[[Sequence[Item]], list[Result | Exception]]:
    """A batch handler that calls function for each item; its error is that item's outcome."""

    def handle(items: Sequence[Item]) -> list[Result | Exception]:
        outcomes: list[Result | Exception] = []
        for item in items:
            try:
                outcomes.append(function(item))
            except Exception as error:
                outcomes.append(error)
        return outcomes

    return handle
