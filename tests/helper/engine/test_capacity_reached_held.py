"""A download that reached where its probe last failed, its step past held a tick by the round
trips reading a queue there, still holds the upload's turn (capacity_estimate.py's _probe,
`reached`; issue 16, est34).

est31's rule: a download that climbed in a row to where it last failed is "climbing" (its step
past is a tick or two away), so no upload turn comes between. When the round trips read over
RISE_S at that tick ("down held: a queue at where it failed"), the next raise's refresh set its
streak to 0 and the turn came at the next tick, 3-4 s before the step past: est34's b_d3 (the
download's link back from halved at 40 s, followed in 12 s). The same sequence is in 3 of that
session's 6 bench records. On test_capacity_one_way.py's toy no sweep changes (its round trips
never read that queue at where it failed)."""

from __future__ import annotations

from pathlib import Path

from tests.helper.engine.capacity_replay import first_difference, replay

RECORDING = Path(__file__).parent / "capacity_follow_reached_held.json"


def test_a_download_held_at_where_it_failed_steps_past_before_an_uploads_turn() -> None:
    """b_d3's first 45.3 s: every row as recorded until 45.2 s; there, the download at where it
    failed (10.23 Mbit/s, the link back at 19.8), held at 44.2 s, was left for an upload turn
    ("raise up x1.040"); now it steps past (PAST_STEP)."""
    replayed = replay(RECORDING)
    differs = first_difference(replayed)
    row, now, estimate = replayed[differs]
    assert (row["kind"], round(float(row["at"]), 1)) == ("tick", 45.2)  # type: ignore[arg-type]
    assert row["decisions"] == "raise up x1.040"
    assert now == "raise down x1.045"
    assert estimate[1] == replayed[differs - 1][2][1]  # the upload not raised
