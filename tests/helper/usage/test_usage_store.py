"""The usage database: rollups, retention, schema versions and files it refuses
(real SQLite files in a temporary state directory)."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest
from chadthrottle.helper.usage.buckets import (
    DAY_S,
    RETENTION_S,
    Level,
    bucket_start,
    local_midnight,
)
from chadthrottle.helper.usage.store import (
    APPLICATION_ID,
    DATABASE_FILE,
    SCHEMA_VERSION,
    RefusedDatabase,
    UsageEntry,
    UsageStore,
    migrate,
)

NOW = 1_795_000_000  # 2026-11-18


@pytest.fixture
def store(tmp_path: Path) -> UsageStore:
    store = UsageStore(tmp_path / "state")
    assert store.open()
    yield store
    store.close()


def _total(store: UsageStore, level: Level, since: int, until: int, app_id: str = "") -> list[int]:
    rows = store.query(level, since, until, app_id)
    return [sum(row[at] for row in rows) for at in range(2, 6)]


def test_the_hours_and_the_day_sum_exactly_to_their_minutes(store: UsageStore) -> None:
    day = local_midnight(NOW)
    entries = [
        UsageEntry(minute, app, uid, (minute % 977 + 1, minute % 13, minute % 5, 1))
        for minute in range(day, day + DAY_S, 60 * 7)
        for app, uid in (("exe:/a", 1000), ("exe:/b", 1000), ("exe:/a", 1001))
    ]
    for batch in range(0, len(entries), 100):  # several flushes
        store.add(entries[batch : batch + 100])
    minutes = _total(store, Level.MINUTE, day, day + DAY_S)
    assert minutes == [sum(e.counts[at] for e in entries) for at in range(4)]
    assert _total(store, Level.HOUR, day, day + DAY_S) == minutes
    assert _total(store, Level.DAY, day, day + 1) == minutes
    assert len(store.query(Level.DAY, day, day + 1)) == 2  # per application, the uids summed
    assert _total(store, Level.HOUR, day, day + DAY_S, "exe:/b") == [
        sum(e.counts[at] for e in entries if e.app_id == "exe:/b") for at in range(4)
    ]


def test_the_same_minute_twice_adds_up(store: UsageStore) -> None:
    minute = NOW - NOW % 60
    store.add([UsageEntry(minute, "exe:/a", 0, (1, 2, 3, 4))])
    store.add([UsageEntry(minute, "exe:/a", 0, (10, 20, 30, 40))])
    assert store.query(Level.MINUTE, minute, minute + 60) == [("exe:/a", minute, 11, 22, 33, 44)]


def test_a_uid_filter_shows_only_that_users_rows(store: UsageStore) -> None:
    minute = NOW - NOW % 60
    store.add(
        [
            UsageEntry(minute, "exe:/a", 1000, (5, 0, 0, 0)),
            UsageEntry(minute, "exe:/a", 1001, (7, 0, 0, 0)),
        ]
    )
    assert store.query(Level.HOUR, 0, NOW + 1, uid=1001) == [
        ("exe:/a", bucket_start(Level.HOUR, minute), 7, 0, 0, 0)
    ]


def test_retention_keeps_each_level_for_its_time_only(store: UsageStore) -> None:
    for age_days in (0, 2, 89, 91, 729, 732):
        moment = NOW - age_days * DAY_S
        store.add([UsageEntry(moment - moment % 60, "exe:/a", 0, (1, 0, 0, 0))])
    store.prune(NOW)
    kept = {level: len(store.query(level, 0, NOW + 1)) for level in Level}
    assert kept == {Level.MINUTE: 1, Level.HOUR: 3, Level.DAY: 5}
    assert RETENTION_S[Level.DAY] >= 730 * DAY_S


def test_the_file_stops_growing_at_its_bound_with_an_error_not_a_crash(tmp_path: Path) -> None:
    store = UsageStore(tmp_path, max_bytes=64 * 1024)
    assert store.open()
    with pytest.raises(sqlite3.OperationalError, match="full"):
        for minute in range(0, 600 * 60, 60):
            store.add(
                [
                    UsageEntry(NOW - minute - NOW % 60, f"exe:/{app}", 0, (1, 1, 1, 1))
                    for app in range(20)
                ]
            )
    assert (tmp_path / DATABASE_FILE).stat().st_size <= 64 * 1024
    store.close()


def test_the_database_is_private_and_marked_as_ours(store: UsageStore) -> None:
    assert (store.path.stat().st_mode & 0o777) == 0o600
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_history_survives_closing_and_opening_again(tmp_path: Path) -> None:
    first = UsageStore(tmp_path)
    assert first.open()
    first.add([UsageEntry(NOW - NOW % 60, "exe:/a", 0, (9, 8, 7, 6))])
    first.close()
    second = UsageStore(tmp_path)
    assert second.open()
    assert _total(second, Level.DAY, 0, NOW + 1) == [9, 8, 7, 6]
    second.close()


def test_an_older_schema_is_migrated_step_by_step_in_one_transaction(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "old.sqlite3")
    calls = []

    def step_0(conn: sqlite3.Connection) -> None:
        calls.append(0)
        conn.execute("CREATE TABLE usage (start INTEGER, bytes INTEGER)")

    def step_1(conn: sqlite3.Connection) -> None:
        calls.append(1)
        conn.execute("ALTER TABLE usage ADD COLUMN up INTEGER NOT NULL DEFAULT 0")

    assert migrate(db, {0: step_0}, target=1) == 0
    db.execute("INSERT INTO usage VALUES (1, 2)")
    db.commit()
    assert migrate(db, {0: step_0, 1: step_1}, target=2) == 1
    assert calls == [0, 1]
    assert db.execute("SELECT start, bytes, up FROM usage").fetchall() == [(1, 2, 0)]
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE usage ADD COLUMN down INTEGER")
        raise sqlite3.OperationalError("step failed half way")

    with pytest.raises(sqlite3.OperationalError):
        migrate(db, {2: broken}, target=3)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2  # nothing of the step stayed
    assert [row[1] for row in db.execute("PRAGMA table_info(usage)")] == ["start", "bytes", "up"]
    db.close()


def test_a_newer_or_foreign_schema_is_refused_by_migrate(tmp_path: Path) -> None:
    newer = sqlite3.connect(tmp_path / "newer.sqlite3")
    newer.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RefusedDatabase, match="newer"):
        migrate(newer)
    foreign = sqlite3.connect(tmp_path / "foreign.sqlite3")
    foreign.execute("CREATE TABLE t (x)")
    with pytest.raises(RefusedDatabase, match="not a ChadThrottle usage database"):
        migrate(foreign)


def _refused_then_fresh(tmp_path: Path, caplog: pytest.LogCaptureFixture, reason: str) -> None:
    state = tmp_path / "state"
    with caplog.at_level(logging.ERROR, logger="chadthrottle.usage.store"):
        store = UsageStore(state)
        assert store.open()
    assert any(
        reason in record.getMessage() and "started a new one" in record.getMessage()
        for record in caplog.records
    ), caplog.text
    aside = [path.name for path in state.iterdir() if ".refused-" in path.name]
    assert aside and all(name.startswith(DATABASE_FILE + ".refused-") for name in aside)
    store.add([UsageEntry(NOW - NOW % 60, "exe:/a", 0, (1, 0, 0, 0))])  # the new one works
    assert store.query(Level.DAY, 0, NOW + 1) != []
    store.close()


def _write(state: Path, data: bytes, mode: int = 0o600) -> Path:
    state.mkdir(mode=0o700, exist_ok=True)
    path = state / DATABASE_FILE
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_a_corrupt_file_is_set_aside_with_a_clear_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write(tmp_path / "state", b"this is not a database at all" * 200)
    _refused_then_fresh(tmp_path, caplog, "not a database")


def test_a_newer_schema_file_is_set_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "state").mkdir(mode=0o700)
    db = sqlite3.connect(tmp_path / "state" / DATABASE_FILE)
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    db.close()
    (tmp_path / "state" / DATABASE_FILE).chmod(0o600)
    _refused_then_fresh(tmp_path, caplog, "newer than this helper's")


def test_another_programs_database_is_set_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "state").mkdir(mode=0o700)
    db = sqlite3.connect(tmp_path / "state" / DATABASE_FILE)
    db.execute("CREATE TABLE moz_places (url TEXT)")
    db.close()
    (tmp_path / "state" / DATABASE_FILE).chmod(0o600)
    _refused_then_fresh(tmp_path, caplog, "not a ChadThrottle usage database")


def test_a_world_writable_file_is_not_trusted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write(tmp_path / "state", b"", mode=0o666)
    os.chmod(tmp_path / "state" / DATABASE_FILE, 0o666)
    _refused_then_fresh(tmp_path, caplog, "writable by others: not trusted")


def test_a_file_of_another_user_is_not_trusted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a file away")
    path = _write(tmp_path / "state", b"")
    os.chown(path, 1000, 1000)
    _refused_then_fresh(tmp_path, caplog, "owned by another user")


def test_a_symlink_is_not_followed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "state").mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    (tmp_path / "state" / DATABASE_FILE).symlink_to(target)
    _refused_then_fresh(tmp_path, caplog, "not a regular file")
    assert target.read_bytes() == b""


def test_a_state_directory_of_another_user_is_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a directory away")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 1000, 1000)
    with caplog.at_level(logging.ERROR):
        assert not UsageStore(state).open()
    assert "not keeping usage history" in caplog.text and list(state.iterdir()) == []
