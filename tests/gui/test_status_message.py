"""A transient message in the status line is read whole where it can be.

At 2x on 1366x768 (under Xvfb) setting a priority said "Backup Server: Low
priority set, " and stopped: the reason it is not in force was clipped
mid-line, with nothing to show it was cut. The backend and helper fields now
make way while such a message shows, and what still does not fit ends in "…"."""

from __future__ import annotations

from chadthrottle.gui.views.status_line import StatusLine

MESSAGE = "Backup Server: Low priority set, not in force: no link capacity is set."


def _shown(qtbot, width: int) -> StatusLine:  # type: ignore[no-untyped-def]
    line = StatusLine()
    qtbot.addWidget(line)
    line.backend.setText("Ready to enforce")
    line.helper.setText("Helper: connected")
    line.resize(width, 30)
    line.show()
    qtbot.waitExposed(line)
    return line


def test_a_long_message_gets_the_backend_and_helper_fields_room(qtbot) -> None:  # type: ignore[no-untyped-def]
    line = _shown(qtbot, 600)
    assert line.message.fontMetrics().horizontalAdvance(MESSAGE) > line.message.width()
    line.show_text(MESSAGE, timeout_ms=300)
    qtbot.waitUntil(lambda: line.message.shown_text() == MESSAGE, timeout=1000)
    assert line.backend.isHidden() and line.helper.isHidden() and line.limits.isVisible()
    qtbot.waitUntil(lambda: line.message.text() == "", timeout=2000)  # the message gone:
    assert line.backend.isVisible() and line.helper.isVisible()  # the fields back


def test_a_short_message_leaves_them_and_one_too_long_for_any_room_is_cut_visibly(qtbot) -> None:  # type: ignore[no-untyped-def]
    line = _shown(qtbot, 760)
    line.show_text("Limit set.")
    assert line.backend.isVisible() and line.helper.isVisible()
    narrow = _shown(qtbot, 420)
    narrow.show_text(MESSAGE)
    qtbot.waitUntil(lambda: narrow.message.shown_text().endswith("…"), timeout=1000)
    metrics = narrow.message.fontMetrics()
    assert metrics.horizontalAdvance(narrow.message.shown_text()) <= narrow.message.width()


def test_with_the_helper_gone_no_backend_is_named(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb, the helper stopped: "Backend: tc" beside "No limits are
    enforced: the helper is not running", as if tc still held them."""
    from chadthrottle.contract import BackendInfo
    from chadthrottle.gui.ipc.state import HelperState, HelperStatus

    line = _shown(qtbot, 900)
    line.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    line.set_backends((BackendInfo("tc", True, "", ("down", "up")),))
    assert line.backend.text() == "Enforcing ▼ ▲"
    line.set_status(HelperStatus(HelperState.NOT_RUNNING, "The helper is restarting."))
    assert line.backend.text() == "Not enforcing" and "not running" in line.backend.toolTip()
    line.set_backends((BackendInfo("tc", True, "", ("down", "up")),))  # a late answer: kept
    assert line.backend.text() == "Not enforcing"
    line.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))  # back
    assert line.backend.text() == "Enforcing ▼ ▲"


def test_the_no_tray_notice_is_read_whole_or_short_at_2x(make_controller, qtbot) -> None:  # type: ignore[no-untyped-def]
    """At 2x on 1366x768 without a tray (Xvfb) the window's one notice read "No
    system tray on this desktop: this window is the way in, and cl…": what
    closing it does was cut. Where the whole does not fit, its short form does."""
    from chadthrottle.gui.controller import NO_TRAY_SHORT, TRAY_LEFT_OUT_NOTICE

    controller = make_controller()  # use_tray=False, as --no-tray
    window = controller.window
    window.resize(683, 384)  # 1366x768 at 2x, in logical pixels
    window.show()
    qtbot.waitExposed(window)
    controller.show_no_tray_notice()
    message = window.status_line.message
    assert message.text() == TRAY_LEFT_OUT_NOTICE  # not "No system tray on this desktop"
    assert message.toolTip() == TRAY_LEFT_OUT_NOTICE
    qtbot.waitUntil(lambda: message.shown_text() == NO_TRAY_SHORT, timeout=1000)
    assert message.fontMetrics().horizontalAdvance(NO_TRAY_SHORT) <= message.contentsRect().width()
    window.resize(1100, 720)  # room: the whole notice
    qtbot.waitUntil(lambda: message.shown_text() == TRAY_LEFT_OUT_NOTICE, timeout=1000)
