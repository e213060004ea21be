"""What gui20 left (a block held on after a refused unblock offered a plain
"Unblock upload"; a then-rate quota held on after a refused change read
"limited to 100 KB/s" while the kernel blocked it) and what gui22's walk found,
each with the real widgets (offscreen) on the helper's own problem texts."""

from __future__ import annotations

from chadthrottle.contract import ADMIN_OWNER, Direction, RuleInfo
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.tray.tray import BLOCK_LABEL, TrayController, action_name
from chadthrottle.gui.widgets.rate_width import BLOCKED_TEXT
from PySide6.QtCore import QPointF, Qt

from tests.gui.test_compact_graph import opened_at_2x
from tests.gui.test_walk10_faults import _with
from tests.gui.test_walk19_faults import CONNECTED, FIREFOX
from tests.gui.test_walk20_faults import (
    HELD_ON,
    LAPSED,
    _emit,
    _emit_held_on_then_rate,
    _shown,
    _tray_entry,
)
from tests.gui.tray_actions import _find
from tests.gui.walk_stage import on_screen

BLOCK_RULE = (RuleInfo(FIREFOX, "up", 0, 0, ADMIN_OWNER, False, blocked=True),)
ASK_AGAIN = "right-click the row, Retry unblock upload."


def _menu_block(window):  # type: ignore[no-untyped-def]
    """The row menu's Block / Unblock upload action."""
    menu = window.row_menu(FIREFOX)
    return next(action for action in menu.actions() if action.objectName() == "block:up")


def _tray_block(model) -> tuple[str, bool, str]:  # type: ignore[no-untyped-def]
    """The tray's Block action of Firefox's upload: (text, ticked, tooltip)."""
    tray = TrayController(model)
    tray.set_status(CONNECTED)
    action = _find(tray, action_name(FIREFOX, Direction.UP, BLOCK_LABEL))
    assert action is not None
    said = (action.text(), action.isCheckable() and action.isChecked(), action.toolTip())
    tray.shutdown()
    return said


def test_a_block_held_on_after_a_refused_unblock_offers_to_retry_and_says_why(
    qtbot, make_controller
) -> None:  # type: ignore[no-untyped-def]
    """For the seconds a block is held on after the kernel refused its unblock,
    the row menu and the tray offered a plain "Unblock upload" / "Blocked", as
    if nothing had been asked, and the cell's tooltip said to unblock it
    first. The menu, the tray, the cell and the pane say it is a retry, and
    why the last one was refused; once lapsed, a block set: "Unblock" again."""
    controller = make_controller()
    model, window = controller.model, controller.window
    on_screen(window, qtbot)
    _emit(controller, _with(FIREFOX, up_blocked=True, up_limit_bps=0, up_limit_problem=HELD_ON),
          BLOCK_RULE)  # fmt: skip
    assert window.select_application(FIREFOX)
    qtbot.waitUntil(lambda: "Operation not permitted" in _shown(window))
    block = _menu_block(window)
    assert (block.text(), block.isCheckable()) == ("Retry unblock upload", False)
    assert HELD_ON[1:] in block.toolTip(), block.toolTip()  # the helper's words, whatever they are
    assert block.toolTip().endswith("Choose to ask for the unblock again."), block.toolTip()
    text, checkable, tip = _tray_block(model)
    assert (text, checkable, tip) == ("Retry unblock", False, block.toolTip())
    cell = str(window.table.proxy_index(FIREFOX, Column.UP_LIMIT).data(Qt.ItemDataRole.ToolTipRole))
    assert cell.endswith(f"To ask for the unblock again: {ASK_AGAIN}"), cell
    assert "unblock it first" not in cell, cell
    assert _shown(window).endswith(f"To ask for the unblock again: {ASK_AGAIN}"), _shown(window)

    _emit(controller, _with(FIREFOX, up_blocked=False, up_limit_bps=0, up_limit_problem=LAPSED),
          BLOCK_RULE)  # fmt: skip
    qtbot.waitUntil(lambda: "it does not hold" in _shown(window))
    block = _menu_block(window)
    assert (block.text(), block.isCheckable()) == ("Unblock upload", False)
    assert _tray_block(model)[:2] == ("Blocked", True)
    assert "Retry" not in _shown(window), _shown(window)


