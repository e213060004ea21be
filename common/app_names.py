"""The name of an application that no longer runs, for the usage view and
`chadthrottle-ctl usage`: the helper keeps no names, and the usage view listed
such an application by the end of its id ("X3" for Game Launcher, "firefox"
for Firefox); the CLI listed bare ids. Its .desktop file's Name=, else its id
without the kind. One source for the window and the CLI (the CLI imports it
only in `usage`; the .desktop reader only when an id has one to read)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from chadthrottle.usage_contract import OTHER_APPLICATIONS_ID

OTHER_NAME = "Other applications"


def _application_dirs() -> list[Path]:
    """Where .desktop files live for this user: XDG_DATA_HOME first, then
    XDG_DATA_DIRS, and Flatpak's exports (the user's and the system's)."""
    home = Path.home()
    data_home = os.environ.get("XDG_DATA_HOME") or str(home / ".local" / "share")
    data_dirs = (os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share").split(":")
    flatpak = [str(home / ".local/share/flatpak/exports/share"), "/var/lib/flatpak/exports/share"]
    return [Path(d) / "applications" for d in [data_home, *data_dirs, *flatpak] if d]


@lru_cache(maxsize=256)
def desktop_name(desktop_id: str) -> str | None:
    """Name= of <desktop_id>.desktop, or None (no such file, no name)."""
    from chadthrottle.desktop_entry import read_desktop_entry  # configparser: only when asked

    entry = read_desktop_entry(desktop_id, _application_dirs())
    return entry.name if entry else None


def fallback_name(app_id: str) -> str:
    """A name for an application that no longer runs (the helper keeps no
    names): its .desktop file's name, else its id without the kind, the file
    name of a path."""
    if app_id == OTHER_APPLICATIONS_ID:
        return OTHER_NAME
    kind, _, rest = app_id.partition(":")
    if not rest:
        return app_id
    if kind in ("exe", "script", "appimage"):
        name = rest.rstrip("/").rsplit("/", 1)[-1] or rest
        return name.removesuffix(".AppImage") if kind == "appimage" else name
    if kind == "unit":
        return rest.removesuffix(".service")
    if kind == "app":
        named = desktop_name(rest.removesuffix(".desktop"))
        if named:
            return named
        return rest.removesuffix(".desktop").rsplit(".", 1)[-1] if "." in rest else rest
    return rest


def names_apart(names: Mapping[str, str]) -> dict[str, str]:
    """id -> name as shown, "name (id)" where two of them share a name: the
    usage view listed three "traffic.py" that nothing told apart (walk28).
    One rule for the window's usage view and `chadthrottle-ctl usage`."""
    shared = Counter(names.values())
    return {
        app_id: f"{name} ({app_id})" if shared[name] > 1 else name for app_id, name in names.items()
    }
