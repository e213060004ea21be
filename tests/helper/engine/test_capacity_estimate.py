"""The capacity estimator against synthetic ticks and a toy modem.

The toy modem: a drop-tail queue of BUFFER_S at the true rate, fed by the
shaper at SHAPE_SHARE of the estimate while the applications want more
than that; the delay is the queue's depth in time. It is the estimator's
own model of the world, so these tests prove the arithmetic (follows a
change, bounded, holds when idle); bench/capacity_follow.py and
tests/helper/kernel/test_path_delay.py do it against the kernel.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from chadthrottle.contract import MAX_RATE_BPS, Direction
from chadthrottle.helper.engine import capacity_estimate
from chadthrottle.helper.engine.capacity_estimate import (
    FLOOR_BPS,
    GLANCE_RISE_S,
    NEAR_STEP,
    PAST_STEP,
    RISE_S,
    TURN_RISE_S,
    CapacityEstimator,
    Sample,
)
from chadthrottle.helper.kernel.priority_classes import SHAPE_SHARE

DOWN, UP = Direction.DOWN, Direction.UP
BUFFER_S = 0.4


class ToyModem:
    """One direction's bottleneck; the other direction carries acknowledgements (3% of it)."""

    def __init__(self, rate: float) -> None:
        self.rate, self.queue = rate, 0.0

    def tick(self, shaping: float | None, seconds: float = 1.0) -> tuple[float, float]:
        """(bytes/s through the uplink, delay_s) for a bulk transfer this direction."""
        offered = (
            shaping if shaping is not None else 10 * self.rate
        )  # unshaped: the senders fill it
        self.queue = min(
            BUFFER_S * self.rate, max(0.0, self.queue + (offered - self.rate) * seconds)
        )
        passed = min(offered, self.rate)
        return passed, self.queue / self.rate


def run(
    estimator: CapacityEstimator, modem: ToyModem, seconds: int, direction: Direction = DOWN
) -> list[int | None]:
    trace = []
    other = UP if direction is DOWN else DOWN
    for _ in range(seconds):
        capacity = estimator.capacity(direction)
        passed, delay = modem.tick(None if capacity is None else capacity * SHAPE_SHARE)
        estimator.update(Sample(1.0, {direction: int(passed), other: int(passed * 0.03)}, delay))
        trace.append(estimator.capacity(direction))
    return trace


def settled(trace: list[int | None], rate: float) -> int | None:
    """The first second the estimate is within 25% under to 20% over the
    rate, if it stays there at least 80% of the rest (probes above it and
    failed probes' cuts below it count against); else None."""
    inside = [c is not None and 0.75 * rate <= c <= 1.20 * rate for c in trace]
    first = next((i for i, ok in enumerate(inside) if ok), None)
    if first is None or sum(inside[first:]) < 0.8 * len(inside[first:]):
        return None
    return first + 1


def test_follows_the_capacity_down_and_up_within_ten_seconds() -> None:
    modem = ToyModem(2_500_000)
    estimator = CapacityEstimator({DOWN: 2_500_000, UP: 625_000})
    assert settled(run(estimator, modem, 20), 2_500_000) == 1
    modem.rate = 1_250_000
    halved = run(estimator, modem, 30)
    assert (settled(halved, 1_250_000) or 99) <= 10, halved
    modem.rate = 2_500_000
    doubled = run(estimator, modem, 30)
    assert (settled(doubled, 2_500_000) or 99) <= 10, doubled
    assert estimator.capacity(UP) == 625_000  # acknowledgements only: neither cut nor raised


def test_from_nothing_it_shapes_after_the_first_rise_under_load() -> None:
    modem = ToyModem(1_000_000)
    estimator = CapacityEstimator({})
    assert estimator.capacities() == {DOWN: None, UP: None}
    trace = run(estimator, modem, 20)
    assert (settled(trace, 1_000_000) or 99) <= 10, trace
    assert estimator.capacity(UP) is None


def test_from_a_value_ten_times_too_high() -> None:
    modem = ToyModem(600_000)
    estimator = CapacityEstimator({DOWN: 6_000_000})
    trace = run(estimator, modem, 20)
    assert (settled(trace, 600_000) or 99) <= 10, trace


def test_the_upload_direction_alone() -> None:
    modem = ToyModem(625_000)
    estimator = CapacityEstimator({DOWN: 2_500_000, UP: 1_250_000})
    # 30 s: after the cuts that drain the toy's full queue, an upload climbs back in
    # small steps 2 s apart (its raises are judged only by the round trips)
    trace = run(estimator, modem, 30, UP)
    assert (settled(trace, 625_000) or 99) <= 10, trace
    assert all(0.75 * 625_000 <= (c or 0) <= 1.2 * 625_000 for c in trace[10:]), trace
    assert estimator.capacity(DOWN) == 2_500_000


def test_idle_or_without_a_delay_signal_it_holds() -> None:
    estimator = CapacityEstimator({DOWN: 1_000_000, UP: 200_000})
    estimator.update(Sample(1.0, {DOWN: 0, UP: 0}, 0.5))  # idle, whatever the delay
    estimator.update(
        Sample(1.0, {DOWN: 990_000, UP: 190_000}, None)
    )  # busy, but no TCP to read a delay from
    estimator.update(Sample(1.0, {DOWN: 200_000, UP: 10_000}, 0.0))  # lightly used: no sign of more
    assert estimator.capacities() == {DOWN: 1_000_000, UP: 200_000}


def test_a_rise_cuts_the_bulk_direction_not_its_acknowledgements() -> None:
    estimator = CapacityEstimator({DOWN: 4_000_000, UP: 1_000_000})
    capacities = estimator.update(Sample(1.0, {DOWN: 2_000_000, UP: 60_000}, 0.2))
    assert capacities[UP] == 1_000_000
    assert capacities[DOWN] is not None and capacities[DOWN] < 2_000_000 / SHAPE_SHARE
    # the queue needs time to drain: no second cut right away
    assert (
        estimator.update(Sample(1.0, {DOWN: 1_400_000, UP: 40_000}, 0.15))[DOWN] == capacities[DOWN]
    )


def test_a_rise_with_both_directions_busy_cuts_both() -> None:
    estimator = CapacityEstimator({DOWN: 1_000_000, UP: 1_000_000})
    capacities = estimator.update(Sample(1.0, {DOWN: 900_000, UP: 500_000}, 0.05))
    assert all(c is not None and c < 1_000_000 for c in capacities.values()), capacities


def test_bounded_by_the_floor_and_the_ceiling() -> None:
    estimator = CapacityEstimator({DOWN: 100_000, UP: 5_000_000}, ceilings={UP: 5_000_000})
    for _ in range(5):  # a rise at 20 KB/s: the cut would go to 18 KB/s
        estimator.update(Sample(2.0, {DOWN: 2 * 20_000, UP: 0}, 1.0))
    assert estimator.capacity(DOWN) == FLOOR_BPS
    for _ in range(30):
        estimator.update(Sample(1.0, {DOWN: 0, UP: 10_000_000}, 0.0))
    assert estimator.capacity(UP) == 5_000_000
    assert CapacityEstimator({UP: 10 * MAX_RATE_BPS}).capacity(UP) == MAX_RATE_BPS


@pytest.mark.parametrize(
    "sample",
    [
        Sample(0.0, {DOWN: 1_000_000}, 1.0),
        Sample(-1.0, {DOWN: 1_000_000}, 1.0),
        Sample(1.0, {DOWN: -5}, 1.0),
        Sample(float("nan"), {DOWN: 1_000_000}, 1.0),
        Sample(1.0, {DOWN: 1_000_000}, float("nan")),
    ],
)
def test_a_bad_sample_changes_nothing(sample: Sample) -> None:
    estimator = CapacityEstimator({DOWN: 2_000_000, UP: 500_000})
    assert estimator.update(sample) == {DOWN: 2_000_000, UP: 500_000}


def test_a_bad_floor_is_refused() -> None:
    with pytest.raises(ValueError, match="floor_bps"):
        CapacityEstimator({}, floor_bps=0)
    assert RISE_S < 0.05  # a call notices 50 ms: the estimator must react below it


def test_a_raised_download_whose_queue_here_ran_empty_is_taken_back_before_the_delay_rises() -> (
    None
):
    estimator = CapacityEstimator({DOWN: 1_000_000, UP: 200_000})
    loaded = {DOWN: int(1_000_000 * SHAPE_SHARE), UP: 20_000}
    raised = estimator.update(Sample(1.0, loaded, 0.0, {DOWN: 0.1}))[DOWN]  # held here: a probe
    assert raised is not None and raised > 1_000_000
    back = estimator.update(
        Sample(1.0, {DOWN: int(raised * SHAPE_SHARE), UP: 20_000}, 0.0, {DOWN: 0.0})
    )[DOWN]
    assert back is not None and back < 1_000_000
    trace = [back]  # then, near where it failed, the probes go in small steps
    for _ in range(10):
        capacity = estimator.capacity(DOWN)
        assert capacity is not None
        trace.append(
            estimator.update(
                Sample(1.0, {DOWN: int(capacity * SHAPE_SHARE), UP: 0}, 0.0, {DOWN: 0.1})
            )[DOWN]
        )
    # up to where it passed (1 MB/s) at once, above it in small steps up to where it failed,
    # then past that by PAST_STEP from there (not from a small step across it)
    steps = [
        (b / a)
        for a, b in itertools.pairwise(trace)
        if a and b and b != a and a >= 1_000_000 and b < raised
    ]
    assert steps and all(step <= 1.021 for step in steps), trace
    past = next(c for c in trace if (c or 0) > raised)  # (all passes here: it climbs on)
    assert past is not None and past <= raised * PAST_STEP + 1, trace


