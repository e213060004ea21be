"""The garbage collector, once the window is up: out of the way of the polls.

Each poll makes thousands of short-lived containers (dbus-fast's variants for
200 applications' ``a{sv}``, the decoded records) that reference counting
frees within the poll. With Python's default thresholds they still set off
about 8 young collections a second, and every 15-20 s a full collection
walking the ~80,000 objects of the start-up (modules, Qt wrappers,
pyqtgraph): together about 4 ms of CPU a second, 0.4 % of a core
(bench/gui_perf.py; docs/benchmarks.md, "GUI CPU per poll").

So, once the first data is on screen, what exists then is collected one last
time and frozen (``gc.freeze``: it lives as long as the window, and the
helper does the same), and the young generation waits for 10,000 net new
containers instead of 700: a poll's burst comes and goes below that. Cycles
are still collected, just less often.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QTimer, SignalInstance

YOUNG_THRESHOLD = 10_000
# After the first data: its paint and the start-up's last work go first.
SETTLE_DELAY_MS = 1000


def settle() -> None:
    """Collect what the start-up left, freeze the rest, collect young objects seldom."""
    gc.collect()
    gc.freeze()
    _young, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)


def settle_after_first(shown: SignalInstance, delay_ms: int = SETTLE_DELAY_MS) -> None:
    """settle() once, ``delay_ms`` after ``shown`` (the first poll on screen) first fires."""

    def first() -> None:
        shown.disconnect(first)
        QTimer.singleShot(delay_ms, settle)

    shown.connect(first)
