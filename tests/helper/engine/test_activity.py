"""An application is active (a class of its own under a link, issue 16) when
it moves at least ACTIVE_BPS over ACTIVE_WINDOW_S, not on any byte
(helper/engine/activity.py; issue 13 review L6)."""

from __future__ import annotations

from chadthrottle.helper.engine.activity import ACTIVE_BPS, ACTIVE_WINDOW_S, ActivityWatch

IDLE_S = 30.0


def _ticks(watch: ActivityWatch, app: str, per_tick: int, ticks: int, start: float = 0.0) -> float:
    total = 0
    for tick in range(ticks):
        total += per_tick
        watch.note({app: total}, start + tick)
    return start + ticks - 1


def test_a_keepalive_is_not_use_and_a_transfer_is_at_once() -> None:
    watch = ActivityWatch(IDLE_S)
    _ticks(watch, "chat", 200, 20)  # 200 B/s for 20 s: keepalives, presence
    assert "chat" not in watch.active_at
    watch.note({"chat": 4_000, "bulk": 100_000}, 20.0)  # the bulk transfer's first tick
    assert set(watch.active_at) == {"bulk"}


def test_a_small_steady_rate_counts_over_the_window_not_per_tick() -> None:
    """Just above ACTIVE_BPS, spread over the window: active once the window
    holds enough; just below: never."""
    above, below = ActivityWatch(IDLE_S), ActivityWatch(IDLE_S)
    _ticks(above, "a", int(ACTIVE_BPS * 1.1), int(ACTIVE_WINDOW_S) + 1)
    _ticks(below, "a", int(ACTIVE_BPS * 0.9), 10)
    assert "a" in above.active_at and "a" not in below.active_at


def test_active_stays_for_the_idle_time_and_a_falling_total_is_no_use() -> None:
    watch = ActivityWatch(IDLE_S)
    watch.note({"a": 1_000_000}, 0.0)
    assert watch.active_at == {"a": 0.0}
    watch.note({"a": 10}, 4.0)  # its busy process exited: its bytes left the total
    watch.note({"a": 20}, 5.0)
    assert watch.active_at == {"a": 0.0}  # not active again, still within the idle time
    watch.note({"a": 30}, IDLE_S + 0.5)
    assert watch.active_at == {}
