"""The rules dialog: what it shows, what it asks for (and what it refuses
itself, sending nothing), and that the row's menu opens it. Real widgets
offscreen; the helper's side: tests/e2e/test_schedules.py (schedules) and
the block and quota e2e tests."""

from __future__ import annotations

from pathlib import Path

from chadthrottle.contract import ADMIN_OWNER, Direction, ScheduleInfo
from chadthrottle.gui.rules_flow import SCHEDULES_KEY
from chadthrottle.gui.views.rules_dialog import AppRules, RulesDialog
from chadthrottle.units import UnitSystem
from PySide6.QtCore import QTime

from tests.gui.sample_data import MB
from tests.gui.test_settings_dialog import start

FIREFOX = "app:org.mozilla.firefox"
WORK = ScheduleInfo(
    FIREFOX,
    ADMIN_OWNER,
    "mon-fri 09:00-17:00",
    "mon-fri",
    "09:00",
    "17:00",
    MB,
    0,
    False,
    False,
    True,
)


def _dialog(qtbot, **rules: object) -> RulesDialog:  # type: ignore[no-untyped-def]
    dialog = RulesDialog(AppRules(FIREFOX, "Firefox", **rules), UnitSystem.BYTES_DECIMAL)  # type: ignore[arg-type]
    qtbot.addWidget(dialog)
    return dialog


def test_it_shows_the_rule_and_asks_only_for_what_changed(qtbot) -> None:  # type: ignore[no-untyped-def]
    dialog = _dialog(qtbot, limits={Direction.DOWN: 5 * MB}, schedules=(WORK,), blocked={Direction.UP: True},
                     quotas={Direction.DOWN: (5_000_000_000, 1_200_000_000, "day")})  # fmt: skip
    assert (
        dialog.limit_edits[Direction.DOWN].text() == "5.00 MB/s"
        and dialog.limit_edits[Direction.UP].text() == ""
    )
    assert (
        dialog.schedule_list.item(0).text()
        == "mon-fri 09:00-17:00  ·  down 1.00 MB/s  ·  active now"
    )
    assert (
        dialog.block_boxes[Direction.UP].isChecked()
        and not dialog.block_boxes[Direction.DOWN].isChecked()
    )
    assert (
        dialog.quota_state.text()
        == "Download: 1.20 GB of 5.00 GB left today, counted since it was set or the day began."
    )
    assert (
        "counts from zero" in dialog.clear_quota.toolTip() and "keeps" in dialog.set_quota.toolTip()
    )
    dialog.show_rules(AppRules(FIREFOX, "Firefox", quotas={Direction.UP: (2 * 10**9, 0, "week")}))
    assert dialog.quota_state.text() == "Upload: all 2.00 GB used this week."
    assert dialog.scheduled_note.text() == ""
    dialog.show_rules(AppRules(FIREFOX, "Firefox", limits={Direction.DOWN: 5 * MB}, schedules=(WORK,),
                               scheduled={Direction.DOWN: WORK.name}))  # fmt: skip
    assert dialog.scheduled_note.text() == ("The schedule mon-fri 09:00-17:00 sets the download limit now; "
                                            "the one here applies outside it.")  # fmt: skip
    asked: list[tuple[object, ...]] = []
    dialog.limitRequested.connect(lambda *args: asked.append(args))
    dialog.limit_edits[Direction.UP].setText("2M")
    dialog.apply_limits.click()
    assert asked == [(FIREFOX, "up", 2 * MB)]  # download unchanged: not asked again
    dialog.limit_edits[Direction.DOWN].setText("")
    dialog.limit_edits[Direction.UP].setText("fast")
    dialog.apply_limits.click()
    assert (
        len(asked) == 1 and "Upload limit: not a rate" in dialog.message.text()
    )  # refused here, nothing sent
    dialog.limit_edits[Direction.UP].setText("")
    dialog.apply_limits.click()
    assert asked[1:] == [(FIREFOX, "down", None)]  # emptied: the limit is removed


