"""A name told apart by its id, cut to the room a cell or a menu entry has,
so that what tells it apart stays (the list's name cell, the tray's entries,
the detail pane's first line)."""

from __future__ import annotations

from collections.abc import Callable

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
    tell: tuple[int, int] | None = None,
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
    to NAME_LEAST letters ("pyth… (…/pyenv/…)"); the same by letters
    ("(…/pye…)", "pyth… (…/py…)", "p… (…/p…)"); else the text as it was (Qt cuts it at the
    right; the tooltip and the row menu's heading say it whole)."""
    if not text.endswith(f" ({app_id})") or advance(text) <= room:
        return text
    head = text[: -len(app_id) - 1]  # "name ("
    name = head[:-2]
    start, end = tell if tell is not None else (0, len(app_id))
    for cut in range(1, start + 1):  # the id's end from its tell on, cut at a folder
        shown = f"{head}…{app_id[cut:]})"
        if (app_id[cut] == "/" or app_id[cut - 1] in ":.") and advance(shown) <= room:
            return shown
    lead = "…" if start else ""

    def tells(ends: list[int]) -> list[str]:  # the tell from its start, to each of ends
        return [f"{lead}{app_id[start:at]}{'…' if at < len(app_id) else ''}" for at in ends]

    folders = tells([end, *(at + 1 for at in range(end - 2, start, -1) if app_id[at] == "/")])
    letters = tells([at for at in range(end - 1, start, -1) if app_id[start:at].strip("/")])
    short = f"{name[:NAME_LEAST]}…" if len(name) > NAME_LEAST else name
    fitting = [
        *(f"{head}{part})" for part in folders),  # whole folders, the name whole
        *(f"{short} ({part})" for part in folders),  # the name cut alike on every row
        *(f"{head}{part})" for part in letters),  # letters of them
        *(f"{short} ({part})" for part in letters),
        *(f"{name[:keep]}… ({letters[-1]})" for keep in range(NAME_LEAST - 1, 0, -1) if letters),
    ]
    return next((shown for shown in fitting if advance(shown) <= room), text)


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
