"""Which of our programs on the cgroup root belong to a datapath that is alive.

Programs are attached with the legacy call, so a killed helper's programs stay attached
and the next start must find and detach them, without touching the programs of
another live datapath (a test suite running beside the user's helper). Each
datapath holds LOCK_FILE shared for its lifetime and its own record file
exclusively; the record lists its program ids, written before they are attached.
A record nobody holds is a dead datapath's, and the programs it lists are
leftovers; a program with our name prefix that no record lists was not attached
by a helper and is left alone. A helper's record names its instance (its state
directory, journal_instance), and a sweep takes only its own instance's dead
records and those of datapaths of no helper (tools, older helpers): a test
session's helper beside the user's must not detach a killed user helper's
programs before that helper's successor has taken its sockets over. holding_machine_lock() takes LOCK_FILE
exclusively: while it is held no datapath runs (for cleanups and baselines).

ObjectJournal does the same for kernel objects that are not programs (the tc
shaper's qdiscs, filters and IFB devices): a live owner's journal is locked,
and a dead owner's entries are taken over by the next start in the same
network namespace, which checks each against the kernel before adopting it.
Only the same helper instance (journal_instance: its state directory) takes
over: every helper on the machine shares RUN_DIR, and a test session's helper
that took a killed helper's entries removed its IFBs before its successor
(same state directory) could adopt them. A journal's name carries its
instance (hashed), so a scan passes over another instance's journals without
locking them: a lock held for that moment reads as a live owner to the
journal's own successor, which then left it (CI h2, 2026-12-06).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from chadthrottle.helper.errors import BackendUnavailable, StartCancelled

log = logging.getLogger("chadthrottle.kernel.ownership")

RUN_DIR = Path("/run/chadthrottle")
LOCK_FILE = RUN_DIR / "datapath.lock"
RECORD_GLOB = "datapath-*.ids"
MAKING_GLOB = "datapath-*.new"
LOCK_TIMEOUT_S = 120.0


def lock_holders(path: Path) -> str:
    """Who holds a flock on path, from /proc/locks: "pid N (its command)", for
    a log line that says why a start waits; "unknown" if nothing names one."""
    try:
        info = os.stat(path)
        table = Path("/proc/locks").read_text()
    except OSError:
        return "unknown"
    where = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    named = []
    for line in table.splitlines():
        fields = line.split()  # "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == where:
            named.append(f"pid {fields[4]} ({_command(fields[4])}, {fields[3].lower()})")
    return ", ".join(named) or "unknown"


def _command(pid: str) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    said = " ".join(word.decode(errors="replace") for word in words if word)
    return " ".join(said.split())[:200] or "?"  # one line


def _lock(path: Path, mode: int, timeout_s: float, stopping: threading.Event | None = None) -> int:
    """flock path (mode) within timeout_s. A wait is logged, naming the holder
    (a test's or benchmark's machine lock can hold a helper's start for its
    whole run), and how long it took: else only a slow start was seen."""
    RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    began = time.monotonic()
    deadline = began + timeout_s
    waited = False
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            if waited:
                log.info("took %s after waiting %.1f s", path, time.monotonic() - began)
            return fd
        except BlockingIOError:
            if not waited:
                waited = True
                log.info("waiting for %s (at most %.0f s): held by %s", path, timeout_s,
                         lock_holders(path))  # fmt: skip
            if time.monotonic() >= deadline:
                os.close(fd)
                raise BackendUnavailable(f"{path} stayed locked for {timeout_s:.0f} s") from None
            if stopping is None:
                time.sleep(0.1)
            elif stopping.wait(0.1):
                os.close(fd)
                raise StartCancelled("stopped while waiting for the machine lock") from None


def acquire_shared(
    timeout_s: float = LOCK_TIMEOUT_S, stopping: threading.Event | None = None
) -> int:
    """Say a datapath runs (many may); the caller closes the fd to stop saying it.
    A start waiting here gives up once stopping is set (StartCancelled)."""
    return _lock(LOCK_FILE, fcntl.LOCK_SH, timeout_s, stopping)


@contextlib.contextmanager
def holding_machine_lock(timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """No datapath runs, or starts, during the block."""
    fd = _lock(LOCK_FILE, fcntl.LOCK_EX, timeout_s)
    try:
        yield
    finally:
        os.close(fd)


class OwnershipRecord:
    """The program ids of one live datapath, in a file locked while it lives,
    named datapath-PID-TOKEN[-INSTANCE].ids (no instance: no helper's)."""

    def __init__(self, program_ids: list[int], instance: str = "") -> None:
        if not _INSTANCE.fullmatch(instance):
            raise ValueError(f"not a helper instance: {instance!r}")
        RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"datapath-{os.getpid()}-{secrets.token_hex(4)}"
        if instance:
            name += f"-{instance}"
        self.path = RUN_DIR / f"{name}.ids"
        # Made under a name RECORD_GLOB does not match, locked and written, then
        # renamed: a sweep (dead_records) never sees it unlocked or empty. Made
        # and then locked in place, a sweep between the two took it for a dead
        # datapath's and removed it (review8: 131 of 20,000 live records).
        making = RUN_DIR / f"{name}.new"
        self._fd = os.open(making, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            os.write(self._fd, " ".join(map(str, program_ids)).encode())
            os.rename(making, self.path)
        except BaseException:
            making.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = -1
            raise

    def close(self) -> None:
        if self._fd >= 0:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = -1


_INSTANCE = re.compile(r"[0-9a-f]{0,64}")


def _record_instance(path: Path) -> str:
    """The instance a record's name gives ("" for a datapath of no helper)."""
    parts = path.name.removesuffix(".ids").split("-")
    return parts[3] if len(parts) == 4 else ""


@contextlib.contextmanager
def dead_records(instance: str) -> Iterator[set[int]]:
    """The program ids that datapaths which died (killed: their record stayed,
    unlocked) had attached, held while the caller detaches them; their records
    are removed after. Only records of this helper instance and of no helper are
    taken: another instance's dead datapath is its own successor's to take over.
    Only what a record lists is ours to detach: a program with our name that no
    record lists was not made by a helper (a benchmark's, a build of another
    loader) and stays. Records of live datapaths are locked
    by their owners and skipped; a record another sweeper holds is skipped too.
    If the caller raises, the records stay (unlocked) for the next sweep."""
    held: list[tuple[Path, int]] = []
    ids: set[int] = set()
    _remove_dead_makings()
    try:
        for path in RUN_DIR.glob(RECORD_GLOB):
            if _record_instance(path) not in ("", instance):
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its owner (or another sweeper) holds it
                os.close(fd)
                continue
            if os.fstat(fd).st_nlink == 0:  # its owner closed it (removed, then unlocked)
                os.close(fd)
                continue
            held.append((path, fd))
            ids.update(_program_ids(os.read(fd, 4096)))
        yield ids
        for path, _fd in held:  # only once the caller is done: else the next sweep retries
            path.unlink(missing_ok=True)
    finally:
        for _path, fd in held:
            os.close(fd)


def _remove_dead_makings() -> None:
    """A record still being made (.new) whose maker process is gone was left by
    a helper killed before it attached anything: nothing to detach, only the
    file to remove. Judged by the maker's pid in the name, not by its lock: a
    maker locks its file only after creating it, and a sweep in between must
    not take a live maker's file away."""
    for path in RUN_DIR.glob(MAKING_GLOB):
        try:
            os.kill(int(path.name.split("-")[1]), 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except (ValueError, IndexError, OSError):
            continue  # not a name we make, or a process we may not signal: alive


def _program_ids(text: bytes) -> set[int]:
    """A record's ids; anything else in it (a record cut short) is not an id."""
    return {int(word) for word in text.split() if word.isdigit()}


JOURNAL_SUFFIX = ".journal"
_JOURNAL_TAG = re.compile(r"[0-9a-f]{12}")


def _journal_tag(instance: str) -> str:
    """What a journal's name says of its instance ("" none): a hash, as an
    instance given in a test may be any text."""
    return hashlib.sha256(instance.encode()).hexdigest()[:12] if instance else ""


def _tag_of(path: Path) -> str:
    """The instance tag in a journal's name, KIND-PID-TOKEN[-TAG].journal ("" none)."""
    parts = path.name.removesuffix(JOURNAL_SUFFIX).split("-")
    return parts[-1] if len(parts) >= 4 and _JOURNAL_TAG.fullmatch(parts[-1]) else ""


def journal_instance(state_dir: Path) -> str:
    """Which helper a journal entry is of: its state directory (where its
    rules are; a restart keeps it), hashed so no path is written to /run."""
    return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]


class ObjectJournal:
    """What one live owner made in the kernel, one JSON line per change, in a
    file it holds locked (like OwnershipRecord), so a killed owner's objects
    can be told from anyone else's by the next start.

    Each entry has a "key"; the latest line for a key wins, and a line with
    "gone" true says the object was deleted. An entry is written *before* its
    object is created, so a crash between the two leaves an entry whose object
    is missing (the reader checks), never an object without an entry.
    """

    def __init__(self, kind: str, instance: str = "") -> None:
        """instance: whose entries it holds (journal_instance; "" none): its
        name says so, and only a scan of the same instance opens it."""
        RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.tag = _journal_tag(instance)
        suffix = f"-{self.tag}" if self.tag else ""
        name = f"{kind}-{os.getpid()}-{secrets.token_hex(4)}{suffix}{JOURNAL_SUFFIX}"
        # Created and locked under a name readers do not look for, then renamed:
        # a reader must never find it unlocked and take it for a dead owner's.
        hidden = RUN_DIR / f".{name}"
        self._fd = os.open(
            hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600
        )
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.path = RUN_DIR / name
        os.rename(hidden, self.path)

    def write(self, entry: dict[str, Any]) -> None:
        """Record an object (or, with "gone": True, its removal); one write, so
        a crash leaves whole lines (a torn last line is skipped by readers)."""
        if self._fd < 0:
            raise ValueError("the journal is closed")
        os.write(self._fd, (json.dumps(entry, sort_keys=True) + "\n").encode())

    def forget(self, key: str) -> None:
        self.write({"key": key, "gone": True})

    def close(self) -> None:
        """The owner removed everything it made: nothing is left to find."""
        if self._fd >= 0:
            self.path.unlink(missing_ok=True)
            self.release()

    def release(self) -> None:
        """Unlock, keeping the file, as if the owner had died: the next start
        finds what it lists."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _entries(text: str) -> dict[str, dict[str, Any]]:
    """The latest entry per key of a journal's text; removed keys are left out."""
    latest: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # torn by a crash mid-write
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            latest[entry["key"]] = entry
    return {key: entry for key, entry in latest.items() if not entry.get("gone")}


def take_over_dead(
    kind: str,
    belongs: Callable[[dict[str, Any]], bool],
    heir: ObjectJournal,
    is_garbage: Callable[[dict[str, Any]], bool] = lambda entry: False,
) -> list[dict[str, Any]]:
    """The entries of dead owners' journals of this kind that belong to the
    caller (its network namespace): written into heir first, then removed from
    the dead journal (which goes once empty), so a crash in between leaves
    them in two journals, never in none. Entries is_garbage says are moot (their
    namespace is gone, and their objects with it) are dropped. Live owners'
    journals are not read. Another instance's (heir.tag; those of no instance
    are read by all) are not locked, but read, and removed only where nothing
    in them is alive (none, or all moot): what they hold is their successor's
    to take, and one that finds nothing there to take misses nothing."""
    taken: dict[str, dict[str, Any]] = {}
    for path in sorted(RUN_DIR.glob(f"{kind}-*{JOURNAL_SUFFIX}")):
        foreign = _tag_of(path) not in ("", heir.tag)
        if path == heir.path or (foreign and not _all_moot(path, is_garbage)):
            continue
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its owner is alive
            if not _still_named(path, fd):
                continue  # another scan took it (removed or rewrote it) since it was opened
            entries = _entries(_read(fd))
            if foreign and not all(is_garbage(entry) for entry in entries.values()):
                continue  # written to since it was read (it was not dead then)
            mine = {key: e for key, e in entries.items() if belongs(e) and not foreign}
            for key, entry in mine.items():
                heir.write(entry)
                taken[key] = entry
            rest = [
                entry for key, entry in entries.items() if key not in mine and not is_garbage(entry)
            ]
            if not rest:
                path.unlink(missing_ok=True)
            elif len(rest) < len(entries):
                _rewrite(path, rest)
        finally:
            os.close(fd)
    return list(taken.values())


def _all_moot(path: Path, is_garbage: Callable[[dict[str, Any]], bool]) -> bool:
    """Whether nothing in a journal is alive (read without its lock)."""
    try:
        return all(map(is_garbage, _entries(path.read_text(errors="replace")).values()))
    except OSError:
        return False


def _still_named(path: Path, fd: int) -> bool:
    """Whether path still names the file fd has open."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _read(fd: int) -> str:
    """The whole text of the file fd has open."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _rewrite(path: Path, entries: list[dict[str, Any]]) -> None:
    """Replace a dead journal's text at once (write aside, rename)."""
    aside = path.with_name(path.name + ".new")
    aside.write_text("".join(json.dumps(entry, sort_keys=True) + "\n" for entry in entries))
    aside.chmod(0o600)
    os.replace(aside, path)


def recorded_entries(kind: str) -> list[dict[str, Any]]:
    """Every entry of every journal of this kind, live or dead, read without
    taking anything over: to tell whether an object is anybody's."""
    recorded: list[dict[str, Any]] = []
    for path in RUN_DIR.glob(f"{kind}-*{JOURNAL_SUFFIX}"):
        try:
            recorded.extend(_entries(path.read_text(errors="replace")).values())
        except OSError:
            continue
    return recorded
