"""Whether the helper that is away stopped cleanly or was killed, without a bus.

A helper that stops on SIGTERM removes its limits, blocks and the link's
shaping from the kernel; one killed (SIGKILL, a crash) leaves its rate limits
and the link's shaping in force until it starts again (docs/helper.md,
"Lifecycle and recovery"). With the helper gone nothing on the bus says which:
so the helper keeps one small record per bus under STATUS_DIR, world-readable,
written "running" before it builds the engine and "stopped" once the engine
has removed what it made (helper/run_state.py writes it; this module is the
one source of the format).

Whether the helper that wrote "running" lives is told by a lock, not a pid
(lock26): the helper holds an open-file-description write lock (F_OFD_SETLK,
F_WRLCK) on its record for as long as its process lives, and the kernel drops
it when the process dies, SIGKILL included. A reader asks F_OFD_GETLK for a
read lock: only a write lock conflicts, and only a process that can open the
file for writing (root: the file is root's 0644) can hold one, so no other
user can fake "alive"; their read locks (and flock()s) do not conflict. So a
"running" record unlocked is a killed helper's, locked a live one's (starting,
stopping, or off the bus), with no /proc: it reads the same in a Flatpak
(another pid namespace) and under hidepid, where the pid of the record (kept
for the helper's own use) names no process the reader can see.

Anything else, or a record that is not what the helper writes (not root's, a
symlink, writable by others, too long, not the format), reads UNKNOWN: it must
not be forgeable by another user into a claim either way.
"""

from __future__ import annotations

import enum
import fcntl
import hashlib
import json
import os
import stat
import struct
from pathlib import Path

from chadthrottle.contract import BLOCK_LEASE_S
from chadthrottle.dbus_wire import DEFAULT_SYSTEM_BUS_ADDRESS

STATUS_DIR = Path("/run/chadthrottle-status")
# 2: its "running" is alive while locked (lock26). A record of format 1, of a
# helper from before that holds no lock, reads UNKNOWN: not killed while it serves.
FORMAT = 2
MAX_BYTES = 512  # a record is about 140 bytes
BOOT_ID = "/proc/sys/kernel/random/boot_id"
RUNNING, STOPPED = "running", "stopped"


# Gone, and its record says how (docs/gui.md, "Stopped or killed"): the window,
# the tray and chadthrottle-ctl say these words. Blocks lapse: contract.BLOCK_LEASE_S.
STOPPED_CLEAN = "The helper stopped — its limits are off."
STOPPED_KILLED = (
    "The helper stopped unexpectedly — its last limits stay in force until it starts again."
)
# Killed while its limits were paused: the kernel held none (docs/helper.md,
# "Pausing all limits"), and a restart keeps them paused (stored).
STOPPED_KILLED_PAUSED = (
    "The helper stopped unexpectedly — its limits were paused: none is in force."
)
# What each leaves in the kernel (docs/helper.md, "Lifecycle and recovery").
CLEAN_DETAIL = (
    "It removed its limits, blocks, quotas, priorities and the link's capacity from the "
    "kernel as it stopped: traffic flows unlimited until it starts again."
)
KILLED_DETAIL = (
    "It was killed or crashed: its rate limits, priorities and the link's capacity stay in "
    f"the kernel, unwatched, until it starts again; its blocks and quotas lapse within {BLOCK_LEASE_S:g} s."
)


KILLED_PAUSED_DETAIL = (
    "It was killed or crashed while limits were paused: the kernel holds none of them, and "
    "they stay paused when it starts again (resume them then)."
)


class LastStop(enum.Enum):
    """How the helper of a bus is, as its record says."""

    STOPPED = "stopped"  # stopped cleanly: what it set is off
    KILLED = "killed"  # its process is gone without stopping: what it set stays
    KILLED_PAUSED = "killed-paused"  # so, with every limit paused: nothing of them holds
    RUNNING = "running"  # its process lives (starting, stopping, or off the bus)
    UNKNOWN = "unknown"  # no record, or one that cannot be trusted


def bus_address(address: str | None) -> str:
    """The address a client of bus ``address`` reaches (None: the system bus),
    as the helper, the window and the CLI each resolve it."""
    return address or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS_ADDRESS


