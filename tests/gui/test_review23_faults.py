"""What review23 found reading gui22's and gui23's work against the helper's
listing, each with the real widgets (offscreen)."""

from __future__ import annotations

import re

from chadthrottle.contract import (
    ADMIN_OWNER,
    BLOCK_LEASE_S,
    PAUSED_PROBLEM,
    BackendInfo,
    Direction,
    LinkShapingInfo,
    RuleInfo,
)
from chadthrottle.gui.alerts.policy import _limit_alert
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.models.limit_truth import describe_limit
from chadthrottle.gui.models.priority_view import link_summary
from chadthrottle.gui.tray.tray import limit_word
from chadthrottle.gui.views.link_dialog import LinkDialog
from chadthrottle.gui.views.status_line import StatusLine
from chadthrottle.helper.engine.rule_listing import _unread_problem
from chadthrottle.units import UnitSystem
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from tests.gui.bare_window import bare_window
from tests.gui.sample_data import MB
from tests.gui.test_walk10_faults import _with
from tests.gui.test_walk19_faults import FIREFOX
from tests.gui.test_walk20_faults import _emit
from tests.gui.walk_stage import on_screen

UNREAD = _unread_problem("Input/output error", held=True)  # the helper's own words (c84374e)
GB = 10**9
QUOTA = {"up_quota_bytes": 5 * GB, "up_quota_left_bytes": 4 * GB, "up_quota_period": "day"}


def test_a_quota_whose_count_cannot_be_read_is_shown_held_what_is_left_not_known(
    qtbot, make_controller
) -> None:  # type: ignore[no-untyped-def]
    """The helper lists "its quota's count could not be read (...): the kernel
    holds it as last set, what is left of it is not known", ListRules in_force
    true. The window said "Not enforced: ... the kernel holds it", counted it
    not enforced, the row "not enforced" in amber, and the quota alone showed
    "4.00 GB left today" as known, its problem unsaid."""
    controller = make_controller()
    window, model = controller.window, controller.model
    on_screen(window, qtbot)
    quota = {"quota_bytes": 5 * GB, "quota_period": "day", "quota_then_bps": 0}
    rules = (RuleInfo(FIREFOX, "up", 10**6, 0, ADMIN_OWNER, True, **quota),)
    _emit(controller, _with(FIREFOX, up_limit_bps=10**6, up_limit_problem=UNREAD, **QUOTA), rules)
    qtbot.waitUntil(lambda: model.limit_state(FIREFOX, Direction.UP).quota_bytes == 5 * GB)
    state = model.limit_state(FIREFOX, Direction.UP)
    said = describe_limit(state, Direction.UP, model.units)
    assert "Not enforced" not in said and "4.00 GB" not in said, said
    assert said.startswith("Upload: limited to 1.00 MB/s.") and UNREAD[1:] in said, said
    assert state.enforced and "not enforced" not in " ".join(state.note_lines), state
    assert not any("left today" in line for line in state.note_lines), state.note_lines
    tally = model.limit_tally()
    assert not tally.problems and FIREFOX and tally.enforced >= 1, tally
    down = model.limit_state(FIREFOX, Direction.DOWN)
    assert limit_word((down, state)) == "limited"
    info = next(
        a for a in _with(FIREFOX, up_limit_bps=10**6, up_limit_problem=UNREAD) if a.id == FIREFOX
    )
    assert _limit_alert(info, Direction.UP) is None  # not "cannot hold it"
    tooltip = str(
        window.table.proxy_index(FIREFOX, Column.UP_LIMIT).data(Qt.ItemDataRole.ToolTipRole)
    )
    assert "Not enforced" not in tooltip and "not known" in tooltip, tooltip

    window.rulesRequested.emit(FIREFOX)
    dialog = controller.rules.dialog
    assert dialog is not None
    qtbot.addWidget(dialog)
    quota_said = dialog.quota_state.text().replace("\u00a0", " ")
    assert "4.00 GB of" not in quota_said and "not known" in quota_said, quota_said

    alone = (RuleInfo(FIREFOX, "up", 0, 0, ADMIN_OWNER, True, **quota),)  # a quota alone
    _emit(controller, _with(FIREFOX, up_limit_problem=UNREAD, **QUOTA), alone)
    qtbot.waitUntil(lambda: model.limit_state(FIREFOX, Direction.UP).rate_bps == 0)
    state = model.limit_state(FIREFOX, Direction.UP)
    said = describe_limit(state, Direction.UP, model.units)
    assert "Not enforced" not in said and UNREAD[1:] in said and "4.00 GB" not in said, said
    assert not any("left today" in line for line in state.note_lines), state.note_lines


