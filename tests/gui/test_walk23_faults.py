"""What gui22's walk left (status line words a new user does not know, the
smallest window's limit columns, the rules dialog of a quota held on after a
refused change), each with the real widgets (offscreen)."""

from __future__ import annotations

import dataclasses
import re

from chadthrottle.contract import (
    PAUSED_PROBLEM,
    BackendInfo,
    Direction,
    LinkShapingInfo,
)
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.models.limit_truth import describe_limit
from chadthrottle.gui.models.priority_view import link_summary
from chadthrottle.gui.views.status_line import StatusLine
from chadthrottle.gui.widgets.limit_slider import SLIDER_SHOWN_LEAST, LimitControl
from chadthrottle.gui.widgets.rate_width import limit_field_width
from chadthrottle.units import UnitSystem
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from tests.gui.bare_window import bare_window
from tests.gui.sample_data import MB, sample_applications
from tests.gui.test_walk19_faults import FIREFOX
from tests.gui.test_walk20_faults import HELD_ON, _emit_held_on_then_rate
from tests.gui.walk_stage import on_screen

CONNECTED = HelperStatus(HelperState.CONNECTED, "", True, True)
JARGON = re.compile(r"\b(tc|ebpf|backends?|shaped)\b", re.IGNORECASE)


def _backend_words(line: StatusLine) -> list[tuple[str, str]]:
    """The backend field's (text, tooltip) in each state the helper can be in."""
    said = []

    def note() -> None:
        said.append((line.backend.text(), line.backend.toolTip()))

    line.set_status(CONNECTED)
    ready = (BackendInfo("tc", True, "", ()), BackendInfo("ebpf", True, "", ()))
    for backends in (
        ready,  # nothing set: none holds anything
        (BackendInfo("tc", True, "", ()), BackendInfo("ebpf", False, "no BTF", ())),
        (BackendInfo("tc", True, "", ("down",)), BackendInfo("ebpf", True, "", ())),
        (BackendInfo("ebpf", True, "", ("down",)), BackendInfo("tc", True, "", ("up",))),
        (BackendInfo("tc", True, "", ("down", "up")), BackendInfo("ebpf", True, "", ())),
        (BackendInfo("tc", False, "no IFB", ()), BackendInfo("ebpf", False, "no BTF", ())),
    ):
        line.set_backends(backends)
        note()
    line.set_backends(ready)
    line.set_paused(True)
    note()
    line.set_paused(False)
    line.set_status(HelperStatus(HelperState.NOT_RUNNING, "The helper stopped."))
    note()
    return said


def test_the_status_line_says_what_is_enforced_in_words_a_user_knows(qtbot) -> None:  # type: ignore[no-untyped-def]
    """gui22's walk: "Backends ready: tc, ebpf", "Backend: tc ▲" and "Link: not
    shaped" were words a new user does not know (what a backend, tc, ebpf are,
    what "shaped" means). The line says whether what is set is enforced and
    which way; the backends are named in the tooltip only."""
    line = StatusLine()
    qtbot.addWidget(line)
    said = _backend_words(line)
    texts = [text for text, _tip in said]
    assert [text for text in texts if JARGON.search(text)] == [], texts
    assert texts == ["Ready to enforce", "Ready to enforce", "Enforcing ▼", "Enforcing ▼ ▲",
                     "Enforcing ▼ ▲", "Cannot enforce", "Enforcing paused", "Not enforcing"]  # fmt: skip
    # each state apart, and the backends (and why one is missing) in the tooltip
    assert "tc" in said[2][1] and "ebpf enforces what is set for the download" in said[3][1]
    assert "ebpf: no BTF" in said[1][1] and "tc: no IFB" in said[5][1]
    link = link_summary(LinkShapingInfo(), UnitSystem.BYTES_DECIMAL)
    assert link.text == "Link capacity: not set", link.text
    assert "No link capacity is set" in link.tooltip and "Click to set it" in link.tooltip
    # Paused, a capacity set is kept but none is in force: not "not set" (it read "Link:
    # not shaped" there, and its tooltip "No link capacity is set").
    paused = LinkShapingInfo(down_set_bps=6_000_000, up_set_bps=1_250_000, problem=PAUSED_PROBLEM)
    link = link_summary(paused, UnitSystem.BYTES_DECIMAL)
    assert (link.text, link.warning) == ("Link capacity: not in force", True), link
    assert "▼ 6.00 MB/s ▲ 1.25 MB/s" in link.tooltip and PAUSED_PROBLEM in link.tooltip, link
    assert "No link capacity" not in link.tooltip