def test_a_stall_halves_at_most_and_a_long_queue_here_is_not_taken_for_a_rise() -> None:
    estimator = CapacityEstimator({DOWN: 2_000_000, UP: 500_000})
    # a stall: little passes while the round trips still show the old queue
    estimator.update(Sample(1.0, {DOWN: 20_000, UP: 5_000}, 0.3))
    assert estimator.capacity(DOWN) == 1_000_000
    low = CapacityEstimator({DOWN: FLOOR_BPS, UP: FLOOR_BPS})
    # at the floor a leaf here holds seconds: 4 s of wait, the round trips off by 0.3 s of it
    raised = low.update(Sample(1.0, {DOWN: FLOOR_BPS, UP: 1_000}, 0.3, {DOWN: 4.0}))[DOWN]
    assert raised is not None and raised > FLOOR_BPS


class BothWays:
    """Bulk both ways through a toy modem per direction: a round trip crosses
    both queues, and the estimator reads it `lag` ticks late (smoothed round
    trips in the kernel show a queue 1-3 s after it formed). What passes the
    uplink is, for the download, what the modem let through, and for the
    upload, what the shaper sent."""

    def __init__(self, down: float, up: float, lag: int) -> None:
        self.modems = {DOWN: ToyModem(down), UP: ToyModem(up)}
        self.seen = [0.0] * lag

    def tick(self, estimator: CapacityEstimator) -> float:
        """One second; the queueing delay beyond the shaper now."""
        passed = {}
        for direction, modem in self.modems.items():
            capacity = estimator.capacity(direction)
            assert capacity is not None
            through, _ = modem.tick(capacity * SHAPE_SHARE)
            passed[direction] = int(through if direction is DOWN else capacity * SHAPE_SHARE)
        delay = sum(modem.queue / modem.rate for modem in self.modems.values())
        self.seen.append(delay)
        estimator.update(Sample(1.0, passed, self.seen.pop(0)))
        return delay


@pytest.mark.parametrize("lag", [1, 2, 3])
def test_bulk_both_ways_with_the_round_trips_seen_late(lag: int) -> None:
    """Before one probe was judged at a time (and a download's by what passed),
    this toy had 50 ms of queue in 17-20 of 60 s and the download's estimate
    in band 27-37% of the time (each failed upload probe took it back too)."""
    rates = {DOWN: 2_500_000, UP: 625_000}
    link = BothWays(rates[DOWN], rates[UP], lag)
    estimator = CapacityEstimator(dict(rates))
    for _ in range(20):
        link.tick(estimator)
    queued, in_band = 0, dict.fromkeys(rates, 0)
    for _ in range(60):
        queued += link.tick(estimator) > 0.05
        for direction, rate in rates.items():
            capacity = estimator.capacity(direction)
            in_band[direction] += capacity is not None and 0.75 * rate <= capacity <= 1.2 * rate
    assert queued <= 8, queued
    assert all(seconds >= 54 for seconds in in_band.values()), in_band


def loaded(estimator: CapacityEstimator, share: float = 1.0) -> dict[Direction, int]:
    """Each direction passing `share` of its shaping rate."""
    rates = {d: estimator.capacity(d) for d in Direction}
    return {d: int((rate or 0) * SHAPE_SHARE * share) for d, rate in rates.items()}


def test_a_failed_upload_probe_leaves_the_download_alone() -> None:
    """The download finds its link (1.9 MB/s passes at most) by what passed;
    once it fails there again and again the upload gets its turn, and the
    upload's failed probe leaves the download's estimate where it was."""
    estimator = CapacityEstimator({DOWN: 2_000_000, UP: 500_000})

    def sample(delay: float) -> Sample:
        shaped = loaded(estimator)
        return Sample(1.0, {DOWN: min(shaped[DOWN], 1_900_000), UP: shaped[UP]}, delay)

    for _ in range(60):
        before = estimator.capacities()
        now = estimator.update(sample(0.0))
        assert now[UP] == before[UP] or now[UP] > before[UP]
        if now[UP] != before[UP]:
            break
    assert now[UP] is not None and now[UP] > 500_000, now
    down = now[DOWN]
    # no download probe while the upload's is judged; the round trips rise two ticks
    # later: the upload's probe failed, the download is not touched
    assert estimator.update(sample(0.0))[DOWN] == down
    final = estimator.update(sample(0.08))
    assert final[UP] is not None and final[UP] < 500_000
    assert final[DOWN] == down


def test_a_raised_download_that_does_not_pass_is_taken_back_a_tick_later() -> None:
    estimator = CapacityEstimator({DOWN: 1_000_000, UP: 200_000})
    raised = estimator.update(Sample(1.0, {DOWN: 950_000, UP: 20_000}, 0.0))[DOWN]
    assert raised is not None and raised > 1_000_000
    # the round trips have not risen yet, but only the modem's rate passed
    back = estimator.update(Sample(1.0, {DOWN: 900_000, UP: 20_000}, 0.0))[DOWN]
    assert back is not None and back < 1_000_000
    # one that passed at its new rate is kept and the next raise follows
    estimator = CapacityEstimator({DOWN: 1_000_000, UP: 200_000})
    raised = estimator.update(Sample(1.0, {DOWN: 950_000, UP: 20_000}, 0.0))[DOWN]
    assert raised is not None
    again = estimator.update(Sample(1.0, {DOWN: int(raised * SHAPE_SHARE), UP: 20_000}, 0.0))[DOWN]
    assert again is not None and again > raised


def test_an_upload_probe_that_failed_is_not_tried_again_at_once() -> None:
    """Its probes are judged by the round trips, seconds late: each failure
    costs the calls a moment of queue (in the bench, 60-170 ms), so after
    one it holds under the rate it failed at while that is remembered
    (FORGET_FAILED_S). Against a link that takes 1.05 MB/s for 60 s, the
    old estimator failed 8 probes, this one 3, and stays near the link."""
    estimator = CapacityEstimator({DOWN: 40_000, UP: 1_000_000})
    failures, failed_at = 0, None
    for _ in range(60):
        before = estimator.capacity(UP)
        assert before is not None
        over = before > 1_050_000  # shaped above the link: the modem's queue fills
        shaped = int(before * SHAPE_SHARE)
        after = estimator.update(Sample(1.0, {DOWN: 20_000, UP: shaped}, 0.08 if over else 0.0))[UP]
        assert after is not None
        if after < before and over:
            failures, failed_at = failures + 1, before
    assert failures <= 3, failures
    assert failed_at is not None and 0.85 * 1_050_000 <= (estimator.capacity(UP) or 0) < failed_at


def test_an_upload_small_beside_the_download_is_still_raised() -> None:
    """An upload that fills its own shaping rate is raised even when it carries
    less than a quarter of the download (measured at 82cf101: cut to 3.5 Mbit/s
    beside a 20 Mbit/s download it read as acknowledgements and stayed there);
    slowly: its probes cost the calls most, and the download pauses for them."""
    estimator = CapacityEstimator({DOWN: 2_500_000, UP: 400_000})
    link = BothWays(2_500_000, 625_000, lag=2)
    # two raises a turn, a turn while the download sits at its link: every 24 s here, every
    # 29 s since a download's first step past where it failed is PAST_STEP (est16b)
    for _ in range(120):
        link.tick(estimator)
    assert (estimator.capacity(UP) or 0) >= 0.75 * 625_000, estimator.capacities()


def test_an_upload_held_under_its_failure_does_not_hold_the_download() -> None:
    """The upload's turn comes only when it can rise: at 69d4ea3 an upload held
    under the rate it had failed at still took the turn, and the download sat
    unraised 10-12 s at a time (it missed the link coming back, 20 Mbit/s)."""
    rates = {DOWN: 2_500_000, UP: 625_000}
    link = BothWays(rates[DOWN], rates[UP], lag=2)
    estimator = CapacityEstimator({DOWN: rates[DOWN], UP: int(rates[UP] / SHAPE_SHARE)})
    unchanged, longest, last = 0, 0, None
    for second in range(90):
        if second == 45:  # the link gets faster: the download must find it
            link.modems[DOWN].rate = rates[DOWN] = 5_000_000
        link.tick(estimator)
        now = estimator.capacity(DOWN)
        unchanged = unchanged + 1 if now == last else 0
        longest, last = max(longest, unchanged), now
    assert longest <= 8, longest
    assert (estimator.capacity(DOWN) or 0) >= 0.75 * 5_000_000, estimator.capacities()