def test_a_block_or_a_quota_alone_is_said_enforcing_not_ready(qtbot) -> None:  # type: ignore[no-untyped-def]
    """A block or a quota is held by the kernel's gates, no backend's classes:
    the helper lists no backend active for it (seen on the real helper: Parcel
    Updates' download blocked, `backends` ACTIVE "-"). The status line read
    "Ready to enforce", its tooltip "None holds a limit now", beside a row
    that read Blocked and passed nothing."""
    model, window = bare_window()
    qtbot.addWidget(window)
    on_screen(window, qtbot)
    ready = (BackendInfo("tc", True, "", ()), BackendInfo("ebpf", True, "", ()))
    window.set_backends(ready)
    line = window.status_line
    model.apply_snapshot(_with(FIREFOX, down_blocked=True, down_limit_bps=0))
    qtbot.waitUntil(lambda: line.backend.text() != "")
    assert line.backend.text() == "Enforcing ▼", line.backend.text()
    assert "None holds" not in line.backend.toolTip(), line.backend.toolTip()
    model.apply_snapshot(_with(FIREFOX, down_limit_bps=0, **QUOTA))  # a quota alone, counting
    qtbot.waitUntil(lambda: line.backend.text() == "Enforcing ▲")
    refused = (
        "the kernel did not take its block or quota (Operation not permitted): it does not hold"
    )
    model.apply_snapshot(_with(FIREFOX, down_limit_bps=0, up_limit_problem=refused, **QUOTA))
    qtbot.waitUntil(lambda: line.backend.text() == "Ready to enforce")  # a quota not held
    said = describe_limit(model.limit_state(FIREFOX, Direction.UP), Direction.UP, model.units)
    assert said.endswith(f"Not enforced: {refused}."), said  # it was not said at all
    model.apply_snapshot(_with(FIREFOX, down_blocked=True, down_limit_bps=0))
    window.set_limits_paused(True)  # paused: the pause's words, whatever was listed
    assert line.backend.text() == "Enforcing paused"


SHAPED_WORDS = re.compile(r"\b(shaped|shaping|shapes)\b", re.IGNORECASE)


