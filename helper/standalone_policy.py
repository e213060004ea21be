"""Installing the polkit actions for private buses, shared between processes.

polkitd reads actions only from /usr/share/polkit-1/actions, a directory that
every private bus on the machine shares. Several PrivateSystemBus instances
may run at once (two test sessions, a standalone run next to a test), so the
file is reference-counted: the first user installs it (remembering on disk
what was there before), the last user restores that. A user that crashed is
noticed by its pid being gone. Everything happens under one file lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("chadthrottle.helper.standalone")

DEFAULT_STATE_DIR = Path("/run/chadthrottle-standalone")
_ABSENT = "absent"  # backup marker: there was no file before we installed ours
_instance_numbers = itertools.count(1)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_atomically(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(content)
    temporary.chmod(0o644)
    os.replace(temporary, path)


def _holder_pid(holder: Path) -> int | None:
    """The pid of a live holder's process (holder-PID-N), None if it is gone."""
    pid_text = holder.name.removeprefix("holder-").split("-")[0]
    return int(pid_text) if pid_text.isdigit() and _pid_alive(int(pid_text)) else None


def holder_pids(state: Path) -> list[int]:
    """The live processes holding the file whose state directory this is."""
    return [pid for h in state.glob("holder-*") if (pid := _holder_pid(h)) is not None]


class SharedFileInstall:
    """Keeps content at target while any holder (in any process) needs it."""

    def __init__(self, target: Path, content: bytes, state_dir: Path = DEFAULT_STATE_DIR) -> None:
        self.target = target
        self.content = content
        self._state = state_dir / target.name
        self._holder = f"{os.getpid()}-{next(_instance_numbers)}"
        self.installed = False  # whether this holder wrote the file
        self._held = False

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._state.mkdir(parents=True, exist_ok=True, mode=0o755)
        with open(self._state / "lock", "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            yield

    def _live_holders(self) -> list[Path]:
        holders = []
        for holder in self._state.glob("holder-*"):
            if _holder_pid(holder) is not None:
                holders.append(holder)
            else:
                holder.unlink(missing_ok=True)  # left by a process that died
        return holders

    def acquire(self) -> None:
        with self._locked():
            if not self._live_holders():
                self._restore_backup()  # after a crash of the last holder
                existing = self.target.read_bytes() if self.target.exists() else None
                if existing != self.content:
                    backup = self._state / "backup"
                    if existing is None:
                        backup.write_text(_ABSENT)
                    else:
                        (self._state / "backup-content").write_bytes(existing)
                        backup.write_text("content")
                    _write_atomically(self.target, self.content)
                    self.installed = True
                    log.info("installed %s", self.target)
            (self._state / f"holder-{self._holder}").touch()
            self._held = True

    def recover_abandoned(self) -> bool:
        """Put back what was there before a holder that died while the last
        one (SIGKILL runs no release); True if there was such a leftover.
        The next acquire does the same; this lets a caller (a test session's
        leak check) see the machine as it will be before it looks."""
        with self._locked():
            if self._live_holders() or not (self._state / "backup").exists():
                return False
            self._restore_backup()
            return True

    def release(self) -> None:
        if not self._held:
            return
        with self._locked():
            (self._state / f"holder-{self._holder}").unlink(missing_ok=True)
            self._held = False
            if not self._live_holders():
                self._restore_backup()

    def _restore_backup(self) -> None:
        backup = self._state / "backup"
        if not backup.exists():
            return
        if backup.read_text() == _ABSENT:
            self.target.unlink(missing_ok=True)
        else:
            _write_atomically(self.target, (self._state / "backup-content").read_bytes())
        (self._state / "backup-content").unlink(missing_ok=True)
        backup.unlink()
        log.info("restored %s", self.target)
