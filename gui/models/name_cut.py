"""A name told apart by its id, cut to the room a cell or a menu entry has,
so that what tells it apart stays (the list's name cell, the tray's entries,
the detail pane's first line)."""

from __future__ import annotations

from collections.abc import Callable

from chadthrottle.app_names import Tell, name_of_apart, name_with_id

# The letters of a name kept where the name is cut so that a whole folder of
# the id shows: "pyth… (…/usr/…)" reads better than "python3.11 (…sr/…)". The
# same on every row of the name: "pytho… (…/usr/…)" above "python… (…/a/…)"
# looked like two names (words29, Xvfb at 2x).
NAME_LEAST = 4


def fitted_name_apart(
    text: str,
    app_id: str,
    room: float,
    advance: Callable[[str], float],
    tell: Tell | None = None,
) -> str:
    """A name told apart by its id ("python3.11 (exe:/tmp/a/python3.11)",
    app_names.names_apart) cut to room pixels so that tell, the part of the id
    that differs from the others of its name (app_names.tells_apart; None:
    the whole id), stays. Cut at the right, two rows read
    "python3.11 (exe:/tmp/graph28/…" alike (graph28); cut by the id's start
    alone, "python3.11 (…in/…)" for /usr/bin and a pyenv's bin at 2x (words29).
    In turn: the id's end from its tell on ("(…/a/python3.11)"); the tell
    alone, from where it starts to differ, in whole folders ("(…/pyenv/…)":
    its last folder, "(…/bin/…)", read as /usr/bin), then with the name cut
    to NAME_LEAST letters ("pyth… (…/pyenv/…)"); the same by letters, the
    tell's start kept ("(…/pye…)") or its end ("(…ctB/…)"); "p… (…/p…)";
    else the text as it was (Qt cuts it at the right; the tooltip and the
    row menu's heading say it whole). A cut that another id of the name
    would show too is passed by: "(…/pr…)" for /opt/projectA and /opt/projectB,
    "(…/a/x)" for exe:/a/x and exe:/a/a/x (review31)."""
    name = name_of_apart(text, app_id)
    if name is None or advance(text) <= room:
        return text
    start, end = (tell.start, tell.end) if tell is not None else (0, len(app_id))
    group = tell.group if tell is not None else ""
    ends = [(cut, len(app_id)) for cut in range(1, start + 1)  # the id's end, cut at a folder
            if app_id[cut] == "/" or app_id[cut - 1] in ":."]  # fmt: skip
    folders = [
        (start, end),
        *((start, at + 1) for at in range(end - 2, start, -1) if app_id[at] == "/"),
    ]
    letters = sorted(
        {*((start, at) for at in range(end - 1, start, -1) if app_id[start:at].strip("/")),
         *((at, end) for at in range(start + 1, end) if app_id[at:end].strip("/"))},
        key=lambda part: (part[0] - part[1], part[0] != start),
    )  # longest first, the start kept before the end  # fmt: skip
    short = f"{name[:NAME_LEAST]}…" if len(name) > NAME_LEAST else name
    fitting = (
        *((name, part) for part in ends),
        *((name, part) for part in folders),  # whole folders, the name whole
        *((short, part) for part in folders),  # the name cut alike on every row
        *((name, part) for part in letters),  # letters of them
        *((short, part) for part in letters),
        *(
            (f"{name[:keep]}…", part)
            for keep in range(NAME_LEAST - 1, 0, -1)
            for part in letters[-2:]
        ),
    )
    for named, (at, to) in fitting:
        part = f"{'…' if at else ''}{app_id[at:to]}{'…' if to < len(app_id) else ''}"
        shown = name_with_id(named, part)  # the form, its id cut
        if advance(shown) <= room and not _shown_by_another(group, app_id, at, to):
            return shown
    return text


def _shown_by_another(group: str, app_id: str, at: int, to: int) -> bool:
    """Whether another id of the name (group: Tell.group) holds app_id[at:to]
    where this cut keeps it (at its start where nothing goes before, at its
    end where nothing goes after): cut alike, the two would read the same.
    Where "…" stands, one counted anywhere: a cut passed by that needed not."""
    kept = ("\0" if not at else "") + app_id[at:to] + ("\0" if to == len(app_id) else "")
    return group.count(kept) > f"\0{app_id}\0".count(kept)


def fitted_keeping_end(text: str, end_at: int, room: float, advance: Callable[[str], float]) -> str:
    """text cut to room in its part before end_at, text[end_at:] kept whole:
    at 2x an expanded row's process read "python3.11 (pid …", its pid, what
    tells it from the others, cut away (words29). The text as it was where
    even one letter and the end do not fit."""
    if advance(text) <= room:
        return text
    head, end = text[:end_at], text[end_at:]
    cuts = (f"{head[:keep]}…{end}" for keep in range(len(head) - 1, 0, -1))
    return next((shown for shown in cuts if advance(shown) <= room), text)