@pytest.mark.parametrize("slow_s", [20, 24, 28, 32, 36])
def test_an_upload_cut_beside_a_slower_download_comes_back_without_pausing_the_download(
    slow_s: int,
) -> None:
    """The download's link halves, then comes back (bench/capacity_follow.py in
    miniature): the cut there takes the upload down too. At 5e87987 it came back
    only by probes, two every 20 s, each pausing the download ~8 s (a link that
    got faster then was followed in 15-18 s), and sat at 0.44-0.46 of its link here,
    the download unraised up to 8 s at a time. Back up to what it held is no probe:
    the download goes on beside it."""
    rates = {DOWN: 2_500_000, UP: 625_000}
    link = BothWays(rates[DOWN], rates[UP], lag=2)
    estimator = CapacityEstimator(dict(rates))
    longest, unchanged, last = 0, 0, None
    for second in range(20 + slow_s + 30):
        if second == 20:
            link.modems[DOWN].rate = rates[DOWN] / 2
        if second == 20 + slow_s:
            link.modems[DOWN].rate = rates[DOWN]
        link.tick(estimator)
        now = estimator.capacity(DOWN)
        if second >= 30:  # after the cuts of the slowing
            unchanged = unchanged + 1 if now == last else 0
            longest = max(longest, unchanged)
        last = now
    assert (estimator.capacity(UP) or 0) >= 0.9 * rates[UP], estimator.capacities()
    assert longest <= 3, longest


def test_a_raised_download_with_our_own_queue_full_is_not_taken_back() -> None:
    """What passed falls short of a low rate by our shaper's own lumpiness (64 KB
    super-packets): with our download queue still full the modem passed all we were
    sent. Before, each raise was taken back under what passed, and a download
    fell from 20 to 1-3 Mbit/s for good (bench/capacity_follow.py --vary up)."""
    estimator = CapacityEstimator({DOWN: 300_000, UP: 300_000})
    raised = estimator.update(Sample(1.0, {DOWN: 285_000, UP: 10_000}, 0.0, {DOWN: 0.3}))[DOWN]
    assert raised is not None and raised > 300_000
    short = int(raised * SHAPE_SHARE * 0.9)
    kept = estimator.update(Sample(1.0, {DOWN: short, UP: 10_000}, 0.0, {DOWN: 0.3}))[DOWN]
    assert kept is not None and kept >= raised
    # with our queue run empty the same shortfall is the modem's: taken back
    estimator = CapacityEstimator({DOWN: 300_000, UP: 300_000})
    raised = estimator.update(Sample(1.0, {DOWN: 285_000, UP: 10_000}, 0.0, {DOWN: 0.3}))[DOWN]
    assert raised is not None
    back = estimator.update(Sample(1.0, {DOWN: short, UP: 10_000}, 0.0, {DOWN: 0.0}))[DOWN]
    assert back is not None and back < 300_000


class AckClocked(BothWays):
    """BothWays, with what a full upload queue at the modem does to TCP
    (bench/capacity_follow.py --vary up): the upload's senders, losing at its
    full buffer, send only what the link passes, so our upload queue runs empty
    and the upload passes under its shaping rate; the download's
    acknowledgements wait there, so it passes less too and our download queue
    runs empty. Otherwise both of our queues hold something."""

    def tick(self, estimator: CapacityEstimator) -> float:
        passed, waits = {}, {}
        up_full = False
        for direction, modem in self.modems.items():
            capacity = estimator.capacity(direction)
            assert capacity is not None
            through, _ = modem.tick(capacity * SHAPE_SHARE)
            passed[direction] = int(through if direction is DOWN else capacity * SHAPE_SHARE)
        up = self.modems[UP]
        up_full = up.queue >= 0.5 * BUFFER_S * up.rate
        if up_full:
            passed[UP] = int(up.rate)
            passed[DOWN] = int(passed[DOWN] * 0.4)
            waits = {DOWN: 0.0, UP: 0.0}
        else:
            waits = {DOWN: 0.1, UP: 0.2}
        delay = sum(modem.queue / modem.rate for modem in self.modems.values())
        self.seen.append(delay)
        estimator.update(Sample(1.0, passed, self.seen.pop(0), waits))
        return delay


@pytest.mark.parametrize("lag", [1, 2, 3])
def test_an_upload_whose_own_link_halved_does_not_climb_back_past_it(lag: int) -> None:
    """The upload's link halves (bench/capacity_follow.py --vary up in miniature):
    at 28a45f1 the download was blamed and cut (its acknowledgements waited at the
    modem), then the upload, cut too, went back up towards what it held before
    in 3, 6, 12% steps past the slower link, and the round trips showed it late:
    200-390 ms at the modem for about 5 s, the call's p99 137-393 ms. The upload
    passing under its shaping rate with our upload queue empty is its own link. Its
    tries back towards the faster link (est16) each cost a moment at the modem, no more."""
    rates, link, estimator = _upload_link_halved(lag)
    queued, failed, lowest_down, lowest_up, held = 0, 0, rates[DOWN], rates[UP], []
    for second in range(20):
        link.tick(estimator)
        up = link.modems[UP]
        queued += second >= 6 and up.queue / up.rate > 0.05  # after the change's queue drained
        failed += any("try failed" in decision for decision in estimator.decisions)
        lowest_down = min(lowest_down, estimator.capacity(DOWN) or 0)
        lowest_up = min(lowest_up, estimator.capacity(UP) or 0)
        held += [estimator.capacity(UP) or 0] if second >= 6 else []
    upload = sorted(held)[len(held) // 2]
    assert 0.75 * rates[UP] / 2 <= upload <= 1.05 * rates[UP] / 2, held
    assert queued <= failed, (queued, failed)
    assert lowest_down >= 0.75 * rates[DOWN], lowest_down
    # the rises seen late once it is shaped well under the link are not cut again (5dc8bd6:
    # cut to 0.52 of the slower link in this toy, 0.47 in the bench)
    assert lowest_up >= 0.6 * rates[UP] / 2, lowest_up


class OurUploadQueue(AckClocked):
    """AckClocked, with our upload queue in bytes as bench/capacity_follow.py
    measures it (docs/benchmarks.md, issue 16, est16): the upload's senders keep
    their windows, so shaped under the link the bytes they have out wait here
    (LEAF bytes), and shaped past it what leaves our queue piles up at the modem."""

    LEAF = 130_000

    def __init__(self, down: float, up: float, lag: int) -> None:
        super().__init__(down, up, lag)
        self.ours = float(self.LEAF)

    def tick(self, estimator: CapacityEstimator) -> float:
        capacity = estimator.capacity(UP)
        assert capacity is not None
        shaping, modem = capacity * SHAPE_SHARE, self.modems[UP]
        # what the modem gains this second left our queue (once ours is empty, the
        # senders' growing windows fill the modem: AckClocked's full upload queue)
        self.ours = max(0.0, self.ours - max(0.0, shaping - modem.rate)) if shaping > modem.rate \
            else float(self.LEAF)  # fmt: skip
        waits_up = self.ours / shaping
        passed, waits = {}, {}
        for direction, toy in self.modems.items():
            through, _ = toy.tick((estimator.capacity(direction) or 0) * SHAPE_SHARE)
            passed[direction] = int(through if direction is DOWN else shaping)
        if modem.queue >= 0.5 * BUFFER_S * modem.rate:
            passed[UP], passed[DOWN] = int(modem.rate), int(passed[DOWN] * 0.4)
            waits = {DOWN: 0.0, UP: 0.0}
        else:
            waits = {DOWN: 0.1, UP: waits_up}
        delay = sum(toy.queue / toy.rate for toy in self.modems.values())
        self.seen.append(delay)
        estimator.update(Sample(1.0, passed, self.seen.pop(0), waits))
        return delay


def _upload_link_halved(lag: int) -> tuple[dict[Direction, int], OurUploadQueue, CapacityEstimator]:
    """20 s settled at 2.5 MB/s down, 625 kB/s up; then the modem's upload rate halves."""
    rates = {DOWN: 2_500_000, UP: 625_000}
    link = OurUploadQueue(rates[DOWN], rates[UP], lag)
    estimator = CapacityEstimator(dict(rates))
    for _ in range(20):
        link.tick(estimator)
    link.modems[UP].rate = rates[UP] / 2
    return rates, link, estimator


@pytest.mark.parametrize(("lag", "slow_s"), list(itertools.product([1, 2, 3], range(14, 46, 2))))
def test_an_upload_whose_own_link_came_back_follows_it(lag: int, slow_s: int) -> None:
    """The upload's link halves, then comes back (bench/capacity_follow.py --vary up).
    At 563c706 the upload, after its own link slowed, was raised only by probes (two
    2-3% raises every 20 s, once the download sat at its link) and stayed at 0.47 of
    the link come back (never followed here). Now it tries back towards what it held
    before, about every 8 s: followed 3-10 s after the link comes back, depending on
    where the tries stand (3-14 s before est16d: after a failed try the upload came back
    to what it held in three steps, waited 2 s to judge the last, and its try began 9-10 s
    after the failure, its steps past the hold 12%); a try past the slower link costs the
    calls a moment at the modem (one second over 50 ms here), no more, and the download
    keeps its rate."""
    rates, link, estimator = _upload_link_halved(lag)
    queued, failed, down = 0, 0, []
    for second in range(slow_s):
        link.tick(estimator)
        down.append(min(1.0, (estimator.capacity(DOWN) or 0) * SHAPE_SHARE / rates[DOWN]))
        up = link.modems[UP]
        queued += second >= 6 and up.queue / up.rate > 0.05
        failed += any("try failed" in decision for decision in estimator.decisions)
    link.modems[UP].rate = rates[UP]
    followed = None
    for second in range(20):
        link.tick(estimator)
        if followed is None and (estimator.capacity(UP) or 0) >= 0.75 * rates[UP]:
            followed = second + 1
    assert followed is not None and followed <= 10, (followed, estimator.capacities())
    assert (estimator.capacity(UP) or 0) >= 0.9 * rates[UP], estimator.capacities()
    assert queued <= failed <= slow_s // 6, (queued, failed)
    # the download waits only for the tries (a first version held it at 0.71-0.83 in the bench)
    assert sum(down) / len(down) >= 0.88, sum(down) / len(down)


# issue 16's floor "estimation follows within 10 s", not met in two cases without the upload's
# one-way reading (docs/benchmarks/priorities.md, est16j): each case below fails so, and strict,
# so that meeting it shows. With the reading the same cases are followed in 4-10 s
# (test_capacity_one_way.py, owd29): these stand for a helper without its reader
UNMET_FOLLOW = pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="issue 16: not followed within 10 s without the one-way reading (docs/benchmarks/"
    "priorities.md, est16j; with it: test_capacity_one_way.py)",
)


