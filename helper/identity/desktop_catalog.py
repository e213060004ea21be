"""Installed .desktop files, by the program their Exec= line runs: a program
started from a terminal is the application a menu would have started, with
its name and icon (docs/helper.md, "Stable identity").

Cost is bounded: a directory's files are parsed once and kept; its mtime is
looked at no more than once a CHECK_INTERVAL_S (a user's directory: once a
USER_CHECK_INTERVAL_S), and it is listed again only when that changed (a
file added, removed or renamed into place; an editor's save is a rename);
then only files whose inode, mtime or size changed are read again, at most
MAX_FILES files of MAX_FILE_BYTES each and MAX_DIRECTORY_BYTES in all.

Whose files count: the system's data directories (XDG_DATA_DIRS of the
helper, root's) for every process, and a user's own
~/.local/share/applications for that user's processes only, and only files
that user owns in a directory that user owns (read without following a
symlink): one user's files never name another user's processes, and nothing
root alone may read is disclosed through them. A program that two entries
run is matched by neither (ambiguous: libreoffice's --writer, --calc, ...);
launchers (flatpak, snap, gtk-launch, ...) and bare interpreters are never
matched.
"""

from __future__ import annotations

import os
import pwd
import shlex
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from chadthrottle.helper.identity.interpreters import is_interpreter, script_argument

CHECK_INTERVAL_S = 1.0
USER_CHECK_INTERVAL_S = 5.0  # a user may change their directory as often as they like
MAX_FILES = 2_000
MAX_FILE_BYTES = 64 * 1024
MAX_DIRECTORY_BYTES = 4 * 1024 * 1024  # read per listing; unchanged files are not read again
HOME_TTL_S = 60.0
# The programs' search path: the helper's own PATH is not the user's, and a
# user's is theirs to set; these are where installed programs live.
SEARCH_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
# Programs that start another application: matching them would name every
# `flatpak update` after the one Flatpak installed.
LAUNCHERS = frozenset({
    "flatpak", "snap", "gtk-launch", "gtk4-launch", "xdg-open", "gio", "kioclient", "kioclient5", "kioclient6",
    "kstart", "kstart5", "kstart6", "env", "sudo", "pkexec", "exo-open", "dex", "gnome-terminal", "x-terminal-emulator",
})  # fmt: skip
USER_APPLICATIONS = Path(".local/share/applications")
# Match keys: ("exe", canonical path of a binary) or ("script", path of a script as exec passes it).
ProgramKey = tuple[str, str]


@dataclass(frozen=True)
class CatalogEntry:
    desktop_id: str
    name: str
    icon: str
    program: ProgramKey | None  # what its Exec= runs, as identify() would name it


def system_data_dirs() -> list[Path]:
    """Where the system's .desktop files are, in XDG precedence order."""
    dirs = os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share"
    extra = ["/var/lib/flatpak/exports/share", "/var/lib/snapd/desktop"]
    return [Path(d) / "applications" for d in [*dirs.split(":"), *extra] if d]


def parse_desktop_file(text: str) -> dict[str, str] | None:
    """The [Desktop Entry] group's keys (unlocalized), None if it has none."""
    fields: dict[str, str] = {}
    in_entry = seen = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            in_entry = line == "[Desktop Entry]"
            seen = seen or in_entry
            continue
        if in_entry and "=" in line:
            key, _, value = line.partition("=")
            fields.setdefault(key.strip(), value.strip())
    return fields if seen else None


def exec_program(exec_line: str, read_head: Callable[[str], bytes]) -> ProgramKey | None:
    """What an Exec= line runs, as identify() names a process: a binary by its
    canonical path, a script by the path exec passes its interpreter."""
    try:
        words = [word for word in shlex.split(exec_line) if not (len(word) == 2 and word[0] == "%")]
    except ValueError:
        return None
    if words and os.path.basename(words[0]) == "env":
        words = words[1:]
        while words and "=" in words[0] and not words[0].startswith(("-", "/")):
            words = words[1:]  # env NAME=value ... program
        if words and words[0].startswith("-"):
            return None  # env's own options: not worth guessing
    if not words:
        return None
    program = _on_search_path(words[0])
    if program is None or os.path.basename(os.path.realpath(program)) in LAUNCHERS:
        return None
    if is_interpreter(os.path.realpath(program)):
        script = script_argument(words[1:])
        return ("script", script) if script else None
    if read_head(program).startswith(b"#!"):
        return "script", program  # the kernel runs its interpreter with this path
    return "exe", os.path.realpath(program)


