"""The name a .desktop file gives an application, for one that no longer runs:
the helper keeps no names, and the usage view listed such an application by
the end of its id ("X3" for Game Launcher, "firefox" for Firefox)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from chadthrottle.desktop_entry import read_desktop_entry


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
    entry = read_desktop_entry(desktop_id, _application_dirs())
    return entry.name if entry else None