def _followed(link: OurUploadQueue, estimator: CapacityEstimator, direction: Direction,
              seconds: int) -> int | None:  # fmt: skip
    """The second after which the estimate is within 0.75 of the link's new rate (None: not in
    `seconds`)."""
    for second in range(seconds):
        link.tick(estimator)
        if (estimator.capacity(direction) or 0) >= 0.75 * link.modems[direction].rate:
            return second + 1
    return None


def _followed_once_doubled(lag: int, settle_s: int, direction: Direction
                           ) -> tuple[int | None, dict[Direction, int | None]]:  # fmt: skip
    """On our upload queue's toy link (2.5 MB/s down, 625 KB/s up; round trips lag
    ticks late), the direction's link doubled after settle_s ticks: the ticks
    until the estimate follows, within 10 (None: not), and the estimates then."""
    rates = {DOWN: 2_500_000, UP: 625_000}
    link = OurUploadQueue(rates[DOWN], rates[UP], lag)
    estimator = CapacityEstimator(dict(rates))
    for _ in range(settle_s):
        link.tick(estimator)
    link.modems[direction].rate = 2 * rates[direction]
    return _followed(link, estimator, direction, 10), estimator.capacities()


@UNMET_FOLLOW
@pytest.mark.parametrize(("lag", "settle_s"), [(1, 20), (1, 36), (2, 28), (2, 50)])
def test_an_upload_link_faster_than_any_it_held_is_followed_within_ten_seconds(
    lag: int, settle_s: int
) -> None:
    """The upload's link doubles from where its estimate sat (bench/capacity_follow.py --vary
    up --slow-share 2.0). Nothing shows it: our upload queue holds what we shape and the round
    trips do not change, so only a raise past the old rate finds it, and the upload's raises
    are judged by the round trips alone, 2-4 s late: two 2-3% raises a turn, every 20 s while
    the download sits at its link, none past where it failed for a minute. Here it is not
    followed in 10 s (nor in 40: at most 1.05 of the old rate a turn)."""
    followed, capacities = _followed_once_doubled(lag, settle_s, UP)
    assert followed is not None, capacities


@UNMET_FOLLOW
@pytest.mark.parametrize(("lag", "settle_s"), [(1, 40), (1, 43), (2, 42), (2, 46)])
def test_a_download_link_that_doubles_around_the_uploads_turn_is_followed_within_ten_seconds(
    lag: int, settle_s: int
) -> None:
    """The download's link doubles just before the upload's turn begins (bench/capacity_follow
    .py --vary down: its second change at est16d's 07:49 run, 12 s; --slow-share 2.0 at
    est16j's 13:23 run, 13 s). The turn holds the download's raises from the download's last
    raise judged to SUSPECT_S after the turn's last (6-9 s here), then the download steps past
    where it failed (PAST_STEP) and climbs 6%, 12%, 12%, 12%: 13-18 s in these cases."""
    followed, capacities = _followed_once_doubled(lag, settle_s, DOWN)
    assert followed is not None, capacities


@pytest.mark.parametrize(
    ("recording", "tried_at", "recorded_try"),
    [("capacity_follow_vary_up.json", 35, None), ("capacity_follow_vary_up_tried.json", 33, 34)],
)
def test_the_recorded_upload_whose_link_slowed_is_tried_back_soon(
    recording: str, tried_at: int, recorded_try: int | None
) -> None:
    """bench/capacity_follow.py --vary up's inputs, tick by tick (--record: what passed,
    the delay signal, our queues' waits), replayed. The upload's link halves at tick 19 and
    comes back at 39; the slowing is seen at 20 (the upload cut). At 563c706 (the first
    recording) the upload, held at what its slower link passed, was raised first at 58, by
    2% (its turn: every 20 s, once the download sat at its link): it sat at 0.47 of its
    link come back. The second was recorded with a first version of the tries: one at 34,
    failed at 35, none after (back up to what it held, rounded 1 byte/s under it). Now a try
    back up to the
    rate held before the slowing starts TRY_GAP_S after the slowing's last rise, at 35 and
    33, in TRY_STEPS. The replayed inputs do not answer a new rate (the download's decisions
    differ from tick 7 and 5: est16e's near steps), so only the try's start is judged, not
    where it ends (what passed stays the slower link's, so no step is seen to fail)."""
    recorded = json.loads((Path(__file__).parent / recording).read_text())
    estimator = CapacityEstimator({Direction(d): bps for d, bps in recorded["start"].items()})
    slowed, tries = None, []
    for index, tick in enumerate(recorded["ticks"]):
        estimator.update(Sample(tick["seconds"], {Direction(d): n for d, n in tick["bytes"].items()},
                                tick["delay_s"], {Direction(d): w for d, w in tick["waits_s"].items()}))  # fmt: skip
        if slowed is None and "cut up" in estimator.decisions:
            slowed = index
        tries += [(index, d) for d in estimator.decisions if d.startswith("try up x")]
    assert slowed == 20, slowed
    assert [d for _, d in tries[:4]] == [
        "try up x1.060",
        "try up x1.060",
        "try up x1.000",
        "try up x1.120",
    ]
    assert tries[0][0] == tried_at, tries
    recorded_tries = [i for i, t in enumerate(recorded["ticks"]) if "try up x" in t["decisions"]]
    assert (recorded_tries or [None])[0] == recorded_try, recorded_tries


@pytest.mark.parametrize("lag", [1, 2, 3])
def test_a_download_past_where_its_probe_failed_is_judged_in_its_tick(lag: int) -> None:
    """A download that reached where its probe failed without failing steps past it by
    PAST_STEP, the smallest step what passed judges in its tick (TOOK_SHARE): a link
    still there is seen at once. Before (est16b), the step was RAISE_STEPS' 3%, which
    what passed did not judge, then 6%: two ticks past the link, 122 ms of queue here
    (bench/capacity_follow.py: 1.02 then 1.08 of the link, 55-121 ms at the modem)."""
    rates = {DOWN: 2_500_000, UP: 625_000}
    link = BothWays(rates[DOWN], rates[UP], lag)
    estimator = CapacityEstimator(dict(rates))
    for _ in range(20):
        link.tick(estimator)
    queued, above = [], 0
    for _ in range(60):
        link.tick(estimator)
        queued.append(link.modems[DOWN].queue / rates[DOWN])
        over = (estimator.capacity(DOWN) or 0) * SHAPE_SHARE > rates[DOWN]
        above = above + 1 if over else 0
        assert above <= 1, "shaped past the download's link two ticks in a row"
    assert max(queued) <= 0.05, max(queued)


def _replay(recording: str) -> list[tuple[str, str, list[int | None], list[int | None]]]:
    """A --record run replayed through the estimator: per tick (decisions recorded, now;
    estimates recorded, now)."""
    recorded = json.loads((Path(__file__).parent / recording).read_text())
    estimator = CapacityEstimator({Direction(d): bps for d, bps in recorded["start"].items()})
    ticks = []
    for tick in recorded["ticks"]:
        estimator.update(Sample(tick["seconds"], {Direction(d): n for d, n in tick["bytes"].items()},
                                tick["delay_s"], {Direction(d): w for d, w in tick["waits_s"].items()}))  # fmt: skip
        ticks.append((tick["decisions"], "; ".join(estimator.decisions), tick["estimate"],
                      [estimator.capacity(DOWN), estimator.capacity(UP)]))  # fmt: skip
    return ticks


