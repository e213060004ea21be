"""What an "application" is: the identity a rule is stored against.

1. A desktop app scope (app-<launcher>-<desktop id>-<n>.scope, Flatpak's
   app-flatpak-<id>-<n>.scope): "app:<desktop id>", named from its .desktop file.
2. Otherwise the executable: "exe:<path>"; for an interpreter running a script,
   the script: "script:<path>", so two Python programs are two applications.
A process never carries a PID in its identity, so a rule applies again when the
application restarts.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from chadthrottle.helper.identity.desktop_entries import find_desktop_entry
from chadthrottle.helper.identity.processes import ProcessInfo

# systemd escapes "-" inside the desktop id as \x2d.
_APP_SCOPE = re.compile(r"^app-(?P<body>.+?)(?:-(?P<random>[0-9a-f]+))?\.scope$")
_INTERPRETERS = re.compile(r"^(python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|node|nodejs|bash|sh|dash|zsh|lua[0-9.]*)$")
KNOWN_KINDS = ("app", "exe", "script")


@dataclass(frozen=True)
class AppIdentity:
    app_id: str
    name: str
    icon: str
    scope: str  # the app scope's cgroup path, "" when identified by executable


def _desktop_id_from_cgroup(cgroup: str) -> tuple[str, str] | None:
    """(desktop id, scope path) of the innermost app scope on the path."""
    parts = cgroup.strip("/").split("/")
    for depth in range(len(parts) - 1, -1, -1):
        leaf = parts[depth]
        match = _APP_SCOPE.match(leaf)
        if match:
            desktop_id = _strip_launcher(match.group("body")).replace("\\x2d", "-")
            return desktop_id, "/" + "/".join(parts[: depth + 1])
    return None


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
        entry = find_desktop_entry(desktop_id)
        name = entry.name if entry else desktop_id.rsplit(".", 1)[-1]
        return AppIdentity(f"app:{desktop_id}", name, entry.icon if entry else "", scope_path)
    if not process.exe:
        return None
    script = _script_of(process)
    if script is not None:
        return AppIdentity(f"script:{script}", os.path.basename(script), "", "")
    return AppIdentity(f"exe:{process.exe}", os.path.basename(process.exe), "", "")
