"""Look up a desktop id's .desktop file for the name and icon people know."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from chadthrottle.desktop_entry import DesktopEntry, read_desktop_entry

__all__ = ["DesktopEntry", "find_desktop_entry"]


def _data_dirs() -> list[Path]:
    dirs = os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share"
    extra = ["/var/lib/flatpak/exports/share"]
    return [Path(d) / "applications" for d in [*dirs.split(":"), *extra] if d]


@lru_cache(maxsize=1024)
def find_desktop_entry(desktop_id: str) -> DesktopEntry | None:
    """Name= and Icon= of <desktop_id>.desktop in the XDG data dirs, if any."""
    return read_desktop_entry(desktop_id, _data_dirs())
