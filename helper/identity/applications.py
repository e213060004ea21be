"""What an "application" is: the identity a rule is stored against, the same
across restarts and updates. The first that applies (docs/helper.md, "Stable
identity"; what each trusts is in origins.py):

1. The innermost scope on the process's cgroup path: a desktop app scope
   (app-<launcher>-<desktop id>-<n>.scope, Flatpak's app-flatpak-<id>-<n>.scope):
   "app:<desktop id>"; a snap's scope or service (snap.<snap>.<app>-<uuid>.scope):
   "snap:<snap>".
2. A system service (/system.slice/.../<unit>.service): "unit:<unit>".
3. An executable (or script) in a snap's image, /snap/<snap>/<revision>/...:
   "snap:<snap>" (the revision changes with every refresh).
4. A Flatpak sandbox's /.flatpak-info: "app:<its application id>".
5. An AppImage (the executable in its mount, $APPIMAGE): "appimage:<image path>"
   (its mount directory is new at every launch).
6. The executable, "exe:<path>", or for an interpreter running a script the
   script, "script:<path>" (two Python programs are two applications); but a
   program an installed .desktop file runs (started from a terminal, say) is
   that desktop app, "app:<desktop id>", as if a menu had started it.
A process never carries a PID in its identity, so a rule applies again when the
application restarts. Ids and names are escaped (escaping.py): the paths and
cgroup names they come from are bytes, not always UTF-8, and may hold control
characters.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache

from chadthrottle.helper.identity.desktop_catalog import DEFAULT_CATALOG, DesktopCatalog
from chadthrottle.helper.identity.desktop_entries import find_desktop_entry
from chadthrottle.helper.identity.escaping import (
    bounded_app_id,
    escape_bytes,
    escape_os_name,
    escape_text,
)
from chadthrottle.helper.identity.interpreters import is_interpreter, script_argument
from chadthrottle.helper.identity.origins import (
    appimage_of,
    flatpak_app_id,
    snap_of_path,
    snap_of_scope,
    system_service,
)
from chadthrottle.helper.identity.processes import ProcessInfo

_APP_SCOPE = re.compile(r"^app-(?P<body>.+?)(?:-(?P<random>[0-9a-f]+))?\.scope$")
# systemd escapes bytes of a unit name as \xNN ("-" inside the desktop id as \x2d).
_SYSTEMD_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")
KNOWN_KINDS = ("app", "snap", "unit", "appimage", "script", "exe")  # what identify() emits
APPIMAGE_SUFFIX = ".appimage"


@dataclass(frozen=True)
class AppIdentity:
    app_id: str  # escaped, passes the adapter's validate_app_id
    name: str  # escaped
    icon: str  # escaped
    # The cgroup whose new sockets a rule on it tags, as the kernel has it (not
    # escaped): its app or snap scope, its system service; "" for the others.
    scope: str
    # The "exe:" or "script:" id of the file the process runs, whatever names
    # it ("" when that is not known): an administrator's rule on that id
    # reaches it too (docs/helper.md, "Stable identity").
    file_id: str = ""


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


@lru_cache(maxsize=1)
def own_service_path() -> str:
    """The cgroup of the system service the helper itself runs in, "" if none.
    Its processes are not named by it: whoever started the helper from a
    service (a CI runner, a login without a session) keeps seeing the programs
    started alongside by their own names, as the tests expect."""
    try:
        with open("/proc/self/cgroup", "rb") as file:
            lines = os.fsdecode(file.read()).splitlines()
    except OSError:
        return ""
    cgroup = next((line[3:] for line in lines if line.startswith("0::")), "/")
    service = system_service(cgroup)
    return service[1] if service else ""


def _script_of(process: ProcessInfo) -> str | None:
    return script_argument(process.argv[1:]) if is_interpreter(process.exe) else None


def identify(process: ProcessInfo, catalog: DesktopCatalog = DEFAULT_CATALOG) -> AppIdentity | None:
    """The application a process belongs to; None for kernel threads."""
    kind = path = file_id = ""
    if process.exe:  # the file it runs: the script an interpreter runs, else the executable
        script = _script_of(process)
        kind, path = ("script", script) if script is not None else ("exe", process.exe)
        file_id = bounded_app_id(kind, escape_os_name(path))
    identity = _identify(process, catalog, kind, path, file_id)
    if identity is None or identity.file_id == file_id:
        return identity
    return AppIdentity(identity.app_id, identity.name, identity.icon, identity.scope, file_id)


def _identify(
    process: ProcessInfo, catalog: DesktopCatalog, kind: str, path: str, file_id: str
) -> AppIdentity | None:
    by_scope = _scope_identity(process.cgroup, catalog)
    if by_scope is not None:
        return by_scope
    service = system_service(process.cgroup)
    if service is not None and service[1] != own_service_path():  # also for a process that exited
        unit, unit_path = service
        return AppIdentity(
            bounded_app_id("unit", escape_os_name(unit)), escape_os_name(unit), "", unit_path
        )
    if not file_id:
        return None
    snap = snap_of_path(path) or snap_of_path(process.exe)
    if snap is not None:
        return _snap_identity(snap, "", "", catalog)
    flatpak = flatpak_app_id(process.flatpak_info) if process.flatpak_info else None
    if flatpak is not None:
        return _desktop_identity(flatpak.encode(), "")
    image = appimage_of(process)
    if image is not None:
        return _appimage_identity(image)
    entry = catalog.match((kind, path), process.uid)
    if entry is not None:
        return AppIdentity(bounded_app_id("app", escape_text(entry.desktop_id)), escape_text(entry.name),
                           escape_text(entry.icon), "")  # fmt: skip
    return AppIdentity(file_id, escape_os_name(os.path.basename(path)), "", "", file_id)


def _scope_identity(cgroup: str, catalog: DesktopCatalog) -> AppIdentity | None:
    """The identity of the innermost app or snap scope on the path, if any."""
    app_scope = _desktop_id_from_cgroup(cgroup)
    snap_scope = snap_of_scope(cgroup)
    if snap_scope is not None and (app_scope is None or len(snap_scope[2]) > len(app_scope[1])):
        snap, app, scope_path = snap_scope
        return _snap_identity(snap, app, scope_path, catalog)
    if app_scope is not None:
        return _desktop_identity(*app_scope)
    return None


def _desktop_identity(desktop_id: bytes, scope_path: str) -> AppIdentity:
    app_id = bounded_app_id("app", escape_bytes(desktop_id))
    entry = find_desktop_entry(os.fsdecode(desktop_id))
    if entry is None:
        return AppIdentity(app_id, escape_bytes(desktop_id.rsplit(b".", 1)[-1]), "", scope_path)
    return AppIdentity(app_id, escape_text(entry.name), escape_text(entry.icon), scope_path)


def _snap_identity(snap: str, app: str, scope_path: str, catalog: DesktopCatalog) -> AppIdentity:
    """snap:<snap>, named by its app's .desktop file (snapd installs them as <snap>_<app>.desktop)."""
    candidates = [f"{snap}_{app}"] if app and not app.startswith("hook.") else []
    entry = next(
        (found for id_ in [*candidates, f"{snap}_{snap}"] if (found := catalog.entry(id_))), None
    )
    name, icon = (entry.name, entry.icon) if entry is not None else (snap, "")
    return AppIdentity(f"snap:{snap}", escape_text(name), escape_text(icon), scope_path)


def _appimage_identity(image: str) -> AppIdentity:
    name = os.path.basename(image)
    if name.lower().endswith(APPIMAGE_SUFFIX) and len(name) > len(APPIMAGE_SUFFIX):
        name = name[: -len(APPIMAGE_SUFFIX)]
    return AppIdentity(
        bounded_app_id("appimage", escape_os_name(image)), escape_os_name(name), "", ""
    )
