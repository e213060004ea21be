"""The recorder: pending minutes, batches written to the store, reads that
merge both, what a viewer may see, and the bound on one batch."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from chadthrottle.helper.engine.api import ADMIN_VIEWER, Viewer
from chadthrottle.helper.engine.rates import RateMeter
from chadthrottle.helper.errors import InvalidArgument
from chadthrottle.helper.usage.buckets import local_midnight
from chadthrottle.helper.usage.recorder import UsageRecorder, fold_batch
from chadthrottle.helper.usage.store import UsageStore
from chadthrottle.usage_contract import MAX_USAGE_ROWS, OTHER_APPLICATIONS_ID, UsageResolution

from tests.support.counter_sample import Sample

NOW = 1_795_000_000


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def parts(tmp_path: Path):  # type: ignore[no-untyped-def]
    clock = Clock()
    recorder = UsageRecorder(UsageStore(tmp_path), flush_interval_s=3600, wall_clock=clock)
    recorder.start()
    meter = RateMeter()
    meter.remember(10, "exe:/a", 1000)
    meter.remember(11, "exe:/b", 1001)
    yield recorder, meter, clock
    recorder.close()


def _day(
    recorder: UsageRecorder, viewer: Viewer = ADMIN_VIEWER, app_id: str = ""
) -> dict[str, tuple[int, int]]:
    rows = recorder.query(app_id, 0, NOW + 86_400, UsageResolution.DAY, viewer)
    return {row.app_id: (row.down_bytes, row.up_bytes) for row in rows}


def test_reads_are_up_to_date_before_and_after_a_flush_never_double(parts) -> None:  # type: ignore[no-untyped-def]
    recorder, meter, clock = parts
    recorder.update([Sample(10, 100, 1), Sample(11, 5, 0)], meter.owner_of)
    assert _day(recorder) == {"exe:/a": (100, 1), "exe:/b": (5, 0)}  # pending only
    recorder.flush()
    clock.now += 61
    recorder.update([Sample(10, 300, 1), Sample(11, 5, 0)], meter.owner_of)
    assert _day(recorder) == {"exe:/a": (300, 1), "exe:/b": (5, 0)}  # stored + pending
    minutes = recorder.query("exe:/a", 0, NOW + 200, UsageResolution.MINUTE, ADMIN_VIEWER)
    assert [(row.start, row.end, row.down_bytes) for row in minutes] == [
        (NOW - NOW % 60, NOW - NOW % 60 + 60, 100),
        (NOW - NOW % 60 + 60, NOW - NOW % 60 + 120, 200),
    ]


class ReadAfterRelease:
    """The store's lock, which once armed runs read() right after the next
    release: a GetUsage that comes in the moment a flush has committed."""

    def __init__(self, lock: threading.Lock, read: Callable[[], object]) -> None:
        self._lock, self._read = lock, read
        self.armed = False
        self.seen: list[object] = []

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *_exc: object) -> None:
        self._lock.release()
        if self.armed:
            self.armed = False
            self.seen.append(self._read())


def test_a_read_as_a_flush_commits_counts_the_batch_once(parts) -> None:  # type: ignore[no-untyped-def]
    recorder, meter, _clock = parts
    recorder.update([Sample(10, 100, 1)], meter.owner_of)
    store = recorder._store
    store.lock = hook = ReadAfterRelease(store.lock, lambda: _day(recorder))
    hook.armed = True
    recorder.flush()
    assert hook.seen == [{"exe:/a": (100, 1)}]  # was (200, 2): stored and still "flushing"
    assert _day(recorder) == {"exe:/a": (100, 1)}


def test_midnight_splits_the_days_whether_written_or_waiting(parts) -> None:  # type: ignore[no-untyped-def]
    recorder, meter, clock = parts
    midnight = local_midnight(NOW) + 86_400
    clock.now = midnight - 1  # the last second of the day
    recorder.update([Sample(10, 100, 0)], meter.owner_of)
    clock.now = midnight
    recorder.update([Sample(10, 130, 0)], meter.owner_of)
    seen = []
    for flushed_at in ("never", "between", "after"):
        if flushed_at != "never":
            recorder.flush()
        clock.now = midnight + 1
        recorder.update([Sample(10, 130 + len(seen) + 1, 0)], meter.owner_of)  # one more byte
        days = recorder.query("", midnight - 86_400, midnight + 86_400, UsageResolution.DAY,
                              ADMIN_VIEWER)  # fmt: skip
        seen.append([(row.start, row.down_bytes) for row in days])
    assert seen == [
        [(midnight - 86_400, 100), (midnight, 31)],
        [(midnight - 86_400, 100), (midnight, 32)],
        [(midnight - 86_400, 100), (midnight, 33)],
    ]
    today = recorder.query("", midnight, midnight + 86_400, UsageResolution.DAY, ADMIN_VIEWER)
    assert [(row.start, row.down_bytes) for row in today] == [(midnight, 33)]


def test_a_user_sees_only_their_own_processes_usage_and_root_all(parts) -> None:  # type: ignore[no-untyped-def]
    recorder, meter, _clock = parts
    meter.remember(12, "exe:/a", 1001)  # the same program, another user
    recorder.update([Sample(10, 100, 0), Sample(11, 5, 0), Sample(12, 40, 0)], meter.owner_of)
    recorder.flush()
    assert _day(recorder, Viewer(1000, sees_all=False)) == {"exe:/a": (100, 0)}
    assert _day(recorder, Viewer(1001, sees_all=False)) == {"exe:/a": (40, 0), "exe:/b": (5, 0)}
    assert _day(recorder, Viewer(1002, sees_all=False)) == {}
    assert _day(recorder) == {"exe:/a": (140, 0), "exe:/b": (5, 0)}
    assert _day(recorder, app_id="exe:/b") == {"exe:/b": (5, 0)}


def test_a_clean_stop_writes_the_pending_minute(tmp_path: Path) -> None:
    meter = RateMeter()
    meter.remember(10, "exe:/a", 0)
    first = UsageRecorder(UsageStore(tmp_path), flush_interval_s=3600)
    first.start()
    first.update([Sample(10, 12345, 678)], meter.owner_of)
    first.close()
    second = UsageRecorder(UsageStore(tmp_path), flush_interval_s=3600)
    second.start()
    assert (
        sum(
            row.down_bytes
            for row in second.query("", 0, 2**40, UsageResolution.MONTH, ADMIN_VIEWER)
        )
        == 12345
    )
    second.close()


def test_months_are_summed_from_days(parts) -> None:  # type: ignore[no-untyped-def]
    recorder, meter, clock = parts
    for day in range(40):
        clock.now = NOW + day * 86_400
        recorder.update([Sample(10, (day + 1) * 1000, 0)], meter.owner_of)
    recorder.flush()
    months = recorder.query("", 0, 2**40, UsageResolution.MONTH, ADMIN_VIEWER)
    assert len(months) == 2 and sum(row.down_bytes for row in months) == 40_000
    assert all(
        row.start == local_midnight(row.start) and row.end > row.start + 27 * 86_400
        for row in months
    )


def test_a_batch_keeps_the_busiest_applications_per_user_and_folds_the_rest() -> None:
    storm = {
        (minute, f"exe:/storm/{n}", 1001): [n + 1, 0, 0, 0]
        for n in range(30)
        for minute in (60, 120)
    }
    desktop = {(60, f"exe:/app/{n}", 1000): [1, 0, 0, 0] for n in range(5)}
    folded = fold_batch({**storm, **desktop}, per_uid=10, most=100)
    assert {key for key in folded if key[2] == 1000} == set(
        desktop
    )  # another user's storm pushes out nothing
    storm_kept = {app_id for _minute, app_id, uid in folded if uid == 1001}
    assert storm_kept == {f"exe:/storm/{n}" for n in range(20, 30)} | {OTHER_APPLICATIONS_ID}
    assert folded[(60, OTHER_APPLICATIONS_ID, 1001)][0] == sum(range(1, 21))
    assert sum(sum(c) for c in folded.values()) == sum(
        sum(c) for c in {**storm, **desktop}.values()
    )
    assert len(fold_batch(storm, per_uid=100, most=7)) == 2 * 8  # the bound in all, too
    assert fold_batch(desktop) is desktop


def test_too_many_rows_is_a_named_error(parts) -> None:  # type: ignore[no-untyped-def]
    recorder, meter, _clock = parts
    for tgid in range(MAX_USAGE_ROWS + 1):
        meter.remember(1000 + tgid, f"exe:/{tgid}", 0)
    recorder.update(
        [Sample(1000 + tgid, 1, 0) for tgid in range(MAX_USAGE_ROWS + 1)], meter.owner_of
    )
    with pytest.raises(InvalidArgument, match="more than"):
        recorder.query("", 0, 2**40, UsageResolution.DAY, ADMIN_VIEWER)
    assert len(recorder.query("exe:/7", 0, 2**40, UsageResolution.DAY, ADMIN_VIEWER)) == 1