def test_schedules_blocks_and_quotas_are_asked_for_and_bad_input_is_not(qtbot) -> None:  # type: ignore[no-untyped-def]
    dialog = _dialog(qtbot, schedules=(WORK,))
    asked: list[tuple[object, ...]] = []
    for signal in (dialog.scheduleAdded, dialog.scheduleRemoved, dialog.blockRequested, dialog.quotaRequested,
                   dialog.quotaCleared):  # fmt: skip
        signal.connect(lambda *args, name=signal: asked.append(args))
    dialog.schedule_from.setTime(QTime(22, 0))
    dialog.schedule_to.setTime(QTime(6, 0))
    dialog.schedule_rates[Direction.UP].setText("100K")
    dialog.add_schedule.click()
    assert asked.pop() == (FIREFOX, "mon,tue,wed,thu,fri", "22:00", "06:00", 0, 100_000, "")
    dialog.schedule_blocks[Direction.DOWN].setChecked(True)
    assert not dialog.schedule_rates[Direction.DOWN].isEnabled()
    dialog.schedule_rates[Direction.UP].setText("")
    dialog.add_schedule.click()
    assert asked.pop() == (FIREFOX, "mon,tue,wed,thu,fri", "22:00", "06:00", 0, 0, "down")
    dialog.schedule_to.setTime(QTime(22, 0))
    dialog.add_schedule.click()
    assert "same time" in dialog.message.text()
    for box in dialog.day_boxes:
        box.setChecked(False)
    dialog.schedule_to.setTime(QTime(23, 0))
    dialog.add_schedule.click()
    assert "at least one day" in dialog.message.text() and asked == []
    dialog.schedule_list.setCurrentRow(0)
    dialog.remove_schedule.click()
    assert asked.pop() == (FIREFOX, "mon-fri 09:00-17:00")
    dialog.block_boxes[Direction.DOWN].click()
    assert asked.pop() == (FIREFOX, "down", True)
    dialog.quota_size.setText("5GB")
    dialog.quota_then.setCurrentIndex(1)  # limit it to...
    dialog.set_quota.click()
    assert "give the rate" in dialog.message.text() and asked == []
    dialog.quota_then_rate.setText("100K")
    dialog.quota_period.setCurrentIndex(2)  # month
    dialog.quota_direction.setCurrentIndex(2)  # each direction
    dialog.set_quota.click()
    assert asked.pop() == (FIREFOX, "both", 5_000_000_000, "month", 100_000)
    both = (5_000_000_000, 5_000_000_000, "month")
    dialog.show_rules(
        AppRules(
            FIREFOX, "Firefox", schedules=(WORK,), quotas={Direction.DOWN: both, Direction.UP: both}
        )
    )  # the helper's answer
    dialog.clear_quota.click()
    assert asked.pop() == (FIREFOX, "both")


def test_a_limit_a_schedule_sets_says_so() -> None:
    from chadthrottle.contract import ApplicationInfo
    from chadthrottle.gui.models.limit_truth import describe_limit, limit_state

    info = ApplicationInfo(FIREFOX, "Firefox", "", (0,), (1,), 0.0, 0.0, 0, 0, MB, 0, down_limit_owner=ADMIN_OWNER,
                           down_schedule="mon-fri 09:00-17:00")  # fmt: skip
    text = describe_limit(
        limit_state(info, Direction.DOWN, 0), Direction.DOWN, UnitSystem.BYTES_DECIMAL
    )
    assert text == ("Download: limited to 1.00 MB/s. Set by the schedule mon-fri 09:00-17:00 while it runs; "
                    "a limit set here applies outside it.")  # fmt: skip


def test_an_outranked_rule_cannot_be_changed_here(qtbot) -> None:  # type: ignore[no-untyped-def]
    dialog = _dialog(qtbot, read_only="An administrator's limit applies")
    assert not dialog.apply_limits.isEnabled() and not dialog.add_schedule.isEnabled()
    assert (
        not dialog.block_boxes[Direction.DOWN].isEnabled()
        and "administrator" in dialog.message.text()
    )


