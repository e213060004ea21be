"""A helper worker that never starts leaves nothing for the collector to
close: an unclosed event loop warned from its finalizer at whatever ran then,
and under the suite's warnings-as-errors the nested traceback (Python 3.11
parses source lines for its carets) broke an ast.parse in progress with
"SystemError: AST constructor recursion depth mismatch" (tests/gui's session
end, after AppControllers built for widget tests and dropped)."""

from __future__ import annotations

import ast
import gc

from chadthrottle.gui.ipc.worker import HelperWorker, WorkerSignals


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