def _on_search_path(word: str) -> str | None:
    if "/" in word:
        return word if os.path.isabs(word) else None
    for directory in SEARCH_PATH:
        candidate = os.path.join(directory, word)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _read_head(path: str) -> bytes:
    """The first bytes of a file, without blocking on a FIFO."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        return os.read(descriptor, 2) if stat.S_ISREG(os.fstat(descriptor).st_mode) else b""
    except OSError:
        return b""
    finally:
        os.close(descriptor)


_NO_ENTRY = CatalogEntry("", "", "", None)  # a file that names no application (cached as such)
FileStamp = tuple[int, int, int]  # inode, mtime, size


class _Directory:
    """One applications directory, listed again when its mtime changed; a
    file is read again only when its own inode, mtime or size did."""

    def __init__(self, path: Path, owner: int | None) -> None:
        self.path = path
        self.owner = owner  # a user's directory: only it and files it owns are read
        self.stamp: tuple[int, int, int] | None = None
        self.entries: dict[
            str, CatalogEntry | None
        ] = {}  # None: hidden (it hides a system entry too)
        self.checked_at = float("-inf")
        self.generation = 0
        self._files: dict[str, tuple[FileStamp, CatalogEntry | None]] = {}
        self._interval_s = CHECK_INTERVAL_S if owner is None else USER_CHECK_INTERVAL_S

    def refresh(self, now: float) -> None:
        if now - self.checked_at < self._interval_s:
            return
        self.checked_at = now
        try:
            descriptor = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            self._replace(None, {})
            return
        try:
            info = os.fstat(descriptor)
            if self.owner is not None and info.st_uid != self.owner:
                self._replace(
                    None, {}
                )  # someone else's directory (a symlink to it): not this user's files
                return
            stamp = (info.st_dev, info.st_ino, info.st_mtime_ns)
            if stamp != self.stamp:
                self._replace(stamp, self._parse_all(descriptor))
        finally:
            os.close(descriptor)

    def _replace(
        self, stamp: tuple[int, int, int] | None, entries: dict[str, CatalogEntry | None]
    ) -> None:
        if stamp is None:
            self._files = {}
        if stamp != self.stamp or entries != self.entries:
            self.stamp, self.entries = stamp, entries
            self.generation += 1

    def _parse_all(self, descriptor: int) -> dict[str, CatalogEntry | None]:
        try:
            names = sorted(name for name in os.listdir(descriptor) if name.endswith(".desktop"))[
                :MAX_FILES
            ]
        except OSError:
            return {}
        files: dict[str, tuple[FileStamp, CatalogEntry | None]] = {}
        budget = [MAX_DIRECTORY_BYTES]  # bytes this listing may still read
        for name in names:
            desktop_id = name[: -len(".desktop")]
            if not desktop_id.strip() or desktop_id.startswith("."):
                continue  # nothing to name an application by
            found = self._file(descriptor, name, desktop_id, budget)
            if found is not None:
                files[name] = found
        self._files = files
        return {
            name[: -len(".desktop")]: entry
            for name, (_stamp, entry) in files.items()
            if entry is not _NO_ENTRY
        }

    def _file(self, directory: int, name: str, desktop_id: str,
              budget: list[int]) -> tuple[FileStamp, CatalogEntry | None] | None:  # fmt: skip
        """(stamp, entry) of one file: the cached one if the file is unchanged."""
        flags = (
            os.O_RDONLY
            | os.O_NONBLOCK
            | os.O_CLOEXEC
            | (os.O_NOFOLLOW if self.owner is not None else 0)
        )
        try:
            descriptor = os.open(name, flags, dir_fd=directory)
        except OSError:
            return None
        try:
            info = os.fstat(descriptor)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
                return None
            if self.owner is not None and info.st_uid != self.owner:
                return None
            stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
            cached = self._files.get(name)
            if cached is not None and cached[0] == stamp:
                return cached
            if budget[0] < info.st_size:
                return (
                    None  # this listing read enough: a directory full of large files costs no more
                )
            budget[0] -= info.st_size
            return stamp, _entry(desktop_id, os.read(descriptor, MAX_FILE_BYTES).decode("utf-8"))
        except (OSError, UnicodeDecodeError):
            return None
        finally:
            os.close(descriptor)


def _entry(desktop_id: str, text: str) -> CatalogEntry | None:
    """The file's entry; None if it hides the id (Hidden=true), _NO_ENTRY if it names no application."""
    fields = parse_desktop_file(text)
    if fields is None:
        return _NO_ENTRY
    if fields.get("Hidden") == "true":
        return None
    if fields.get("Type", "Application") != "Application" or not fields.get("Name"):
        return _NO_ENTRY
    program = exec_program(fields["Exec"], _read_head) if fields.get("Exec") else None
    return CatalogEntry(desktop_id, fields["Name"], fields.get("Icon", ""), program)


