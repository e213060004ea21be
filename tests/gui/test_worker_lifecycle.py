"""A helper worker that never starts leaves nothing for the collector to
close: an unclosed event loop warned from its finalizer at whatever ran then,
and under the suite's warnings-as-errors the nested traceback (Python 3.11
parses source lines for its carets) broke an ast.parse in progress with
"SystemError: AST constructor recursion depth mismatch" (tests/gui's session
end, after AppControllers built for widget tests and dropped)."""

from __future__ import annotations

import ast
import asyncio
import gc
import logging
import threading

from chadthrottle.gui.ipc.worker import HelperWorker, WorkerSignals

from tests.gui.quiet_helper import QuietHelper


class _Dropped:
    """A worker in a reference cycle, as a window's controller holds it: only
    the cyclic collector ends it."""

    def __init__(self) -> None:
        self.me = self
        self.worker = HelperWorker(lambda: None, WorkerSignals(), 1.0)  # type: ignore[arg-type,return-value]


def test_a_worker_never_started_is_collected_quietly_even_inside_a_parse() -> None:
    _Dropped()
    thresholds = gc.get_threshold()
    gc.set_threshold(50)  # a collection while ast.parse builds its nodes
    try:
        ast.parse("x = [(1, 2), {3: 4}, 'a' + 'b']\n" * 2000)
    finally:
        gc.set_threshold(*thresholds)


class _Unanswered(QuietHelper):
    """A helper connection whose ListApplications has not answered yet (as a
    busy helper's, at the moment the user quits): the rest answers at once."""

    def __init__(self) -> None:
        self.asked = threading.Event()

    async def list_applications(self) -> list[object]:
        self.asked.set()
        await asyncio.Event().wait()  # no answer before the quit
        return []


def test_quitting_during_a_poll_logs_no_traceback(caplog) -> None:  # type: ignore[no-untyped-def]
    """Quit (tray, SIGTERM) while a poll waited for the helper logged
    "ERROR asyncio: _GatheringFuture exception was never retrieved" and a
    CancelledError traceback (seen under Xvfb on SIGTERM): wait_for around
    gather leaves the gather's CancelledError unread."""
    client = _Unanswered()
    worker = HelperWorker(lambda: client, WorkerSignals(), 0.05)  # type: ignore[arg-type,return-value]
    worker.start()
    assert client.asked.wait(5)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        worker.stop()
        gc.collect()  # an unread exception is said when its future is collected
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.text