def test_a_then_rate_quota_held_on_after_a_refused_change_says_it_is_blocked_for_now(
    qtbot, make_controller
) -> None:  # type: ignore[no-untyped-def]
    """A quota used up that then limits to 100 KB/s, its removal (ClearQuota)
    refused in the tick it switched: the kernel keeps it blocked until the
    gate's lease lapses. The pane and tooltip said "Quota: all 20.0 MB used
    today: limited to 100 KB/s until the next day." beside "blocked: no data
    passes". It says blocked for now, the rate not yet in force."""
    controller = make_controller()
    window = controller.window
    on_screen(window, qtbot)
    _emit_held_on_then_rate(controller)
    assert window.select_application(FIREFOX)
    qtbot.waitUntil(lambda: "Operation not permitted" in _shown(window))
    said = (
        "Upload: blocked: no data passes, open connections included. Quota: all 20.0 MB used "
        f"today: blocked for now, not yet at its 100 KB/s until the next day. {HELD_ON[:1].upper()}"
        f"{HELD_ON[1:]}."
    )
    assert _shown(window).startswith(said), _shown(window)
    assert "limited to" not in _shown(window), _shown(window)
    cell = str(window.table.proxy_index(FIREFOX, Column.UP_LIMIT).data(Qt.ItemDataRole.ToolTipRole))
    assert cell.startswith(said), cell
    control = window.limit_control(FIREFOX, Direction.UP)
    assert control is not None
    qtbot.waitUntil(lambda: control.quota.isVisible())
    assert (control.field.text(), control.quota.text()) == (
        BLOCKED_TEXT,
        "kernel refused the change",
    )
    menu = window.row_menu(FIREFOX)  # the quota's block: no Unblock, no Retry
    block = next(action for action in menu.actions() if action.objectName() == "block:up")
    assert block.text() == "Block upload" and not block.isChecked(), block.text()


def test_the_row_menu_says_what_block_or_unblock_does_without_a_tick(
    qtbot, make_controller
) -> None:  # type: ignore[no-untyped-def]
    """At 2x under Xvfb, Harbor Browser's download blocked, the row menu read
    "[x] Unblock download": a ticked box beside "Unblock" reads as unblocked
    already. Its Block and Unblock are what choosing them does, no box (the row
    says Blocked); the tray's list of limits keeps its ticked "Blocked"."""
    controller = make_controller()
    model, window = controller.model, controller.window
    on_screen(window, qtbot)
    requests: list[tuple[str, str, bool]] = []
    window.blockRequested.connect(lambda *args: requests.append(args))
    _emit(controller, _with(FIREFOX, up_blocked=True, up_limit_bps=0), BLOCK_RULE)
    qtbot.waitUntil(lambda: model.limit_state(FIREFOX, Direction.UP).blocked)
    menu = window.row_menu(FIREFOX)
    said = {a.objectName(): (a.text(), a.isCheckable()) for a in menu.actions()}
    assert said["block:up"] == ("Unblock upload", False), said
    assert said["block:down"] == ("Block download", False), said
    _menu_block(window).trigger()
    assert requests == [(FIREFOX, "up", False)]
    assert _tray_block(model)[:2] == ("Blocked", True)


def _point_at(graph, scene_point) -> None:  # type: ignore[no-untyped-def]
    """The pointer moved there over the graph: the scene's own signal of a move
    (offscreen, QTest's moves reached the scene one move late)."""
    graph.item.getViewBox().scene().sigMouseMoved.emit(scene_point)


def test_the_graphs_readout_stays_on_the_plot_and_off_its_legend(qtbot) -> None:  # type: ignore[no-untyped-def]
    """At 2x under Xvfb, the graph compact, the pointer resting on the
    download lane's scale ("1.00 KB/s", left of the plot) showed the readout
    anyway, its left end cut off by the plot's edge ("0  ▼ 939 B/s  ▲ 154
    KB/s", the time lost) and drawn over "▼ download", the two garbled. The
    readout is for the plot alone; near the legend it hides the legend (it
    says ▼ and ▲ itself), wholly inside the plot."""
    window = opened_at_2x(qtbot, FIREFOX)
    detail = window.detail
    qtbot.waitUntil(lambda: detail.compact and len(detail.plotted[0]) > 0, timeout=5000)
    down = detail.graphs[Direction.DOWN]
    box = down.item.getViewBox()
    qtbot.waitUntil(lambda: box.viewRange()[0][0] == down.start_s, timeout=2000)
    plot = box.sceneBoundingRect()
    _point_at(down, QPointF(plot.left() - 20, plot.center().y()))  # on its scale's words
    assert not down.hover_label.isVisible(), down.hover_label.textItem.toPlainText()
    # at the plot's left end, under the legend (the readout is at the pointer's time)
    _point_at(down, box.mapViewToScene(QPointF(down.start_s * 0.98, down.top / 2)))
    qtbot.waitUntil(down.hover_label.isVisible, timeout=2000)
    said = down.hover_label.sceneBoundingRect()
    assert plot.contains(said), (plot, said)  # the time whole, not cut at the edge
    legend = down.label.sceneBoundingRect()
    assert down.label.opacity() == 0 or not said.intersects(legend), (said, legend)
    _point_at(down, box.mapViewToScene(QPointF(down.start_s * 0.2, down.top / 2)))
    qtbot.waitUntil(lambda: down.label.opacity() == 1, timeout=2000)  # away from it: back