class DesktopCatalog:
    """The installed applications as the system and each user see them."""

    def __init__(self, system_dirs: Callable[[], Iterable[Path]] = system_data_dirs,
                 home_of: Callable[[int], str | None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._system_dirs = system_dirs
        self._home_of = home_of or _home_of
        self._clock = clock
        self._directories: dict[tuple[Path, int | None], _Directory] = {}
        self._homes: dict[int, tuple[float, str | None]] = {}
        self._checked_at: dict[
            int | None, float
        ] = {}  # uid -> when its directories were last looked at
        self._lock = threading.Lock()
        # uid (None: the system alone) -> (generations it was built from, merged entries, program -> entry)
        self._views: dict[
            int | None,
            tuple[tuple[int, ...], dict[str, CatalogEntry], dict[ProgramKey, CatalogEntry]],
        ] = {}

    def entry(self, desktop_id: str, uid: int | None = None) -> CatalogEntry | None:
        """The entry of a desktop id as uid's session sees it (None: the system's)."""
        return self._view(uid)[0].get(desktop_id)

    def match(self, program: ProgramKey, uid: int | None = None) -> CatalogEntry | None:
        """The one entry whose Exec= runs this program, for uid's processes."""
        return self._view(uid)[1].get(program)

    def _view(
        self, uid: int | None
    ) -> tuple[dict[str, CatalogEntry], dict[ProgramKey, CatalogEntry]]:
        with self._lock:  # the engine's threads, and the start's renames
            return self._view_locked(uid)

    def _view_locked(
        self, uid: int | None
    ) -> tuple[dict[str, CatalogEntry], dict[ProgramKey, CatalogEntry]]:
        now = self._clock()
        cached = self._views.get(uid)
        if cached is not None and now - self._checked_at.get(uid, float("-inf")) < CHECK_INTERVAL_S:
            return cached[1], cached[2]  # every identify() call: no stat, no path built
        self._checked_at[uid] = now
        directories = [self._directory(path, None) for path in self._system_dirs()]
        home = self._home(uid, now) if uid is not None else None
        if home:
            directories.insert(0, self._directory(Path(home) / USER_APPLICATIONS, uid))
        for directory in directories:
            directory.refresh(now)
        generations = tuple(part for d in directories for part in (id(d), d.generation))
        if cached is not None and cached[0] == generations:
            return cached[1], cached[2]
        merged: dict[str, CatalogEntry | None] = {}
        for directory in directories:  # the first directory that has an id wins
            for desktop_id, found in directory.entries.items():
                merged.setdefault(desktop_id, found)
        entries = {desktop_id: found for desktop_id, found in merged.items() if found is not None}
        by_program: dict[ProgramKey, CatalogEntry | None] = {}
        for found in entries.values():
            if found.program is not None:
                by_program[found.program] = (
                    None if found.program in by_program else found
                )  # two: ambiguous
        programs = {key: found for key, found in by_program.items() if found is not None}
        self._views[uid] = (generations, entries, programs)
        return entries, programs

    def _directory(self, path: Path, owner: int | None) -> _Directory:
        key = (path, owner)
        if key not in self._directories:
            self._directories[key] = _Directory(path, owner)
        return self._directories[key]

    def _home(self, uid: int, now: float) -> str | None:
        cached = self._homes.get(uid)
        if cached is None or now - cached[0] > HOME_TTL_S:
            cached = self._homes[uid] = (now, self._home_of(uid))
        return cached[1]


def _home_of(uid: int) -> str | None:
    try:
        home = pwd.getpwuid(uid).pw_dir
    except KeyError:
        return None
    return home if os.path.isabs(home) and home != "/" else None


DEFAULT_CATALOG = DesktopCatalog()
