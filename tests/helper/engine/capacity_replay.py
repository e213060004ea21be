"""A bench/capacity_follow.py --as-helper --record run replayed through the estimator, for the
tests that pin a decision a recorded run made (the estimator's inputs each tick and glance are in
the recording, so a replay decides as the helper would have, without the bench's minutes)."""

from __future__ import annotations

import json
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.capacity_estimate import CapacityEstimator, Sample
from chadthrottle.helper.kernel.one_way_reading import UploadQueueReading

DOWN, UP = Direction.DOWN, Direction.UP

Replayed = list[tuple[dict[str, object], str, list[int | None]]]


def replay(recording: Path, *, passed: bool = True) -> Replayed:
    """Per row: the row, the decisions now and the estimate now (down, up). The glances are given
    what passed since the last look unless `passed` is False (as before est33's E2)."""
    recorded = json.loads(recording.read_text())
    estimator = CapacityEstimator({Direction(d): bps for d, bps in recorded["start"].items()})
    rows: Replayed = []
    for row in recorded["ticks"]:
        waits = {Direction(d): w for d, w in row["waits_s"].items()}
        moved = {Direction(d): n for d, n in row["bytes"].items()}
        read = row["upload_queue"]
        reading = None if read is None else UploadQueueReading(read[0], read[1])
        if row["kind"] == "tick":
            estimator.update(Sample(row["seconds"], moved, row["delay_s"], waits, row["base_rtt_s"],
                                    upload_queue=reading))  # fmt: skip
        else:
            estimator.glance(row["seconds"], row["delay_s"], waits, upload_queue=reading,
                             passed=moved if passed else None)  # fmt: skip
        rows.append(
            (
                row,
                "; ".join(estimator.decisions),
                [estimator.capacity(DOWN), estimator.capacity(UP)],
            )
        )
    return rows


def first_difference(replayed: Replayed) -> int:
    """The index of the first row whose decisions or estimate now differ from the recording's."""
    differs = next((i for i, (row, now, estimate) in enumerate(replayed)
                    if (now, estimate) != (row["decisions"], row["estimate"])), None)  # fmt: skip
    assert differs is not None, (
        "the replay decides as recorded everywhere: the change made no difference"
    )
    return differs
