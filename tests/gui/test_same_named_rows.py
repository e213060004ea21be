"""Two applications of one name are told apart wherever the window names
them: the list read two identical rows "python3.11" (exe:/usr/bin/python3.11
and a pyenv one, walk28); the usage view and the CLI said "name (id)"
(common/app_names.names_apart), and so do the list, the tray's quick limits
and the row menu's heading, by the same function."""

from __future__ import annotations

from chadthrottle.app_names import names_apart
from chadthrottle.gui.models.columns import Column
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMenu

from tests.gui.bare_window import shown_connected_window
from tests.gui.sample_data import MB, app
from tests.gui.test_tray import make_tray

SYSTEM = "exe:/usr/bin/python3.11"
PYENV = "exe:/root/.pyenv/versions/3.11.9/bin/python3.11"
BROWSER = "app:org.example.Browser"
APPS = [
    app(SYSTEM, "python3.11", 2 * MB, pids=(101,)),
    app(PYENV, "python3.11", 1 * MB, pids=(102,)),
    app(BROWSER, "Web Browser", 3 * MB, pids=(103,)),
]
SHOWN = names_apart({info.id: info.name for info in APPS})


def _list_names(window) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        app_id: window.table.proxy_index(app_id, Column.NAME).data(Qt.ItemDataRole.DisplayRole)
        for app_id in (SYSTEM, PYENV, BROWSER)
        if window.table.proxy_index(app_id, Column.NAME).isValid()
    }


def test_the_list_names_same_named_applications_by_their_ids(qtbot) -> None:  # type: ignore[no-untyped-def]
    model, window = shown_connected_window()
    qtbot.addWidget(window)
    model.apply_snapshot(APPS)
    names = _list_names(window)
    assert names == {
        SYSTEM: f"python3.11 ({SYSTEM})",
        PYENV: f"python3.11 ({PYENV})",
        BROWSER: "Web Browser",
    }
    assert names == SHOWN  # one rule, the usage view's and the CLI's
    model.apply_snapshot([APPS[0], APPS[2]])  # the second one ended: its name alone again
    qtbot.waitUntil(lambda: _list_names(window)[SYSTEM] == "python3.11", timeout=5000)


def test_the_row_menu_heading_names_which_one(qtbot) -> None:  # type: ignore[no-untyped-def]
    model, window = shown_connected_window()
    qtbot.addWidget(window)
    model.apply_snapshot(APPS)
    for app_id in (SYSTEM, PYENV):
        menu = window.row_menu(app_id)
        heading = menu.actions()[0]
        assert heading.objectName() == "menu-heading"
        assert heading.text() == SHOWN[app_id]


def test_the_trays_quick_limits_name_which_one(qtbot) -> None:  # type: ignore[no-untyped-def]
    model, tray = make_tray()
    model.apply_snapshot(APPS)
    tray.rebuild_menu()
    entries = {menu.objectName(): menu for menu in tray.menu.findChildren(QMenu)}
    for app_id in (SYSTEM, PYENV):
        entry = entries[f"quick:{app_id}"].menuAction()
        shown = entry.text().split("\t")[0].replace("&&", "&")
        whole = entry.toolTip() or shown  # cut to the menu's width: whole on pointing
        assert whole == SHOWN[app_id], (shown, whole)
        assert shown.startswith(f"python3.11 ({app_id[:12]}")
    texts = [entries[f"quick:{a}"].menuAction().text() for a in (SYSTEM, PYENV)]
    assert texts[0] != texts[1]
