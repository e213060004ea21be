"""Processes as the identity layer needs them, read from /proc.

A process may exit between any two reads; every reader returns None (or
skips it) rather than raising.

Paths, arguments and cgroup names are bytes to the kernel. They are kept here
as os.fsdecode keeps them (bytes that are not UTF-8 as lone surrogates), so
nothing is lost: two paths are never read as one, and the path still opens the
file. They are not fit for the bus as they are; identify() escapes them.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    uid: int
    exe: str  # "" for kernel threads and processes we may not inspect; undecodable bytes kept (above)
    argv: tuple[str, ...]  # undecodable bytes kept
    comm: str
    cgroup: str  # cgroup v2 path relative to the hierarchy root, "/..."; undecodable bytes kept
    # Read only where they can matter (see read_sandbox_facts); "" otherwise.
    appimage: str = ""  # $APPIMAGE, read when the executable lies in an AppImage mount
    appdir: str = ""  # $APPDIR, likewise
    flatpak_info: str = (
        ""  # /.flatpak-info in the process's root, read when in another mount namespace
    )


# An AppImage's runtime mounts the image at $TMPDIR/.mount_<x>: only a process
# whose executable lies in such a directory has its environment read.
APPIMAGE_MOUNT_MARK = "/.mount_"
MAX_ENVIRON_BYTES = 256 * 1024
MAX_FLATPAK_INFO_BYTES = 64 * 1024


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as file:
            return os.fsdecode(file.read())
    except OSError:
        return None


def read_process(pid: int) -> ProcessInfo | None:
    base = f"/proc/{pid}"
    status = _read(f"{base}/status")
    if status is None:
        return None
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    try:
        exe = os.readlink(f"{base}/exe")
    except OSError:
        exe = ""
    cmdline = _read(f"{base}/cmdline") or ""
    cgroups = _read(f"{base}/cgroup")
    if cgroups is None or (exe and not cmdline and read_exe(pid) is None):
        return None  # it exited while being read: what was read may be half of it
    cgroup = _cgroup_path(cgroups)
    exe = exe.removesuffix(" (deleted)")
    if APPIMAGE_MOUNT_MARK in exe and environment_pending(pid):
        return None  # mid-exec: read next tick, not named by its bare executable
    appimage, appdir, flatpak_info = read_sandbox_facts(pid, exe, cgroup)
    try:
        return ProcessInfo(
            pid=pid,
            ppid=int(fields.get("PPid", "0")),
            uid=int(fields.get("Uid", "0").split()[0]),
            exe=exe,
            argv=tuple(arg for arg in cmdline.split("\0") if arg),
            comm=fields.get("Name", "").strip(),
            cgroup=cgroup,
            appimage=appimage,
            appdir=appdir,
            flatpak_info=flatpak_info,
        )
    except ValueError:
        return None


def read_cgroup(pid: int) -> str | None:
    """The process's cgroup v2 path, as read_process reads it (None: gone):
    one small file, to tell whether it moved (into its app scope, say)."""
    cgroups = _read(f"/proc/{pid}/cgroup")
    return None if cgroups is None else _cgroup_path(cgroups)


def _cgroup_path(cgroups: str) -> str:
    """The cgroup v2 line's path of a /proc/PID/cgroup text ("/" if none)."""
    return next((line[3:] for line in cgroups.splitlines() if line.startswith("0::")), "/")


def read_start(pid: int) -> int | None:
    """When the process started, in clock ticks after boot (None: gone):
    tells apart two processes under one pid (the kernel hands pids out
    again), unless the pid came round within one tick (10 ms), which only
    root can make happen (the kernel's next pid set, or clone3's set_tid).
    The name before it may hold spaces and ')': the fields follow the last ')'."""
    try:
        descriptor = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        stat = os.read(descriptor, 4096)
    except OSError:
        return None
    finally:
        os.close(descriptor)
    try:
        return int(stat[stat.rindex(b")") + 2 :].split(b" ", 20)[19])  # field 22 of the line
    except (ValueError, IndexError):
        return None