def test_the_rules_dialog_says_a_quota_held_on_as_the_pane_does(qtbot, make_controller) -> None:  # type: ignore[no-untyped-def]
    """A quota used up that then limits to 100 KB/s, a change to it refused in
    the tick it switched (gui20, gui22): the kernel keeps it blocked for seconds
    more. The row said "kernel refused the change", the pane "blocked for now,
    not yet at its 100 KB/s" and why; the rules dialog only "all 20.0 MB used
    today", as if nothing held it. It says what the pane says."""
    controller = make_controller()
    window = controller.window
    on_screen(window, qtbot)
    _emit_held_on_then_rate(controller)
    model = controller.model
    qtbot.waitUntil(lambda: model.limit_state(FIREFOX, Direction.UP).held_on)
    window.rulesRequested.emit(FIREFOX)
    dialog = controller.rules.dialog
    assert dialog is not None
    qtbot.addWidget(dialog)
    # its rate on one line where the dialog wraps it (at 2x under Xvfb: "100" and "KB/s" apart)
    assert "100\u00a0KB/s" in dialog.quota_state.text(), dialog.quota_state.text()
    said = dialog.quota_state.text().replace("\u00a0", " ")
    state = model.limit_state(FIREFOX, Direction.UP)
    pane = describe_limit(state, Direction.UP, model.units)  # the pane's and the cell's words
    quota_words = (
        "all 20.0 MB used today: blocked for now, not yet at its 100 KB/s until the next day"
    )
    assert quota_words in pane and HELD_ON[1:] in pane, (
        pane
    )  # the source of truth, as gui22 left it
    assert said == f"Upload: {quota_words}. {HELD_ON[:1].upper()}{HELD_ON[1:]}.", said


def _left_of_value(window, app_id: str) -> QImage:  # type: ignore[no-untyped-def]
    """A painted download limit cell left of its value field: where the slider goes."""
    table = window.table
    rect = table.visualRect(table.proxy_index(app_id, Column.DOWN_LIMIT))
    field = limit_field_width(table.font(), UnitSystem.BYTES_DECIMAL)
    rect.setRight(rect.right() - field - 2)
    return table.viewport().grab(rect).toImage()


def test_at_the_least_width_a_limit_column_paints_the_value_without_a_stub_slider(qtbot) -> None:  # type: ignore[no-untyped-def]
    """gui22's walk at the window's least (1x and 2x): each limit cell a 34 px
    slider, 19 px of travel, and a wide gap before "none". There the cells show
    the value alone (the open control too: tests/gui/fit_probe.py); wider, the
    slider, its knob where the limit is."""
    model, window = bare_window()
    qtbot.addWidget(window)
    on_screen(window, qtbot)
    model.apply_snapshot(sample_applications())
    assert window.select_application(FIREFOX)  # its row has the open control
    steam = "app:com.valvesoftware.Steam"  # 4 MB/s down

    def painted(limit_bps: int) -> QImage:
        model.apply_snapshot([dataclasses.replace(a, down_limit_bps=limit_bps) if a.id == steam else a
                              for a in sample_applications()])  # fmt: skip
        for _ in range(3):
            QApplication.processEvents()
        return _left_of_value(window, steam)

    assert painted(4 * MB) != painted(0)  # a slider, its knob where the limit is
    window.resize(window.minimumSizeHint())
    qtbot.waitUntil(lambda: window.width() == window.minimumSizeHint().width())
    assert painted(4 * MB) == painted(0), "a slider painted at the least width"


def test_without_its_slider_the_value_field_steps_with_the_arrow_keys(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The slider was the keyboard's way to step through round values; where the
    column is too narrow for one, the field takes Up, Down, Page Up and Page Down."""
    control = LimitControl("Download limit for Steam")
    qtbot.addWidget(control)
    field_width = control.field.width()
    control.resize(field_width + 4 + SLIDER_SHOWN_LEAST - 1 + control.layout().spacing(), 30)
    control.show()
    qtbot.waitExposed(control)
    assert control.slider.isHidden()
    control.set_current_rate(2 * MB)
    control.field.setFocus()
    qtbot.keyClick(control.field, Qt.Key.Key_Down)  # from none: near what it uses
    assert control.field.text() not in ("", "none"), control.field.text()
    qtbot.keyClick(control.field, Qt.Key.Key_Escape)  # nothing applied
    assert control.limit() is None and control.field.text() in ("", "none")
    control.resize(field_width + 4 + SLIDER_SHOWN_LEAST + 20, 30)
    qtbot.waitUntil(lambda: control.slider.isVisible())
