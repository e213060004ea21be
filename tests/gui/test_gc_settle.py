"""The collector settles once, after the first poll is on screen (gui/gc_settle.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from chadthrottle.gui.gc_settle import YOUNG_THRESHOLD, settle_after_first
from PySide6.QtCore import QObject, Signal


class Shown(QObject):
    shown = Signal()


@pytest.fixture
def collector() -> Iterator[None]:
    """Whatever a test does to the collector is undone for the next; and each
    starts unfrozen: a test that started the window before it in the same
    process (a lane of scripts/run-tests takes files in another order) left
    its start-up frozen, which gc.freeze keeps for the process."""
    thresholds = gc.get_threshold()
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_the_first_poll_freezes_the_start_up_once_and_later_polls_do_not(qtbot, collector) -> None:  # type: ignore[no-untyped-def]
    source = Shown()
    young, middle, oldest = gc.get_threshold()
    settle_after_first(source.shown, delay_ms=10)
    qtbot.wait(30)
    assert gc.get_freeze_count() == 0  # nothing before the first data
    source.shown.emit()
    qtbot.waitUntil(lambda: gc.get_freeze_count() > 0, timeout=2000)
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, oldest)
    gc.unfreeze()
    gc.set_threshold(young, middle, oldest)
    source.shown.emit()  # the second poll: no second freeze
    qtbot.wait(50)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == (young, middle, oldest)


def test_cycles_made_after_settling_are_still_collected(qtbot, collector) -> None:  # type: ignore[no-untyped-def]
    source = Shown()
    settle_after_first(source.shown, delay_ms=0)
    source.shown.emit()
    qtbot.waitUntil(lambda: gc.get_freeze_count() > 0, timeout=2000)

    class Node:
        pass

    node = Node()
    node.me = node  # type: ignore[attr-defined]
    gone: list[bool] = []
    watch = weakref.ref(node, lambda _ref: gone.append(True))
    del node
    assert watch() is not None  # only a cycle holds it: reference counting cannot free it
    gc.collect()
    assert gone == [True]
