"""The detail pane's rates line names each figure for what it is: the rate
now, and beside a limit the mean it is judged by ("avg", its tooltip saying
over how long), not a second "measured" rate that reads like the first.
Real widgets, offscreen."""

from __future__ import annotations

import dataclasses
import re
import time
from unittest import mock

from chadthrottle.gui.views.detail.notes_box import NOTES_MAX_LINES
from chadthrottle.gui.views.detail.words import MEASURED_OVER_SAMPLES
from PySide6.QtCore import Qt

from tests.gui.sample_data import sample_applications

FIREFOX = "app:org.mozilla.firefox"  # with a download limit in the sample data


def polled(down_bps: float) -> list:  # type: ignore[type-arg]
    return [
        dataclasses.replace(app, down_bps=down_bps) if app.id == FIREFOX else app
        for app in sample_applications()
    ]


def test_the_limited_rates_line_says_which_figure_is_the_average(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    assert window.select_application(FIREFOX)
    for down in (4_000_000, 5_000_000, 6_000_000, 5_000_000, 4_500_000, 9_000_000):
        window._model.apply_snapshot(polled(down))
    text = window.detail.summary.text()
    seconds = MEASURED_OVER_SAMPLES * window.detail.refresh_interval_s
    assert text.startswith("Firefox: down 9.00 MB/s (limit "), text
    assert "measured" not in text, text  # both figures are measured: the word told them apart not
    assert re.search(r"\(limit 5.00 MB/s, avg 5.90 MB/s\)", text), text  # the last 5 polls' mean
    assert f"mean of the last {seconds:g} s" in window.detail.summary.toolTip()
    window.detail.refresh_interval_s = 0.5  # Settings: refresh every 0.5 s
    window._model.apply_snapshot(polled(5_000_000))
    assert f"mean of the last {MEASURED_OVER_SAMPLES * 0.5:g} s" in window.detail.summary.toolTip()
    window.select_application("exe:/usr/bin/curl")  # no limit: no average, no tooltip
    assert "avg" not in window.detail.summary.text() and not window.detail.summary.toolTip()


def test_the_average_is_not_taken_across_a_gap(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb, the helper stopped and started again: a row held at its
    1 MB/s limit read "avg 167 MB/s", the mean of its last five polls, most of
    them from before the helper went away; the tooltip says "the mean of the
    last 5 s". Only the polls of those seconds count."""
    assert window.select_application(FIREFOX)
    history = window._model.history(FIREFOX)
    away = time.time() - 30  # polls from before the gap, unlimited
    for second in range(4):
        history.append(800_000_000, 0.0, at=away + second)
    for _ in range(2):  # back: two polls at the limit
        window._model.apply_snapshot(polled(1_000_000))
    text = window.detail.summary.text()
    assert re.search(r"\(limit 5.00 MB/s, avg 1.00 MB/s\)", text), text


def _firefox_up_polls(window, qtbot):  # type: ignore[no-untyped-def]
    """Firefox chosen in a window wide enough for the summary line whole; returns
    the time now and poll(at, up_bps, up_limit_bps), which applies a listing of
    the samples with Firefox's upload so, as if polled at time `at`."""
    model = window._model
    window.resize(1100, 720)  # the line whole
    qtbot.waitUntil(lambda: window.width() == 1100)
    assert window.select_application(FIREFOX)

    def poll(at: float, up_bps: float, up_limit_bps: int) -> None:
        apps = [
            dataclasses.replace(app, up_bps=up_bps, up_limit_bps=up_limit_bps)
            if app.id == FIREFOX
            else app
            for app in sample_applications()
        ]
        with mock.patch.object(time, "time", return_value=at):
            model.apply_snapshot(apps)

    return time.time(), poll


def test_the_average_counts_only_polls_under_the_limit(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb, a 1 MB/s download limit set on a 4.9 MB/s row read "avg
    4.56 MB/s", then 3.62, 2.85, 2.08: the mean of polls from before the limit.
    Right after it is set there is no poll under it ("avg …"); then only polls
    from a tick after the helper confirmed it count (the helper restarts an
    application's rate window at a change of its rules)."""
    from chadthrottle.contract import Direction

    model = window._model
    start, poll = _firefox_up_polls(window, qtbot)

    for second in range(5):  # unlimited, 5 MB/s up
        poll(start - 10 + second, 5_000_000, 0)
    with mock.patch.object(time, "time", return_value=start - 5):
        model.mark_pending(FIREFOX, Direction.UP, 1_000_000)  # what the controller does
        model.resolve_pending(FIREFOX, Direction.UP, succeeded=True)
    assert "up 5.00 MB/s (limit 1.00 MB/s, avg …)" in window.detail.summary.text()
    poll(start - 4.5, 4_000_000, 1_000_000)  # of the helper's last tick before the limit
    assert "(limit 1.00 MB/s, avg …)" in window.detail.summary.text()
    for second in (4, 3, 2, 1, 0):
        poll(start - second, 1_000_000, 1_000_000)
    assert "up 1.00 MB/s (limit 1.00 MB/s, avg 1.00 MB/s)" in window.detail.summary.text()
    assert "under the limit shown" in window.detail.summary.toolTip()


def test_the_average_under_a_limit_counts_from_its_confirmation(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    """A limit the helper confirms late (it waits for the sockets' old windows
    to drain first) is in force from the confirmation, not from the click: a
    poll 2.5 s after the click but 0.5 s after the confirmation may hold rates
    of a tick before the limit, and counted it read "avg 4.00 MB/s"."""
    from chadthrottle.contract import Direction

    model = window._model
    start, poll = _firefox_up_polls(window, qtbot)

    for second in range(5):
        poll(start - 10 + second, 5_000_000, 0)
    with mock.patch.object(time, "time", return_value=start - 5):
        model.mark_pending(FIREFOX, Direction.UP, 1_000_000)  # clicked
    with mock.patch.object(time, "time", return_value=start - 3):
        model.resolve_pending(FIREFOX, Direction.UP, succeeded=True)  # confirmed
    poll(start - 2.5, 4_000_000, 1_000_000)
    assert "(limit 1.00 MB/s, avg …)" in window.detail.summary.text()
    poll(start - 2, 1_000_000, 1_000_000)
    assert "up 1.00 MB/s (limit 1.00 MB/s, avg 1.00 MB/s)" in window.detail.summary.text()


def test_a_limit_far_above_the_graph_is_written_on_a_backing(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb an 8 MB/s limit on a 35 KB/s download: "limit 8.00 MB/s ↑"
    at the plot's top edge, the curve running through its words. It stands on
    the plot's background, as the legend does."""
    from chadthrottle.contract import Direction
    from PySide6.QtGui import QPalette

    model = window._model
    model.mark_pending(FIREFOX, Direction.DOWN, 1_000_000_000)
    for _ in range(3):
        model.apply_snapshot(
            [
                dataclasses.replace(a, down_bps=35_000, down_limit_bps=1_000_000_000)
                if a.id == FIREFOX
                else a
                for a in sample_applications()
            ]
        )
    assert window.select_application(FIREFOX)
    graph = window.detail.graphs[Direction.DOWN]
    qtbot.waitUntil(graph.limit_marker.isVisible)
    assert graph.limit_marker.textItem.toPlainText().startswith("limit 1.00 GB/s")
    base = window.detail.palette().color(QPalette.ColorRole.Base)
    assert graph.limit_marker.fill.style() != Qt.BrushStyle.NoBrush
    assert graph.limit_marker.fill.color().rgb() == base.rgb()  # the legend's backing
    assert graph.limit_marker.fill == graph.label.fill


# What the helper said for one limit on screen (Xvfb, 2x on 1366x768), the
# shaper's note repeated per link: eight lines, cut through a line by the pane.
LONG_REACH = "; ".join(
    f"policed, not shaped in namespace cthost-{n}: cth{n}: a filter this helper did not create"
    " holds ChadThrottle's place on it (prio 0xc7ad; another ChadThrottle helper's?); it is"
    f" left untouched; downloads through cth{n} are not shaped"
    for n in ("fd6798", "78d39e", "5b8160")
)


def test_long_notes_take_a_few_lines_with_a_scroll_bar_and_are_whole(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    """Eight lines of the helper's reason: the pane gives them NOTES_MAX_LINES
    lines and a scroll bar beside them, the text whole (it was cut with "…",
    whole only in the tooltip: gui18)."""
    apps = [
        dataclasses.replace(app, down_limit_reach=LONG_REACH) if app.id == FIREFOX else app
        for app in sample_applications()
    ]
    window.resize(1100, 720)
    window._model.apply_snapshot(apps)
    assert window.select_application(FIREFOX)
    notes, box = window.detail.limit_notes, window.detail.notes_box
    qtbot.waitUntil(notes.isVisible)
    line = notes.fontMetrics().lineSpacing()
    assert box.height() <= NOTES_MAX_LINES * line + 4, box.height()
    assert LONG_REACH in notes.text() and notes.toolTip() == ""
    qtbot.waitUntil(box.verticalScrollBar().isVisible)
    window.resize(700, 720)  # narrower: still those lines, still whole
    qtbot.waitUntil(lambda: box.width() < 700)
    assert box.height() <= NOTES_MAX_LINES * line + 4 and LONG_REACH in notes.text()
    window._model.apply_snapshot(sample_applications())  # a short note: no scroll bar
    qtbot.waitUntil(lambda: not box.verticalScrollBar().isVisible())
    assert box.viewport().height() >= notes.heightForWidth(notes.width())


def test_a_limit_asked_for_is_in_the_rates_line_at_once(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    """The row shows a limit the moment it is asked for; the rates line said
    nothing of it until the next poll (on Xvfb at 2x, half a second after the
    slider was let go: "Game Launcher: down 10.6 KB/s, up 183 B/s" beside a row
    reading 20.0 KB/s), and after a failed request it kept the limit that was
    refused until then."""
    from chadthrottle.contract import Direction

    model = window._model
    window.resize(1100, 720)  # the line whole (narrower, it is cut: test_rates_line_gives_way)
    qtbot.waitUntil(lambda: window.width() == 1100)
    assert window.select_application(FIREFOX)
    assert "up 210 KB/s" in window.detail.summary.text()
    model.mark_pending(FIREFOX, Direction.UP, 300_000)  # what the controller does on a request
    assert "up 210 KB/s (limit 300 KB/s, avg " in window.detail.summary.text()
    model.resolve_pending(FIREFOX, Direction.UP, succeeded=False)  # the helper refused it
    assert window.detail.summary.text().endswith("up 210 KB/s")


def test_with_no_application_listed_the_pane_asks_for_no_selection(qtbot) -> None:  # type: ignore[no-untyped-def]
    """First start, the helper not installed: the list says to install it, and
    the pane under it said "Select an application to see its traffic." with
    nothing to select. It says nothing until there is something to select."""
    from chadthrottle.gui.views.detail.words import NO_SELECTION

    from tests.gui.bare_window import shown_connected_window

    model, window = shown_connected_window()
    qtbot.addWidget(window)
    window.detail.refresh()
    assert window.detail.summary.text() == ""
    model.apply_snapshot(sample_applications())
    window.detail.show_application("")  # listed, none chosen
    assert window.detail.summary.text() == NO_SELECTION


def test_rates_line_gives_way_rather_than_widen_the_window(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    """At 2x on 1366x768 (683 px) the rates line of an application with both
    limits (624 px) made the window 719 px wide, its right end off the
    screen. It is cut with "…" instead, the whole line in its tooltip."""
    from chadthrottle.contract import Direction

    with mock.patch.object(time, "time", return_value=time.time() - 10):  # with polls under it:
        window._model.mark_pending(
            FIREFOX, Direction.UP, 300_000
        )  # a second limit, the longest line
    assert window.select_application(FIREFOX)
    window.resize(683, 384)
    qtbot.waitUntil(lambda: window.width() == 683, timeout=1000)  # it was held at 719
    assert window.minimumSizeHint().width() <= 683
    summary = window.detail.summary
    assert summary.text().endswith("…") and summary.text().startswith("Firefox: down ")
    assert "up 210 KB/s (limit 300 KB/s, avg " in summary.toolTip()
    assert summary.fontMetrics().horizontalAdvance(summary.text()) <= summary.parentWidget().width()
    window.resize(1100, 720)  # room again: whole
    qtbot.waitUntil(lambda: not summary.text().endswith("…"), timeout=1000)
