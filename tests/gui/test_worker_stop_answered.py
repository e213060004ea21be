"""Quitting as the helper answers ends the worker thread (flake31).

Python 3.11's asyncio.wait_for returns the answer of a call that completed in
the loop turn its task was cancelled in, and the cancel is lost (CPython
gh-86296, fixed in 3.12): the poll loop went on polling after stop() had
given up waiting for it, and a thread named chadthrottle-helper-ipc lived on
in the test process (CI m3: three GUI tests failed at teardown in a row, each
its own worker stopped within 0.1 s). Here the helper's answer is held until
the quit's cancel is queued on the worker's loop, the turn the race needs.
"""

from __future__ import annotations

import threading
import time

from chadthrottle.gui.ipc.worker import HelperWorker, WorkerSignals

from tests.gui.quiet_helper import QuietHelper


class _AnsweredAsTheQuitComes(QuietHelper):
    """ListBackends answers once stop() has queued its cancel, in that turn."""

    def __init__(self) -> None:
        self.worker: HelperWorker | None = None
        self.asked = threading.Event()

    async def list_backends(self) -> list[object]:
        worker = self.worker
        assert worker is not None
        self.asked.set()
        quit_queued = lambda: any(  # noqa: E731
            getattr(handle, "_callback", None) == worker._cancel_main
            for handle in worker._loop._ready  # type: ignore[attr-defined]
        )
        while not quit_queued():  # the loop's thread held, as in a busy turn
            time.sleep(0.001)
        return []


def test_quitting_as_a_call_answers_ends_the_thread() -> None:
    client = _AnsweredAsTheQuitComes()
    worker = HelperWorker(lambda: client, WorkerSignals(), 0.05)  # type: ignore[arg-type,return-value]
    client.worker = worker
    worker.start()
    try:
        assert client.asked.wait(5)
        started = time.monotonic()
        worker.stop()
        assert not worker._thread.is_alive(), "the poll loop went on after the quit"
        assert time.monotonic() - started < 0.5
    finally:
        worker.stop()  # a cancel the loop does not lose this time, failed or not