def test_the_link_field_says_capacity_in_every_state(qtbot) -> None:  # type: ignore[no-untyped-def]
    """gui23 made the link field's unset state "Link capacity: not set" and left
    "Link shaped: ▼ …", "Link partly shaped: …", "Link not shaped: …" in the
    others, the dialog's "Turn shaping off" and "not shaped (e.g. …)": two words
    for one thing on one line. Each state says the capacity and whether it is
    in force, the rates where they are."""
    units = UnitSystem.BYTES_DECIMAL
    states = {
        "set, in force": LinkShapingInfo(
            12_500_000, 5_000_000, 12_500_000, 5_000_000, False, True, True
        ),
        "partly": LinkShapingInfo(
            50 * MB, 10 * MB, 50 * MB, 10 * MB, False, True, False, ("eth0",), "upload: no IFB"
        ),
        "none in force": LinkShapingInfo(40_000_000, 5_000_000),
        "estimating": LinkShapingInfo(estimate=True),
        "one way": LinkShapingInfo(50 * MB, 0, 50 * MB, 0, False, True, False),
        "not set": LinkShapingInfo(),
        "paused": LinkShapingInfo(down_set_bps=6_000_000, problem=PAUSED_PROBLEM),
    }
    said = {name: link_summary(info, units) for name, info in states.items()}
    for name, summary in said.items():
        words = f"{summary.text}\n{summary.short}\n{summary.tooltip}"
        assert summary.text.startswith("Link capacity: "), (name, summary.text)
        assert not SHAPED_WORDS.search(words), (name, words)
    assert said["set, in force"].text == "Link capacity: ▼ 12.5 MB/s ▲ 5.00 MB/s"
    assert said["set, in force"].short == "Link ▼ 12.5 ▲ 5.00 MB/s"
    assert not said["set, in force"].warning
    assert (
        said["partly"].text == "Link capacity: ▼ 50.0 MB/s ▲ not in force"
        and said["partly"].warning
    )
    assert "Upload: capacity 10.0 MB/s, not in force now" in said["partly"].tooltip
    assert (
        said["none in force"].text == "Link capacity: not in force"
        and said["none in force"].warning
    )
    assert "Download: capacity 40.0 MB/s, not in force now" in said["none in force"].tooltip
    assert said["one way"].text == "Link capacity: ▼ 50.0 MB/s ▲ —"  # the upload not set
    assert "Upload: not set" in said["one way"].tooltip

    dialog = LinkDialog(units)
    qtbot.addWidget(dialog)
    dialog.show_shaping(states["not set"])
    texts = [dialog.off.text(), dialog.off.toolTip(), dialog.state.text(),
             *(edit.placeholderText() for edit in dialog.edits.values())]  # fmt: skip
    dialog.show_shaping(states["set, in force"])
    texts += [dialog.state.text(), dialog.off.text(), dialog.message.text()]
    assert not [text for text in texts if SHAPED_WORDS.search(text)], texts
    assert dialog.off.text() == "Clear capacity"


def test_the_helper_away_is_not_said_to_leave_nothing_enforced(qtbot) -> None:  # type: ignore[no-untyped-def]
    """With the helper gone the field's tooltip read "No backend enforces anything
    while the helper is not running": a killed helper leaves its rate limits and the
    link's capacity in the kernel (docs/helper.md, "SIGKILL or a crash"); only a
    stopped one removes them, and blocks and quotas lapse within the lease either way."""
    line = StatusLine()
    qtbot.addWidget(line)
    line.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    line.set_backends((BackendInfo("tc", True, "", ("down", "up")),))
    line.set_status(HelperStatus(HelperState.NOT_RUNNING, "The helper stopped."))
    tip = line.backend.toolTip()
    assert "No backend enforces anything" not in tip, tip
    assert f"within {BLOCK_LEASE_S:g} s" in tip and "killed" in tip, tip


