"""Alerts: the policy's grouping and rate limit (pure logic), and the whole
flow reaching a real notification server on a private session bus (a real
dbus-daemon --session), switched by the settings."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

from chadthrottle.contract import ApplicationInfo, RuleInfo
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


def test_a_quota_alert_says_blocked_or_slowed_as_its_rule_does() -> None:
    """Under Xvfb (walk28: real helper, a notification server on a session
    bus) a quota set to "block it" when used up alerted "Its download is now
    blocked or slowed down, as the quota says, until the next day." while the
    window said Blocked. The listed rule says which; with no listed rule (an
    older helper) both stay possible."""
    spent = _spent()
    for then_bps, body in (
        (0, "Its download is now blocked until the next day."),
        (100_000, "Its download is now slowed down to its quota's rate until the next day."),
    ):
        rule = RuleInfo("exe:/usr/bin/f", "down", 0, 0, 1000, True, quota_bytes=5_000_000,
                        quota_period="day", quota_then_bps=then_bps)  # fmt: skip
        policy = AlertPolicy([], _Clock())
        policy.observe_applications([spent], [rule])
        (alert,) = policy.due(AlertSwitches())
        assert alert.body == body
    # Another application's rule, or another budget's, says nothing of this one.
    stranger = RuleInfo("exe:/usr/bin/g", "down", 0, 0, 1000, True, quota_bytes=5_000_000,
                        quota_period="day")  # fmt: skip
    older = RuleInfo("exe:/usr/bin/f", "down", 0, 0, 1000, True, quota_bytes=4_000_000,
                     quota_period="day")  # fmt: skip
    policy = AlertPolicy([], _Clock())
    policy.observe_applications([spent], [stranger, older])
    (alert,) = policy.due(AlertSwitches())
    assert (
        alert.body
        == "Its download is now blocked or slowed down, as the quota says, until the next day."
    )


def _spent(budget: int = 5_000_000, left: int = 0) -> ApplicationInfo:
    return dataclasses.replace(_app("exe:/usr/bin/f"), down_quota_bytes=budget, down_quota_left_bytes=left,
                               down_quota_period="day")  # fmt: skip


def test_a_used_up_quota_is_alerted_once_a_period_across_starts_of_the_window(
    qtbot, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """walk26: each start of the GUI alerted again for a quota already used up
    in this period (three starts, three alerts). Told once per (application,
    direction, period) across starts; a new period, or another quota, again.
    The period begins at the rule's reset minute (ListRules), here 06:00."""
    require_program("dbus-daemon")
    settings = tmp_path / "settings.ini"
    rule = RuleInfo("exe:/usr/bin/f", "down", 0, 0, 1000, True, quota_bytes=5_000_000,
                    quota_period="day", quota_reset_minute=6 * 60)  # fmt: skip
    at = [datetime(2027, 1, 6, 5, 0).astimezone()]  # before 06:00: yesterday's period

    def start(snapshot: Snapshot, notifier: DesktopNotifier) -> None:
        """One start of the window: its flow sees the helper's first poll."""
        feed = _Feed()
        flow = AlertsFlow(feed, QSettings(str(settings), QSettings.Format.IniFormat),
                          AlertSwitches, notifier, _Clock(), wall=lambda: at[0])  # fmt: skip
        try:
            feed.applicationsUpdated.emit(snapshot)
            assert notifier.flush()
        finally:
            flow.close()

    with notification_server(tmp_path) as server:
        used_up = Snapshot((_spent(),), rules=(rule,))
        for _ in range(3):  # three starts of the window, the quota used up all along
            start(used_up, DesktopNotifier(server.address))
        assert [n.summary for n in server.received] == ["f used up its data quota"]
        at[0] = datetime(2027, 1, 6, 7, 0).astimezone()  # 06:00 passed: a new period
        start(used_up, DesktopNotifier(server.address))
        start(used_up, DesktopNotifier(server.address))
        assert len(server.received) == 2
        bigger = Snapshot(
            (_spent(budget=9_000_000),), rules=(dataclasses.replace(rule, quota_bytes=9_000_000),)
        )
        start(bigger, DesktopNotifier(server.address))  # another quota, spent too
        assert len(server.received) == 3
        start(Snapshot((_spent(left=1),), rules=(rule,)), DesktopNotifier(server.address))
        start(used_up, DesktopNotifier(server.address))  # set again, spent again
        assert len(server.received) == 4


def test_a_bad_file_of_quotas_told_is_ignored_and_written_anew(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The file is only a convenience: not of its form, it is ignored (the
    quota is alerted again), never a traceback; old periods are pruned."""
    from chadthrottle.gui.alerts import told

    path = tmp_path / told.FILE_NAME
    now = datetime(2027, 1, 6, 12, 0).astimezone()
    old = told.Told("exe:/usr/bin/old", "up", "day", 1, int(now.timestamp()) - 2 * 86400)
    for bad in (b"\xff{", b"[]", b'{"format": 1, "told": [{"app": 1}]}', b'{"format": 2, "told": []}',
                b'{"format": 1, "told": [{"app": "a", "direction": "sideways", "period": "day", "budget": 1, "began": 0}]}'):  # fmt: skip
        path.write_bytes(bad)
        assert told.load(path, now.timestamp()) == set()
        policy = AlertPolicy([], _Clock(), told=told.load(path, now.timestamp()), wall=lambda: now)
        policy.observe_applications([_spent()])
        assert [a.summary for a in policy.due(AlertSwitches())] == ["f used up its data quota"]
        told.save(path, policy.told | {old}, now.timestamp())
        assert {t.app_id for t in told.load(path, now.timestamp())} == {"exe:/usr/bin/f"}
    path.write_bytes(b" " * (told.MAX_BYTES + 1))
    assert told.load(path, now.timestamp()) == set()
