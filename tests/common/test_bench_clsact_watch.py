"""bench/toggle_graft.ClsactWatch counts a graft that comes right after it is
entered: its first reading is taken before the caller goes on, not whenever
its thread gets to it (a fake has_clsact: which thread reads, and when, is
what is tested)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import bench.toggle_graft as toggle_graft
from bench.toggle_graft import ClsactWatch


def test_a_graft_right_after_entering_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The watch's thread reads only once the caller has grafted, as a loaded
    machine schedules it: with its first reading in that thread the clsact was
    there from the start and no graft was counted (the toggled-limit test read
    0 grafts in 3 toggles in a two-lane run)."""
    grafted, seen = threading.Event(), threading.Event()
    reads_after: list[bool] = []

    def has_clsact(_pair: Any) -> bool:
        if threading.current_thread() is threading.main_thread():
            return grafted.is_set()
        grafted.wait(10.0)
        reads_after.append(True)
        if len(reads_after) >= 3:
            seen.set()
        return True

    monkeypatch.setattr(toggle_graft, "has_clsact", has_clsact)
    with ClsactWatch(None) as watch:  # type: ignore[arg-type]
        grafted.set()  # the caller's set_limit: the clsact grafted
        assert seen.wait(10.0), "the watch's thread never read"
    assert watch.grafts == 1
