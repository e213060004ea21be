"""Two applications of one name are told apart wherever the window names
them: the list read two identical rows "python3.11" (exe:/usr/bin/python3.11
and a pyenv one, walk28); the usage view and the CLI said "name (id)"
(common/app_names.names_apart), and so do the list, the tray's quick limits
and the row menu's heading, by the same function."""

from __future__ import annotations

import dataclasses

from chadthrottle.app_names import names_apart
from chadthrottle.gui.models.columns import Column
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMenu, QStyleOptionViewItem

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
        # cut as the list cuts it: what differs from the other stays
        differs = {SYSTEM: "/usr/", PYENV: "/root/"}[app_id]
        assert shown == whole or (shown.startswith("python3") and differs in shown), shown
    texts = [entries[f"quick:{a}"].menuAction().text() for a in (SYSTEM, PYENV)]
    assert texts[0] != texts[1]


def test_a_name_told_apart_is_cut_by_its_ids_start_not_its_end(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Cut at the right, two rows read "python3.11 (exe:/tmp/graph28/…" alike
    (Xvfb, 1x): the id's end, which differs, stays."""
    model, window = shown_connected_window()
    qtbot.addWidget(window)
    ours = [app(f"exe:/tmp/graph28/{d}/python3.11", "python3.11", MB, pids=(p,))
            for d, p in (("a", 201), ("b", 202))]  # fmt: skip
    model.apply_snapshot(ours)
    table = window.table
    table.setColumnWidth(Column.NAME, 200)
    shown = [_cell_text(table, info.id)[0] for info in ours]
    assert shown[0].startswith("python3.11 (…") and shown[0].endswith("/a/python3.11)"), shown
    assert shown[1].endswith("/b/python3.11)"), shown


def test_where_little_room_is_left_what_tells_them_apart_shows() -> None:
    """At 2x three rows read "python3.11 (…11)" (graph28), and cut by the id's
    start alone /usr/bin/python3.11 and a pyenv's read "python3.11 (…in/…)"
    alike (words29): what differs from the others of the name stays, in
    whole folders, the name cut before it is."""
    from chadthrottle.app_names import tells_apart
    from chadthrottle.gui.models.name_cut import fitted_name_apart

    def advance(text: str) -> float:
        return 10.0 * len(text)

    ids = [
        "exe:/tmp/graph28/a/python3.11",
        "exe:/tmp/graph28/b/python3.11",
        "exe:/usr/bin/python3.11",
        "exe:/root/.pyenv/versions/3.11.9/bin/python3.11",
    ]
    tells = tells_apart(dict.fromkeys(ids, "python3.11"))

    def cut(room: float) -> list[str]:
        return [fitted_name_apart(f"python3.11 ({i})", i, room, advance, tells[i]) for i in ids]

    for room in (300.0, 220.0, 180.0, 150.0, 120.0):
        shown = cut(room)
        assert len(set(shown)) == len(ids), (room, shown)
        assert all(len(text) * 10 <= room for text in shown), (room, shown)
    assert cut(220.0)[:3] == ["python3.11 (…/a/…)", "python3.11 (…/b/…)", "python3.11 (…/usr/…)"]
    assert cut(180.0)[3] == "pyth… (…/root/…)"  # a whole folder, the name cut
    wide = cut(270.0)[0]
    assert wide == "python3.11 (…/a/python3.11)", wide
    assert fitted_name_apart(f"Web Browser ({BROWSER})", BROWSER, 1000.0, advance).endswith(")")
    # narrower still: Qt's own cut, not "(…/…)" on every row
    assert fitted_name_apart(f"python3.11 ({ids[0]})", ids[0], 50.0, advance, tells[ids[0]]) == (
        f"python3.11 ({ids[0]})"
    )


FOUR = [
    app("exe:/usr/bin/python3.11", "python3.11", 4 * MB, pids=(301,)),
    app("exe:/root/.pyenv/versions/3.11.9/bin/python3.11", "python3.11", 3 * MB, pids=(302,)),
    app("exe:/tmp/words29/a/python3.11", "python3.11", 2 * MB, pids=(303,)),
    app("exe:/tmp/words29/b/python3.11", "python3.11", 1 * MB, pids=(304,)),
]
DIFFERS = ["/usr/", "/root/", "/a/", "/b/"]  # what each one's cut keeps


def _cell_text(table, app_id: str) -> tuple[str, float]:  # type: ignore[no-untyped-def]
    """The name cell's text as the delegate paints it, and its room."""
    from PySide6.QtWidgets import QStyleOptionViewItem

    index = table.proxy_index(app_id, Column.NAME)
    option = QStyleOptionViewItem()
    table.initViewItemOption(option)
    option.rect = table.visualRect(index)
    table.name_delegate.initStyleOption(option, index)
    room = table.name_delegate.text_room(option)
    assert option.fontMetrics.horizontalAdvance(option.text) <= room, option.text
    return option.text, room


def test_at_2x_each_name_cell_keeps_what_tells_it_apart(qtbot) -> None:  # type: ignore[no-untyped-def]
    """683x384, a 1366x768 screen at 2x: the name cell (128 px of text) cut
    /usr/bin/python3.11 and a pyenv's .../bin/python3.11 both to
    "python3.11 (…in/…)" (words29). Each row keeps the folder that differs."""
    model, window = shown_connected_window(683, 384)
    qtbot.addWidget(window)
    model.apply_snapshot(FOUR)
    qtbot.waitUntil(lambda: all(window.table.proxy_index(i.id).isValid() for i in FOUR))
    shown = [_cell_text(window.table, info.id)[0] for info in FOUR]
    assert len(set(shown)) == len(FOUR), shown
    for text, differs in zip(shown, DIFFERS, strict=True):
        assert differs in text and text.startswith("pyth"), shown
    assert _cell_text(window.table, FOUR[0].id)[1] < 200  # it was cut: the case at hand


def test_the_detail_pane_heads_with_which_one(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Its first line read "python3.11: down …" for both (words29): it names
    the application as the list does, and at 2x the name gives way to what
    tells it apart and to the rates."""
    model, window = shown_connected_window()
    qtbot.addWidget(window)
    model.apply_snapshot(APPS)
    for app_id in (SYSTEM, PYENV):
        assert window.select_application(app_id)
        assert window.detail.summary.text().startswith(f"{SHOWN[app_id]}: down "), app_id
    model.apply_snapshot(FOUR)
    window.resize(683, 384)
    qtbot.waitUntil(lambda: window.width() == 683, timeout=2000)
    summary = window.detail.summary
    lines = []
    for info, differs in zip(FOUR, DIFFERS, strict=True):
        assert window.select_application(info.id)
        text = summary.text()
        assert differs in text and ": down " in text and ", up " in text, text
        assert summary.fontMetrics().horizontalAdvance(text) <= summary.parentWidget().width()
        whole = f"python3.11 ({info.id}): down "
        assert text.startswith(whole) or summary.toolTip().startswith(whole), summary.toolTip()
        lines.append(text)
    assert len(set(lines)) == len(FOUR), lines


def test_a_status_message_names_which_one(make_controller) -> None:  # type: ignore[no-untyped-def]
    """ "Could not change the limit of python3.11" said not which of the two."""
    from tests.gui.worker_reports import inject_observations

    controller = make_controller()
    controller.model.apply_snapshot(APPS)
    inject_observations(controller.connection, has_polled_ok=True)
    controller.request_limit(PYENV, "up", 3_000_000)  # the worker is not running: fails at once
    message = controller.window.status_line.message.text()
    assert f"Could not change the limit of {SHOWN[PYENV]}" in message, message
    controller.shutdown()


def test_an_alert_names_which_one() -> None:
    """ "python3.11 uses the network for the first time" twice said not which."""
    from chadthrottle.gui.alerts.policy import AlertPolicy, AlertSwitches

    policy = AlertPolicy([], lambda: 1000.0)
    policy.observe_applications([dataclasses.replace(a, rx_bytes=1) for a in APPS[:2]])
    (alert,) = policy.due(AlertSwitches(first_use=True))
    assert alert.summary == f"{SHOWN[SYSTEM]} and {SHOWN[PYENV]} use the network for the first time"


def test_the_row_menu_heading_cut_keeps_which_one(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Cut at the right to its 40 characters, the heading read
    "python3.11 (exe:/tmp/words29/apps/py…" (words29, Xvfb): what tells it
    apart stays; the whole name is in its action's text and the tooltip."""
    model, window = shown_connected_window()
    qtbot.addWidget(window)
    model.apply_snapshot(FOUR)
    headings = []
    for info, differs in zip(FOUR, DIFFERS, strict=True):
        heading = window.row_menu(info.id).actions()[0]
        shown = heading.defaultWidget().text()
        assert differs in shown, shown
        assert heading.defaultWidget().toolTip().count(info.id) == 1  # said once, not twice
        headings.append(shown)
    assert len(set(headings)) == len(FOUR), headings
    assert any(text.endswith("…)") for text in headings), headings  # one was cut: the case at hand


def test_the_usage_tables_name_cell_keeps_which_one(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The usage view's table cut a "name (id)" at the right: two projects'
    venvs read "python3.11 (exe:/home/user/projects/…" alike at 2x (words29)."""
    from tests.gui.usage_name_cells import usage_name_cells

    base = "exe:/home/user/projects/a-long-project-name/envs"
    ids = [f"{base}/{env}/bin/python3.11" for env in ("first", "second")]
    names = names_apart(dict.fromkeys(ids, "python3.11"))
    cells = usage_name_cells(qtbot, [(app_id, (n + 1) * 10**6) for n, app_id in enumerate(ids)],
                             names.__getitem__)  # fmt: skip
    assert all(fits for _, fits in cells), cells
    shown = [text for text, _ in cells]
    assert ["/first/" in text for text in shown] == [False, True], shown  # busiest first
    assert ["/second/" in text for text in shown] == [True, False], shown
    assert all("…" in text for text in shown), shown  # cut: the case at hand


def test_at_2x_a_process_rows_pid_stays(qtbot) -> None:  # type: ignore[no-untyped-def]
    """An expanded row's process read "python3.11 (pid …" at 2x (words29,
    Xvfb): its name gives way, its pid stays."""
    from chadthrottle.contract import ProcessTraffic

    model, window = shown_connected_window(683, 384)
    qtbot.addWidget(window)
    pid, comm = 4194301, "python3.11-serv"  # the longest of each: 15 letters of /proc's comm
    ours = [dataclasses.replace(FOUR[0], pids=(pid,)), *FOUR[1:]]
    model.apply_snapshot(ours, {pid: comm})  # process names as read from /proc
    app_id = FOUR[0].id
    table = window.table
    table.expand(table.proxy_index(app_id))
    window.show_processes(app_id, [ProcessTraffic(pid, comm, 4 * MB, 0.0, 1, 1)])
    parent = table.proxy_index(app_id)
    qtbot.waitUntil(lambda: table.model().rowCount(parent) >= 1)
    index = table.model().index(0, Column.NAME, parent)
    assert index.data() == f"{comm} (pid {pid})"
    option = QStyleOptionViewItem()
    table.initViewItemOption(option)
    option.rect = table.visualRect(index)
    table.name_delegate.initStyleOption(option, index)
    assert option.fontMetrics.horizontalAdvance(option.text) <= table.name_delegate.text_room(
        option
    )
    assert option.text.startswith("pyth") and option.text.endswith(f"… (pid {pid})"), option.text
