"""Alerts: the policy's grouping and rate limit (pure logic), and the whole
flow reaching a real notification server on a private session bus (a real
dbus-daemon --session), switched by the settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from chadthrottle.contract import ApplicationInfo
from chadthrottle.gui.alerts.flow import KNOWN_KEY, AlertsFlow
from chadthrottle.gui.alerts.notifier import DesktopNotifier
from chadthrottle.gui.alerts.policy import AlertKind, AlertPolicy, AlertSwitches, group_names
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.ipc.worker import Snapshot
from chadthrottle.gui.settings import Settings, load_settings, save_settings
from PySide6.QtCore import QObject, QSettings, Signal

from tests.support.notification_server import notification_server
from tests.support.requirements import require_program
from tests.support.waiting import eventually

ALL_ON = AlertSwitches(first_use=True)


def _app(app_id: str, moved: int = 1, problem: str = "") -> ApplicationInfo:
    return ApplicationInfo(app_id, app_id.rsplit("/", 1)[-1], "", (1000,), (1,), 0.0, 0.0, moved, 0, 1_000_000, 0,
                           down_limit_problem=problem)  # fmt: skip


class _Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_alerts_are_grouped_and_at_most_one_per_kind_a_minute() -> None:
    assert group_names(["a"]) == "a" and group_names(["a", "b", "c"]) == "a, b and c"
    assert group_names(list("abcde")) == "a, b, c and 2 more"
    clock = _Clock()
    policy = AlertPolicy(
        None, clock
    )  # nothing stored yet: the first snapshot is learnt, not announced
    policy.observe_applications([_app("exe:/usr/bin/a"), _app("exe:/usr/bin/idle", moved=0)])
    assert policy.due(ALL_ON) == [] and policy.known == ["exe:/usr/bin/a"]
    policy.observe_applications([_app(f"exe:/usr/bin/{n}") for n in "abcd"])
    (first,) = policy.due(ALL_ON)
    assert (
        first.kind is AlertKind.FIRST_USE
        and first.summary == "b, c and d use the network for the first time"
    )
    policy.observe_applications(
        [
            _app("exe:/usr/bin/e"),
            _app("exe:/usr/bin/f", problem="not met: measured 1.30 MB/s, above the limit for 5 s"),
        ]
    )
    (not_met,) = policy.due(ALL_ON)  # the new-application alert waits out its minute
    assert not_met.summary == "The limit of f is not being met"
    policy.observe_applications(
        [
            _app("exe:/usr/bin/f", problem="not met: measured 1.30 MB/s, above the limit for 6 s"),
            _app("exe:/usr/bin/h", problem="limits are paused"),
        ]
    )
    assert policy.due(ALL_ON) == []  # pausing is the user's own doing
    policy.observe_applications(
        [_app("exe:/usr/bin/f", problem="not met: measured 1.40 MB/s, above the limit for 6 s")]
    )
    clock.now += 60
    (later,) = policy.due(ALL_ON)  # still over: no second alert for f; the new ones come now
    assert later.summary == "e, f and h use the network for the first time"
    policy.observe_applications([_app("exe:/usr/bin/g")])
    clock.now += 60
    assert policy.due(AlertSwitches()) == []  # first use is off by default: dropped, not saved up
    spent = dataclasses.replace(_app("exe:/usr/bin/f"), down_quota_bytes=5_000_000, down_quota_left_bytes=0,
                                down_quota_period="day")  # fmt: skip
    policy.observe_applications(
        [spent, dataclasses.replace(spent, id="exe:/usr/bin/e", name="e", down_quota_left_bytes=1)]
    )
    assert [a.summary for a in policy.due(ALL_ON)] == [
        "f used up its data quota"
    ]  # e has a byte left
    policy.observe_helper(False, "the helper is not running")
    assert [a.kind for a in policy.due(ALL_ON)] == [AlertKind.HELPER_STOPPED]
    policy.observe_helper(False)
    assert policy.due(ALL_ON) == []  # told once until it is back


def test_alert_switches_are_stored_with_the_settings(tmp_path: Path) -> None:
    store = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    assert load_settings(store).alerts == AlertSwitches() and not AlertSwitches().first_use
    save_settings(
        store,
        dataclasses.replace(Settings(), alerts=AlertSwitches(first_use=True, limit_not_met=False)),
    )
    again = load_settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    assert again.alerts == AlertSwitches(first_use=True, limit_not_met=False)


class _Feed(QObject):
    """What the GUI's helper connection emits (gui/ipc/connection.py)."""

    applicationsUpdated = Signal(object)
    statusChanged = Signal(object)


