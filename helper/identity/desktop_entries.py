"""Look up a desktop id's .desktop file for the name and icon people know."""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class DesktopEntry:
    name: str
    icon: str


def _data_dirs() -> list[Path]:
    dirs = os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share"
    extra = ["/var/lib/flatpak/exports/share"]
    return [Path(d) / "applications" for d in [*dirs.split(":"), *extra] if d]


@lru_cache(maxsize=1024)
def find_desktop_entry(desktop_id: str) -> DesktopEntry | None:
    """Name= and Icon= of <desktop_id>.desktop in the XDG data dirs, if any."""
    if "/" in desktop_id or "\0" in desktop_id or desktop_id.startswith("."):
        return None  # a path, not an id (\x2f or \x00 in a scope name unescape to these)
    for directory in _data_dirs():
        path = directory / f"{desktop_id}.desktop"
        if not path.is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read(path, encoding="utf-8")
            section = parser["Desktop Entry"]
        except (configparser.Error, KeyError, UnicodeDecodeError):
            continue
        name = section.get("Name", "").strip()
        if name:
            return DesktopEntry(name=name, icon=section.get("Icon", "").strip())
    return None
