"""How the helper ended, as its run record says, decides the words (gui25):
stopped cleanly, its limits are off; killed, its last limits stay in force.
The pure rules (derive_status) and the real status line, banner and tray;
the real helper's record and the whole window: tests/e2e/test_helper_stopped_or_killed.py."""

from __future__ import annotations

import pytest
from chadthrottle.gui.controller import closed_to_tray_words
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.ipc.status_logic import (
    STOPPED,
    Observations,
    derive_status,
    nothing_enforced_reason,
)
from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.icons import IconProvider
from chadthrottle.gui.models.limit_truth import LimitTally
from chadthrottle.gui.tray.tray import TrayController
from chadthrottle.gui.views.state_banner import StateBanner
from chadthrottle.gui.views.status_line import StatusLine
from chadthrottle.helper_run_state import LastStop

from tests.gui.sample_data import MB, app

NO_OWNER = "org.freedesktop.DBus.Error.NameHasNoOwner"
UNKNOWN_SERVICE = "org.freedesktop.DBus.Error.ServiceUnknown"


def _gone(last_stop: LastStop, error: str = NO_OWNER, polled: bool = True) -> HelperStatus:
    return derive_status(
        Observations(poll_error_name=error, has_polled_ok=polled, last_stop=last_stop)
    )


@pytest.mark.parametrize("error", [NO_OWNER, UNKNOWN_SERVICE])
def test_the_record_decides_the_words_of_a_helper_gone(error: str) -> None:
    clean, killed = _gone(LastStop.STOPPED, error), _gone(LastStop.KILLED, error)
    assert (clean.state, clean.detail) == (
        HelperState.NOT_RUNNING, "The helper stopped — its limits are off.",
    )  # fmt: skip
    assert clean.stopped_clean and not clean.left_in_force
    assert (killed.state, killed.detail) == (
        HelperState.NOT_RUNNING,
        "The helper stopped unexpectedly — its last limits stay in force until it starts again.",
    )
    assert killed.left_in_force and not killed.stopped_clean
    # a start the window never saw answer: the record still says a helper ran here
    assert _gone(LastStop.KILLED, error, polled=False).left_in_force


def test_without_a_record_to_trust_the_words_stay_as_they_were() -> None:
    for last_stop in (LastStop.UNKNOWN, LastStop.RUNNING):
        assert _gone(last_stop).detail == "The helper is not running."
        assert _gone(last_stop, UNKNOWN_SERVICE).detail == STOPPED
        assert _gone(last_stop, UNKNOWN_SERVICE, polled=False).state is HelperState.NOT_INSTALLED
    # answering again: the record of the last stop says nothing any more
    back = derive_status(Observations(has_polled_ok=True, last_stop=LastStop.KILLED))
    assert back.state is HelperState.CONNECTED and not back.left_in_force


def test_the_status_line_says_what_holds(qtbot) -> None:  # type: ignore[no-untyped-def]
    line = StatusLine()
    qtbot.addWidget(line)
    limited = LimitTally(not_enforced=("x download: the helper stopped unexpectedly",), left=1)
    for status, helper, backend, limits in [
        (_gone(LastStop.STOPPED), "Helper: stopped", "Not enforcing",
         "No limits are enforced: the helper stopped"),
        (_gone(LastStop.KILLED), "Helper: stopped unexpectedly", "Still enforcing",
         "Last limits stay in force: the helper stopped unexpectedly"),
        (_gone(LastStop.UNKNOWN), "Helper: reconnecting…", "Not enforcing",
         "No limits are enforced: the helper is not running"),
    ]:  # fmt: skip
        line.set_status(status)
        line.set_limits(limited, nothing_enforced_reason(status, False), status)
        assert (line.helper.text(), line.backend.text(), line.limits.text()) == (
            helper, backend, limits,
        )  # fmt: skip
    killed = _gone(LastStop.KILLED)
    line.set_status(killed)
    # a block alone: it lapses within 3 s, nothing is said to stay in force
    blocked = LimitTally(not_enforced=("x download: the helper stopped unexpectedly",))
    line.set_limits(blocked, nothing_enforced_reason(killed, False), killed)
    assert line.backend.text() == "Not enforcing"
    assert line.limits.text() == "No limits are enforced: the helper stopped unexpectedly"
    line.set_limits(LimitTally(), nothing_enforced_reason(killed, False), killed)
    # nothing was limited: nothing is said to stay in force
    assert line.backend.text() == "Not enforcing"
    assert line.limits.text() == "No limits are enforced: the helper stopped unexpectedly"