@pytest.mark.parametrize(
    ("recording", "tick", "recorded_past"),
    [
        # up to where it passed (tick 6: 0.978 of the link), a near step across where it
        # failed (7: 0.998), then PAST_STEP from above it (8: 1.043), taken back at 9 with
        # 59 ms at the modem
        ("capacity_follow_near_across.json", 6, [0.978, 0.998, 1.043]),
        # after a cut, near steps to the zone's top at 1.03 of what passed: 1.011 of the link
        # a tick unjudged (6), then 1.031 (7), taken back at 8 with 61 ms at the modem
        ("capacity_follow_cut_zone.json", 5, [0.991, 1.011, 1.031]),
        # est16b's three, recorded before PAST_STEP: 00:59 UTC (--vary down at 98a1765) and
        # 02:04 (--vary up at 6c1cdf2) as cut_zone, taken back at 8 with 71 and 64 ms at the
        # modem; 01:41 (--slow-share 1.0 at 6fdb88f) as near_across, taken back at 9 (68 ms)
        ("capacity_follow_past_failed.json", 5, [0.991, 1.011, 1.031]),
        ("capacity_follow_up_back.json", 5, [0.991, 1.011, 1.031]),
        # (capacity_follow_seen_late.json, est16b's 01:41 as near_across: no step past where it
        # failed at 7 now, the round trips reading 13.5 ms: test_..._not_stepped_past_on_a_queue)
    ],
)
def test_the_recorded_download_goes_past_where_it_failed_from_there(
    recording: str, tick: int, recorded_past: list[float]
) -> None:
    """bench/capacity_follow.py --record runs (est16d's at 5ac080b, est16b's before PAST_STEP),
    replayed: the same decisions until the download's near steps; there it steps up to where
    its probe failed (under its link), then PAST_STEP from there (1.026-1.030 of the link), and
    is taken back the tick after by what passed (TOOK_SHARE), where the recorded steps went
    across it and past the link to 1.03-1.05 (59-71 ms at the modem at their take-back a tick
    later), a tick unjudged at 1.01 after a cut. What passed at that take-back is the link's
    in both (the recorded shaping was at or past it), so the replay's inputs still hold there;
    after it they do not (the rates differ), which is why these replays end there."""
    ticks = _replay(recording)
    recorded_ticks = json.loads((Path(__file__).parent / recording).read_text())["ticks"]
    links = [t["true"][0] for t in recorded_ticks]
    for index, (recorded, now, estimate, estimated) in enumerate(ticks[:tick]):
        assert (now, estimated) == (recorded, estimate), index
    past = range(tick, tick + len(recorded_past))
    levels = [ticks[i][2][0] * SHAPE_SHARE / links[i] for i in past]
    assert [round(level, 3) for level in levels] == recorded_past, levels
    now = [(ticks[i][3][0] or 0) * SHAPE_SHARE / links[i] for i in (tick, tick + 1)]
    assert now[0] <= 1.0 < now[1] <= 1.031, now  # up to it, under the link; then past it
    assert ticks[tick + 1][1] == f"raise down x{PAST_STEP:.3f}", ticks[tick + 1][1]
    assert now[1] < max(recorded_past), (now, recorded_past)
    assert ticks[tick + 2][1].startswith("take back down"), ticks[tick + 2][1]  # judged at once
    assert ticks[tick + 3][0].startswith("take back down"), ticks[tick + 3][0]  # recorded: later


def _stepped_past_where_it_failed(
    link: int,
) -> tuple[CapacityEstimator, dict[Direction, float], int, int]:
    """A download raised 3% that was not taken (where it failed: last_failed), then
    climbed back up to there, under the link, and one step past it; returns the
    estimator, the round trips' waits, where it failed and the step past it."""
    estimator = CapacityEstimator({DOWN: 1_000_000, UP: 200_000})
    waits = {DOWN: 0.1, UP: 0.1}
    estimator.update(Sample(1.0, {DOWN: 950_000, UP: 20_000}, 0.0, waits))  # raised 3%
    estimator.update(Sample(1.0, {DOWN: 930_000, UP: 20_000}, 0.0, waits))  # not taken
    failed = estimator._state[DOWN].last_failed
    assert failed is not None and (estimator.capacity(DOWN) or 0) < failed
    for _ in range(12):  # back up to where it failed, under the link, then past it
        capacity = estimator.capacity(DOWN) or 0
        passed = min(int(capacity * SHAPE_SHARE), link)
        estimator.update(Sample(1.0, {DOWN: passed, UP: 20_000}, 0.0, waits))
        if (estimator.capacity(DOWN) or 0) > failed:
            break
    return estimator, waits, failed, estimator.capacity(DOWN) or 0


def test_a_download_step_past_where_it_failed_is_judged_before_the_next() -> None:
    """A download stepped past where its probe failed that passes at its rate (TOOK_SHARE)
    but no more than it passed there is not raised again until the round trips judge it:
    2-3% past the link passes that test (where it failed is set from what passed, 0.98 of
    the link), and RAISE_STEPS' 6% on it went 1.07-1.09 past the link, 55-121 ms at the
    modem (bench/capacity_follow.py, est16b, est16d). Passing NEAR_STEP more than where it
    failed, the link is faster: climbed on."""
    for link, raised_on in ((940_000, False), (1_200_000, True)):
        estimator, waits, failed, past = _stepped_past_where_it_failed(link)
        assert failed < past <= failed * PAST_STEP + 1, (failed, past)
        assert min(past * SHAPE_SHARE, link) >= 0.96 * past * SHAPE_SHARE  # passes TOOK_SHARE
        estimator.update(
            Sample(1.0, {DOWN: min(int(past * SHAPE_SHARE), link), UP: 20_000}, 0.0, waits)
        )
        assert ((estimator.capacity(DOWN) or 0) > past) is raised_on, (link, estimator.decisions)
        assert (link >= failed * SHAPE_SHARE * NEAR_STEP) is raised_on


def test_a_download_step_past_where_it_failed_passing_a_little_more_is_blamed_for_a_rise() -> None:
    """A rise after a download's step past where its probe failed is that step's, unless
    more passed than where it failed by NEAR_STEP (then the link is faster, the queue an older
    probe's). By 1%, it is what passes moving: recorded (bench/capacity_follow.py
    --slow-share 1.0 at 6fdb88f, est16b, 01:41 UTC, tick 53; the replay's inputs no longer
    reach it) a step to 1.02 of the link passing 0.99 of it, where it had failed at 0.98, was
    read as a faster link: the rise was blamed on the upload and the download's queue at the
    modem grew to 147 ms in 5 s. The download is taken back; a faster link's is not."""
    for link, blamed in ((940_000, True), (1_200_000, False)):
        estimator, waits, failed, past = _stepped_past_where_it_failed(link)
        assert past > failed, (past, failed)
        passed = min(int(past * SHAPE_SHARE), link)
        assert passed >= 0.96 * past * SHAPE_SHARE  # passed at its rate (TOOK_SHARE)
        assert failed * SHAPE_SHARE < passed  # more than where it failed
        estimator.update(Sample(1.0, {DOWN: passed, UP: 20_000}, 0.05, waits))  # a rise
        taken_back = any(d.startswith("take back down") for d in estimator.decisions)
        assert taken_back is blamed, (link, estimator.decisions)


def test_a_download_does_not_step_past_where_it_failed_while_a_take_back_shows() -> None:
    """Within BLAME_S of a take-back a rise is read as that probe's queue seen late, so a
    step past where the download failed made then goes unjudged while the round trips are
    still up: measured (bench/capacity_follow.py --slow-share 1.0, est16e, 10:47 UTC), a step
    to 1.02 of the link a tick after an upload's failed turn (the round trips 25 ms up) grew
    37, 59, 83 ms at the modem before its take-back. It waits for them to come down."""
    for delay, stepped in ((0.015, False), (0.0, True)):
        estimator = CapacityEstimator({DOWN: 1_000_000, UP: 200_000})
        waits = {DOWN: 0.1, UP: 0.1}  # a rise: 20 ms (RISE_S and NOISE_SHARE of 0.1 s)
        estimator.update(Sample(1.0, {DOWN: 950_000, UP: 20_000}, 0.0, waits))  # raised 3%
        estimator.update(Sample(1.0, {DOWN: 930_000, UP: 20_000}, 0.0, waits))  # not taken
        failed = estimator._state[DOWN].failed_at
        assert failed is not None
        for _ in range(10):  # back up to where it failed, everything passing
            capacity = estimator.capacity(DOWN) or 0
            if capacity >= failed:
                break
            estimator.update(
                Sample(1.0, {DOWN: int(capacity * SHAPE_SHARE), UP: 20_000}, 0.0, waits)
            )
        assert estimator.capacity(DOWN) == failed, (estimator.capacity(DOWN), failed)
        estimator._since_back_s = 0.0  # a take-back (an upload's failed turn) this tick
        estimator.update(Sample(1.0, {DOWN: int(failed * SHAPE_SHARE), UP: 20_000}, delay, waits))
        assert ((estimator.capacity(DOWN) or 0) > failed) is stepped, (delay, estimator.decisions)


def test_a_try_holds_its_second_step_a_tick_before_the_steps_grow() -> None:
    """A try back up after the upload's own link slowed steps 6%, 6%, then holds a tick
    (judged) before its 12% steps: at (1.06, 1.06, 1.12) a try past a link still slow
    was seen only at its third step, 1.19-1.21 of that link, with 190-270 ms at the
    modem (bench/capacity_follow.py --vary up, est16b); its second had put 20-70 there."""
    rates, link, estimator = _upload_link_halved(2)
    for _ in range(14):
        link.tick(estimator)
    link.modems[UP].rate = rates[UP]
    steps: list[str] = []
    for _ in range(20):
        link.tick(estimator)
        steps += [d.split()[-1] for d in estimator.decisions if d.startswith("try up x")]
    assert steps[:4] == ["x1.060", "x1.060", "x1.000", "x1.120"], steps


