"""The detail pane while the helper is away, as seen on screen (Xvfb, openbox,
a real helper stopped with SIGTERM): the graph froze with its last sample at
"now", 13 s later still, and the connections table said "No open connections."
when the failed call had only said nothing. The real window and pane."""

from __future__ import annotations

from chadthrottle.contract import ConnectionInfo
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.views.detail.words import CONNECTIONS_UNKNOWN
from chadthrottle.gui.views.main_window import MainWindow

FIREFOX = "app:org.mozilla.firefox"
CONNECTED = HelperStatus(HelperState.CONNECTED, "", True, True)
GONE = HelperStatus(HelperState.NOT_RUNNING, "The helper is restarting.")


def test_with_the_helper_away_the_graph_moves_on_and_connections_are_not_known(
    qtbot,
    window: MainWindow,  # type: ignore[no-untyped-def]
) -> None:
    detail = window.detail
    window.select_application(FIREFOX)
    detail.show_connections(FIREFOX, [ConnectionInfo("tcp", "10.0.0.5:40000", "192.0.2.7:443",
                                                     "ESTABLISHED", 100)])  # fmt: skip
    assert detail.connections_caption.text() == "1 open connection"
    detail.refresh()
    assert detail.plotted[0][-1] > -1.0  # the last sample: now
    assert detail.summary.isEnabled()

    window.set_status(GONE)
    detail.show_connections(FIREFOX, [])  # what the worker sends when the call failed
    assert detail.connections_caption.text() == CONNECTIONS_UNKNOWN
    assert detail.connections_model.rowCount() == 0
    assert not detail.summary.isEnabled()  # greyed, as the rows: the last numbers it sent
    # no poll comes, yet the last sample moves into the past
    qtbot.waitUntil(lambda: detail.plotted[0][-1] < -2.0, timeout=6000)

    window.set_status(CONNECTED)
    assert detail.summary.isEnabled()
    detail.show_connections(FIREFOX, [])
    assert detail.connections_caption.text() == "No open connections."


def test_a_helper_that_stops_answering_is_said_so_not_shown_as_live(
    qtbot, window: MainWindow
) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb on a loaded machine (load 11) the helper answered no poll for
    16 s: the rows stood still with the last numbers while the status bar said
    'Helper: connected', and only the graph's gap showed it afterwards. Late
    by a few polls, the helper field says for how long, and goes back with the
    next answer."""
    from tests.gui.sample_data import sample_applications

    window.answer_late_s = 0.5  # a few polls (three at least); here short
    window.detail.refresh_interval_s = 0.2
    window.answer_clock.setInterval(100)
    qtbot.waitUntil(lambda: "no answer for" in window.status_line.helper.text(), timeout=3000)
    assert "last" in window.status_line.helper.toolTip()
    window._model.apply_snapshot(sample_applications())
    assert window.status_line.helper.text() == "Helper: connected"
    window.set_status(GONE)  # away is said by the banner: not "no answer" as well
    qtbot.wait(800)
    assert window.status_line.helper.text() == "Helper: reconnecting…"
