"""A poll asked for while one is under way is not lost (43fa1cb, walk28).

The worker cleared its wake as it began to sleep, so a wake that came during
a poll (the rules dialog's "poll now" after a quota change, answered while a
poll was out) waited out the whole interval: the dialog's "Done." and the
listing that shows the change came a refresh later. The rules dialog's test
wakes the worker while it sleeps; this one wakes it mid-poll, on the real
worker and its event loop, the helper a stand-in whose listing answers when
told.
"""

from __future__ import annotations

import asyncio
import threading

from chadthrottle.gui.ipc.worker import HelperWorker, WorkerSignals

from tests.gui.quiet_helper import QuietHelper

NEVER_S = 3600.0  # the refresh interval: the next poll is not the interval's


class _HeldListing(QuietHelper):
    """A helper whose first ListApplications answers only when released."""

    def __init__(self) -> None:
        self.first_asked = threading.Event()
        self.asked_again = threading.Event()
        self.release = asyncio.Event()  # set on the worker's loop
        self.listings = 0

    async def list_applications(self) -> list[object]:
        self.listings += 1
        if self.listings == 1:
            self.first_asked.set()
            await self.release.wait()
        else:
            self.asked_again.set()
        return []


def test_a_wake_during_a_poll_polls_again_after_it() -> None:
    client = _HeldListing()
    worker = HelperWorker(lambda: client, WorkerSignals(), NEVER_S)  # type: ignore[arg-type,return-value]
    worker.start()
    try:
        client.first_asked.wait()
        worker.wake()  # mid-poll: its listing was asked before what woke it
        worker._loop.call_soon_threadsafe(client.release.set)  # after the wake, in order
        # Not the interval's poll an hour later: one right after this one.
        assert client.asked_again.wait(120), "the wake during the poll was lost"
    finally:
        worker.stop()