def test_the_row_menu_opens_the_rules_of_its_application(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    controller = start(qtbot, tmp_path, with_tray=False)
    menu = controller.window.row_menu(FIREFOX)
    (rules,) = [action for action in menu.actions() if action.objectName() == "edit-rules"]
    assert rules.text() == "Rules…"
    rules.trigger()
    dialog = controller.rules.dialog
    assert dialog is not None and dialog.windowTitle() == "Rules of Firefox"
    qtbot.addWidget(dialog)
    # No helper in this test: the dialog says changes cannot be made now.
    assert not dialog.add_schedule.isEnabled()
    # What ListSchedules answers is shown, the viewer's own schedules of this application only.
    other = ScheduleInfo(
        "exe:/usr/bin/curl",
        ADMIN_OWNER,
        "daily 01:00-02:00",
        "daily",
        "01:00",
        "02:00",
        MB,
        0,
        False,
        False,
        False,
    )
    mine = (
        WORK
        if controller.rules._owner == ADMIN_OWNER
        else ScheduleInfo(**{**WORK.__dict__, "owner": controller.rules._owner})
    )
    controller.connection.callFinished.emit(SCHEDULES_KEY, [mine, other], "", "")
    assert [
        dialog.schedule_list.item(i).text().split("  ·  ")[0]
        for i in range(dialog.schedule_list.count())
    ] == ["mon-fri 09:00-17:00"]
    controller.shutdown()


def test_a_poll_leaves_what_the_user_is_typing_and_selecting(qtbot) -> None:  # type: ignore[no-untyped-def]
    rules = AppRules(FIREFOX, "Firefox", limits={Direction.DOWN: 5 * MB}, schedules=(WORK,))
    dialog = _dialog(qtbot, limits=rules.limits, schedules=rules.schedules)
    edit = dialog.limit_edits[Direction.DOWN]
    edit.clear()
    qtbot.keyClicks(edit, "3M")
    dialog.schedule_list.setCurrentRow(0)
    dialog.show_rules(rules)  # the next poll, a second later
    assert (
        edit.text() == "3M"
        and dialog.schedule_list.currentRow() == 0
        and dialog.remove_schedule.isEnabled()
    )
    dialog.apply_limits.click()
    dialog.show_rules(AppRules(FIREFOX, "Firefox", limits={Direction.DOWN: 3 * MB}, schedules=()))
    assert (
        edit.text() == "3.00 MB/s" and dialog.schedule_list.count() == 0
    )  # applied: it follows the helper again


def test_applied_limits_and_a_priority_get_an_outcome_not_asking_for_good(
    qtbot, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb, Apply limits said "Asking the helper…" and kept saying it
    after the limit was in force (the row and the status line had it): the
    limits go by the sliders' path, whose answer never reached the dialog."""
    from chadthrottle.gui.priority_flow import PRIORITY_KEY

    from tests.gui.worker_reports import inject_observations

    controller = start(qtbot, tmp_path, with_tray=False)
    inject_observations(controller.connection, has_polled_ok=True)  # connected: may limit
    dialog = controller.rules.open(FIREFOX)
    qtbot.addWidget(dialog)
    assert dialog.apply_limits.isEnabled()
    dialog.apply_limits.click()  # nothing changed: nothing asked, and said so
    assert dialog.message.text() == "No change to apply."
    dialog.limit_edits[Direction.UP].setText("2M")
    dialog.apply_limits.click()  # the worker is not running here: refused at once
    qtbot.waitUntil(lambda: dialog.message.text().startswith("Not changed:"), timeout=1000)
    # a priority's answer (the dialog's own or the row menu's for this application)
    controller.connection.callFinished.emit(PRIORITY_KEY + FIREFOX, "app", "", "")
    assert dialog.message.text() == "Done."
    controller.shutdown()


def test_nothing_to_remove_is_greyed_and_a_new_quota_says_where_it_counts_from(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb the dialog offered 'Remove' beside an empty schedule list and
    'Remove quota' under 'No quota.'; and a 2 GB daily quota set on an
    application whose row read 58 GB today said '1.99 GB of 2 GB left today',
    with nothing saying a new quota counts from when it is set."""
    dialog = _dialog(qtbot)
    assert not dialog.remove_schedule.isEnabled()
    assert not dialog.clear_quota.isEnabled()
    assert "counts from when it is set" in dialog.quota_state.text()
    dialog.show_rules(
        AppRules(FIREFOX, "Firefox", quotas={Direction.UP: (2 * 10**9, 10**9, "day")})
    )
    dialog.quota_direction.setCurrentIndex(dialog.quota_direction.findData("up"))
    assert dialog.clear_quota.isEnabled()
    dialog.quota_direction.setCurrentIndex(dialog.quota_direction.findData("down"))
    assert not dialog.clear_quota.isEnabled()


def _quotas_used_up(qtbot, tmp_path: Path, problem: str = ""):  # type: ignore[no-untyped-def]
    """Firefox's rules dialog where both its quotas are used up: the upload's
    holds it to 100 KB/s a day, the download's blocks it for the week; problem:
    why nothing is enforced ("" when all is)."""
    import dataclasses

    from tests.gui.sample_data import sample_applications

    controller = start(qtbot, tmp_path, with_tray=False)
    apps = [
        dataclasses.replace(app, up_limit_bps=100_000, up_quota_bytes=10**6, up_quota_left_bytes=0,
                            up_quota_period="day", down_quota_bytes=5 * 10**9, down_quota_left_bytes=0,
                            down_quota_period="week", down_limit_bps=0, down_blocked=True)
        if app.id == FIREFOX else app
        for app in sample_applications()
    ]  # fmt: skip
    controller.model.apply_snapshot(apps)
    if problem:
        controller.model.set_enforcement_problem(problem)
    controller.window.rulesRequested.emit(FIREFOX)
    dialog = controller.rules.dialog
    assert dialog is not None
    qtbot.addWidget(dialog)
    return controller, dialog


def test_a_used_up_quota_is_not_shown_as_a_limit_of_ones_own(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb, Harbor Browser's upload quota (1 MB a day, then 100 KB/s) was
    used up and its rules dialog read "Upload limit: 100 KB/s", a limit the user
    never set (emptying it changed nothing). The field shows the plain limit (none
    here) and a line says what the quota holds the direction to, and until when."""
    controller, dialog = _quotas_used_up(qtbot, tmp_path)
    assert dialog.limit_edits[Direction.UP].text() == ""
    assert dialog.limit_edits[Direction.DOWN].text() == ""
    # the rate in one piece: under Xvfb in binary units the line broke "97.7" / "KiB/s"
    # Both directions have a quota here: the choice stays the first. With one, it is chosen.
    assert dialog.quota_direction.currentData() == "down"
    only_up = _dialog(qtbot, quotas={Direction.UP: (10**6, 0, "day")})
    assert only_up.quota_direction.currentData() == "up" and only_up.clear_quota.isEnabled()
    assert dialog.scheduled_note.text() == (
        "The download quota is used up: the download is blocked until next week. "
        "The upload quota is used up: the upload is limited to 100\u00a0KB/s until the next day; "
        "a limit here holds too where it is lower."
    )
    controller.shutdown()


def test_an_unenforced_used_up_quota_is_not_said_to_hold(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With limits paused (or the helper away) a used-up quota holds nothing, and the
    row says "not enforced"; the rules dialog still read "the upload is held to
    100 KB/s" and "the download is blocked until next week" (review7)."""
    controller, dialog = _quotas_used_up(qtbot, tmp_path, problem="limits are paused")
    note = dialog.scheduled_note.text()
    assert "limited to" not in note and "blocked until" not in note, note
    controller.shutdown()


def test_its_notes_are_not_squeezed_on_a_small_screen_at_2x() -> None:
    """Under Xvfb at 2x on 1366x768 the Limits tab's wrapped lines were drawn into each
    other: Qt gives a new window at most two thirds of the screen's height, so the
    dialog got its least (318 of 346 px) and "Empty: no limit..." and the used-up
    quota's line were cut. Each wrapped line now has the height its text needs."""
    import json
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    for scale in ("1", "2"):
        environment = {
            **os.environ,
            "QT_QPA_PLATFORM": "offscreen:size=1366x768",
            "QT_SCALE_FACTOR": scale,
        }
        done = subprocess.run([sys.executable, "-m", "tests.gui.dialog_fit_probe"], cwd=root, env=environment,
                              capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        shown = json.loads(done.stdout.strip().splitlines()[-1])
        assert len(shown["labels"]) == 2, shown
        for label in shown["labels"]:
            assert label["height"] >= label["needs"], (scale, shown)


def test_the_dialog_says_when_nothing_set_here_is_enforced(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb at 2x, with limits paused, the dialog read "Upload limit: 1.00
    MB/s" as if it held and said nothing of the pause. Now a line above the tabs
    says so, as soon as it is paused, and goes when resumed. The helper gone
    while it is open: said at once too (no poll comes to refresh it), nothing can
    be asked, and once it is back the reason goes and the buttons work again."""
    from tests.gui.worker_reports import inject_observations, inject_paused

    controller = start(qtbot, tmp_path, with_tray=False)
    inject_observations(controller.connection, has_polled_ok=True)  # connected: may limit
    inject_paused(controller.connection, False)
    controller.window.rulesRequested.emit(FIREFOX)
    dialog = controller.rules.dialog
    assert dialog is not None
    qtbot.addWidget(dialog)
    note = dialog.enforcement_note
    assert not note.isVisible() and dialog.apply_limits.isEnabled()
    inject_paused(controller.connection, True)
    qtbot.waitUntil(lambda: note.isVisible(), timeout=1000)
    assert note.text().startswith("Limits are paused: nothing set here is enforced")
    assert dialog.apply_limits.isEnabled()  # kept: the rules may still be changed
    inject_paused(controller.connection, False)
    qtbot.waitUntil(lambda: not note.isVisible(), timeout=1000)
    inject_observations(controller.connection, poll_error_name="org.freedesktop.DBus.Error.NoReply")
    qtbot.waitUntil(lambda: not dialog.apply_limits.isEnabled(), timeout=1000)
    assert note.isVisible() and note.text() == (
        "Nothing set here is enforced or can be changed now: the helper is not running."
    ), note.text()
    # said once (gui31b: the message line said it again, "The helper stopped — its limits are off.")
    assert dialog.message.text() == "", dialog.message.text()
    inject_observations(controller.connection, poll_error_name=None)  # answered again
    qtbot.waitUntil(lambda: dialog.apply_limits.isEnabled(), timeout=1000)
    assert not note.isVisible() and dialog.message.text() == ""
    controller.shutdown()


def test_enter_presses_the_button_of_the_tab_shown_and_escape_closes(qtbot) -> None:  # type: ignore[no-untyped-def]
    """From the keyboard: Enter after typing presses the tab's own button (Apply
    limits, Add schedule, Set quota). Qt made Apply limits the dialog's default
    for every tab: hidden on the other two, Enter there did nothing. Enter in the
    schedules' list adds nothing; Escape closes the dialog."""
    from PySide6.QtCore import Qt

    dialog = _dialog(qtbot, schedules=(WORK,))
    dialog.show()
    qtbot.waitExposed(dialog)
    asked: list[tuple[object, ...]] = []
    for signal in (dialog.limitRequested, dialog.scheduleAdded, dialog.quotaRequested):
        signal.connect(lambda *args: asked.append(args))
    dialog.tabs.setCurrentIndex(2)
    qtbot.keyClicks(dialog.quota_size, "5GB")
    qtbot.keyClick(dialog.quota_size, Qt.Key.Key_Return)
    assert asked == [(FIREFOX, "down", 5 * 10**9, "day", 0)], asked
    dialog.tabs.setCurrentIndex(1)
    dialog.schedule_list.setCurrentRow(0)
    qtbot.keyClick(dialog.schedule_list, Qt.Key.Key_Return)
    assert len(asked) == 1  # nothing added, nothing removed
    rate = dialog.schedule_rates[Direction.DOWN]
    qtbot.keyClicks(rate, "1M")
    qtbot.keyClick(rate, Qt.Key.Key_Return)
    assert len(asked) == 2 and asked[1][:4] == (FIREFOX, "mon,tue,wed,thu,fri", "09:00", "17:00")
    dialog.tabs.setCurrentIndex(0)
    edit = dialog.limit_edits[Direction.DOWN]
    qtbot.keyClicks(edit, "2M")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert asked[2] == (FIREFOX, "down", 2 * MB), asked
    qtbot.keyClick(edit, Qt.Key.Key_Escape)
    assert not dialog.isVisible()