def test_alerts_reach_a_real_notification_server(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    require_program("dbus-daemon")
    store = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    store.setValue(KNOWN_KEY, ["exe:/usr/bin/known"])
    switches, clock, feed = AlertSwitches(first_use=True), _Clock(), _Feed()
    with notification_server(tmp_path) as server:
        notifier = DesktopNotifier(server.address)
        flow = AlertsFlow(feed, store, lambda: switches, notifier, clock)
        try:
            feed.applicationsUpdated.emit(Snapshot((_app("exe:/usr/bin/known"), _app("exe:/usr/bin/curl"),
                                                    _app("exe:/usr/bin/wget"))))  # fmt: skip
            assert eventually(lambda: len(server.received) == 1, 5.0)
            first = server.received[0]
            assert (first.app_name, first.summary) == (
                "ChadThrottle",
                "curl and wget use the network for the first time",
            )
            assert first.hints["category"] == "network" and first.replaces_id == 0
            feed.applicationsUpdated.emit(Snapshot((_app("exe:/usr/bin/ssh"),)))
            assert notifier.flush() and len(server.received) == 1  # held: one of a kind a minute
            clock.now += 60
            flow.send_due()
            assert eventually(lambda: len(server.received) == 2, 5.0)
            assert server.received[1].summary == "ssh uses the network for the first time"
            assert server.received[1].replaces_id == first.id  # replaces the last one of its kind
            feed.statusChanged.emit(
                HelperStatus(HelperState.NOT_RUNNING, "the helper is not running")
            )
            assert eventually(lambda: len(server.received) == 3, 5.0)
            stopped = server.received[2]
            assert (
                stopped.summary == "The ChadThrottle helper stopped"
                and stopped.hints["urgency"] == 2
            )
            assert store.value(KNOWN_KEY) == ["exe:/usr/bin/known", "exe:/usr/bin/curl", "exe:/usr/bin/wget",
                                              "exe:/usr/bin/ssh"]  # fmt: skip
        finally:
            flow.close()


def test_a_limit_not_met_and_one_not_enforced_are_told_apart(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 13: the desktop alert says which it is, as the row does: enforced
    but measured above (not met), or a path the helper cannot hold (not
    enforced). Each is its own notification, and one setting switches both."""
    require_program("dbus-daemon")
    store = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    store.setValue(KNOWN_KEY, ["exe:/usr/bin/curl", "exe:/usr/bin/wget"])
    switches, feed = AlertSwitches(), _Feed()
    over = _app("exe:/usr/bin/curl", problem="not met: measured 1.30 MB/s, above the limit for 5 s")
    unshaped = _app(
        "exe:/usr/bin/wget", problem="traffic in namespace ct-x is not shaped: no IFB there"
    )
    with notification_server(tmp_path) as server:
        flow = AlertsFlow(feed, store, lambda: switches, DesktopNotifier(server.address), _Clock())
        try:
            feed.applicationsUpdated.emit(Snapshot((over, unshaped)))
            assert eventually(lambda: len(server.received) == 2, 5.0)
            by_summary = {n.summary: n.body for n in server.received}
            assert set(by_summary) == {
                "The limit of curl is not being met",
                "The limit of wget is not enforced",
            }
            assert (
                "enforced, but traffic was measured above"
                in by_summary["The limit of curl is not being met"]
            )
            assert "cannot hold it" in by_summary["The limit of wget is not enforced"]
            assert (
                server.received[0].replaces_id == server.received[1].replaces_id == 0
            )  # neither replaces the other
        finally:
            flow.close()
    switches = AlertSwitches(limit_not_met=False)
    assert not switches.wants(AlertKind.LIMIT_NOT_MET) and not switches.wants(
        AlertKind.LIMIT_NOT_ENFORCED
    )


def test_the_settings_dialog_switches_each_alert(qtbot) -> None:  # type: ignore[no-untyped-def]
    from chadthrottle.gui.views.settings_dialog import ALERT_LABELS, SettingsDialog

    dialog = SettingsDialog(Settings(), start_at_login=False, has_tray=False)
    qtbot.addWidget(dialog)
    assert [box.text() for box in dialog.alerts.values()] == list(ALERT_LABELS.values())
    assert [box.isChecked() for box in dialog.alerts.values()] == [
        False,
        True,
        True,
        True,
    ]  # first use: off
    with qtbot.waitSignal(dialog.settingsChanged) as changed:
        dialog.alerts["first_use"].click()
    assert changed.args[0].alerts == AlertSwitches(first_use=True)
    with qtbot.waitSignal(dialog.settingsChanged) as changed:
        dialog.alerts["helper_stopped"].click()
    assert changed.args[0].alerts == AlertSwitches(first_use=True, helper_stopped=False)


def test_the_settings_dialog_names_itself_once_and_its_tray_message_apart_from_alerts(
    qtbot,
) -> None:  # type: ignore[no-untyped-def]
    """Seen on screen under openbox: the title bar read "ChadThrottle settings —
    ChadThrottle", and "Show notifications" sat above "Alerts (desktop
    notifications)" though it only switches the tray's message on closing."""
    from chadthrottle.gui.views.settings_dialog import SettingsDialog
    from PySide6.QtWidgets import QApplication

    QApplication.setApplicationDisplayName("ChadThrottle")  # as gui/app.py does
    dialog = SettingsDialog(Settings(), start_at_login=False, has_tray=True)
    qtbot.addWidget(dialog)
    assert "ChadThrottle" not in dialog.windowTitle()  # Qt adds " — ChadThrottle"
    assert "notification" not in dialog.notifications.text().lower()
    assert "tray" in dialog.notifications.text()


def test_a_quota_alert_says_which_way_and_until_when() -> None:
    """Under Xvfb (real helper, a notification server on a session bus) the
    alert read "Parcel Updates used up its data quota" / "What the rule says
    happens at the quota is in force until the period ends.": which way, what
    happens and until when left to guess (walk26). One application's alert
    says them; several share the general words."""
    clock = _Clock()
    policy = AlertPolicy([], clock)
    spent = dataclasses.replace(_app("exe:/usr/bin/f"), down_quota_bytes=5_000_000, down_quota_left_bytes=0,
                                down_quota_period="day")  # fmt: skip
    policy.observe_applications([spent])
    (alert,) = policy.due(AlertSwitches())
    assert alert.summary == "f used up its data quota"
    assert alert.body == (
        "Its download is now blocked or slowed down, as the quota says, until the next day."
    )
    weekly = dataclasses.replace(spent, id="exe:/usr/bin/e", name="e", down_quota_bytes=0,
                                 up_quota_bytes=1, up_quota_left_bytes=0, up_quota_period="week")  # fmt: skip
    other = dataclasses.replace(spent, id="exe:/usr/bin/g", name="g")
    policy.observe_applications([spent, weekly, other])
    clock.now += 60
    (both,) = policy.due(AlertSwitches())
    assert both.summary == "e and g used up their data quotas"
    assert "until its quota's period ends" in both.body
