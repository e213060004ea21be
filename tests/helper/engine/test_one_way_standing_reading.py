"""A one-way reading of the upload that STANDS above the modem's queue, on
test_capacity_one_way.py's toy (review33a): a far end that forges its TSvals, or whose
clock stepped forward (review32's K6: read as a queue, its floor rising 1.5 ms a second),
being the one connection read. Each failed on the estimator before the fix it names
(_not_ours, the round trips' rise past the reading, the deep floor's gate: each says what it
measured before).
Pure logic, about 2 s."""

from __future__ import annotations

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.capacity_estimate import CapacityEstimator, Sample
from chadthrottle.helper.kernel.one_way_reading import UploadQueueReading
from chadthrottle.helper.kernel.priority_classes import SHAPE_SHARE

from tests.helper.engine.test_capacity_one_way import RATES, StandingHigh

DOWN, UP = Direction.DOWN, Direction.UP


def _settled(lag: int, settle_s: int, offset: float) -> tuple[StandingHigh, CapacityEstimator]:
    link = StandingHigh(RATES[DOWN], RATES[UP], lag)
    estimator = CapacityEstimator(dict(RATES))
    for _ in range(settle_s):
        link.tick(estimator)
    link.offset = offset
    return link, estimator


def test_a_standing_reading_leaves_the_downloads_own_queue_to_be_cut() -> None:
    """The far clock steps 100 ms forward, the download's link halves 5 s later. Every rise is
    excused as "the upload's queue, cut, seen late" while the reading stands (_note_reading
    renews _cut_seen_s at each look of SEEN_MS once a one-way cut was made): the modem's
    download queue stood >= 300 ms for all 30 of the seconds 10-40 in 11 of 12 runs (no
    reader: 0-3 s; an honest reader: 0). A reading standing where a one-way cut left it
    (_not_ours) renews no excuse now."""
    stood = []
    for lag in (1, 2, 3):
        for settle_s in (20, 25, 30, 35):
            link, estimator = _settled(lag, settle_s, 100.0)
            full = 0
            for second in range(40):
                if second == 5:
                    link.modems[DOWN].rate /= 2
                link.tick(estimator)
                link.offset = max(0.0, link.offset - 1.5)
                full += second >= 10 and link.modems[DOWN].queue / link.modems[DOWN].rate >= 0.3
            stood.append(full)
    assert max(stood) <= 10, stood


def test_a_reading_standing_a_little_high_does_not_wear_the_upload_down() -> None:
    """+12 ms on a steady link: the standing cut's bound, min(reading, round trips), is met at
    the tick after each of the download's failed probes (45 ms at the modem, seen late in the
    round trips), and the upload's turns are taken back at once on the reading: the upload
    ended at 0.14-0.27 of its link after 120 s (no reader: 1.02-1.05; honest: 0.98-1.00).
    Round trips risen past what the reading explains are another queue's now: no cut."""
    for lag in (1, 2, 3):
        link, estimator = _settled(lag, 20, 12.0)
        for _ in range(120):
            link.tick(estimator)
        assert (estimator.capacity(UP) or 0) >= 0.7 * RATES[UP], (lag, estimator.capacity(UP))


def test_a_deep_forged_reading_does_not_deepen_one_cut_past_the_round_trips_rule() -> None:
    """review33a's M3: a reading of 300 ms (forged, or a far clock stepped) with the round trips
    at 11 ms and our upload, loaded 2 s ago, sending 5% now: the deep floor (MAX_CUT_SHARE**2,
    for a halved link's deep queue) cut it to 0.25 at once, where the round trips' rule stops
    at MAX_CUT_SHARE. The floor is the deep one only where what we sent puts the cut at it or
    above it (or the round trips read as deep): here 0.5."""
    start = {DOWN: 50_000_000 // 8, UP: 20_000_000 // 8}
    estimator = CapacityEstimator(start=dict(start))
    for _ in range(6):
        up = int((estimator.capacity(UP) or 0) * SHAPE_SHARE)
        estimator.update(Sample(1.0, {DOWN: 1000, UP: up}, None, {}, 0.02,
                                upload_queue=UploadQueueReading(0.0, 12)))  # fmt: skip
    before = estimator.capacity(UP) or 0
    sent = int(before * SHAPE_SHARE * 0.05)
    estimator.update(Sample(1.0, {DOWN: 1000, UP: sent}, 0.011, {}, 0.02,
                            upload_queue=UploadQueueReading(300.0, 12)))  # fmt: skip
    assert (estimator.capacity(UP) or 0) >= 0.5 * before, estimator.decisions
