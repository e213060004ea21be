"""A fall of our download queue while a raise is judged is no failure when what passed since the
raise kept up with it and the queue is where it was at the raise (capacity_estimate.py,
_raise_kept_up; issue 16's E2, est33).

At a glance the estimator takes a download raise back once our download queue fell at
GLANCE_FALLS readings in a row (what left it is in the modem's). On the bench 12 of 33 such
take-backs came with the modem's download queue empty (est32's runs): the queue had risen since
the raise and fell back with its senders' sawtooth, and three of them ended a climb after the
link changed (13 s and 17 s to follow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.engine.capacity_estimate import CapacityEstimator, Sample
from chadthrottle.helper.kernel.priority_classes import SHAPE_SHARE

from tests.helper.engine.capacity_replay import first_difference, replay

DOWN, UP = Direction.DOWN, Direction.UP
RECORDING = Path(__file__).parent / "capacity_follow_false_fall.json"


def test_the_recorded_false_fall_is_no_failure_given_what_passed() -> None:
    """est32's g_d1 (the download's link halved at 20 s, back at 40 s): at 44.0 s its climb back
    was taken back by "our download queue fell" with the modem's download queue empty; the
    link was followed in 13 s. Replayed without what passed, every row decides as recorded;
    with it, the same until that glance, which now holds the raise (1.003 of its rate passed,
    our queue above where it was at the raise), while the earlier take-backs by the same rule
    with a queue at the modem (7.1 s, 35.4 s: 24 and 19 ms there) are made as recorded."""
    for row, now, estimate in replay(RECORDING, passed=False):
        assert (now, estimate) == (row["decisions"], row["estimate"]), row["at"]
    replayed = replay(RECORDING)
    differs = first_difference(replayed)
    row, now, estimate = replayed[differs]
    assert (row["kind"], round(row["at"], 1), row["modem_ms"][0]) == ("glance", 44.0, 0.0)
    assert str(row["decisions"]).startswith("glance: our download queue fell; take back down")
    assert now == "glance: our download queue fell, not since the raise, which passed (1.003)"
    assert estimate == replayed[differs - 1][2]  # the raise held
    real = [(round(r["at"], 1), round(r["modem_ms"][0])) for r, *_ in replayed[:differs]
            if str(r["decisions"]).startswith("glance: our download queue fell; take back")]  # fmt: skip
    assert real == [(7.1, 24), (35.4, 19)]


def _raised_with_queue(wait_s: float = 0.1) -> CapacityEstimator:
    """An estimator whose last tick raised the download (loaded, no rise), our download queue
    read at each tick (`wait_s`)."""
    estimator = CapacityEstimator({DOWN: 2_500_000, UP: 625_000})
    for _ in range(30):
        before = estimator.capacity(DOWN) or 0
        loaded = int(before * SHAPE_SHARE)
        estimator.update(Sample(1.0, {DOWN: loaded, UP: loaded * 3 // 100}, 0.001,
                                {DOWN: wait_s, UP: 0.2}))  # fmt: skip
        if (estimator.capacity(DOWN) or 0) > before:
            return estimator
    raise AssertionError("the download was not raised")


@pytest.mark.parametrize(
    ("waits_ms", "passed_share", "taken_back_at"),
    [
        # risen since the raise, then back down by a sawtooth's 1.5 ms a reading, with what
        # passed at the raised rate: its senders', not a failure
        ([100, 102, 104, 102.5, 101, 99.5, 98], 0.99, None),
        # the same fall with what passed under TOOK_SHARE of the raised rate: the modem passes less
        ([100, 102, 104, 102.5, 101, 99.5, 98], 0.95, 6),
        # a step 2.5% past the link: 2.5 ms a reading from the raise on, what passed 0.97 of its
        # rate (TOOK_SHARE's blind spot): our queue fell from where it was at the raise, a failure
        ([98, 95.5, 93, 90.5, 88], 0.97, 3),
        # no bytes given (None): judged as before, the first fall is a take-back
        ([100, 102, 104, 102.5, 101, 99.5, 98], None, 6),
    ],
)
def test_a_fall_after_our_queue_rose_since_the_raise_is_no_failure_while_what_passed_kept_up(
    waits_ms: list[float], passed_share: float | None, taken_back_at: int | None
) -> None:
    """Each glance 0.1 s, our download queue's wait (ms at the raised rate) as given, and what
    passed as a share of the raised shaping rate (None: glance() given no bytes)."""
    estimator = _raised_with_queue()
    raised = estimator.capacity(DOWN)
    assert raised is not None
    taken = None
    for index, wait_ms in enumerate(waits_ms):
        passed = None if passed_share is None else {
            DOWN: int(raised * SHAPE_SHARE * passed_share * 0.1), UP: 1_000}  # fmt: skip
        estimator.glance(0.1, None, {DOWN: wait_ms / 1000, UP: 0.2}, passed=passed)
        if taken is None and estimator.capacity(DOWN) != raised:
            taken = index
            assert estimator.decisions[0] == "glance: our download queue fell", estimator.decisions
    assert taken == taken_back_at, (taken, estimator.decisions)