def test_the_recorded_upload_turn_is_not_raised_on_while_the_round_trips_rise() -> None:
    """bench/capacity_follow.py --slow-share 1.0 --record, replayed. At 7d2d316 (22:07 UTC,
    capacity_follow_climb_across_failed.json) the upload's second turn raised 2% at 77 (1.02
    of the link), read +10 ms over the delay before it at 79 with 18 ms in the modem's upload
    queue, under RISE_S and NOISE_SHARE of our upload queue's 0.2 s (30 ms): its 3% raise was
    made on it (1.05 of the link) and taken back at 80 with 66 ms there. With the turn held
    while the delay reads TURN_HOLD_S over what it read before (311bfdd, 22:13 UTC,
    capacity_follow_turn_held.json, replayed tick for tick): raised 2% at 45, +8 ms at 47
    with 16 ms there, not raised on; taken back at 48 with 32 ms there."""
    before = json.loads(
        (Path(__file__).parent / "capacity_follow_climb_across_failed.json").read_text()
    )
    assert [t["decisions"] for t in before["ticks"][77:81]] == [
        "raise up x1.020", "", "raise up x1.030", "take back up (failed at 5.31)"]  # fmt: skip
    assert [round(t["modem_ms"][1]) for t in before["ticks"][79:81]] == [18, 66]
    name = "capacity_follow_turn_held.json"
    ticks = _replay(name)
    recorded = json.loads((Path(__file__).parent / name).read_text())["ticks"]
    for index, (decided, now, estimate, estimated) in enumerate(ticks[:57]):
        assert (now, estimated) == (decided, estimate), index  # 57: not stepped past on a queue
    assert [t[1] for t in ticks[45:49]] == [
        "raise up x1.020",
        "",
        "",
        "take back up (failed at 5.31)",
    ]
    tick = recorded[47]
    assert tick["delay_s"] < RISE_S + 0.1 * max(tick["waits_s"].values())  # no rise by those
    assert [round(t["modem_ms"][1]) for t in recorded[47:49]] == [16, 32]


def test_the_recorded_upload_link_slowing_is_cut_at_once_after_a_turns_take_back() -> None:
    """bench/capacity_follow.py --vary up --record at 25cf62a (est16f, 22:21 UTC), replayed:
    the upload's link halved at tick 19 during its turn, and the slowing's first rise (+25 ms
    over the delay before the turn, under RISE_S and NOISE_SHARE of our upload queue) was read
    as the turn's failure: taken back at 19, not cut. At 20 the slowing was seen (our upload
    queue empty, the upload passing under UNDER_SHARE of its rate), but its cut waited
    REFRACTORY_S after that take-back: cut at 21, a tick later than without the turn's rule
    (7d2d316, 22:23 UTC: cut at the slowing's first tick), and the download's acknowledgements,
    held at the modem a tick longer, went at once: 199-397 ms in the modem's download queue at
    24-27 (165 ms at most beside it). Now it is cut at once, at 20."""
    name = "capacity_follow_turn_at_slowing.json"
    ticks = _replay(name)
    for index, (decided, now, estimate, estimated) in enumerate(ticks[:20]):
        assert (now, estimated) == (decided, estimate), index
    assert ticks[19][1] == "turn's rise; take back up (failed at 5.05)", ticks[19][1]
    assert (ticks[20][0], ticks[21][0]) == ("", "cut up"), (ticks[20][0], ticks[21][0])
    assert ticks[20][1] == "cut up", ticks[20][1]


@pytest.mark.parametrize(
    ("recording", "cut_at", "recorded_cut", "queued_ms"),
    [
        ("capacity_follow_up_slowed_burst.json", 24, 27, [139, 168, 200, 192]),
        ("capacity_follow_up_slowed_burst_7d2d316.json", 25, 27, [93, 90, 119, 165]),
    ],
)
def test_the_recorded_download_burst_after_the_upload_link_slowed_is_cut(
    recording: str, cut_at: int, recorded_cut: int, queued_ms: list[int]
) -> None:
    """bench/capacity_follow.py --vary up --record (est16f, 22:25 UTC at 38747b8 and 22:23 at
    7d2d316), replayed. The upload's link halved at 19, was seen slowing at 20, cut at 20 and
    22: shaped under the slower link by 23. The download's acknowledgements, held in the
    modem's upload queue meanwhile (the download passing 0.24-0.42 of its link), went at once:
    the download passed its whole rate again from 24 and its queue at the modem grew for 3-4 s,
    not cut until the slowing's BLAME_S ran out (recorded at 27). Now a rise then, growing, with
    the download passing its rate, is the download's: cut at once."""
    ticks = _replay(recording)
    recorded = json.loads((Path(__file__).parent / recording).read_text())["ticks"]
    for index, (decided, now, estimate, estimated) in enumerate(ticks[:cut_at]):
        assert (now, estimated) == (decided, estimate), index
    assert [t[0] for t in ticks[cut_at : recorded_cut + 1]] == [""] * (recorded_cut - cut_at) + [
        "cut down"
    ]
    queue = [round(t["modem_ms"][0]) for t in recorded[24 : recorded_cut + 1]]
    assert queue == queued_ms, queue  # the modem's download queue from 24 to the recorded cut
    assert ticks[cut_at][1] == "cut down", ticks[cut_at][1]


