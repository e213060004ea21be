"""What an "application" is: the identity a rule is stored against.

1. A desktop app scope (app-<launcher>-<desktop id>-<n>.scope, Flatpak's
   app-flatpak-<id>-<n>.scope): "app:<desktop id>", named from its .desktop file.
2. Otherwise the executable: "exe:<path>"; for an interpreter running a script,
   the script: "script:<path>", so two Python programs are two applications.
A process never carries a PID in its identity, so a rule applies again when the
application restarts. Ids and names are escaped (escaping.py): the paths and
cgroup names they come from are bytes, not always UTF-8, and may hold control
characters.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from chadthrottle.helper.identity.desktop_entries import find_desktop_entry
from chadthrottle.helper.identity.escaping import bounded_app_id, escape_bytes, escape_os_name, escape_text
from chadthrottle.helper.identity.processes import ProcessInfo

_APP_SCOPE = re.compile(r"^app-(?P<body>.+?)(?:-(?P<random>[0-9a-f]+))?\.scope$")
# systemd escapes bytes of a unit name as \xNN ("-" inside the desktop id as \x2d).
_SYSTEMD_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")
_INTERPRETERS = re.compile(r"^(python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|node|nodejs|bash|sh|dash|zsh|lua[0-9.]*)$")
KNOWN_KINDS = ("app", "exe", "script")


@dataclass(frozen=True)
class AppIdentity:
    app_id: str  # escaped, passes the adapter's validate_app_id
    name: str  # escaped
    icon: str  # escaped
    scope: str  # the app scope's cgroup path as the kernel has it (not escaped), "" when identified by executable


def _desktop_id_from_cgroup(cgroup: str) -> tuple[bytes, str] | None:
    """(desktop id, scope path) of the innermost app scope on the path."""
    parts = cgroup.strip("/").split("/")
    for depth in range(len(parts) - 1, -1, -1):
        leaf = parts[depth]
        match = _APP_SCOPE.match(leaf)
        if match:
            desktop_id = _systemd_unescape(_strip_launcher(match.group("body")))
            if not escape_bytes(desktop_id).strip():
                return None  # nothing to name the application by: its executable will
            return desktop_id, "/" + "/".join(parts[: depth + 1])
    return None


def _systemd_unescape(name: str) -> bytes:
    """The bytes a unit name's \\xNN escapes stand for (a desktop id need
    not be UTF-8 either)."""
    return _SYSTEMD_ESCAPE.sub(lambda match: bytes([int(match.group(1), 16)]), os.fsencode(name))


def _strip_launcher(body: str) -> str:
    """app[-<launcher>]-<desktop id>: a launcher is one dot-less word
    (gnome, kde, flatpak); a desktop id is usually reverse-DNS."""
    launcher, _, rest = body.partition("-")
    return rest if rest and "." not in launcher else body


def _script_of(process: ProcessInfo) -> str | None:
    if not _INTERPRETERS.match(os.path.basename(process.exe)):
        return None
    for arg in process.argv[1:]:
        if arg.startswith("-"):
            if arg in ("-c", "-m", "-e"):
                return None  # inline code or a module: fall back to the interpreter
            continue
        return arg if os.path.isabs(arg) else None
    return None


def identify(process: ProcessInfo) -> AppIdentity | None:
    """The application a process belongs to; None for kernel threads."""
    scope = _desktop_id_from_cgroup(process.cgroup)
    if scope is not None:
        desktop_id, scope_path = scope
        app_id = bounded_app_id("app", escape_bytes(desktop_id))
        entry = find_desktop_entry(os.fsdecode(desktop_id))
        if entry is None:
            return AppIdentity(app_id, escape_bytes(desktop_id.rsplit(b".", 1)[-1]), "", scope_path)
        return AppIdentity(app_id, escape_text(entry.name), escape_text(entry.icon), scope_path)
    if not process.exe:
        return None
    script = _script_of(process)
    if script is not None:
        return _file_identity("script", script)
    return _file_identity("exe", process.exe)


def _file_identity(kind: str, path: str) -> AppIdentity:
    return AppIdentity(bounded_app_id(kind, escape_os_name(path)), escape_os_name(os.path.basename(path)), "", "")
