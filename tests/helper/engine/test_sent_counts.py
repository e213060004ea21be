"""A slot's count of what its limit let through goes on smoothly when the
counter it is read from changes (helper/engine/sent_counts.py): the rate
read from it has no spike and no gap at the switch (issue 13 review L4)."""

from __future__ import annotations

import itertools

from chadthrottle.helper.engine.sent_counts import ContinuousCounts

TICK = 1_000_000  # bytes a tick at the limit


def _rates(counts: list[int]) -> list[int]:
    return [b - a for a, b in itertools.pairwise(counts)]


def test_a_switch_from_the_class_to_the_policer_reads_the_ticks_bytes_not_the_totals_gap() -> None:
    """The policer (guard) counted every byte since the limit landed; the
    class only what it shaped. Read as one counter, the switch moved by the
    gap between the two totals in one tick: 40 times the limit here."""
    counts, seen = ContinuousCounts(), []
    guard, tc = 50 * TICK, 10 * TICK
    for tick in range(6):
        guard += TICK
        if tick < 3:  # tc shapes it: the class's count
            tc += TICK
            seen.append(counts.read({7: {"guard": guard, "shaper": tc}}, {7: "shaper"})[7])
        else:  # its uplink is now policed, not shaped: the class is gone
            seen.append(counts.read({7: {"guard": guard}}, {7: "guard"})[7])
    assert _rates(seen) == [TICK] * 5
    assert guard - tc > 30 * TICK  # what the naive read showed at the switch


def test_a_count_that_goes_back_is_bridged_by_another_source_or_counts_from_zero() -> None:
    counts = ContinuousCounts()
    assert counts.read({1: {"shaper": 5 * TICK, "guard": 9 * TICK}}, {1: "shaper"}) == {1: 5 * TICK}
    # a namespace's shaper went (the sum of classes fell): the guard counted the tick
    after = counts.read({1: {"shaper": 2 * TICK, "guard": 10 * TICK}}, {1: "shaper"})
    assert after == {1: 6 * TICK}
    # no other source (the ebpf backend alone, or a class made again): the new count
    counts = ContinuousCounts()
    counts.read({1: {"shaper": 5 * TICK}}, {1: "shaper"})
    assert counts.read({1: {"shaper": TICK // 2}}, {1: "shaper"}) == {1: 5 * TICK + TICK // 2}


def test_a_slot_starts_at_its_count_and_one_not_read_is_forgotten() -> None:
    counts = ContinuousCounts()
    assert counts.read({1: {"guard": 300}, 2: {"guard": 50}}, {1: "guard", 2: "guard"}) == {
        1: 300,
        2: 50,
    }
    assert counts.read({2: {"guard": 60}}, {2: "guard"}) == {2: 60}
    assert counts.read({1: {"shaper": 10}}, {1: "shaper"}) == {1: 10}  # anew: no past to go on from