def boot_ticks() -> int:
    """Now, in the clock ticks after boot that read_start counts starts in."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))


def environment_pending(pid: int) -> bool:
    """Whether the process is inside execve: the kernel switches its
    executable (/proc/PID/exe) before it lays out the new environment, so
    for that moment /proc/PID/environ reads empty and an AppImage's program
    would be named by its bare executable. The new memory's environment
    bounds (/proc/PID/stat fields 50-51, env_start and env_end) are 0 until
    the environment is in place."""
    stat = _read(f"/proc/{pid}/stat")
    return stat is not None and env_bounds_unset(stat)


def env_bounds_unset(stat: str) -> bool:
    """A /proc/PID/stat line's env_start and env_end (fields 50 and 51; the
    name before them may hold spaces and ')') are both 0."""
    fields = stat[stat.rfind(")") + 2 :].split()
    return len(fields) > 48 and fields[47] == fields[48] == "0"


def proc_stamp(pid: int) -> int | None:
    """The inode number of /proc/PID (one stat, cheaper than reading a file;
    None: gone). The kernel makes that inode for one process (it holds the
    process's pid struct) and a new process under the same pid gets another,
    so an unchanged stamp means the same process; a changed one may also be
    the same process whose inode the kernel dropped from its cache: only a
    hint to read it again (its start time then decides)."""
    try:
        return os.stat(f"/proc/{pid}").st_ino
    except OSError:
        return None


def read_sandbox_facts(pid: int, exe: str, cgroup: str) -> tuple[str, str, str]:
    """($APPIMAGE, $APPDIR, /.flatpak-info text) of a process, each "" unless
    it can matter: the environment only for an executable in an AppImage
    mount, the Flatpak file only for a process that no scope or service names
    and that is in another mount namespace. Most processes cost nothing here (a readlink at most)."""
    appimage = appdir = flatpak_info = ""
    if APPIMAGE_MOUNT_MARK in exe:
        environ = _read_bounded(f"/proc/{pid}/environ", MAX_ENVIRON_BYTES, follow=True)
        for entry in environ.split("\0"):
            name, _, value = entry.partition("=")
            if name == "APPIMAGE":
                appimage = value
            elif name == "APPDIR":
                appdir = value
    if exe and not _named_by_cgroup(cgroup) and _other_mount_namespace(pid):
        flatpak_info = _read_bounded(
            f"/proc/{pid}/root/.flatpak-info", MAX_FLATPAK_INFO_BYTES, follow=False
        )
    return appimage, appdir, flatpak_info


def _named_by_cgroup(cgroup: str) -> bool:
    """Whether identify() names the process by its cgroup anyway (an app or
    snap scope, a system service), so /.flatpak-info would not be used: most
    of a desktop's processes, spared a readlink."""
    if cgroup.startswith("/system.slice/"):
        return True
    if "/app-" not in cgroup and "/snap." not in cgroup:
        return False  # most processes outside scopes: no split
    return any(
        (part.endswith(".scope") and part.startswith(("app-", "snap.")))
        or (part.startswith("snap.") and part.endswith(".service"))
        for part in cgroup.split("/")
    )


def _read_bounded(path: str, most: int, *, follow: bool) -> str:
    """At most `most` bytes of a regular file, "" if it is anything else (a
    FIFO must not block the helper) or cannot be read. follow=False: the last
    component may not be a symlink (a sandbox's root is its owner's to shape)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return ""
        return os.fsdecode(os.read(descriptor, most))
    except OSError:
        return ""
    finally:
        os.close(descriptor)


_OWN_MOUNT_NAMESPACE: list[str] = []


def _other_mount_namespace(pid: int) -> bool:
    if not _OWN_MOUNT_NAMESPACE:
        try:
            _OWN_MOUNT_NAMESPACE.append(os.readlink("/proc/self/ns/mnt"))
        except OSError:
            return False
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt") != _OWN_MOUNT_NAMESPACE[0]
    except OSError:
        return False


def read_exe(pid: int) -> str | None:
    """The executable path alone (one readlink): enough to notice an exec."""
    try:
        return os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except FileNotFoundError:
        return None
    except OSError:
        return ""  # a kernel thread, or not ours to inspect


def process_exists(pid: int) -> bool:
    """True while /proc has the pid (a zombie included)."""
    return os.path.exists(f"/proc/{pid}")


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def cgroup_id(cgroup_root: Path, cgroup: str) -> int | None:
    """The kernel's cgroup id of a cgroup v2 directory (its inode number)."""
    try:
        return os.stat(cgroup_root / cgroup.lstrip("/")).st_ino
    except OSError:
        return None


def cgroup_path(cgroup_root: Path, wanted_id: int) -> str | None:
    """The path ("/a/b.scope") of the cgroup v2 directory with this id, found
    by walking the hierarchy (for a process that exited before /proc/PID
    could be read; ids are never reused)."""
    for directory, _subdirs, _files in os.walk(cgroup_root):
        try:
            if os.stat(directory).st_ino == wanted_id:
                return "/" + os.path.relpath(directory, cgroup_root).removeprefix(".").lstrip("/")
        except OSError:
            continue
    return None
