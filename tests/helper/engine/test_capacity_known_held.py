"""A download cut for its link slowing remembers what it held before (`known`), not only the rate
its cut began from: as its link halved a probe failed with it and was taken back first, so the
cut began under what the link had passed (capacity_estimate.py's _cut; issue 16, est34).

While a download climbs back under KNOWN_SHARE of `known`, the upload's turns wait (est31). Taken
from the rate after the take-back (14.06 Mbit/s where it had held 19.5), the climb back from the
halved link was past KNOWN_SHARE of it at 12.3 Mbit/s, and a turn came between every three
raises: the download's link back from halved was followed in 14 s on the bench (est34's b_d1).
test_one_way_halved_and_back.py's toy sweep: 36 of 48 within 10 s before, 45 after."""

from __future__ import annotations

from pathlib import Path

from tests.helper.engine.capacity_replay import first_difference, replay

RECORDING = Path(__file__).parent / "capacity_follow_known_held.json"


def test_a_download_climbing_back_under_what_it_held_before_its_link_halved_holds_the_turn() -> (
    None
):
    """est34's b_d1: the download's link halved at 20 s (its probe to 20.4 Mbit/s taken back to
    14.06 at 20.5 s, then cut to 7.2 at 22.6 s), back at 40 s. Every row decides as recorded
    until 47.1 s; there the download, climbing back at 12.31 Mbit/s (0.88 of 14.06, 0.63 of the
    19.5 it held), waited for an upload turn (made at 48.1 s, failed at 50.1 s) and is raised
    now."""
    replayed = replay(RECORDING)
    differs = first_difference(replayed)
    row, now, estimate = replayed[differs]
    assert (row["kind"], round(float(row["at"]), 1), row["decisions"]) == ("tick", 47.1, "")  # type: ignore[arg-type]
    assert now == "raise down x1.120"
    assert estimate[0] == int(replayed[differs - 1][2][0] * 1.12)  # type: ignore[operator]
    assert differs == len(replayed) - 1
