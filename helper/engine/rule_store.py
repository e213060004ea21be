"""The user's limits on disk, so they survive a helper restart and a reboot.

Rules are stored by application identity (never by pid) in one JSON file in
the helper's state directory. The file is root's: the directory is 0700, the
file 0600, and a file that someone else owns or could write is not trusted.
Writes are atomic (a temporary file in the same directory, fsync, rename,
fsync of the directory), so a crash leaves either the old rules or the new.

Loading is strict: every field is checked against the contract's bounds and
the adapter's application id rules. A file that fails any check is moved aside
(``rules.json.corrupt-<timestamp>``) with one logged error, and the helper
starts with no rules rather than not at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

from chadthrottle.contract import MAX_BURST_BYTES, MAX_RATE_BPS, MIN_RATE_BPS, PID_APP_PREFIX, Direction
from chadthrottle.helper.adapter.validation import validate_app_id
from chadthrottle.helper.engine.limits import MAX_SLOTS, MIN_BURST_BYTES, Limit, LimitTable
from chadthrottle.helper.errors import HelperError, InvalidArgument

log = logging.getLogger("chadthrottle.engine.rule_store")

RULES_FILE = "rules.json"
FORMAT_VERSION = 1
# Every application of MAX_SLOTS with both directions fits in well under this.
MAX_FILE_BYTES = 32 * 1024 * 1024
_LIMIT_FIELDS = frozenset({"rate_bps", "burst_bytes"})
_REQUIRED_KEYS = frozenset({"version", "applications"})


class StateFileError(HelperError):
    """The rules could not be written; the change that needed them is undone."""


class CorruptStateFile(Exception):
    """The file on disk is not a rules file this helper wrote (internal to loading)."""


def _is_int(value: Any) -> bool:
    return type(value) is int


def encode_rules(table: LimitTable) -> bytes:
    """The file's bytes for a table: sorted, so equal tables give equal files."""
    applications = {
        app_id: {
            direction.value: {"rate_bps": limit.rate_bps, "burst_bytes": limit.burst_bytes}
            for direction, limit in sorted(limits.items(), key=lambda item: item[0].value)
        }
        for app_id, limits in sorted(table.items())
    }
    document: dict[str, Any] = {"version": FORMAT_VERSION, "applications": applications}
    if table.paused:  # written only when set: an unpaused file is what older helpers wrote
        document["paused"] = True
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def _decode_limit(where: str, value: Any) -> Limit:
    if not isinstance(value, dict) or set(value) != _LIMIT_FIELDS:
        raise CorruptStateFile(f"{where}: expected exactly {sorted(_LIMIT_FIELDS)}")
    rate_bps, burst_bytes = value["rate_bps"], value["burst_bytes"]
    if not _is_int(rate_bps) or not MIN_RATE_BPS <= rate_bps <= MAX_RATE_BPS:
        raise CorruptStateFile(f"{where}: rate_bps {rate_bps!r} is not in {MIN_RATE_BPS}..{MAX_RATE_BPS}")
    if not _is_int(burst_bytes) or not MIN_BURST_BYTES <= burst_bytes <= MAX_BURST_BYTES:
        raise CorruptStateFile(
            f"{where}: burst_bytes {burst_bytes!r} is not in {MIN_BURST_BYTES}..{MAX_BURST_BYTES}"
        )
    return Limit(rate_bps, burst_bytes)


