"""The helper's side of its run record (format and reader: chadthrottle.helper_run_state).

"running" is written before the engine is built, since building it already
makes kernel objects that a kill would leave; "stopped" only once the engine
has removed what it made (or none was made). A kill in between leaves
"running" of a dead process: the window and the CLI say its limits stay.
Failing to write is logged, never fatal: the helper serves without it, and
the readers then say they do not know.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from chadthrottle.helper_run_state import (
    RUNNING,
    STATUS_DIR,
    STOPPED,
    LastStop,
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

    def was_stopped(self) -> bool:
        """Whether nothing of an earlier helper of this bus is left: it stopped
        cleanly, or none ran since the machine started (/run is emptied then)."""
        if not os.path.lexists(self.path):
            return True
        return read_last_stop(self._address, self.path.parent) is LastStop.STOPPED

    def running(self, paused: bool = False) -> None:
        """Running; paused: every limit paused (the kernel holds none), so a
        kill now leaves nothing of them in force."""
        self._write(RUNNING, paused)

    def stopped(self) -> None:
        self._write(STOPPED)

    def _write(self, state: str, paused: bool = False) -> None:
        """Written whole under another name and renamed over: a reader sees
        the old record or the new one, never half of one."""
        folder = self.path.parent
        making = folder / f".{self.path.name}.{self._pid}"
        try:
            folder.mkdir(mode=0o755, exist_ok=True)
            found = os.lstat(folder)
            if found.st_uid != 0 or not os.path.isdir(folder) or os.path.islink(folder):
                raise OSError(f"{folder} is not root's directory")
            os.chmod(folder, 0o755)  # systemd makes RuntimeDirectory= 0700; readers must enter
            fd = os.open(
                making, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
            )
            try:
                os.fchmod(fd, 0o644)  # the unit's UMask=0077 would make it root's to read only
                os.write(fd, record_text(state, self._pid, self._started, paused).encode())
            finally:
                os.close(fd)
            os.replace(making, self.path)
        except OSError as error:
            log.warning("cannot write the run record %s: %s", self.path, error)
            with contextlib.suppress(OSError):
                making.unlink()