def test_paused_at_2x_the_link_field_says_not_in_force_whole(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Paused at 2x on 1366x768 (Xvfb, the real helper, a capacity set) the line
    read "No limits are enforced: limits are paused" and "Link capacity: not…", the
    one word that mattered cut. Short, it says "Link: not in force" whole."""
    _model, window = bare_window()
    qtbot.addWidget(window)
    on_screen(window, qtbot, 683, 384)
    window.set_backends((BackendInfo("tc", True, "", ("down", "up")),))
    window.set_limits_paused(True)
    paused = LinkShapingInfo(down_set_bps=12_500_000, up_set_bps=5_000_000, problem=PAUSED_PROBLEM)
    window.status_line.set_link(link_summary(paused, UnitSystem.BYTES_DECIMAL))
    window.resize(683, 384)
    link = window.status_line.link
    assert window.status_line.limits.text() == "No limits are enforced: limits are paused"
    whole = ("Link capacity: not in force", "Link: not in force")
    qtbot.waitUntil(lambda: window.width() == 683 and link.shown_text() in whole)


def test_a_quota_alone_is_counted_beside_enforcing(qtbot) -> None:  # type: ignore[no-untyped-def]
    """With the ways a quota holds said "Enforcing ▲" (d83cf4d), the limits field beside
    it read "No limits" of a counting quota alone (Fetcher's, on the real helper)."""
    model, window = bare_window()
    qtbot.addWidget(window)
    on_screen(window, qtbot)
    window.set_backends((BackendInfo("tc", True, "", ()),))
    line = window.status_line
    model.apply_snapshot(_with(FIREFOX, down_limit_bps=0, **QUOTA))
    qtbot.waitUntil(lambda: line.backend.text() == "Enforcing ▲")
    assert line.limits.text() == "2 limits, 1 quota active", line.limits.text()  # Steam, Dropbox
    refused = (
        "the kernel did not take its block or quota (Operation not permitted): it does not hold"
    )
    model.apply_snapshot(_with(FIREFOX, down_limit_bps=0, up_limit_problem=refused, **QUOTA))
    qtbot.waitUntil(lambda: line.limits.text() == "2 limits active, 1 not enforced")
    assert f"Firefox upload: {refused}" in line.limits.toolTip()


def test_a_quota_alone_whose_gate_does_not_hold_says_so_in_its_cell(qtbot) -> None:  # type: ignore[no-untyped-def]
    """A quota alone whose gate the kernel refused ("...: it does not hold") kept
    "4.00 GB left today" in grey under its cell, as one that counts and holds; the
    pane said why only since d83cf4d. Its cell says "not enforced", in amber."""
    model, window = bare_window()
    qtbot.addWidget(window)
    on_screen(window, qtbot)
    refused = (
        "the kernel did not take its block or quota (Operation not permitted): it does not hold"
    )
    model.apply_snapshot(_with(FIREFOX, down_limit_bps=0, up_limit_problem=refused, **QUOTA))
    state = model.limit_state(FIREFOX, Direction.UP)
    # "quota not enforced" where it fits (gui31: at 1x under Xvfb, the helper
    # stopped, Fetcher's cell read "none" over a bare "not enforced")
    assert state.note_lines == ("quota not enforced", "not enforced"), state.note_lines
    assert state.note_is_problem


def test_pausing_does_not_widen_the_window_at_its_least(qtbot) -> None:  # type: ignore[no-untyped-def]
    """At 2x on 1366x768 (Xvfb, the real helper) pausing widened the window from
    1132 to 1328 px by itself: the status line's "No limits are enforced: limits are
    paused" beside the other fields wanted more than the window's least width. It
    gives way to its short form there ("No limits enforced"), the tooltip whole."""
    _model, window = bare_window()
    qtbot.addWidget(window)
    window.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    window.set_backends((BackendInfo("tc", True, "", ("down", "up")),))
    shaped = LinkShapingInfo(12_500_000, 5_000_000, 12_500_000, 5_000_000, False, True, True)
    window.status_line.set_link(link_summary(shaped, UnitSystem.BYTES_DECIMAL))
    window.show()
    qtbot.waitExposed(window)
    least = window.minimumSizeHint().width()
    window.resize(least, window.height())
    qtbot.waitUntil(lambda: window.width() == least)
    window.set_limits_paused(True)
    paused = LinkShapingInfo(down_set_bps=12_500_000, up_set_bps=5_000_000, problem=PAUSED_PROBLEM)
    window.status_line.set_link(link_summary(paused, UnitSystem.BYTES_DECIMAL))
    for _ in range(5):
        QApplication.processEvents()
    assert window.minimumSizeHint().width() <= least, (window.minimumSizeHint(), least)
    assert window.width() == least
    limits = window.status_line.limits
    assert limits.toolTip().startswith("No limits are enforced: limits are paused"), (
        limits.toolTip()
    )