def test_the_recorded_download_step_past_where_it_failed_is_not_excused_by_a_take_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bench/capacity_follow.py --slow-share 1.0 --record at 0a51840 (est16f, 22:34 UTC),
    replayed. The upload's turn failed at 41, seen early (TURN_RISE_S, 10 ms at the modem),
    the round trips low again at 42 (3.5 ms), so the download stepped past where it failed
    (PAST_STEP, 1.02 of its link: it passes TOOK_SHARE's test). Its rise at 43 was excused as
    that take-back's queue seen late (within BLAME_S): 32, 59, 87, 120 ms at the modem, taken
    back at 46. Such a step is judged by the round trips alone: now taken back at 43."""
    name = "capacity_follow_past_excused.json"
    # (a step past where it failed is judged against our download queue's noise since est16h:
    # taken back at 24 then, and the inputs no longer hold; test_..._against_our_download_queue)
    monkeypatch.setattr(CapacityEstimator, "_past_queue", lambda *_: False)
    ticks = _replay(name)
    recorded = json.loads((Path(__file__).parent / name).read_text())["ticks"]
    for index, (decided, now, estimate, estimated) in enumerate(ticks[:43]):
        assert (now, estimated) == (decided, estimate), index
    assert ticks[41][1].startswith("turn's rise; take back up"), ticks[41][1]
    assert ticks[42][1] == f"raise down x{PAST_STEP:.3f}", ticks[42][1]
    assert [t[0] for t in ticks[43:47]] == ["", "", "", "take back down (failed at 20.50)"]
    assert [round(t["modem_ms"][0]) for t in recorded[43:47]] == [32, 59, 87, 120]
    assert ticks[43][1].startswith("take back down"), ticks[43][1]


def test_a_download_climb_stops_at_its_highest_failure() -> None:
    """bench/capacity_follow.py --slow-share 1.0 --record at 7d2d316 (est16f, 22:07 UTC,
    capacity_follow_climb_across_failed.json): the download failed at 20.3-20.5 Mbit/s (0.98 of
    its link) from ticks 1 to 44, then at 17.64 at 48 (what passed then, at load); stepping
    past that passed, and where it failed was forgotten, so it climbed in RAISE_STEPS: 12% at
    56 to 1.05 of the link, taken back at 57 with 56 ms at the modem. The climb now stops at
    its highest failure since the last cut (TOP_FAILED_S) and steps past it by PAST_STEP from
    there. (Replayed tick for tick that recording now leaves the recorded decisions at 42, not
    stepped past where it failed on a queue, so the rule is shown here on a link of the same
    shape: failures at the link, then one low where a stall let less pass.)"""
    estimator = CapacityEstimator({DOWN: 1_000_000, UP: 200_000})
    waits = {DOWN: 0.1, UP: 0.1}
    link = 1_000_000 * SHAPE_SHARE
    levels, low = [], None
    for second in range(40):
        capacity = estimator.capacity(DOWN) or 0
        passed = min(capacity * SHAPE_SHARE, link)
        stepped = any(d.startswith("raise down") for d in estimator.decisions)
        if low is None and second > 15 and stepped and capacity * SHAPE_SHARE > link:
            passed, low = 0.85 * link, second  # a stall at the step past the link
        estimator.update(Sample(1.0, {DOWN: int(passed), UP: 20_000}, 0.0, waits))
        levels.append(round((estimator.capacity(DOWN) or 0) * SHAPE_SHARE / link, 3))
    assert low is not None and levels[low] < 0.75, levels  # where it failed: low
    after = levels[low + 1 :]
    assert max(after) <= round(PAST_STEP, 3), after  # recorded: 1.05, then 1.07
    assert 1.0 in after, after  # up to the highest failure, under the link, then past it


def test_an_upload_turn_whose_round_trips_rose_over_what_they_read_before_failed() -> None:
    """With our upload queue 0.3 s, a rise is RISE_S + NOISE_SHARE of it: 40 ms. A turn's
    raise past the link fills the modem's upload queue by its 2-3% a second, seen there 2-4 s
    late (61-112 ms at the modem at the take-back: bench/capacity_follow.py, est16e). Two
    readings in a row TURN_RISE_S over what the delay read before the raise: failed then."""
    estimator = _raised(UP)
    raised = estimator.capacity(UP) or 0
    waits = {DOWN: 0.05, UP: 0.3}
    shaped = {UP: int(raised * SHAPE_SHARE), DOWN: int(raised * SHAPE_SHARE) * 3 // 100}
    estimator.update(Sample(1.0, shaped, 0.001 + TURN_RISE_S * 1.2, waits))
    assert estimator.capacity(UP) == raised, estimator.decisions  # one reading: noise, no raise
    estimator.update(Sample(1.0, shaped, 0.001 + TURN_RISE_S * 1.2, waits))
    assert (estimator.capacity(UP) or 0) < raised, estimator.decisions
    assert any(d.startswith("take back up") for d in estimator.decisions), estimator.decisions


def _raised(direction: Direction, base_rtt_s: float | None = None) -> CapacityEstimator:
    """An estimator whose last tick raised `direction` (loaded, no rise)."""
    estimator = CapacityEstimator({DOWN: 2_500_000, UP: 625_000})
    for _ in range(30):
        before = estimator.capacities()
        # the direction raised loaded, the other carrying its acknowledgements (3%)
        loaded = int((before[direction] or 0) * SHAPE_SHARE)
        shaped = {direction: loaded, (UP if direction is DOWN else DOWN): loaded * 3 // 100}
        estimator.update(Sample(1.0, shaped, 0.001, base_rtt_s=base_rtt_s))
        if (estimator.capacity(direction) or 0) > (before[direction] or 0):
            return estimator
    raise AssertionError(f"{direction} was not raised")


@pytest.mark.parametrize("direction", [DOWN, UP])
def test_a_glance_takes_a_raise_back_once_the_round_trips_rose_twice_in_a_row(
    direction: Direction,
) -> None:
    """Read every quarter second, the delay signal jumps 15-39 ms for one reading with the
    modem empty (bench/capacity_follow.py --glance-s 0.25, est16c): one high reading is
    not a failed probe; two in a row GLANCE_RISE_S above what it read before the raise are."""
    estimator = _raised(direction)
    raised = estimator.capacity(direction)
    assert raised is not None
    for delay in (0.001, 0.030, 0.001):  # one jump: noise
        estimator.glance(0.25, delay)
    assert estimator.capacity(direction) == raised
    estimator.glance(0.25, 0.001 + GLANCE_RISE_S * 1.5)
    assert estimator.capacity(direction) == raised
    estimator.glance(0.25, 0.001 + GLANCE_RISE_S * 1.5)
    assert (estimator.capacity(direction) or 0) < raised, "not taken back"
    assert any("take back" in decision for decision in estimator.decisions)


def test_a_glance_without_a_raise_being_judged_changes_nothing() -> None:
    estimator = CapacityEstimator({DOWN: 2_500_000, UP: 625_000})
    for delay in (0.0, 0.3, 0.3, 0.5):  # a queue with no raise to blame: a tick's to judge
        estimator.glance(0.25, delay)
    assert estimator.capacities() == {DOWN: 2_500_000, UP: 625_000}


def test_an_upload_turn_is_judged_against_what_the_delay_read_before_its_first_raise() -> None:
    """An upload alone (the download carries its acknowledgements only) raises every JUDGE_S
    while its turn lasts, with no UP_TURN_RAISES bound. Judged against the delay read before
    each raise (the median of the last GLANCE_DELAYS readings), a queue growing under
    TURN_HOLD_S a raise moved the reference up with it (review7): 4.5 and 5.5 ms after the
    first raise put it at 2.75 ms, and two readings of 12 ms (11 over what it read before the
    turn) were not a failure. Against the turn's own reference, they are."""
    estimator = CapacityEstimator({DOWN: 2_500_000, UP: 625_000})
    waits = {DOWN: 0.0, UP: 0.3}  # a rise by RISE_S and NOISE_SHARE of it: 40 ms

    def tick(delay: float) -> None:
        up = int((estimator.capacity(UP) or 0) * SHAPE_SHARE)
        estimator.update(Sample(1.0, {UP: up, DOWN: up * 3 // 100}, delay, waits))

    for _ in range(30):  # until the turn's first raise
        tick(0.001)
        if any(d.startswith("raise up") for d in estimator.decisions):
            break
    else:
        raise AssertionError("the upload was not raised")
    first = estimator.capacity(UP) or 0
    tick(0.0045)
    tick(0.0055)  # under TURN_HOLD_S over 1 ms: the turn's next raise
    assert (estimator.capacity(UP) or 0) > first, estimator.decisions
    raised = estimator.capacity(UP) or 0
    tick(0.001 + TURN_RISE_S + 0.001)
    assert estimator.capacity(UP) == raised, estimator.decisions  # one reading: noise
    tick(0.001 + TURN_RISE_S + 0.001)
    assert (estimator.capacity(UP) or 0) < first, estimator.decisions
    assert "turn's rise" in estimator.decisions, estimator.decisions


@pytest.mark.parametrize(
    ("recording", "tick", "exact_to", "queue_ms"),
    [
        # (the modem's download queue at the tick, at the take-back a tick later)
        ("capacity_follow_past_on_queue.json", 23, 23, (17, 53)),  # est16g 01:07 UTC, at 934370c
        ("capacity_follow_turn_held.json", 57, 57, (28, 62)),  # est16f 22:13, at 311bfdd
        # est16f 22:07 (7d2d316): recorded, the climb's step up to where it failed at 36 landed a
        # byte under it, and the step on at 37 was a near step of 2% past it (10 ms at the modem),
        # then PAST_STEP at 42 (18, 45 ms); since owd30 it lands on it and holds at 37
        ("capacity_follow_climb_across_failed.json", 37, 36, (10, 0)),
        # est16b's 01:41 (6fdb88f): the replay leaves the recorded decisions at 6 (est16e's near
        # steps: up to where it failed, 0.978 of the link, where the recording stepped to 0.998);
        # the 13.5 ms read at 7 followed that recorded step, which put 3 ms at the modem
        ("capacity_follow_seen_late.json", 7, 6, (3, 15)),
    ],
)
def test_the_recorded_download_is_not_stepped_past_where_it_failed_on_a_queue(
    monkeypatch: pytest.MonkeyPatch, recording: str, tick: int, exact_to: int,
    queue_ms: tuple[int, int],
) -> None:  # fmt: skip
    """bench/capacity_follow.py --record runs, replayed. A download back up at where its probe
    failed (0.98 of its link: what passed there) often has a queue at the modem already, the
    round trips reading it (11-17 ms): what passes there is the modem's whole rate, and its
    senders' windows grow. PAST_STEP on it added a tick of 2-3% past the link to that queue:
    35-72 ms at the take-back (median 56), where from round trips under RISE_S it left 13-59
    (median 36; the recordings' 37 take-backs after PAST_STEP, 12 with a queue read, est16g).
    It waits while the round trips read more than RISE_S (a rise then is the step up to it
    failing: taken back). (_past_queue off here: it takes back such steps at their round trips
    over our download queue's noise since est16h.)"""
    monkeypatch.setattr(CapacityEstimator, "_past_queue", lambda *_: False)
    ticks = _replay(recording)
    recorded = json.loads((Path(__file__).parent / recording).read_text())["ticks"]
    for index, (decided, now, estimate, estimated) in enumerate(ticks[:exact_to]):
        assert (now, estimated) == (decided, estimate), index
    assert recorded[tick]["decisions"].startswith("raise down"), recorded[tick]["decisions"]
    modem = (round(recorded[tick]["modem_ms"][0]), round(recorded[tick + 1]["modem_ms"][0]))
    assert modem == queue_ms, modem
    assert recorded[tick]["delay_s"] > RISE_S, recorded[tick]["delay_s"]
    assert ticks[tick][1] == "down held: a queue at where it failed", ticks[tick][1]
    assert ticks[tick][3][0] == ticks[tick - 1][3][0], (ticks[tick - 1][3], ticks[tick][3])


@pytest.mark.parametrize(
    ("waits_ms", "taken_back_at"),
    [
        # a step 2% past the link: 2 ms of our queue to the modem's each 0.1 s, from the first
        ([100, 98, 96, 94, 92], 3),
        # a sender's loss here: 15 ms at once (faster than GLANCE_FALL_MAX), then flat: no queue
        ([100, 85, 85, 85, 85], None),
        # a loss, then its window growing back: the count starts again at each rise
        ([100, 85, 84, 87, 86, 89, 88], None),
        # a raise under the link: our queue drains by the step for a round trip, then holds
        ([100, 96, 95, 95, 96, 96], None),
        # 1.5 ms a reading: taken back once the falls add up to GLANCE_FALL_S
        ([100, 98.5, 97, 95.5, 94, 92.5], 4),
    ],
)
def test_a_glance_takes_a_download_raise_back_once_our_queue_falls_steadily(
    waits_ms: list[float], taken_back_at: int | None
) -> None:
    """Past the link, what leaves our download queue is in the modem's: the senders keep as
    many bytes queued as their windows hold (bench/capacity_follow.py --glance-s 0.1 --watch,
    est16h). GLANCE_FALLS readings in a row each falling by GLANCE_FALL_MAX of the rate a
    second at most, GLANCE_FALL_S in all, take the raise back at that glance; a sender's loss
    (a faster drop) or a raise's round trip of draining does not."""
    estimator = _raised(DOWN)
    raised = estimator.capacity(DOWN)
    began = estimator._state[DOWN].recent[-1][1]
    assert raised is not None
    taken = None
    for index, wait_ms in enumerate(waits_ms):
        estimator.glance(0.1, 0.001, {DOWN: wait_ms / 1000, UP: 0.2})
        if taken is None and estimator.capacity(DOWN) != raised:
            taken = index
            assert estimator.decisions[0] == "glance: our download queue fell", estimator.decisions
            # back to BACK_SHARE of where it began, which is where it failed (not the raise)
            assert estimator._state[DOWN].last_failed == began
    assert taken == taken_back_at, (taken, estimator.capacities())


@pytest.mark.parametrize(
    ("waits_ms", "taken_back_at"),
    [
        # a 3% raise that passes, 300 ms from the servers: our queue drains by 3% of 300 ms
        # (9 ms) while the senders' windows spread over the faster rate, then holds
        ([100, 97, 94, 91, 91, 91], None),
        # past the link on the same path: the fall goes on, past GLANCE_FALL_S and that drain
        ([100, 97, 94, 91, 88, 84.5, 81], 5),
    ],
)
def test_a_glance_allows_a_passing_raise_its_drain_on_a_long_path(
    waits_ms: list[float], taken_back_at: int | None
) -> None:
    """A raise that passes drains our download queue by its step for one of its senders'
    round trips: on a 300 ms path 3% of it is 9 ms, three falls of GLANCE_FALL_S in all
    (review9). The fall must pass the step times the path's round trip (Sample.base_rtt_s)
    too; on the bench's path (under a millisecond) that adds nothing."""
    estimator = _raised(DOWN, base_rtt_s=0.3)
    raised = estimator.capacity(DOWN)
    began = estimator._state[DOWN].recent[-1][1]
    assert raised is not None and round(raised / began, 3) == 1.03
    taken = None
    for index, wait_ms in enumerate(waits_ms):
        estimator.glance(0.1, 0.001, {DOWN: wait_ms / 1000, UP: 0.2})
        if taken is None and estimator.capacity(DOWN) != raised:
            taken = index
    assert taken == taken_back_at, (taken, estimator.decisions)


def test_a_glance_leaves_an_upload_probe_to_the_round_trips() -> None:
    """Read so, 3 of 5 recorded upload turns' first raises were taken for failures with the
    modem empty (est16h): an upload probe is not judged by our download queue."""
    estimator = _raised(UP)
    before = estimator.capacities()
    for wait_ms in (100, 98, 96, 94, 92, 90):
        estimator.glance(0.1, 0.001, {DOWN: wait_ms / 1000, UP: 0.2})
    assert estimator.capacities() == before, estimator.decisions


def _replay_glances(
    recording: str,
) -> list[tuple[str, str, str, list[int | None], list[int | None]]]:
    """A --glance-s 0.1 --watch --record run (ticks and the glances between them, recorded
    without judging) replayed through update() and glance(): per row (its kind, decisions
    recorded, now; estimates recorded, now)."""
    recorded = json.loads((Path(__file__).parent / recording).read_text())
    estimator = CapacityEstimator({Direction(d): bps for d, bps in recorded["start"].items()})
    rows = []
    for row in recorded["ticks"]:
        waits = {Direction(d): w for d, w in row["waits_s"].items()}
        if row["kind"] == "tick":
            estimator.update(Sample(row["seconds"], {Direction(d): n for d, n in row["bytes"].items()},
                                    row["delay_s"], waits))  # fmt: skip
        else:
            estimator.glance(row["seconds"], row["delay_s"], waits)
        rows.append((row["kind"], row["decisions"] if row["kind"] == "tick" else "",
                     "; ".join(estimator.decisions), row["estimate"],
                     [estimator.capacity(DOWN), estimator.capacity(UP)]))  # fmt: skip
    return rows


@pytest.mark.parametrize(
    ("recording", "raised_at", "glance", "recorded_back_at", "modem_ms"),
    [
        # PAST_STEP to 1.027 of the link at tick 6; taken back at its tick 7 with 33 ms at the modem
        ("capacity_follow_glance_steady_2.json", 6, 3, 7, (4.8, 33.1)),
        # PAST_STEP to 1.023 at tick 8 (the modem's queue 11 ms at its first glance, the raise's
        # burst); taken back at tick 9 with 37 ms there
        ("capacity_follow_glance_steady.json", 8, 5, 9, (22.0, 37.3)),
        # PAST_STEP to 1.02 at tick 8 that passed TOOK_SHARE's test and was not judged
        # (_past_unjudged) until the round trips rose at tick 11: 95 ms at the modem by then
        # (the recording's delay read low: the bench's receiver floors spanned 0.3 s of
        # readings with glances until 282a1ba)
        ("capacity_follow_glance_unjudged.json", 8, 2, 11, (4.8, 95.3)),
    ],
)
def test_the_recorded_download_step_past_the_link_is_taken_back_at_a_glance(
    monkeypatch: pytest.MonkeyPatch, recording: str, raised_at: int, glance: int,
    recorded_back_at: int, modem_ms: tuple[float, float],
) -> None:  # fmt: skip
    """bench/capacity_follow.py --glance-s 0.1 --watch runs (the ticks decided as the
    helper's do, the glances between them recorded unjudged), replayed through update() and
    glance(): the same decisions as recorded until the download's step past the link, which
    our download queue's fall takes back at its `glance`-th glance, with 5-22 ms at the modem,
    where the recorded ticks took it back 1-3 s later with 33-95 ms there. The round trips'
    glance rule (GLANCE_RISE_S) is off here: it takes back the bench's start-up queue in two
    of them (a true failure, 114-116 ms at the modem), after which the inputs no longer hold."""
    monkeypatch.setattr(capacity_estimate, "GLANCE_RISE_S", float("inf"))
    rows = _replay_glances(recording)
    recorded = json.loads((Path(__file__).parent / recording).read_text())["ticks"]
    ticks = list(
        itertools.accumulate(kind == "tick" for kind, *_ in rows)
    )  # the tick a row is in (1-based)
    fired = next(i for i, (_, _, now, _, _) in enumerate(rows) if now.startswith("glance"))
    for index, (_, was, now, estimate, estimated) in enumerate(rows[:fired]):
        assert (now, estimated) == (was, estimate), index
    raised = max(i for i in range(fired) if rows[i][0] == "tick")
    assert (ticks[raised] - 1, fired - raised) == (raised_at, glance)
    began = recorded[raised - 1]["estimate"][0] * 8e-6  # where it failed: where the raise began
    assert (
        rows[fired][2] == f"glance: our download queue fell; take back down (failed at {began:.2f})"
    )
    assert rows[raised][1].startswith("raise down"), rows[raised][1]
    back = next(i for i, row in enumerate(recorded) if row["decisions"].startswith("take back down")
                and row["kind"] == "tick" and i > fired)  # fmt: skip
    assert ticks[back] - 1 == recorded_back_at, ticks[back]
    assert (
        round(recorded[fired]["modem_ms"][0], 1),
        round(recorded[back]["modem_ms"][0], 1),
    ) == modem_ms


@pytest.mark.parametrize(
    ("recording", "tick", "recorded_back", "modem_ms"),
    [
        # est16f 22:34 (0a51840): PAST_STEP at 23, the round trips 27.2 ms at 24 (the threshold
        # with our upload queue's 0.2 s: 30 ms); taken back at 25 with 31 ms at the modem
        ("capacity_follow_past_excused.json", 24, 25, (24, 31)),
        # (est16f 22:07's climb_across_failed was a second case, its step 2% past where it
        # failed at 37: since owd30 the step up to it lands on it, and the replay holds there)
    ],
)
def test_the_recorded_download_step_past_where_it_failed_is_judged_against_our_download_queue(
    monkeypatch: pytest.MonkeyPatch, recording: str, tick: int, recorded_back: int,
    modem_ms: tuple[int, int],
) -> None:  # fmt: skip
    """bench/capacity_follow.py --record runs, replayed. A download step past where it
    failed that passed TOOK_SHARE's test is judged by the round trips alone, and the rise
    threshold allowed NOISE_SHARE of our upload queue's wait too (0.2 s: 20 ms more):
    unjudged, such a step read 7, 23, 30, 24 ms at ticks with 18-45 ms at the modem
    (--as-helper, est16h). Against our download queue's noise it is taken back a tick or
    two sooner; with _past_queue off, as recorded."""
    ticks = _replay(recording)
    recorded = json.loads((Path(__file__).parent / recording).read_text())["ticks"]
    for index, (decided, now, estimate, estimated) in enumerate(ticks[:tick]):
        assert (now, estimated) == (decided, estimate), index
    assert ticks[tick][1].startswith("down past where it failed: a queue; take back down"), ticks[
        tick
    ][1]
    assert recorded[tick]["decisions"] == "" and recorded[recorded_back]["decisions"].startswith(
        "take back down"
    )
    modem = (round(recorded[tick]["modem_ms"][0]), round(recorded[recorded_back]["modem_ms"][0]))
    assert modem == modem_ms, modem
    monkeypatch.setattr(CapacityEstimator, "_past_queue", lambda *_: False)
    assert _replay(recording)[tick][1] == "", "taken back without it"
