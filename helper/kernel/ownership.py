"""Which of our programs on the cgroup root belong to a datapath that is alive.

bcc attaches with the legacy call, so a killed helper's programs stay attached
and the next start must find and detach them, without touching the programs of
another live datapath (a test suite running beside the user's helper). Each
datapath holds LOCK_FILE shared for its lifetime and its own record file
exclusively; the record lists its program ids. A program with our name prefix
that no live record lists is a leftover. holding_machine_lock() takes LOCK_FILE
exclusively: while it is held no datapath runs (for cleanups and baselines).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

from chadthrottle.helper.errors import BackendUnavailable

RUN_DIR = Path("/run/chadthrottle")
LOCK_FILE = RUN_DIR / "datapath.lock"
RECORD_GLOB = "datapath-*.ids"
LOCK_TIMEOUT_S = 120.0


def _lock(path: Path, mode: int, timeout_s: float) -> int:
    RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise BackendUnavailable(f"{path} stayed locked for {timeout_s:.0f} s") from None
            time.sleep(0.1)


def acquire_shared(timeout_s: float = LOCK_TIMEOUT_S) -> int:
    """Say a datapath runs (many may); the caller closes the fd to stop saying it."""
    return _lock(LOCK_FILE, fcntl.LOCK_SH, timeout_s)


@contextlib.contextmanager
def holding_machine_lock(timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """No datapath runs, or starts, during the block."""
    fd = _lock(LOCK_FILE, fcntl.LOCK_EX, timeout_s)
    try:
        yield
    finally:
        os.close(fd)


class OwnershipRecord:
    """The program ids of one live datapath, in a file locked while it lives."""

    def __init__(self, program_ids: list[int]) -> None:
        RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = RUN_DIR / f"datapath-{os.getpid()}-{secrets.token_hex(4)}.ids"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        os.write(self._fd, " ".join(map(str, program_ids)).encode())

    def close(self) -> None:
        if self._fd >= 0:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = -1


def live_program_ids() -> set[int]:
    """Program ids of datapaths that are alive; records of dead ones are removed."""
    live: set[int] = set()
    for path in RUN_DIR.glob(RECORD_GLOB):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its owner holds it: alive
                live.update(int(word) for word in os.read(fd, 4096).split())
                continue
            path.unlink(missing_ok=True)  # nobody holds it: its owner died
        finally:
            os.close(fd)
    return live