def test_the_banner_titles_say_whether_limits_are_off_or_stay(qtbot) -> None:  # type: ignore[no-untyped-def]
    banner = StateBanner()
    qtbot.addWidget(banner)
    banner.show_status(_gone(LastStop.STOPPED))
    assert banner.title.text() == "The helper stopped — its limits are off"
    assert "removed its limits" in banner.text.text() and "No limit" not in banner.text.text()
    banner.show_status(_gone(LastStop.KILLED))
    assert banner.title.text() == "The helper stopped unexpectedly — its limits stay in force"
    assert "stay in the kernel" in banner.text.text() and "No limit" not in banner.text.text()


def test_the_tray_says_it_in_its_tooltip_menu_and_when_the_window_closes() -> None:
    model = ApplicationsModel(IconProvider())
    tray = TrayController(model)
    model.apply_snapshot([app("exe:/x", "x", 12.4 * MB, 1.1 * MB, down_limit_bps=2 * MB)])
    killed, clean = _gone(LastStop.KILLED), _gone(LastStop.STOPPED)
    model.set_enforcement_problem(nothing_enforced_reason(killed, False))
    tray.set_status(killed)
    assert tray.icon.toolTip() == (
        "ChadThrottle: The helper stopped unexpectedly — its last limits stay in force until "
        "it starts again\nthe kernel keeps its rate limits as last set, unwatched"
    )
    tray.rebuild_menu()
    assert [a.text().split("\t")[0] for a in tray.menu.actions()][1] == "x (limit left in force)"
    first = tray.menu.actions()[0]
    assert first.text() == (
        "The helper stopped unexpectedly — its last limits stay in force until it starts again"
    )
    assert closed_to_tray_words(nothing_enforced_reason(killed, False), 0).startswith(
        "The helper stopped unexpectedly — its last limits stay in force"
    )
    model.set_enforcement_problem(nothing_enforced_reason(clean, False))
    tray.set_status(clean)
    assert tray.icon.toolTip() == (
        "ChadThrottle: The helper stopped — its limits are off\n"
        "no limit is enforced: the helper stopped"
    )
    tray.rebuild_menu()
    assert tray.menu.actions()[0].text() == "The helper stopped — its limits are off"


def test_a_killed_helper_s_priority_is_said_left_in_force() -> None:
    from chadthrottle.gui.models.priority_view import PriorityState, describe_priority
    from chadthrottle.gui.tray.tray import priority_word

    state = PriorityState(
        "critical", problem=nothing_enforced_reason(_gone(LastStop.KILLED), False)
    )
    assert priority_word(state) == "Critical left in force"
    assert "Left in force: the helper stopped unexpectedly" in describe_priority(state)
    assert "Not in force" not in describe_priority(state)


class _Notifier:
    def __init__(self) -> None:
        self.sent: list[object] = []

    def notify(self, alert: object) -> None:
        self.sent.append(alert)

    def close(self) -> None:
        pass


