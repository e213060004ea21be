"""The "name (id)" form of two applications of one name is written and read in
one place (common/app_names.py: name_with_id, name_of_apart). Until gui30 the
list's name cell, the usage view's table, the row menu's heading and the cut
(gui/models/name_cut.py) each parsed it on their own, with its characters
spelt out four times: a change of the form in names_apart left them cutting
and reading a form no longer written."""

from __future__ import annotations

import re
from pathlib import Path

import chadthrottle.app_names as app_names
import pytest

from tests.gui.bare_window import shown_connected_window
from tests.gui.test_same_named_rows import DIFFERS, FOUR, _cell_text
from tests.gui.usage_name_cells import usage_name_cells

GUI = Path(__file__).resolve().parents[2] / "gui"
# the form's characters spelt out beside an id: f" ({app_id})", endswith(")") ...
SPELT_OUT = re.compile(
    r"""f" \(\{[^}]*(?:app_id|\.id)\}\)"|endswith\(["']\)["']\)|\[: -len\([^)]*id\)"""
)


def test_no_gui_file_spells_the_form_out() -> None:
    """Every reader goes through app_names: the four places found by grep."""
    found = [
        f"{path.relative_to(GUI)}:{number}: {line.strip()}"
        for path in sorted(GUI.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SPELT_OUT.search(line)
    ]
    assert not found, found


def test_the_form_round_trips() -> None:
    shown = app_names.names_apart({"exe:/a/x": "x", "exe:/b/x": "x", "app:y": "y"})
    assert shown["app:y"] == "y" and app_names.name_of_apart("y", "app:y") is None
    assert app_names.name_of_apart(shown["exe:/a/x"], "exe:/a/x") == "x"
    assert app_names.name_of_apart(shown["exe:/a/x"], "exe:/b/x") is None  # another's id
    assert app_names.name_of_apart("x (exe:/a/x)", "") is None


@pytest.mark.parametrize("form", [(" (", ")"), (" [", "]")])
def test_list_row_menu_and_usage_table_follow_the_one_form(qtbot, monkeypatch, form) -> None:  # type: ignore[no-untyped-def]
    """Another form set in app_names alone: the list's cells at 2x's width,
    the row menu's headings and the usage view's table cells still cut each
    name keeping what tells it apart, in that form (before, every reader
    but names_apart still looked for " (id)" and cut nothing)."""

    monkeypatch.setattr(app_names, "ID_OPENS", form[0])
    monkeypatch.setattr(app_names, "ID_CLOSES", form[1])
    model, window = shown_connected_window(683, 384)
    qtbot.addWidget(window)
    model.apply_snapshot(FOUR)
    qtbot.waitUntil(lambda: all(window.table.proxy_index(i.id).isValid() for i in FOUR))
    cells = [_cell_text(window.table, info.id)[0] for info in FOUR]
    headings = [window.row_menu(info.id).actions()[0].defaultWidget().text() for info in FOUR]
    for shown in (cells, headings):
        assert len(set(shown)) == len(FOUR), shown
        _in_form(shown, form)

    names = app_names.names_apart({info.id: info.name for info in FOUR})
    moved = [(info.id, (4 - n) * 10**6) for n, info in enumerate(FOUR)]
    shown = [text for text, _ in usage_name_cells(qtbot, moved, names.__getitem__)]
    assert len(set(shown)) == len(FOUR), shown
    _in_form(shown, form)  # busiest first: FOUR's order


def _in_form(shown: list[str], form: tuple[str, str]) -> None:
    """Each keeps what tells it apart, in the form; one at least was cut (the case at hand)."""
    for text, differs in zip(shown, DIFFERS, strict=True):
        assert differs in text and form[0] in text and text.endswith(form[1]), shown
    assert any(f"{form[0]}…" in text for text in shown), shown