def decode_rules(data: bytes) -> LimitTable:
    """Parse and check a rules file; CorruptStateFile says what is wrong."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise CorruptStateFile(f"not JSON: {error}") from None
    if not isinstance(document, dict) or not _REQUIRED_KEYS <= set(document) <= _REQUIRED_KEYS | {"paused"}:
        raise CorruptStateFile("expected the keys 'version' and 'applications', and at most 'paused'")
    if not _is_int(document["version"]) or document["version"] != FORMAT_VERSION:
        raise CorruptStateFile(f"unknown format version {document['version']!r} (this helper reads {FORMAT_VERSION})")
    applications = document["applications"]
    if not isinstance(applications, dict):
        raise CorruptStateFile("'applications' is not an object")
    if len(applications) > MAX_SLOTS:
        raise CorruptStateFile(f"more than {MAX_SLOTS} applications")
    table = LimitTable()
    paused = document.get("paused", False)
    if type(paused) is not bool:
        raise CorruptStateFile(f"'paused' is {paused!r}, not true or false")
    table.set_paused(paused)
    directions = {direction.value: direction for direction in Direction}
    for app_id, limits in applications.items():
        try:
            validate_app_id(app_id)
        except InvalidArgument as error:
            raise CorruptStateFile(f"application {app_id!r}: {error}") from None
        if app_id.startswith(PID_APP_PREFIX):
            raise CorruptStateFile(f"application {app_id!r}: a pid is not a stable identity")
        if not isinstance(limits, dict) or not limits or not set(limits) <= set(directions):
            raise CorruptStateFile(f"application {app_id!r}: expected limits for 'down' and/or 'up'")
        for name, value in limits.items():
            table.set(app_id, directions[name], _decode_limit(f"{app_id} {name}", value))
    return table


class RuleStore:
    """The rules file in one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / RULES_FILE

    def load(self) -> LimitTable:
        """The stored rules; an empty table when there are none or the file is
        unusable (then moved aside, with one logged error)."""
        try:
            self._prepare_directory()
            data = self._read_trusted()
        except FileNotFoundError:
            return LimitTable()
        except (OSError, CorruptStateFile) as error:
            self._set_aside(str(error))
            return LimitTable()
        try:
            table = decode_rules(data)
        except CorruptStateFile as error:
            self._set_aside(str(error))
            return LimitTable()
        log.info("restored the limits of %d applications from %s%s", len(table.items()), self.path,
                 " (paused)" if table.paused else "")
        return table

    def save(self, table: LimitTable) -> None:
        """Replace the file atomically; StateFileError if that is not possible."""
        temporary = self.state_dir / f".{RULES_FILE}.{os.getpid()}.tmp"
        try:
            self._prepare_directory()
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.fchmod(descriptor, 0o600)
                os.write(descriptor, encode_rules(table))
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.replace(temporary, self.path)
            self._fsync_directory()
        except OSError as error:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise StateFileError(f"could not store the limits in {self.path}: {error.strerror or error}") from None

    def _prepare_directory(self) -> None:
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = self.state_dir.lstat()
        if not stat.S_ISDIR(info.st_mode):
            raise OSError(f"{self.state_dir} is not a directory")
        if stat.S_IMODE(info.st_mode) != 0o700 and info.st_uid == os.geteuid():
            os.chmod(self.state_dir, 0o700)

    def _read_trusted(self) -> bytes:
        """The file's bytes, if it is a regular file only this user can change."""
        descriptor = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            info = os.fstat(descriptor)
            if not stat.S_ISREG(info.st_mode):
                raise CorruptStateFile("not a regular file")
            if info.st_uid != os.geteuid() or info.st_mode & 0o022:
                raise CorruptStateFile("owned by another user or writable by others: not trusted")
            if info.st_size > MAX_FILE_BYTES:
                raise CorruptStateFile(f"larger than {MAX_FILE_BYTES} bytes")
            with os.fdopen(os.dup(descriptor), "rb") as stream:
                return stream.read(MAX_FILE_BYTES + 1)
        finally:
            os.close(descriptor)

    def _set_aside(self, reason: str) -> None:
        aside = self.path.with_name(f"{RULES_FILE}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
        try:
            os.replace(self.path, aside)
        except OSError as error:
            log.error("the rules file %s is unusable (%s) and could not be moved aside (%s); "
                      "starting with no limits", self.path, reason, error)  # fmt: skip
            return
        log.error("the rules file %s is unusable (%s); kept it as %s and started with no limits",
                  self.path, reason, aside)  # fmt: skip

    def _fsync_directory(self) -> None:
        descriptor = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


class BackgroundSaver:
    """Stores the latest table on a thread of its own.

    An fsync costs milliseconds (2.3 ms measured here), and the engine thread
    serves one call at a time: saving on it capped SetLimit at about 400 calls/s.
    Here the engine only hands over a copy; changes made while a write is in
    progress or within min_interval_s of the last one are folded into the next
    write, so a burst of a thousand changes a second costs ten writes, not a
    thousand that compete with the calls for the CPU. A change is on disk at
    most about min_interval_s after its call returned (a SIGKILL in that window
    loses it); a write that fails is logged and retried with the next change.
    close() writes whatever is pending at once.
    """

    def __init__(self, store: RuleStore, min_interval_s: float = 0.1) -> None:
        self._store = store
        self._min_interval_s = min_interval_s
        self._condition = threading.Condition()
        self._pending: LimitTable | None = None
        self._writing = False
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="rule-saver", daemon=True)
        self._thread.start()

    def save(self, table: LimitTable) -> None:
        with self._condition:
            self._pending = table.copy()
            self._condition.notify_all()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything handed over is written (or failed); False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: self._pending is None and not self._writing, timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        next_write_at = 0.0
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending is not None or self._closing)
                # A moment's pause after a write, cut short by close().
                self._condition.wait_for(lambda: self._closing, max(0.0, next_write_at - time.monotonic()))
                table, self._pending = self._pending, None
                if table is None:
                    return  # closing, nothing left
                self._writing = True
            next_write_at = time.monotonic() + self._min_interval_s
            try:
                self._store.save(table)
            except StateFileError as error:
                log.error("%s; the limits are in force but will not survive a restart", error)
            except Exception:  # the saver must outlive anything
                log.exception("storing the limits failed")
            finally:
                with self._condition:
                    self._writing = False
                    self._condition.notify_all()
