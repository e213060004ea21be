"""What gui18's walk under Xvfb (1366x768, openbox, trayer; 1x and 2x) found in
the main window, each with the real widgets (offscreen)."""

from __future__ import annotations

from chadthrottle.contract import BackendInfo
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.views.status_line import StatusLine

from tests.gui.test_compact_graph import CONNECTION, rows_shown
from tests.gui.walk_stage import CONNECTED, on_screen, paused_spent_quota

# As the stage's Harbor Browser: an upload quota's block over a limit of one's own.
HARBOR = "app:org.mozilla.firefox"


def _notes_read_whole(window) -> bool:  # type: ignore[no-untyped-def]
    """The notes' whole text is in the pane: in its label, the label's every line
    in sight or a scroll bar beside it (not only in a tooltip)."""
    notes, box = window.detail.limit_notes, getattr(window.detail, "notes_box", None)
    room = notes.height() if box is None else box.viewport().height()  # (before: no box)
    whole = room >= notes.heightForWidth(notes.width())
    scrolls = box is not None and box.verticalScrollBar().isVisible()
    return not notes.text().endswith("…") and (whole or scrolls)


def test_the_detail_pane_reads_its_notes_whole_at_2x(qtbot, make_controller) -> None:  # type: ignore[no-untyped-def]
    """At 2x on 1366x768, limits paused and an upload quota's block over a limit
    of one's own, the pane's notes stopped at three lines, "...it applies again
    from the next day, when the quota's bloc…", and at one line with the graph
    open (compact): "...Your upload limit of 1.00 MB/s is kept: it…"; the rest
    only in the tooltip. The notes are read whole in the pane (a scroll bar beside
    the few lines it gives them where they run longer), and the list keeps its
    rows: four beside the compact graph, and a banner on top folds it for room."""

    controller = make_controller()
    window = controller.window
    on_screen(window, qtbot, 669, 344)  # the window at 2x on 1366x768 under Xvfb (openbox)
    paused_spent_quota(controller, HARBOR)
    assert window.select_application(HARBOR)
    notes = window.detail.limit_notes
    qtbot.waitUntil(notes.isVisible)
    for said in ("once limits resume", "when the quota's block ends."):  # paused (gui19's words)
        assert said in notes.text(), notes.text()
    assert window.detail.folded  # short: it starts folded
    qtbot.waitUntil(lambda: _notes_read_whole(window), timeout=2000)
    assert rows_shown(window) >= 3, rows_shown(window)  # as the folded window's least keeps
    window.show_connections(HARBOR, [CONNECTION])
    window.detail.fold_button.click()  # the user opens the graph: compact
    qtbot.waitUntil(lambda: window.detail.compact and not window.detail.folded, timeout=2000)
    assert "when the quota's block ends." in notes.text(), notes.text()
    qtbot.waitUntil(lambda: _notes_read_whole(window), timeout=2000)
    qtbot.waitUntil(lambda: rows_shown(window) >= 4, timeout=2000)
    # The paused banner come on top: the graph folds for room, as it did with the
    # notes cut to a line (their three whole lines left the list 2.0 rows at first).
    window.set_limits_paused(True)
    qtbot.waitUntil(lambda: window.detail.folded and rows_shown(window) >= 3.5, timeout=2000)
    assert _notes_read_whole(window)
    # and the pane as tall as its lines then: folded while compact, it kept the compact
    # margins' height once whole, and the notes' last line went half under the status bar
    box, pane = window.detail.notes_box, window.detail
    qtbot.waitUntil(lambda: not pane.compact)
    assert box.geometry().bottom() < pane.height(), (box.geometry(), pane.height())
    window.set_limits_paused(False)  # gone again: opened again, compact
    qtbot.waitUntil(lambda: window.detail.compact and not window.detail.folded, timeout=2000)
    qtbot.waitUntil(lambda: rows_shown(window) >= 4, timeout=2000)


def test_with_nothing_limited_the_backend_field_holds_nothing(qtbot) -> None:  # type: ignore[no-untyped-def]
    """With no limit set the status line read "Backend: tc, ebpf" (the backends
    available) in the place where, with limits, it says which holds what
    ("tc ▼, ebpf ▲"), as if both held something. It says they are ready."""
    line = StatusLine()
    qtbot.addWidget(line)
    line.set_status(CONNECTED)
    line.set_backends((BackendInfo("tc", True, "", ()), BackendInfo("ebpf", True, "", ())))
    assert line.backend.text() == "Ready to enforce", line.backend.text()  # gui23: no backend names
    assert "None holds a limit now" in line.backend.toolTip(), line.backend.toolTip()
    line.set_backends((BackendInfo("tc", True, "", ()), BackendInfo("ebpf", False, "no BTF", ())))
    assert line.backend.text() == "Ready to enforce", line.backend.text()
    assert "ebpf: no BTF" in line.backend.toolTip()
    line.set_backends((BackendInfo("tc", True, "", ("down",)), BackendInfo("ebpf", True, "", ())))
    assert line.backend.text() == "Enforcing ▼"  # holding
    line.set_paused(True)
    assert line.backend.text() == "Enforcing paused"  # gui17's
    line.set_status(HelperStatus(HelperState.NOT_RUNNING, "The helper stopped."))
    assert line.backend.text() == "Not enforcing"


def test_the_backend_fields_tooltip_says_no_limits_where_none_are(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb with no limit set but a priority and a link capacity (tc shaping
    the link both ways), the field's tooltip read "tc holds the download and upload
    limits" beside "No limits". It says what tc does without naming limits."""
    line = StatusLine()
    qtbot.addWidget(line)
    line.set_status(CONNECTED)
    line.set_backends(
        (BackendInfo("tc", True, "", ("down", "up")), BackendInfo("ebpf", True, "", ()))
    )
    assert line.backend.text() == "Enforcing ▼ ▲"
    assert line.backend.toolTip() == "tc enforces what is set for the download and upload", (
        line.backend.toolTip()
    )
