"""The helper's side of its run record (format and reader: chadthrottle.helper_run_state).

"running" is written before the engine is built, since building it already
makes kernel objects that a kill would leave; "stopped" only once the engine
has removed what it made (or none was made). A kill in between leaves
"running" of a dead process: the window and the CLI say its limits stay.
Failing to write is logged, never fatal: the helper serves without it, and
the readers then say they do not know (a "running" not written removes the
record: an older "stopped" would say its limits are off).

One record per bus, and one helper serves a bus: a helper that finds the
record of another live one (it serves the bus; this one will be refused the
name) leaves it alone until it owns the bus name itself (serving), and a
helper writes "stopped" only over its own record (until 2026-12-06 a second
helper started by hand wrote "stopped" over the serving one's: killed later,
its limits were read as off).

Alive is told by a lock (lock26; chadthrottle.helper_run_state): each record
is written under a temporary name made 0600 (only root can open it), write-
locked, made 0644 and renamed over the last, so the lock is on the file the
name shows before any reader can see it, and no other user could open it to
take a read lock that would refuse ours. The descriptor is kept open (never
inherited: O_CLOEXEC, and the helper's children are exec'd) until the next
record replaces it or the process ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from chadthrottle.helper_run_state import (
    RUNNING,
    STATUS_DIR,
    STOPPED,
    LastStop,
    hold_write_lock,
    process_start,
    read_last_stop,
    record_path,
    record_text,
)

log = logging.getLogger("chadthrottle.helper.run_state")


class RunRecord:
    """This helper's record for the bus it serves."""

    def __init__(self, bus_address: str | None, directory: Path = STATUS_DIR) -> None:
        self.path = record_path(bus_address, directory)
        self._address = bus_address
        self._pid = os.getpid()
        self._started = process_start(self._pid) or 0
        self._mine = False  # whether the record is this helper's (it wrote it)
        self._held = -1  # the record written last, open and write-locked while we live

    def was_stopped(self) -> bool:
        """Whether nothing of an earlier helper of this bus is left: it stopped
        cleanly, or none ran since the machine started (/run is emptied then)."""
        if not os.path.lexists(self.path):
            return True
        return read_last_stop(self._address, self.path.parent) is LastStop.STOPPED

    def start(self) -> None:
        """Running, before the engine is built: unless the record is another
        live helper's (it serves this bus), which is left to it."""
        with self._locked():
            if self._others_alive():
                log.warning("another helper of this bus runs (pid in %s): its run record is left to it",
                            self.path)  # fmt: skip
                return
            self._write(RUNNING)

    def serving(self, paused: bool = False) -> None:
        """This helper owns the bus name: the record is its own from here."""
        with self._locked():
            self._write(RUNNING, paused)

    def running(self, paused: bool = False) -> None:
        """Running; paused: every limit paused (the kernel holds none), so a
        kill now leaves nothing of them in force. Only over its own record."""
        with self._locked():
            if self._mine and self._on_disk_mine():
                self._write(RUNNING, paused)

    def stopped(self) -> None:
        """Stopped cleanly: only over its own record (another helper's, of a
        helper that serves or served the bus since, is that one's to say)."""
        with self._locked():
            if self._mine and self._on_disk_mine():
                self._write(STOPPED)

    def leave(self) -> None:
        """Refused the bus name: another helper serves the bus, whose record
        could not be written (it would have been left to it). This helper's
        own record goes, and it writes no "stopped" (until 2026-12-06 it did:
        the serving helper, killed later, had its limits read as off)."""
        with self._locked():
            if self._mine and self._on_disk_mine():
                with contextlib.suppress(OSError):
                    self.path.unlink()
            self._mine = False
            if self._held >= 0:  # the lock of a record that is gone: tidy only
                os.close(self._held)
                self._held = -1

    def _record(self) -> dict[str, object]:
        """The record there, {} without a readable one."""
        try:
            record = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    def _on_disk_mine(self) -> bool:
        record = self._record()
        return (record.get("pid"), record.get("started")) == (self._pid, self._started)

    def _others_alive(self) -> bool:
        """Whether the record says "running" of another helper that lives: it
        holds the lock, or (a helper from before the lock, still serving across
        an upgrade) its pid and start time name a live process."""
        if self._on_disk_mine():
            return False
        if read_last_stop(self._address, self.path.parent) is LastStop.RUNNING:
            return True
        record = self._record()
        pid, started = record.get("pid"), record.get("started")
        return (record.get("state") == RUNNING and type(pid) is int and pid > 0
                and process_start(pid) == started)  # fmt: skip

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The record's directory locked: one helper reads and writes at a time."""
        folder = self.path.parent
        fd = -1
        try:
            folder.mkdir(mode=0o755, exist_ok=True)
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as error:  # written unlocked: _write says what fails
            log.warning("cannot lock the run record's directory %s: %s", folder, error)
        try:
            yield
        finally:
            if fd >= 0:
                os.close(fd)

    def _write(self, state: str, paused: bool = False) -> None:
        """Written whole under another name, write-locked, and renamed over: a
        reader sees the old record or the new one, never half of one, and the
        one it sees is locked while this helper lives. A "running" that cannot
        be written (or locked) removes the record there (a reader then does
        not know): an older "stopped" would say this helper's limits are off."""
        folder = self.path.parent
        making = folder / f".{self.path.name}.{self._pid}"
        fd = -1
        try:
            folder.mkdir(mode=0o755, exist_ok=True)
            found = os.lstat(folder)
            if found.st_uid != 0 or not os.path.isdir(folder) or os.path.islink(folder):
                raise OSError(f"{folder} is not root's directory")
            os.chmod(folder, 0o755)  # systemd makes RuntimeDirectory= 0700; readers must enter
            with contextlib.suppress(FileNotFoundError):
                making.unlink()  # one a killed helper of this pid left: others may hold it open
            fd = os.open(
                making, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
            hold_write_lock(fd)  # before anyone else can open it
            os.write(fd, record_text(state, self._pid, self._started, paused).encode())
            os.fchmod(fd, 0o644)  # readable once locked (the unit's UMask=0077 aside)
            os.replace(making, self.path)
            self._mine = True
        except OSError as error:
            log.warning("cannot write the run record %s: %s", self.path, error)
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):
                making.unlink()
            if state == RUNNING:
                with contextlib.suppress(OSError):
                    self.path.unlink()
            return
        if self._held >= 0:
            os.close(self._held)  # the record it replaced: its lock goes with it
        self._held = fd