def test_the_rules_dialogs_limits_tab_says_a_direction_is_blocked(qtbot, make_controller) -> None:  # type: ignore[no-untyped-def]
    """At 2x under Xvfb, Harbor Browser's download blocked (no limit of its
    own beneath), its rules dialog opened on Limits: "Download limit: no
    limit", and nothing on that tab said the download was blocked (only the
    box on Block and quota). It says so, and what a limit set there does."""
    controller = make_controller()
    window = controller.window
    on_screen(window, qtbot)
    rules = (RuleInfo(FIREFOX, "down", 0, 0, ADMIN_OWNER, True, blocked=True),)
    _emit(controller, _with(FIREFOX, down_blocked=True, down_limit_bps=0), rules)
    qtbot.waitUntil(lambda: controller.model.limit_state(FIREFOX, Direction.DOWN).blocked)
    window.rulesRequested.emit(FIREFOX)
    dialog = controller.rules.dialog
    assert dialog is not None
    qtbot.addWidget(dialog)
    note = dialog.scheduled_note.text()
    assert note == (
        "The download is blocked (Block and quota): a limit set here applies once it is unblocked."
    ), note
    assert dialog.scheduled_note.isVisibleTo(dialog)


def test_the_tray_says_which_way_a_one_way_block_holds(qtbot, make_controller) -> None:  # type: ignore[no-untyped-def]
    """At 2x under Xvfb the tray menu read "Harbor Browser (blocked)  ▼ 485 B/s
    ▲ 79.3 KB/s": only its download was blocked, its upload ran. One way
    blocked, it says which; both ways, "blocked"."""
    controller = make_controller()
    model = controller.model
    _emit(controller, _with(FIREFOX, up_blocked=True, up_limit_bps=0), BLOCK_RULE)
    qtbot.waitUntil(lambda: model.limit_state(FIREFOX, Direction.UP).blocked)
    assert _tray_entry(model).startswith("Firefox (upload blocked)\t"), _tray_entry(model)
    both = (*BLOCK_RULE, RuleInfo(FIREFOX, "down", 0, 0, ADMIN_OWNER, True, blocked=True))
    _emit(controller, _with(FIREFOX, up_blocked=True, up_limit_bps=0, down_blocked=True,
                            down_limit_bps=0), both)  # fmt: skip
    qtbot.waitUntil(lambda: model.limit_state(FIREFOX, Direction.DOWN).blocked)
    assert _tray_entry(model).startswith("Firefox (blocked)\t"), _tray_entry(model)


def test_a_rate_under_a_limit_says_bare_acknowledgements_are_not_in_it(
    qtbot, make_controller
) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb, an upload limit of 1.50 MB/s on a server that only receives
    (its upload: about 19 KB/s of bare TCP acknowledgements, by ss) read "Up
    0 B/s" and "up 0 B/s (limit 1.50 MB/s, avg 0 B/s)", as if it sent nothing:
    under a limit the helper lists what the limit let through, and bare ACKs
    pass it uncounted (docs/backends.md). The cell and the rates line say so."""
    controller = make_controller()
    window = controller.window
    on_screen(window, qtbot)
    rules = (RuleInfo(FIREFOX, "up", 1_500_000, 0, ADMIN_OWNER, True),)
    _emit(controller, _with(FIREFOX, up_limit_bps=1_500_000, up_bps=0, down_limit_bps=0), rules)
    assert window.select_application(FIREFOX)
    index = window.table.proxy_index(FIREFOX, Column.UP)
    qtbot.waitUntil(lambda: bool(index.data(Qt.ItemDataRole.ToolTipRole)))
    said = "Bare TCP acknowledgements pass it and are not counted here"
    assert said in str(index.data(Qt.ItemDataRole.ToolTipRole)), index.data(
        Qt.ItemDataRole.ToolTipRole
    )
    down = window.table.proxy_index(FIREFOX, Column.DOWN).data(Qt.ItemDataRole.ToolTipRole)
    assert not down or said not in str(down), down  # its download has no limit: all counted
    line = window.detail.rates_line.label
    qtbot.waitUntil(lambda: said in line.toolTip())
