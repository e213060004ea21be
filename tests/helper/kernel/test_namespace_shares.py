"""One limit divided between namespaces by what each one uses
(helper/kernel/namespace_shares.py): max-min fair between those that want
more, what the others leave given to them, a floor for each, and shares that
follow a change of demand at the next read."""

from __future__ import annotations

import pytest
from chadthrottle.helper.kernel.namespace_shares import (
    FLOOR,
    HEADROOM,
    MEMORY_WINDOWS,
    NamespaceShares,
    demand_of,
    fair_level,
    shares_of,
)

LIMIT = 1_000_000
KEY = ("down", 7)


def test_those_that_want_more_share_the_limit_equally() -> None:
    assert shares_of({"a": None, "b": None}) == {"a": 0.5, "b": 0.5}
    assert shares_of({"a": None, "b": None, "c": None}) == pytest.approx(
        {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}
    )


def test_an_idle_namespace_leaves_the_limit_to_the_busy_one_but_its_floor() -> None:
    assert shares_of({"busy": None, "idle": 0.0}) == pytest.approx(
        {"busy": 1.0 - FLOOR, "idle": FLOOR}
    )


def test_what_a_light_user_leaves_goes_to_the_one_that_wants_more() -> None:
    shares = shares_of({"busy": None, "light": 0.2})
    assert shares["light"] == pytest.approx(0.2 * HEADROOM)  # room to grow into
    assert shares["busy"] == pytest.approx(1.0 - 0.2 * HEADROOM)  # all the rest


def test_shares_never_add_up_to_more_than_the_limit() -> None:
    """Where they did, the guard cut the sum first come first served, and a
    namespace at its floor beside a busy one stayed below it."""
    for demands in ({"a": None, "b": 0.0, "c": 0.3}, {"a": 0.9, "b": 0.9}, {"a": 0.0}):
        assert sum(shares_of(demands).values()) == pytest.approx(1.0)


def test_a_user_above_its_fair_share_is_cut_to_it_when_another_wants_more() -> None:
    assert shares_of({"heavy": 0.7, "new": None}) == {"heavy": 0.5, "new": 0.5}
    assert fair_level({"heavy": 0.7, "new": None}) == (0.5, 0.0)


def test_when_nobody_wants_more_the_whole_limit_is_still_given_out() -> None:
    shares = shares_of({"a": 0.3, "b": 0.0})
    spare = (1.0 - 0.3 * HEADROOM - FLOOR) / 2
    assert shares == pytest.approx({"a": 0.3 * HEADROOM + spare, "b": FLOOR + spare})
    assert sum(shares.values()) == pytest.approx(1.0)


def test_demand_is_what_was_used_unless_the_class_was_full() -> None:
    assert demand_of(rate_bps=430_000, share_bps=500_000, limit_bps=LIMIT) is None
    assert demand_of(rate_bps=100_000, share_bps=500_000, limit_bps=LIMIT) == pytest.approx(0.1)


def _fed(
    shares: NamespaceShares[tuple[str, int], str], now: float, passed: dict[str, int]
) -> dict[str, int]:
    assert shares.due(now, [KEY])
    shares.measure(now, {KEY: passed})
    return shares.shares(KEY, LIMIT, passed.keys())


def test_shares_follow_demand_tick_by_tick() -> None:
    """Two namespaces: not measured, both get half; one idle gives its half
    to the other at the next read; when it starts again (its class full at
    the floor) they share equally again; a limit not divided is forgotten."""
    shares: NamespaceShares[tuple[str, int], str] = NamespaceShares()
    assert _fed(shares, 0.0, {"a": 0, "b": 0}) == {"a": 500_000, "b": 500_000}
    # a used all of its half, b nothing
    assert _fed(shares, 1.0, {"a": 500_000, "b": 0}) == {
        "a": round((1 - FLOOR) * LIMIT),
        "b": round(FLOOR * LIMIT),
    }
    # b starts and fills its floor: both want more
    assert _fed(shares, 2.0, {"a": 1_500_000, "b": round(FLOOR * LIMIT)}) == {
        "a": 500_000,
        "b": 500_000,
    }
    shares.measure(3.0, {})
    assert shares.shares(KEY, LIMIT, ["a", "b"]) == {"a": 500_000, "b": 500_000}  # unmeasured again


def test_a_namespace_that_wanted_more_keeps_its_share_through_a_stall() -> None:
    """A connection waiting out a retransmission timer sends nothing for a
    moment: its share goes to the other only after MEMORY_WINDOWS reads."""
    shares: NamespaceShares[tuple[str, int], str] = NamespaceShares()
    _fed(shares, 0.0, {"a": 0, "b": 0})
    a = b = 500_000
    assert _fed(shares, 1.0, {"a": a, "b": b}) == {"a": 500_000, "b": 500_000}
    for read in range(2, MEMORY_WINDOWS + 1):  # b stalls
        a += 500_000
        assert _fed(shares, float(read), {"a": a, "b": b}) == {"a": 500_000, "b": 500_000}
    a += 500_000
    assert _fed(shares, MEMORY_WINDOWS + 1.0, {"a": a, "b": b}) == {
        "a": round((1 - FLOOR) * LIMIT),
        "b": round(FLOOR * LIMIT),
    }


def test_small_moves_leave_the_classes_as_they_are() -> None:
    shares: NamespaceShares[tuple[str, int], str] = NamespaceShares()
    _fed(shares, 0.0, {"a": 0, "b": 0})
    _fed(shares, 1.0, {"a": 500_000, "b": 300_000})  # b used 0.3: it gets 0.42, a the rest
    # b used 0.31 now: it would get 0.434, less than SETTLE more
    assert _fed(shares, 2.0, {"a": 1_080_000, "b": 610_000}) == {"a": 580_000, "b": 420_000}


def test_a_class_made_again_and_a_new_namespace_are_not_measured_yet() -> None:
    shares: NamespaceShares[tuple[str, int], str] = NamespaceShares()
    _fed(shares, 0.0, {"a": 0, "b": 0})
    _fed(shares, 1.0, {"a": 500_000, "b": 0})  # a all, b its floor
    # a's count went back (its class was made again) and c is new: both want
    # more and share what b (idle) leaves; b keeps its floor
    assert _fed(shares, 2.0, {"a": 10, "b": 0, "c": 0}) == {
        "a": round((1 - FLOOR) / 2 * LIMIT),
        "b": round(FLOOR * LIMIT),
        "c": round((1 - FLOOR) / 2 * LIMIT),
    }


def test_reads_wait_for_the_window_unless_a_limit_is_new_or_gone() -> None:
    shares: NamespaceShares[tuple[str, int], str] = NamespaceShares(min_window_s=0.4)
    shares.measure(10.0, {KEY: {"a": 0, "b": 0}})
    shares.shares(KEY, LIMIT, ["a", "b"])
    assert not shares.due(10.3, [KEY])
    assert shares.due(10.3, [KEY, ("up", 7)]) and shares.due(10.3, [])
    shares.measure(10.3, {KEY: {"a": 10_000, "b": 0}})  # too soon: not a window
    assert shares.shares(KEY, LIMIT, ["a", "b"]) == {"a": 500_000, "b": 500_000}
    assert shares.due(10.4, [KEY])