def test_the_stop_alert_waits_for_how_the_helper_ended(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """At the first failed poll a helper that is stopping still runs (its record
    says so) and the status says only "The helper stopped.": the desktop alert
    went out with that, never saying its limits are off. It waits for the record."""
    from chadthrottle.gui.alerts.flow import AlertsFlow
    from chadthrottle.gui.alerts.policy import AlertSwitches
    from chadthrottle.gui.ipc.worker import Snapshot
    from PySide6.QtCore import QObject, QSettings, Signal

    class Feed(QObject):
        applicationsUpdated = Signal(object)
        statusChanged = Signal(object)

    feed, notifier = Feed(), _Notifier()
    store = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    flow = AlertsFlow(feed, store, AlertSwitches, notifier)  # type: ignore[arg-type]
    try:
        feed.applicationsUpdated.emit(Snapshot((), {}, 0.0))  # it answered
        stopping = _gone(LastStop.RUNNING, UNKNOWN_SERVICE)
        assert (stopping.detail, stopping.last_stop) == (STOPPED, LastStop.RUNNING)
        feed.statusChanged.emit(stopping)
        assert notifier.sent == []
        feed.statusChanged.emit(_gone(LastStop.STOPPED))
        (alert,) = notifier.sent
        assert alert.body == "The helper stopped — its limits are off."  # type: ignore[attr-defined]
    finally:
        flow.close()


def test_killed_while_paused_is_not_said_to_leave_limits_in_force(qtbot) -> None:  # type: ignore[no-untyped-def]
    status = _gone(LastStop.KILLED_PAUSED)
    assert status.detail == (
        "The helper stopped unexpectedly — its limits were paused: none is in force."
    )
    assert status.killed_paused and not status.left_in_force
    assert nothing_enforced_reason(status, False) == "limits are paused"
    line = StatusLine()
    qtbot.addWidget(line)
    line.set_status(status)
    limited = LimitTally(not_enforced=("x download: limits are paused",))
    line.set_limits(limited, nothing_enforced_reason(status, False), status)
    assert (line.helper.text(), line.backend.text(), line.limits.text()) == (
        "Helper: stopped unexpectedly", "Not enforcing", "No limits are enforced: limits are paused",
    )  # fmt: skip
    banner = StateBanner()
    qtbot.addWidget(banner)
    banner.show_status(status)
    assert banner.title.text() == "The helper stopped unexpectedly — its limits were paused"
    assert "holds none of them" in banner.text.text()


def test_a_successor_starting_does_not_undo_what_the_killed_helper_left() -> None:
    """Its record says RUNNING (its process, not on the bus yet) for the 0.4-13 s
    of its start: the killed helper's limits hold until it has taken them over."""
    from chadthrottle.gui.ipc.status_logic import last_stop_seen

    away = Observations(poll_error_name=NO_OWNER, has_polled_ok=True, last_stop=LastStop.KILLED)
    assert last_stop_seen(away, LastStop.RUNNING) is LastStop.KILLED
    assert last_stop_seen(away, LastStop.STOPPED) is LastStop.STOPPED  # it ended again
    answering = Observations(has_polled_ok=True, last_stop=LastStop.KILLED)
    assert last_stop_seen(answering, LastStop.RUNNING) is LastStop.RUNNING  # a stop begins
    first = Observations(poll_error_name=NO_OWNER, has_polled_ok=True)
    assert last_stop_seen(first, LastStop.RUNNING) is LastStop.RUNNING  # stopping: not known yet


def test_a_window_started_after_the_kill_does_not_say_no_limit_holds(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb a window started while the helper lay killed showed the
    banner "its limits stay in force" over "Not enforcing" and "No limits are
    enforced: the helper stopped unexpectedly": it never saw the helper's
    listing, so it knows nothing of what the kernel holds (walk26,
    shots/36-killed-newgui.png). Once a listing was seen, as before."""
    from tests.gui.bare_window import bare_window

    model, window = bare_window()
    qtbot.addWidget(window)
    killed = _gone(LastStop.KILLED, polled=False)
    window.set_status(killed)
    line = window.status_line
    assert (
        window.banner.title.text() == "The helper stopped unexpectedly — its limits stay in force"
    )
    assert (line.backend.text(), line.limits.text()) == (
        "Enforcing: not known", "Any limits it set stay in force: the helper stopped unexpectedly",
    )  # fmt: skip
    assert "No limit" not in line.limits.toolTip()
    model.apply_snapshot([app("exe:/x", "x", 1.0 * MB, 0.1 * MB)])  # seen: nothing was limited
    window.set_status(killed)
    assert (line.backend.text(), line.limits.text()) == (
        "Not enforcing", "No limits are enforced: the helper stopped unexpectedly",
    )  # fmt: skip


def test_the_tray_does_not_say_no_application_uses_the_network_while_the_helper_is_away() -> None:
    """Under Xvfb the tray of a window started after the kill listed "No
    applications using the network" while the demo applications moved
    megabytes a second (walk26, shots/38-killed-tray.png): it said what the
    window's list says in that state, "Reconnecting…"."""
    model = ApplicationsModel(IconProvider())
    tray = TrayController(model)
    tray.set_status(_gone(LastStop.KILLED, polled=False))
    tray.rebuild_menu()
    texts = [a.text() for a in tray.menu.actions()]
    assert "Reconnecting…" in texts, texts
    assert not any("No application" in text for text in texts), texts
    tray.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    tray.rebuild_menu()
    assert "No application is using the network" in [a.text() for a in tray.menu.actions()]


def test_a_used_up_quota_is_not_said_to_hold_with_the_helper_stopped(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb, the helper stopped (its limits off), Parcel Updates' pane read
    "Download: limit 100 KB/s set. Not enforced: the helper stopped. Quota: all
    5.00 MB used today: limited to 100 KB/s until the next day." — the last
    sentence as if it held (walk26, shots/52-stopped-tray.png). It says, as
    paused, that it holds once the helper runs again."""
    import dataclasses

    from tests.gui.bare_window import bare_window

    model, window = bare_window()
    qtbot.addWidget(window)
    window.resize(1100, 700)
    window.show()
    spent = dataclasses.replace(
        app("exe:/usr/bin/parcel", "Parcel", 100_000.0, 2_000.0, down_limit_bps=100_000),
        down_quota_bytes=5_000_000, down_quota_left_bytes=0, down_quota_period="day",
    )  # fmt: skip
    window.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    model.apply_snapshot([spent])
    window.select_application(spent.id)
    notes = window.detail.limit_notes
    qtbot.waitUntil(lambda: "limited to 100 KB/s until the next day." in notes.text())
    window.set_status(_gone(LastStop.STOPPED))
    qtbot.waitUntil(lambda: "Not enforced: the helper stopped" in notes.text())
    assert (
        "all 5.00 MB used today; limited to 100 KB/s until the next day once the helper runs again"
        in notes.text()
    ), notes.text()
