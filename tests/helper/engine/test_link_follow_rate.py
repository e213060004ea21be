"""The engine thread follows link events at once, but at most once per
LINK_EVENTS_MIN_GAP_S: anyone may flap links in a namespace of their own
where a limited program of theirs runs, and each follow holds the engine
lock (RunningEngine._run, its own loop with the kernel parts left out)."""

from __future__ import annotations

import threading
import time

from chadthrottle.helper.engine.estimation import LinkEstimation
from chadthrottle.helper.engine.factory import LINK_EVENTS_MIN_GAP_S, RunningEngine


class _Glancing(LinkEstimation):
    """An estimation judging a download raise (glancing) until told otherwise: counts glances."""

    def __init__(self) -> None:
        super().__init__()
        self.glances, self.judging = 0, True

    def glancing(self) -> bool:
        return self.judging

    def glance(self, engine: object) -> None:
        self.glances += 1


class _Loop:
    """RunningEngine._run on a thread, counting its follows and ticks."""

    def __init__(self, estimation: LinkEstimation | None = None) -> None:
        self.follows: list[float] = []
        self.ticks = 0
        engine = object.__new__(RunningEngine)
        engine._estimation = estimation or LinkEstimation()  # not estimating: no glances
        engine._stop = threading.Event()  # type: ignore[misc]
        engine._links_moved = threading.Event()
        engine.next_tick_in = lambda interval: 60.0  # type: ignore[method-assign]
        engine.follow_links = lambda: self.follows.append(time.monotonic())  # type: ignore[method-assign]
        engine.tick = self._tick  # type: ignore[method-assign]
        self.engine = engine
        self.thread = threading.Thread(target=engine._run, daemon=True)
        self.thread.start()

    def _tick(self) -> None:
        self.ticks += 1

    def stop(self) -> None:
        self.engine._stop.set()
        self.engine._links_moved.set()
        self.thread.join(5)


def test_a_flood_of_link_events_is_followed_a_few_times_a_second_and_a_lone_one_at_once() -> None:
    loop = _Loop()
    try:
        end = time.monotonic() + 0.6
        while time.monotonic() < end:  # a flapping link: an event every ms
            loop.engine._links_moved.set()
            time.sleep(0.001)
        flood = len(loop.follows)
        assert 1 <= flood <= 0.6 / LINK_EVENTS_MIN_GAP_S + 2, flood  # ~100 a second before
        time.sleep(LINK_EVENTS_MIN_GAP_S + 0.05)
        before = len(loop.follows)
        moved_at = time.monotonic()
        loop.engine._links_moved.set()  # after a quiet spell: followed within the gather
        deadline = moved_at + 1.0
        while len(loop.follows) == before and time.monotonic() < deadline:
            time.sleep(0.002)
        assert len(loop.follows) == before + 1
        assert loop.follows[-1] - moved_at < LINK_EVENTS_MIN_GAP_S / 2
        assert loop.ticks == 0  # no tick was due
    finally:
        loop.stop()
    assert not loop.thread.is_alive()


def test_while_a_download_raise_is_judged_the_loop_glances_between_ticks() -> None:
    """A step past the link is taken back at a glance, within a few tenths of a second
    (capacity_estimate.GLANCE_FALLS): the loop wakes every GLANCE_S for it while the
    estimation is glancing, with no tick due, and no more once it is not."""
    estimation = _Glancing()
    loop = _Loop(estimation)
    try:
        while estimation.glances < 3 and loop.thread.is_alive():
            time.sleep(0.01)
        estimation.judging = False
        loop.engine._links_moved.set()  # a wake-up: after it, the loop asks afresh
        while not loop.follows:
            time.sleep(0.01)
        glances = estimation.glances
        loop.engine._links_moved.set()
        while len(loop.follows) < 2:
            time.sleep(0.01)
        assert estimation.glances == glances and loop.ticks == 0
    finally:
        loop.stop()
    assert not loop.thread.is_alive()
