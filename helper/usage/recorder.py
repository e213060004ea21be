"""Usage history: the feed's per-tick bytes kept in memory for up to a
minute, then written to the store in one batch, and read back for GetUsage.

The engine hands over each tick's bytes under its lock (dict additions, no
I/O); a thread of its own writes them every flush_interval_s (a minute: a
SIGKILL loses at most that) and at a clean stop, and prunes once an hour.
Reads merge what is stored with what is still waiting, so GetUsage is up to
date to the last tick.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable

from chadthrottle.helper.engine.api import Viewer
from chadthrottle.helper.engine.rates import CounterSample
from chadthrottle.helper.errors import InvalidArgument
from chadthrottle.helper.usage.buckets import (
    SOURCE_LEVEL,
    Level,
    bucket_start,
    month_start,
    next_period,
    period_start,
)
from chadthrottle.helper.usage.feed import Counts, OwnerOf, UsageFeed, UsageKey
from chadthrottle.helper.usage.store import UsageEntry, UsageStore
from chadthrottle.usage_contract import (
    MAX_USAGE_ROWS,
    OTHER_APPLICATIONS_ID,
    UsageResolution,
    UsageRow,
)

log = logging.getLogger("chadthrottle.usage")

FLUSH_INTERVAL_S = 60.0
PRUNE_INTERVAL_S = 3_600.0
# Applications a flush writes as themselves, per uid and in all; beyond, the
# least active of the batch (by bytes) are summed into OTHER_APPLICATIONS_ID
# under their uid: a storm of short-lived programs must not grow the file
# without bound, nor one user's storm push out another user's applications.
# Far above a desktop's: 1,000 applications each moving bytes every minute fit.
MAX_APPS_PER_UID_PER_FLUSH = 1_000
MAX_APPS_PER_FLUSH = 5_000

_TOO_MANY = f"more than {MAX_USAGE_ROWS} rows: ask for one application, a shorter range or a coarser resolution"

Pending = dict[tuple[int, str, int], Counts]  # (minute, app id, uid) -> counts


def fold_batch(
    batch: Pending, per_uid: int = MAX_APPS_PER_UID_PER_FLUSH, most: int = MAX_APPS_PER_FLUSH
) -> Pending:
    """The batch with at most per_uid applications per uid and most in all
    (the busiest of the batch), the others' bytes summed into
    OTHER_APPLICATIONS_ID (same minute, same uid)."""
    moved: dict[tuple[str, int], int] = {}
    for (_minute, app_id, uid), counts in batch.items():
        moved[(app_id, uid)] = moved.get((app_id, uid), 0) + sum(counts)
    if len(moved) <= min(per_uid, most):
        return batch
    busiest = sorted(moved, key=lambda key: moved[key], reverse=True)
    per_user: dict[int, int] = {}
    kept: set[tuple[str, int]] = set()
    for app_id, uid in busiest:
        if per_user.get(uid, 0) < per_uid and len(kept) < most:
            per_user[uid] = per_user.get(uid, 0) + 1
            kept.add((app_id, uid))
    if len(kept) == len(moved):
        return batch
    folded: Pending = {}
    for (minute, app_id, uid), counts in batch.items():
        key = (
            (minute, app_id, uid) if (app_id, uid) in kept else (minute, OTHER_APPLICATIONS_ID, uid)
        )
        total = folded.setdefault(key, [0, 0, 0, 0])
        for at, value in enumerate(counts):
            total[at] += value
    return folded


class UsageRecorder:
    """The usage feed, its pending minute, the store and the flushing thread."""

    def __init__(self, store: UsageStore, flush_interval_s: float = FLUSH_INTERVAL_S,
                 wall_clock: Callable[[], float] = time.time,
                 rename: Callable[[str, int], str | None] | None = None) -> None:  # fmt: skip
        """rename: (app id, uid) -> the id identity rules give it now
        (identity/renames.py), applied to the stored history at start."""
        self._store = store
        self._rename = rename
        self._flush_interval_s = flush_interval_s
        self._wall_clock = wall_clock
        self._feed = UsageFeed()
        self._lock = threading.Lock()  # guards _pending and _flushing
        self._pending: Pending = {}
        self._flushing: Pending = {}  # taken by a flush, not yet committed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pruned_at = float("-inf")
        self._failing = False

    # -- the engine's side (under the engine lock: no I/O) -----------------------

    def retire(self, final_samples: Iterable[CounterSample], owner_of: OwnerOf) -> None:
        self._add(self._feed.retire(final_samples, owner_of))

    def update(self, samples: Iterable[CounterSample], owner_of: OwnerOf) -> None:
        self._add(self._feed.update(samples, owner_of))

    def _add(self, moved: dict[UsageKey, Counts]) -> None:
        if not moved:
            return
        now = int(self._wall_clock())
        minute = now - now % 60
        with self._lock:
            for (app_id, uid), counts in moved.items():
                pending = self._pending.setdefault((minute, app_id, uid), [0, 0, 0, 0])
                for at, value in enumerate(counts):
                    pending[at] += value

    # -- writing ---------------------------------------------------------------

    def start(self) -> None:
        """Open the store and start flushing; without a store, usage is kept
        for the pending minute only (GetUsage shows that much)."""
        if self._store.open():
            self._rename_ids()
            self._flush_now()  # prunes what expired while the helper was not running
        self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
        self._thread.start()

    def _rename_ids(self) -> None:
        """Move the history of ids that identity rules now name otherwise."""
        if self._rename is None:
            return
        try:
            with self._store.lock:
                self._store.rename_app_ids(self._rename)
        except sqlite3.Error as error:
            log.error("could not move the usage history to new application ids: %s", error)

    def close(self) -> None:
        """Write what is pending and close the store (a clean stop loses nothing)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._flush_now()
        with self._store.lock:
            self._store.close()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_interval_s):
            try:
                self._flush_now()
            except Exception:
                log.exception("writing the usage history failed")

    def flush(self) -> None:
        """Write what is pending now (tests and benches; the thread does it)."""
        self._flush_now()

    def _flush_now(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, {}
            self._flushing = batch
        with self._store.lock:
            try:
                self._write(batch)
            finally:  # still under the store lock: a read sees the batch stored or waiting, never both
                with self._lock:
                    self._flushing = {}

    def _write(self, batch: Pending) -> None:
        """The batch into the store (the caller holds the store lock)."""
        if not self._store.available:
            return
        entries = [UsageEntry(minute, app_id, uid, (counts[0], counts[1], counts[2], counts[3]))
                   for (minute, app_id, uid), counts in fold_batch(batch).items()]  # fmt: skip
        try:
            if entries:
                self._store.add(entries)
            now = self._wall_clock()
            if now - self._pruned_at >= PRUNE_INTERVAL_S:
                self._store.prune(int(now))
                self._pruned_at = now
        except sqlite3.Error as error:
            if not self._failing:
                log.error(
                    "could not write the usage history (%d entries lost): %s", len(entries), error
                )
            self._failing = True
            return
        if self._failing:
            log.info("the usage history is written again")
        self._failing = False

    # -- reading ---------------------------------------------------------------

    def query(
        self, app_id: str, since: int, until: int, resolution: UsageResolution, viewer: Viewer
    ) -> list[UsageRow]:
        """Rows of resolution whose stored periods begin in [since, until), of
        one application ("" = every one), summed over the uids the viewer may
        see: every uid for a viewer who sees all, else the viewer's own. Raises
        InvalidArgument past MAX_USAGE_ROWS."""
        level = SOURCE_LEVEL[resolution]
        uid = None if viewer.sees_all else viewer.uid
        sums: dict[tuple[str, int], list[int]] = {}
        periods: dict[
            int, int
        ] = {}  # stored start -> period start: localtime() once per day, not per row

        def add(row_app: str, start: int, counts: Iterable[int]) -> None:
            period = periods.get(start)
            if period is None:
                period = periods[start] = period_start(resolution, start)
            total = sums.setdefault((row_app, period), [0, 0, 0, 0])
            for at, value in enumerate(counts):
                total[at] += value

        with (
            self._store.lock
        ):  # no write runs meanwhile: a batch is either stored or still in _flushing
            stored: list[tuple[str, int, int, int, int, int]] = []
            most = MAX_USAGE_ROWS
            if self._store.available:
                try:
                    stored = self._stored_rows(
                        level, since, until, app_id, uid, resolution, most + 1
                    )
                except sqlite3.Error as error:
                    log.error("could not read the usage history: %s", error)
            with self._lock:
                waiting = [*self._flushing.items(), *self._pending.items()]
        if len(stored) > most:
            raise InvalidArgument(_TOO_MANY)
        for row_app, start, *counts in stored:
            add(row_app, start, counts)
        starts: dict[int, int] = {}  # minute -> its period: localtime() once a minute waiting
        for (minute, row_app, row_uid), counts in waiting:
            begins = starts.get(minute)
            if begins is None:
                begins = starts[minute] = bucket_start(level, minute)
            if (
                (not app_id or row_app == app_id)
                and (uid is None or row_uid == uid)
                and since <= begins < until
            ):
                add(row_app, begins, counts)
        if len(sums) > MAX_USAGE_ROWS:
            raise InvalidArgument(_TOO_MANY)
        ends = {
            start: next_period(resolution, start) for start in {start for _app, start in sums}
        }  # once a period
        return [
            UsageRow(row_app, start, ends[start], *counts)
            for (row_app, start), counts in sorted(
                sums.items(), key=lambda item: (item[0][1], item[0][0])
            )
        ]

    def _stored_rows(self, level: Level, since: int, until: int, app_id: str, uid: int | None,
                     resolution: UsageResolution, most: int) -> list[tuple[str, int, int, int, int, int]]:  # fmt: skip
        """(app, start, counts...) from the store. Months are summed by SQLite
        one month at a time (a year of days for 500 applications is 180,000
        rows: Python took 46 ms per 18,000 of them)."""
        if resolution is not UsageResolution.MONTH:
            return self._store.query(level, since, until, app_id, uid, limit=most)
        rows: list[tuple[str, int, int, int, int, int]] = []
        span = self._store.span(
            level, since, until
        )  # a range of centuries holds a few years of rows
        if span is None:
            return rows
        month, last = month_start(span[0]), span[1]
        while month <= last and len(rows) < most:
            following = next_period(UsageResolution.MONTH, month)
            totals = self._store.totals(
                level, max(since, month), min(until, following), app_id, uid, most
            )
            rows.extend(
                (row_app, month, down, up, loop_down, loop_up)
                for row_app, down, up, loop_down, loop_up in totals
            )
            month = following
        return rows
