"""The usage history on disk: one SQLite database in the helper's state directory.

Each flush adds one batch of per-minute bytes to all three stored levels
(minute, hour, day) in one transaction, so the levels always agree (a day's
sum is its minutes' sum) and a crash leaves the batch wholly in or wholly out.
Rows older than their level's retention are pruned (buckets.RETENTION_S), and
the file may not grow beyond MAX_DATABASE_BYTES (SQLite's max_page_count):
then writes fail with a logged error and limits go on.

The file is the helper's own, trusted as the rules file is: a file that is
not a regular file, is owned by another user, or can be written by group or
others, is not a ChadThrottle usage database (another application_id), has
a schema newer than this helper's, or is corrupt, is refused with one logged
error, moved aside as ``usage.sqlite3.refused-<timestamp>-<pid>`` and a new
one is started: history is lost, limits are not. An older schema is migrated
in place (MIGRATIONS), in one transaction.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chadthrottle.helper.usage.buckets import Cutoffs, Level, bucket_start

log = logging.getLogger("chadthrottle.usage.store")

DATABASE_FILE = "usage.sqlite3"
# PRAGMA application_id: marks the file as ours ("CTUS").
APPLICATION_ID = 0x43545553
SCHEMA_VERSION = 1
MAX_DATABASE_BYTES = 512 * 1024 * 1024
PAGE_BYTES = 4096
_SIDE_FILES = ("-wal", "-shm", "-journal")


def _create_version_1(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE usage (
            level INTEGER NOT NULL,       -- buckets.Level: 60, 3600 or 86400
            start INTEGER NOT NULL,       -- unix seconds, the period's first
            app_id TEXT NOT NULL,
            uid INTEGER NOT NULL,         -- feed.UNKNOWN_UID when not known
            down INTEGER NOT NULL, up INTEGER NOT NULL,
            loopback_down INTEGER NOT NULL, loopback_up INTEGER NOT NULL,
            PRIMARY KEY (level, start, app_id, uid)
        ) WITHOUT ROWID"""
    )


# version the database has -> the step that takes it one version further.
# Version 0 is a new, empty database.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {0: _create_version_1}


class RefusedDatabase(Exception):
    """The file is not a usage database this helper may use (internal)."""


@dataclass(frozen=True)
class UsageEntry:
    """Bytes of one application and uid in one minute."""

    minute: int
    app_id: str
    uid: int
    counts: tuple[int, int, int, int]  # down, up, loopback down, loopback up


StoredRow = tuple[
    str, int, int, int, int, int
]  # app_id, start, down, up, loopback down, loopback up
StoredTotal = tuple[str, int, int, int, int]  # app_id, down, up, loopback down, loopback up


def migrate(db: sqlite3.Connection, migrations: Mapping[int, Callable[[sqlite3.Connection], None]] = MIGRATIONS,
            target: int = SCHEMA_VERSION) -> int:  # fmt: skip
    """Bring a database of ours to target, in one transaction; the version it had.
    RefusedDatabase for a foreign or newer one."""
    application_id = db.execute("PRAGMA application_id").fetchone()[0]
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if application_id != APPLICATION_ID and (application_id != 0 or tables or version):
        raise RefusedDatabase(
            f"not a ChadThrottle usage database (application id {application_id:#x})"
        )
    if version > target:
        raise RefusedDatabase(f"schema version {version} is newer than this helper's ({target})")
    if version == target:
        return version
    with db:  # one transaction: all steps or none (DDL too, hence the explicit BEGIN)
        db.execute("BEGIN IMMEDIATE")
        for step in range(version, target):
            if step not in migrations:
                raise RefusedDatabase(f"no migration from schema version {step}")
            migrations[step](db)
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute(f"PRAGMA user_version = {target}")
    if version:
        log.info("usage database migrated from schema version %d to %d", version, target)
    return version


