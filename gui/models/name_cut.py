"""A name told apart by its id, cut to the room a cell or a menu entry has,
so that what tells it apart stays (the list's name cell, the tray's entries)."""

from __future__ import annotations

from collections.abc import Callable


def fitted_name_apart(text: str, app_id: str, room: float, advance: Callable[[str], float]) -> str:
    """A name told apart by its id ("python3.11 (exe:/tmp/a/python3.11)",
    app_names.names_apart) cut to room pixels by the id's start, not its end:
    cut at the right, two such rows read "python3.11 (exe:/tmp/graph28/…"
    alike (graph28, under Xvfb). Where the id ends in the name itself (a
    program's file) and too little of the rest would show, that end goes too:
    at 2x three rows read "python3.11 (…11)"; now "(…a/…)", "(…b/…)", "(…in/…)".
    The name stays whole; if even that does not fit, the text as it was (Qt
    cuts it at the right; the tooltip and the row menu's heading say it whole)."""
    if not text.endswith(f" ({app_id})") or advance(text) <= room:
        return text
    head = text[: -len(app_id) - 1]  # "name ("
    name = head[:-2]
    rest = room - advance(head) - advance(")")
    folder = app_id[: -len(name)] if app_id.endswith("/" + name) else ""
    for start in range(1, len(app_id)):
        end = app_id[start:]
        if advance("…" + end) <= rest:
            if not folder or len(end) >= len(name) + 3:
                return f"{head}…{end})"  # what differs before the file's name shows
            break
    for start in range(1, len(folder) - 1):  # at least one letter of the folder: not "(…/…)"
        if advance("…" + folder[start:] + "…") <= rest:
            return f"{head}…{folder[start:]}…)"
    return text
