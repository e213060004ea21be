"""Where a process comes from, when that names its application better than
its executable does: a snap, a Flatpak sandbox, a system service, an AppImage.

Each recognizer is pure (a ProcessInfo in, a name or None out) and says what
it trusts, because identity decides which rule reaches which process
(docs/helper.md, "Stable identity"):

- a snap's executable path (/snap/<name>/<revision>/...) and a system
  service's cgroup (under /system.slice) only root can make;
- a snap scope's name, a Flatpak's /.flatpak-info and an AppImage's $APPIMAGE
  the process's own user can fake for their own processes. That only renames
  their own processes (their history, their own rules); it never reaches
  another user's processes, and it escapes an administrator rule no more than
  copying the program's file or naming a scope after another app already can.
"""

from __future__ import annotations

import os
import re

from chadthrottle.helper.identity.processes import APPIMAGE_MOUNT_MARK, ProcessInfo

# A snap name: lowercase letters, digits and hyphens, optionally an instance
# key ("_" and up to 10 lowercase letters or digits: parallel installs).
_SNAP_NAME = r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?(?:_[a-z0-9]{1,10})?"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# snapd's transient scopes: snap.<snap>.<app>-<uuid>.scope (older snapd:
# snap.<snap>.<app>.<uuid>.scope), hooks snap.<snap>.hook.<hook>-<uuid>.scope;
# a snap's services are snap.<snap>.<app>.service.
_SNAP_UNIT = re.compile(
    rf"^snap\.(?P<snap>{_SNAP_NAME})\.(?P<app>hook\.[a-z0-9-]+|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)"
    rf"(?:[-.]{_UUID}\.scope|\.service)$"
)
# /snap/<snap>/<revision>/...: a revision is a number, or x<number> for a
# snap installed from a file; "current" is a symlink the kernel resolves.
_SNAP_PATH = re.compile(rf"^/snap/(?P<snap>{_SNAP_NAME})/(?:x?[0-9]+)/.")
# A system service: its cgroup is /system.slice[/<name>.slice...]/<unit>.service.
_SLICE = re.compile(r"^[^/]+\.slice$")
_SERVICE = re.compile(r"^[^/]+\.service$")
# The Flatpak application id in /.flatpak-info: a D-Bus name.
_FLATPAK_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)+$")
FLATPAK_ID_MAX = 255


def snap_of_scope(cgroup: str) -> tuple[str, str, str] | None:
    """(snap, app, scope path) of the innermost snap scope or service on the path."""
    parts = cgroup.strip("/").split("/")
    for depth in range(len(parts) - 1, -1, -1):
        match = _SNAP_UNIT.match(parts[depth])
        if match:
            return match.group("snap"), match.group("app"), "/" + "/".join(parts[: depth + 1])
    return None


def snap_of_path(path: str) -> str | None:
    """The snap whose read-only image holds this file (/snap/<snap>/<rev>/...)."""
    match = _SNAP_PATH.match(path)
    return match.group("snap") if match else None


def system_service(cgroup: str) -> tuple[str, str] | None:
    """(unit, its cgroup path) of the system service (<name>.service) that
    holds the process: the first unit below /system.slice and its slices.
    Cgroups a delegated service made below its own are not looked at: it
    could name them anything."""
    parts = cgroup.strip("/").split("/")
    if len(parts) < 2 or parts[0] != "system.slice":
        return None
    for depth, part in enumerate(parts[1:], start=1):
        if _SLICE.match(part):
            continue
        return (part, "/" + "/".join(parts[: depth + 1])) if _SERVICE.match(part) else None
    return None


def appimage_of(process: ProcessInfo) -> str | None:
    """The AppImage a process runs from: its $APPIMAGE, taken only when the
    process's executable lies inside its $APPDIR, an AppImage mount
    (<dir>/.mount_<x>). A host program an AppImage started inherits both
    variables, but runs a file outside the mount: it keeps its own identity.
    (The runtime sets APPDIR to the mount and APPIMAGE to the image's path.)"""
    image, appdir = process.appimage, process.appdir
    if (
        not os.path.isabs(image)
        or not os.path.isabs(appdir)
        or image.endswith("/")
        or appdir.endswith("/")
    ):
        return None
    if not os.path.basename(appdir).startswith(APPIMAGE_MOUNT_MARK[1:]):
        return None
    return image if process.exe.startswith(appdir + "/") else None


def flatpak_app_id(info_text: str) -> str | None:
    """The application id in a /.flatpak-info file ([Application] name=...)."""
    section = ""
    for raw in info_text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Application" and line.startswith("name="):
            value = line[len("name=") :].strip()
            return value if len(value) <= FLATPAK_ID_MAX and _FLATPAK_ID.match(value) else None
    return None
