"""A same-named application's name cut to a narrow cell must still tell it
from the others of its name (gui/models/name_cut.py, app_names.tells_apart).
Until review31 the cut kept the start of the folder that differs and cut its
end: /opt/projectA and /opt/projectB both read "python3.11 (…/pr…)", and
tells_apart measured each id against every other one (1.1 s of CPU for 500
of one name, on the GUI thread whenever a name came or went)."""

from __future__ import annotations

import time

import pytest
from chadthrottle.app_names import tells_apart
from chadthrottle.gui.models.name_cut import fitted_name_apart

GROUPS = {
    "a letter inside a folder": (
        "python3.11",
        ["exe:/opt/projectA/bin/python3.11", "exe:/opt/projectB/bin/python3.11"],
    ),
    "numbered venvs, one a prefix of another": (
        "python",
        [f"exe:/home/u/p/venvs/{env}/bin/python" for env in ("env1", "env2", "env10")],
    ),
    "one file name the start of the other": (
        "py",
        ["exe:/usr/bin/python3", "exe:/usr/bin/python3.11"],
    ),
    "one path inside the other": ("x", ["exe:/a/x", "exe:/a/a/x"]),
    "three differing in different folders": (
        "x",
        ["exe:/a/b/c/x", "exe:/b/b/c/x", "exe:/a/c/c/x"],
    ),
    "different kinds": ("Firefox", ["app:firefox", "exe:/usr/lib/firefox/firefox"]),
}


def _advance(text: str) -> float:
    """A fixed-width font: ten pixels a letter."""
    return 10.0 * len(text)


@pytest.mark.parametrize("case", GROUPS)
def test_a_cut_never_reads_as_another_of_the_name(case: str) -> None:
    """At every width, a row's cut is not one another id of its name could
    show: two rows cut alike said not which. Where no cut fits, the text is
    left whole (Qt cuts it at the right; the tooltip says it whole)."""
    name, ids = GROUPS[case]
    tells = tells_apart(dict.fromkeys(ids, name))
    for room in range(40, 500, 10):
        cut = {
            i: fitted_name_apart(f"{name} ({i})", i, float(room), _advance, tells[i]) for i in ids
        }
        shortened = [text for i, text in cut.items() if text != f"{name} ({i})"]
        assert len(set(shortened)) == len(shortened), (room, cut)
        assert all(_advance(text) <= room for text in shortened), (room, cut)


def test_a_letter_that_differs_inside_a_folder_stays() -> None:
    """ "(…/pr…)" for both projects: the cut keeps the letter that differs."""
    name, ids = GROUPS["a letter inside a folder"]
    tells = tells_apart(dict.fromkeys(ids, name))
    cut = [fitted_name_apart(f"{name} ({i})", i, 180.0, _advance, tells[i]) for i in ids]
    assert cut == ["python3.11 (…tA/…)", "python3.11 (…tB/…)"], cut


def test_telling_500_of_one_name_apart_is_quick() -> None:
    """It runs on the GUI thread whenever a name comes or goes: measured
    against every other id, 500 ids of one name took 1.1 s of CPU (review31,
    2026-12-07, load 1.7; now 9.5 ms). CPU time, not wall time: the same on a
    loaded machine."""
    ids = [f"exe:/home/user/projects/p{i % 50}/venv{i}/bin/python3.11" for i in range(500)]
    began = time.process_time()
    tells = tells_apart(dict.fromkeys(ids, "python3.11"))
    spent = time.process_time() - began
    assert spent < 0.4, spent
    assert {ids[7][t.start : t.end] for t in (tells[ids[7]],)} == {"/venv7/"}
    assert len({i[t.start : t.end] for i, t in tells.items()}) == len(ids)


PROJECTS = [
    "exe:/home/user/work/projectA/bin/python3.11",
    "exe:/home/user/work/projectB/bin/python3.11",
]


def test_at_2x_two_projects_name_cells_differ(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The list's name cell at 683x384 (1366x768 at 2x), as the delegate
    paints it: both read "pyth… (…/proj…)" until review31."""
    from tests.gui.bare_window import shown_connected_window
    from tests.gui.sample_data import MB, app
    from tests.gui.test_same_named_rows import _cell_text

    model, window = shown_connected_window(683, 384)
    qtbot.addWidget(window)
    model.apply_snapshot(
        [app(i, "python3.11", (n + 1) * MB, pids=(401 + n,)) for n, i in enumerate(PROJECTS)]
    )
    qtbot.waitUntil(lambda: all(window.table.proxy_index(i).isValid() for i in PROJECTS))
    shown = [_cell_text(window.table, i)[0] for i in PROJECTS]
    assert all("…" in text for text in shown), shown  # cut: the case at hand
    assert "A" in shown[0] and "B" in shown[1], shown