def record_path(address: str | None, directory: Path = STATUS_DIR) -> Path:
    """The record of the helper that serves bus ``address``: one helper per bus."""
    digest = hashlib.sha256(bus_address(address).encode()).hexdigest()[:16]
    return directory / f"helper-{digest}.json"


def process_start(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field
    22), or None when there is no such process: with the pid, it names one
    process (a pid is reused, a start time with it is not). The helper's own
    use (which record is its own); readers go by the lock."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    try:  # the name in parentheses may hold spaces and ")": split after the last
        return int(text[text.rindex(")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return None


def boot_id() -> str | None:
    """This boot's random id (the kernel's): a record of another boot speaks
    of kernel objects that went with it."""
    try:
        return Path(BOOT_ID).read_text().strip() or None
    except OSError:
        return None


def record_text(state: str, pid: int, started: int, paused: bool = False) -> str:
    """A record as the helper writes it, of this boot. paused: every limit is
    paused (the kernel holds none of them; docs/helper.md, "Pausing all limits")."""
    fields = {"format": FORMAT, "state": state, "pid": pid, "started": started, "paused": paused}
    if (boot := boot_id()) is not None:
        fields["boot"] = boot
    return json.dumps(fields) + "\n"


# struct flock (fcntl(2)): l_type, l_whence, l_start, l_len, l_pid, padded as
# the kernel lays it out on 64-bit Linux (32 bytes). l_pid must be 0 for OFD locks.
_FLOCK = struct.Struct("@hhqqi4x")


def _whole_file_lock(kind: int) -> bytes:
    return _FLOCK.pack(kind, os.SEEK_SET, 0, 0, 0)


def hold_write_lock(fd: int) -> None:
    """Hold the record open on ``fd`` (open for writing) write-locked until
    the last descriptor of that open file closes, which the kernel does when
    the process dies. OSError (EAGAIN: someone holds a lock on it) if not."""
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _whole_file_lock(fcntl.F_WRLCK))


def write_locked(fd: int) -> bool:
    """Whether a process holds a write lock on the file open on ``fd``: the
    helper that wrote it lives. A read lock is asked about: only a write lock
    conflicts with one, and only root can hold that on root's 0644 file."""
    found = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _whole_file_lock(fcntl.F_RDLCK))
    kind: int = _FLOCK.unpack(found)[0]
    return kind == fcntl.F_WRLCK


def _trusted_record(path: Path) -> tuple[bytes, bool] | None:
    """The record's bytes and whether it is write-locked, if it and its
    directory are root's alone, else None."""
    try:
        folder = os.lstat(path.parent)
        if not stat.S_ISDIR(folder.st_mode) or folder.st_uid != 0 or folder.st_mode & 0o022:
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # none, a symlink, not readable
        return None
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode) or found.st_uid != 0 or found.st_mode & 0o022:
            return None
        data = os.read(fd, MAX_BYTES + 1)
        return (data, write_locked(fd)) if len(data) <= MAX_BYTES else None
    except OSError:
        return None
    finally:
        os.close(fd)


def read_last_stop(address: str | None, directory: Path = STATUS_DIR) -> LastStop:
    """How the helper of bus ``address`` is or ended, from its record alone."""
    found = _trusted_record(record_path(address, directory))
    if found is None:
        return LastStop.UNKNOWN
    data, alive = found
    try:
        record = json.loads(data)
    except ValueError:
        return LastStop.UNKNOWN
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return LastStop.UNKNOWN
    if "boot" in record and record["boot"] != boot_id():
        # of another boot (/run is a tmpfs under systemd, but not everywhere): what
        # it said went with that boot's kernel (review25)
        return LastStop.UNKNOWN
    state, pid, started = record.get("state"), record.get("pid"), record.get("started")
    paused = record.get("paused", False)
    if state == STOPPED:
        return LastStop.STOPPED
    if state != RUNNING or not all(type(n) is int and n > 0 for n in (pid, started)):
        return LastStop.UNKNOWN
    if type(paused) is not bool:
        return LastStop.UNKNOWN
    if alive:  # its helper holds the lock: it lives (lock26; not its pid: see above)
        return LastStop.RUNNING
    return LastStop.KILLED_PAUSED if paused else LastStop.KILLED
