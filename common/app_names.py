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
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
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
    One rule for the window (list, tray, row menu, detail pane, usage view,
    status messages, alerts) and `chadthrottle-ctl usage` (`list` prints ids
    in a column of their own)."""
    shared = Counter(names.values())
    return {
        app_id: name_with_id(name, app_id) if shared[name] > 1 else name
        for app_id, name in names.items()
    }


# "name (id)": the form's one definition (names_apart writes it, name_of_apart reads it).
ID_OPENS, ID_CLOSES = " (", ")"


def name_with_id(name: str, app_id: str) -> str:
    """ "name (id)": the one form names_apart gives, and name_of_apart reads."""
    return f"{name}{ID_OPENS}{app_id}{ID_CLOSES}"


def name_of_apart(shown: str, app_id: str) -> str | None:
    """The name of a "name (id)" that names_apart made for app_id; None where
    shown is no such form (a name alone). The one reader of the form: the
    list's cell, the usage view's table, the row menu's heading and the cut
    (gui/models/name_cut.py) each parsed it on their own (gui30)."""
    if not app_id:
        return None
    tail = f"{ID_OPENS}{app_id}{ID_CLOSES}"
    return shown[: -len(tail)] if shown.endswith(tail) else None


@dataclass(frozen=True)
class Tell:
    """What of an id tells its name from the others of that name (tells_apart):
    app_id[start:end], and the ids of the name (this one too) that a cut of it
    must still tell it from (gui/models/name_cut.py), each between two NULs
    (no id holds one): a cut is looked for in all of them at once, at each
    paint. Not compared: a row is drawn again when its part changes."""

    start: int
    end: int
    group: str = field(compare=False, repr=False)


def tells_apart(names: Mapping[str, str]) -> dict[str, Tell]:
    """id -> the part of the id that differs from each other id of its name,
    in whole folders where the ids are paths ("/usr/" of
    exe:/usr/bin/python3.11 beside exe:/root/.pyenv/versions/3.11.9/bin/python3.11,
    "/a/" of exe:/tmp/a/python3.11 beside exe:/tmp/b/python3.11). Only ids
    that share a name (names_apart) have one. A cell too narrow for the whole
    "name (id)" keeps this part (gui/models/name_cut.py): cut by the id's
    start alone, /usr/bin/python3.11 and a pyenv's .../bin/python3.11 both
    read "python3.11 (…in/…)" at 2x on 1366x768 (words29).
    Each id is measured against its neighbours in the group sorted by start
    and by end, the ids it shares most of its start and of its end with: it
    runs on the GUI thread whenever a name comes or goes, and measured
    against every other id 500 of one name took 1.1 s of CPU (review31)."""
    groups: dict[str, list[str]] = {}
    for app_id, name in names.items():
        groups.setdefault(name, []).append(app_id)
    tells: dict[str, Tell] = {}
    for ids in groups.values():
        if len(ids) < 2:
            continue
        group = "\0" + "\0".join(ids) + "\0"
        for app_id, rivals in _neighbours(ids).items():
            spans = [_differing(app_id, other) for other in rivals]
            start, end = max(s for s, _ in spans), min(e for _, e in spans)
            if start >= end:  # no one place differs from all: from the first to the last needed
                start, end = end - 1, start + 1
            folder = app_id.rfind("/", 0, start)  # the whole folder the difference starts in
            if folder >= 0:
                start = folder
                after = app_id.find("/", max(start + 1, end - 1))
                end = after + 1 if after >= 0 else len(app_id)
            tells[app_id] = Tell(start, end, group)
    return tells


def _neighbours(ids: list[str]) -> dict[str, set[str]]:
    """id -> the ids beside it sorted by their start and by their end: the
    longest start (end) it shares with any other id it shares with one of
    these, so the part that differs from all is found in O(n log n)."""
    near: dict[str, set[str]] = {app_id: set() for app_id in ids}
    for order in (sorted(ids), sorted(ids, key=lambda app_id: app_id[::-1])):
        for one, other in pairwise(order):
            near[one].add(other)
            near[other].add(one)
    return near


def _differing(app_id: str, other: str) -> tuple[int, int]:
    """Where app_id differs from other: less their common start and end."""
    start = _same_start(app_id, other)
    same_end = _same_start(app_id[::-1], other[::-1])
    return start, max(start + 1, len(app_id) - same_end)  # "exe:/a/x" beside "exe:/a/a/x"


def _same_start(one: str, other: str) -> int:
    """How many characters two strings start with alike (not path components),
    halving on whole slices: a loop over characters made most of tells_apart's
    time (review31)."""
    alike, differs = 0, min(len(one), len(other)) + 1
    while differs - alike > 1:
        middle = (alike + differs) // 2
        alike, differs = (middle, differs) if one[:middle] == other[:middle] else (alike, middle)
    return alike
