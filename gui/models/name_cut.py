"""A name told apart by its id, cut to the room a cell or a menu entry has,
so that what tells it apart stays (the list's name cell, the tray's entries,
the detail pane's first line)."""

from __future__ import annotations

from collections.abc import Callable

# The letters of a name kept where the name is cut so that a whole folder of
# the id shows: "pyth… (…/usr/…)" reads better than "python3.11 (…sr/…)".
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
    In turn: the id's end from before its tell ("(…/a/python3.11)"); the tell
    alone, its end kept, in whole folders ("(…/3.11.9/…)"), then with the name
    cut to NAME_LEAST letters ("pyth… (…/usr/…)"); the same by letters
    ("(…sr/…)", "p… (…r/…)"); else the text as it was (Qt cuts it at the
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
    trail = "…" if end < len(app_id) else ""

    def tells(starts: list[int]) -> list[str]:  # the tell, its end kept
        return [f"{'…' if at else ''}{app_id[at:end]}{trail}" for at in starts]

    folders = tells([at for at in range(start, end - 1) if app_id[at] == "/"])
    letters = tells([at for at in range(start, end) if app_id[at:end].strip("/")])
    for parts, least_kept in ((folders, NAME_LEAST), (letters, 1)):
        for part in parts:
            if advance(f"{head}{part})") <= room:
                return f"{head}{part})"
        for keep in range(len(name) - 1, least_kept - 1, -1):  # the name cut too
            shown = f"{name[:keep]}… ({parts[-1]})" if parts else ""
            if parts and advance(shown) <= room:
                return shown
    return text
