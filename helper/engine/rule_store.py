"""The user's limits on disk, so they survive a helper restart and a reboot.

One JSON file in the helper's state directory, in rule_codec.py's format. The
file is root's: the directory is 0700, the file 0600, and a file that someone
else owns or could write is not trusted. Writes are atomic (a temporary file
in the same directory, fsync, rename, fsync of the directory), so a crash
leaves either the old rules or the new, and run off the engine thread
(BackgroundSaver). A file that is not a rules file at all is moved aside
(``rules.json.corrupt-<timestamp>``) with one logged error, and the helper
starts with no rules rather than not at all; a rule that fails a check is
left out with a logged error and the others are kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
import time
from pathlib import Path

from chadthrottle.helper.engine.limits import LimitTable
from chadthrottle.helper.engine.rule_codec import CorruptStateFile, decode_rules, encode_rules
from chadthrottle.helper.errors import HelperError

log = logging.getLogger("chadthrottle.engine.rule_store")

RULES_FILE = "rules.json"
# Every rule of MAX_SLOTS with both directions fits in well under this.
MAX_FILE_BYTES = 32 * 1024 * 1024


class StateFileError(HelperError):
    """The rules could not be written; the change that needed them is undone."""


class UntrustedDirectory(OSError):
    """The state directory is not the helper's own: nothing in it is read or written."""


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
        except UntrustedDirectory as error:
            log.error(
                "not using the rules in %s: %s; starting with no limits", self.state_dir, error
            )
            return LimitTable()
        except (OSError, CorruptStateFile) as error:
            self._set_aside(str(error))
            return LimitTable()
        skipped: list[str] = []
        try:
            table = decode_rules(data, skipped)
        except CorruptStateFile as error:
            self._set_aside(str(error))
            return LimitTable()
        for reason in skipped:
            log.error("left out one rule of %s: %s", self.path, reason)
        log.info(
            "restored %d rules from %s%s",
            len(table),
            self.path,
            " (paused)" if table.paused else "",
        )
        return table

    def save(self, table: LimitTable) -> None:
        """Replace the file atomically; StateFileError if that is not possible."""
        temporary = self.state_dir / f".{RULES_FILE}.{os.getpid()}.tmp"
        try:
            self._prepare_directory()
            descriptor = os.open(
                temporary,
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
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
            raise StateFileError(
                f"could not store the limits in {self.path}: {error.strerror or error}"
            ) from None

    def _prepare_directory(self) -> None:
        """A directory another user owns could be swapped under us: refused."""
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = self.state_dir.lstat()
        if not stat.S_ISDIR(info.st_mode):
            raise UntrustedDirectory(f"{self.state_dir} is not a directory")
        if info.st_uid != os.geteuid():
            raise UntrustedDirectory(
                f"{self.state_dir} is owned by uid {info.st_uid}, not by the helper's user"
            )
        if stat.S_IMODE(info.st_mode) != 0o700:
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
        aside = self.path.with_name(
            f"{RULES_FILE}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        )
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
            return self._condition.wait_for(
                lambda: self._pending is None and not self._writing, timeout_s
            )

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
                self._condition.wait_for(
                    lambda: self._closing, max(0.0, next_write_at - time.monotonic())
                )
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