class UsageStore:
    """The database in one state directory; thread-safe (one connection, one lock)."""

    def __init__(self, state_dir: Path, max_bytes: int = MAX_DATABASE_BYTES) -> None:
        self.state_dir = state_dir
        self.path = state_dir / DATABASE_FILE
        self._max_bytes = max_bytes
        self._db: sqlite3.Connection | None = None
        self.lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self._db is not None

    def open(self) -> bool:
        """Open (or start) the database; False, with a logged error, when
        history cannot be kept (the helper runs on without it)."""
        try:
            self._check_directory()
        except OSError as error:
            log.error("not keeping usage history in %s: %s", self.state_dir, error)
            return False
        for attempt in range(2):
            try:
                self._check_file()
                self._db = self._connect()
                return True
            except (RefusedDatabase, sqlite3.DatabaseError) as error:
                self.close()
                if attempt == 0 and self._set_aside(str(error)):
                    continue
                log.error("not keeping usage history: %s", error)
                return False
            except OSError as error:
                log.error("not keeping usage history in %s: %s", self.path, error)
                return False
        return False

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def add(self, entries: Iterable[UsageEntry]) -> int:
        """Add a batch to every level in one transaction; rows written. Raises
        sqlite3.Error (e.g. the file is full: MAX_DATABASE_BYTES)."""
        db = self._connection()
        rows = []
        day_of: dict[int, int] = {}  # minute -> local day: localtime() once per minute, not per row
        for entry in entries:
            day = day_of.get(entry.minute)
            if day is None:
                day = day_of[entry.minute] = bucket_start(Level.DAY, entry.minute)
            for level, start in ((Level.MINUTE, entry.minute), (Level.HOUR, bucket_start(Level.HOUR, entry.minute)),
                                 (Level.DAY, day)):  # fmt: skip
                rows.append((int(level), start, entry.app_id, entry.uid, *entry.counts))
        with db:
            db.executemany(
                "INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
                "down = down + excluded.down, up = up + excluded.up, "
                "loopback_down = loopback_down + excluded.loopback_down, "
                "loopback_up = loopback_up + excluded.loopback_up",
                rows,
            )
        return len(rows)

    def prune(self, now: int) -> int:
        """Remove the rows past their level's retention; how many."""
        db = self._connection()
        removed = 0
        with db:
            for level, first_kept in Cutoffs.at(now).by_level.items():
                removed += db.execute(
                    "DELETE FROM usage WHERE level = ? AND start < ?", (int(level), first_kept)
                ).rowcount
        return removed

    def query(self, level: Level, since: int, until: int, app_id: str = "", uid: int | None = None,
              limit: int = -1) -> list[StoredRow]:  # fmt: skip
        """Rows of level whose period begins in [since, until), of one
        application ("" = all), summed over one uid (None = all uids), at most limit."""
        # grouped in the primary key's order: no sort
        return self._summed(
            "app_id, start", "start, app_id", level, since, until, app_id, uid, limit
        )

    def totals(self, level: Level, since: int, until: int, app_id: str = "", uid: int | None = None,
               limit: int = -1) -> list[StoredTotal]:  # fmt: skip
        """Per application, the sum of rows of level whose period begins in
        [since, until), of one application ("" = all) and uid (None = all)."""
        return self._summed("app_id", "app_id", level, since, until, app_id, uid, limit)

    def _summed(self, columns: str, group_by: str, level: Level, since: int, until: int, app_id: str,
                uid: int | None, limit: int) -> list[Any]:  # fmt: skip
        """columns and the byte sums of rows of level beginning in [since,
        until), of one application and uid if given, grouped by group_by.
        (columns and group_by are this module's constants, never input.)"""
        sql = (f"SELECT {columns}, sum(down), sum(up), sum(loopback_down), sum(loopback_up) FROM usage "
               "WHERE level = ? AND start >= ? AND start < ?")  # fmt: skip
        parameters: list[object] = [int(level), since, until]
        if app_id:
            sql += " AND app_id = ?"
            parameters.append(app_id)
        if uid is not None:
            sql += " AND uid = ?"
            parameters.append(uid)
        sql += f" GROUP BY {group_by} LIMIT ?"
        parameters.append(limit)
        return self._connection().execute(sql, parameters).fetchall()

    def span(self, level: Level, since: int, until: int) -> tuple[int, int] | None:
        """The first and last period start of level stored within [since, until)."""
        first, last = (
            self._connection()
            .execute(
                "SELECT min(start), max(start) FROM usage WHERE level = ? AND start >= ? AND start < ?",
                (int(level), since, until),
            )
            .fetchone()
        )
        return None if first is None else (first, last)

    def rename_app_ids(self, rename: Callable[[str, int], str | None]) -> int:
        """Move every row of an (application, uid) that rename(app_id, uid)
        gives a new id to that id, adding to rows it already has, all in one
        transaction (identity rules changed: renames.py); rows moved. The ids
        are read from the day level (it keeps every id longest), through the
        primary key; a rename then costs one pass over the table."""
        db = self._connection()
        stored = db.execute(
            "SELECT DISTINCT app_id, uid FROM usage WHERE level = ?", (int(Level.DAY),)
        ).fetchall()
        renames = [
            (app_id, uid, new)
            for app_id, uid in stored
            if (new := rename(app_id, uid)) and new != app_id
        ]
        if not renames:
            return 0
        with db:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS renames (old TEXT NOT NULL, uid INTEGER NOT NULL, new TEXT NOT NULL,"
                       " PRIMARY KEY (old, uid))")  # fmt: skip
            db.execute("DELETE FROM temp.renames")
            db.executemany("INSERT INTO temp.renames VALUES (?, ?, ?)", renames)
            moved = db.execute(
                "INSERT INTO usage SELECT u.level, u.start, r.new, u.uid, u.down, u.up, u.loopback_down, u.loopback_up "
                "FROM usage AS u JOIN temp.renames AS r ON u.app_id = r.old AND u.uid = r.uid WHERE true "
                "ON CONFLICT DO UPDATE SET down = down + excluded.down, up = up + excluded.up, "
                "loopback_down = loopback_down + excluded.loopback_down, loopback_up = loopback_up + excluded.loopback_up"
            ).rowcount
            db.execute(
                "DELETE FROM usage WHERE (app_id, uid) IN (SELECT old, uid FROM temp.renames)"
            )
            db.execute("DELETE FROM temp.renames")
        for old, uid, new in renames:
            log.info(
                "usage history of %s (uid %d) is now kept as %s (identity rules changed)",
                old,
                uid,
                new,
            )
        return moved

    def size_bytes(self) -> int:
        db = self._connection()
        return int(db.execute("PRAGMA page_count").fetchone()[0]) * int(
            db.execute("PRAGMA page_size").fetchone()[0]
        )

    # -- opening --------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.OperationalError("the usage database is not open")
        return self._db

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, timeout=5.0, isolation_level="DEFERRED", check_same_thread=False
        )
        try:
            os.chmod(self.path, 0o600)
            db.execute(f"PRAGMA page_size = {PAGE_BYTES}")  # only takes on a new file
            migrate(db)
            # WAL: a commit is one append, and a crash keeps every committed batch.
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
            db.execute(f"PRAGMA max_page_count = {max(1, self._max_bytes // page_size)}")
        except BaseException:
            db.close()
            raise
        return db

    def _check_directory(self) -> None:
        """As for the rules file: a directory someone else owns is not used."""
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = self.state_dir.lstat()
        if not stat.S_ISDIR(info.st_mode):
            raise NotADirectoryError(f"{self.state_dir} is not a directory")
        if info.st_uid != os.geteuid():
            raise PermissionError(
                f"{self.state_dir} is owned by uid {info.st_uid}, not by the helper's user"
            )

    def _check_file(self) -> None:
        """The database and its side files, if there, are regular files only
        this user can change."""
        for path in [self.path] + [
            self.path.with_name(DATABASE_FILE + suffix) for suffix in _SIDE_FILES
        ]:
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(info.st_mode):
                raise RefusedDatabase(f"{path.name} is not a regular file")
            if info.st_uid != os.geteuid() or info.st_mode & 0o022:
                raise RefusedDatabase(
                    f"{path.name} is owned by another user or writable by others: not trusted"
                )

    def _set_aside(self, reason: str) -> bool:
        """Move the database (and its side files) aside for a person to look at."""
        stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        try:
            for suffix in ("", *_SIDE_FILES):
                path = self.path.with_name(DATABASE_FILE + suffix)
                if path.exists() or path.is_symlink():
                    os.replace(path, path.with_name(f"{DATABASE_FILE}.refused-{stamp}{suffix}"))
        except OSError as error:
            log.error("the usage database %s is unusable (%s) and could not be moved aside (%s)",
                      self.path, reason, error)  # fmt: skip
            return False
        log.error("the usage database %s is unusable (%s); kept it as %s.refused-%s and started a new one",
                  self.path, reason, DATABASE_FILE, stamp)  # fmt: skip
        return True
