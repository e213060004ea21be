"""Read a desktop id's .desktop file for the name and icon people know: one
reader for the helper (the system's data dirs) and the GUI (the user's too)."""

from __future__ import annotations

import configparser
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DesktopEntry:
    name: str
    icon: str


def read_desktop_entry(desktop_id: str, directories: Iterable[Path]) -> DesktopEntry | None:
    """Name= and Icon= of the first <desktop_id>.desktop in directories that has a
    Name=, or None. An id names a file in those dirs, never a path (\\x2f or \\x00
    in a scope name unescape to these)."""
    if not desktop_id or "/" in desktop_id or "\0" in desktop_id or desktop_id.startswith("."):
        return None
    for directory in directories:
        path = directory / f"{desktop_id}.desktop"
        if not path.is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read(path, encoding="utf-8")
            section = parser["Desktop Entry"]
        except (configparser.Error, KeyError, UnicodeDecodeError, OSError):
            continue
        name = section.get("Name", "").strip()
        if name:
            return DesktopEntry(name=name, icon=section.get("Icon", "").strip())
    return None
