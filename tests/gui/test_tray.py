"""Tray: menu content from the model, quick limits, icon and tooltip by state."""

from __future__ import annotations

import dataclasses

from chadthrottle.contract import Direction
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.icons import IconProvider
from chadthrottle.gui.tray.icons import TrayIconKind
from chadthrottle.gui.tray.quick_limits import busiest_applications
from chadthrottle.gui.tray.tray import BLOCK_LABEL, TrayController, action_name
from PySide6.QtGui import QAction

from tests.gui.sample_data import MB, app, sample_applications
from tests.gui.tray_actions import pause_action, quick_limit_action

CONNECTED = HelperStatus(HelperState.CONNECTED, "", True, True)


def make_tray() -> tuple[ApplicationsModel, TrayController]:
    model = ApplicationsModel(IconProvider())
    tray = TrayController(model)
    tray.set_status(CONNECTED)
    return model, tray


def menu_titles(tray: TrayController) -> list[str]:
    tray.rebuild_menu()
    return [a.text().split("\t")[0] for a in tray.menu.actions() if not a.isSeparator()]


def test_menu_lists_busiest_applications_then_fixed_entries() -> None:
    model, tray = make_tray()
    model.apply_snapshot(sample_applications())
    titles = menu_titles(tray)
    assert titles[:3] == ["Firefox (limited)", "Steam (limited)", "syncthing"]
    assert titles[-3:] == ["Pause all limits", "Open ChadThrottle", "Quit"]
    pause = next(a for a in tray.menu.actions() if a.objectName() == "pause-all")
    assert not pause.isEnabled() and pause.toolTip()  # not known yet whether the helper can pause


def test_a_blocked_application_says_so_in_the_menu() -> None:
    """It said ' *' for a limit or a block alike (seen in the tray screenshots)."""
    model, tray = make_tray()
    model.apply_snapshot([dataclasses.replace(a, up_blocked=True) if a.name == "Steam" else a
                          for a in sample_applications()])  # fmt: skip
    assert menu_titles(tray)[:2] == ["Firefox (limited)", "Steam (upload blocked)"]  # gui22


def test_pause_item_toggles_through_pause_requested(qtbot) -> None:
    model, tray = make_tray()
    model.apply_snapshot(sample_applications())
    tray.set_limits_paused(False)
    pause = pause_action(tray)
    assert pause is not None and pause.isEnabled() and pause.isCheckable() and not pause.isChecked()
    with qtbot.waitSignal(tray.pauseRequested) as asked:
        pause.trigger()
    assert asked.args == [True]
    tray.set_limits_paused(True)  # the helper confirmed
    assert tray.icon.toolTip().endswith("no limit is enforced: limits are paused")
    assert tray.kind is not TrayIconKind.LIMITS_ACTIVE  # paused limits are not in force
    resume = pause_action(tray)
    assert resume is not None and resume.isChecked()
    with qtbot.waitSignal(tray.pauseRequested) as asked:
        resume.trigger()
    assert asked.args == [False]
    tray.set_status(HelperStatus(HelperState.NOT_RUNNING, "gone"))
    gone = pause_action(tray)
    assert gone is not None and not gone.isEnabled()
    tray.set_status(CONNECTED)
    tray.set_limits_paused(None)  # a helper without SetLimitsPaused
    unsupported = pause_action(tray)
    assert (
        unsupported is not None
        and not unsupported.isEnabled()
        and "cannot pause" in unsupported.toolTip()
    )


def test_menu_is_rebuilt_on_show_with_current_rates() -> None:
    model, tray = make_tray()
    model.apply_snapshot(sample_applications())
    model.apply_snapshot([app("exe:/usr/bin/wget", "wget", 90 * MB), *sample_applications()[1:]])
    tray.menu.aboutToShow.emit()
    first = tray.menu.actions()[0]
    assert first.text().startswith("wget") and "90.0 MB/s" in first.text()


def test_an_entry_says_each_direction_s_rate_not_their_sum() -> None:
    """Under Xvfb the tray read "Media Server 8.41 MB/s" for a server sending
    8.37 MB/s and receiving 38 KB/s: one figure, the sum, with no direction,
    where the window says down and up. Now as the window's totals say them."""
    model, tray = make_tray()
    model.apply_snapshot([app("app:media", "Media Server", 38_000.0, 8_370_000.0)])
    tray.menu.aboutToShow.emit()
    text = tray.menu.actions()[0].text()
    assert text.endswith("\t▼ 38.0 KB/s  ▲ 8.37 MB/s"), text


def test_quick_limits_and_block(qtbot) -> None:
    model, tray = make_tray()
    model.apply_snapshot(sample_applications())
    firefox = "app:org.mozilla.firefox"
    tray.rebuild_menu()
    labels = [
        a.objectName().rsplit(":", 1)[1]
        for a in tray.menu.findChildren(QAction)
        if a.objectName().startswith(f"quick:{firefox}:down:")
    ]
    assert labels == ["None", "100 KB/s", "1 MB/s", "5 MB/s", "Custom…", BLOCK_LABEL]
    checked = quick_limit_action(tray, firefox, Direction.DOWN, "5 MB/s")
    assert checked is not None and checked.isChecked()  # Firefox is limited to 5 MB/s
    block = quick_limit_action(
        tray, firefox, Direction.UP, BLOCK_LABEL
    )  # a real block, not a smallest limit
    assert block is not None and block.text() == "Block" and not block.isChecked()
    with qtbot.waitSignal(tray.blockRequested) as blocker:
        block.trigger()
    assert blocker.args == [firefox, "up", True]
    model.apply_snapshot([dataclasses.replace(a, up_blocked=True, up_limit_bps=0) if a.id == firefox else a
                          for a in sample_applications()])  # fmt: skip
    unblock = quick_limit_action(tray, firefox, Direction.UP, BLOCK_LABEL)
    assert unblock is not None and unblock.text() == "Blocked" and unblock.isChecked()
    assert not quick_limit_action(
        tray, firefox, Direction.UP, "1 MB/s"
    ).isEnabled()  # no rate while blocked
    with qtbot.waitSignal(tray.blockRequested) as blocker:
        unblock.trigger()
    assert blocker.args == [firefox, "up", False]
    unlimited = quick_limit_action(tray, firefox, "down", "None")
    with qtbot.waitSignal(tray.limitRequested) as blocker:
        unlimited.trigger()
    assert blocker.args == [firefox, "down", None]


def test_quick_limits_disabled_without_authorization() -> None:
    model, tray = make_tray()
    model.apply_snapshot(sample_applications())
    tray.set_status(HelperStatus(HelperState.NOT_AUTHORIZED, "no", True, False))
    action = quick_limit_action(tray, "app:org.mozilla.firefox", Direction.DOWN, "1 MB/s")
    assert action is not None and not action.isEnabled()


def test_icon_and_tooltip_follow_state() -> None:
    model, tray = make_tray()
    assert tray.kind is TrayIconKind.IDLE
    model.apply_snapshot([app("exe:/x", "x", 12.4 * MB, 1.1 * MB)])
    assert tray.kind is TrayIconKind.TRAFFIC
    assert tray.icon.toolTip() == "down 12.4 MB/s, up 1.10 MB/s, 0 limits"
    model.apply_snapshot([app("exe:/x", "x", 12.4 * MB, 1.1 * MB, down_limit_bps=20 * MB)])
    assert tray.kind is TrayIconKind.LIMITS_ACTIVE
    assert tray.icon.toolTip().endswith("1 limit")
    tray.set_status(HelperStatus(HelperState.NOT_RUNNING, "gone"))
    assert tray.kind is TrayIconKind.PROBLEM


def test_busiest_keeps_quiet_limited_apps() -> None:
    apps = [app(f"exe:/a{i}", f"a{i}", 1000.0 * (20 - i)) for i in range(12)]
    apps.append(dataclasses.replace(app("exe:/quiet", "quiet"), up_limit_bps=5 * MB))
    chosen = [a.name for a in busiest_applications(apps, count=8)]
    assert chosen[:8] == [f"a{i}" for i in range(8)] and "quiet" in chosen


def test_a_directions_quick_limits_are_one_choice_drawn_as_radio_items() -> None:
    """As in the row menu: one of Unlimited, the rates, Custom…; Block stays a switch."""
    model, tray = make_tray()
    model.apply_snapshot(sample_applications())
    firefox = "app:org.mozilla.firefox"
    tray.rebuild_menu()  # once: the actions of one menu
    actions = {a.objectName(): a for a in tray.menu.findChildren(QAction)}
    groups = []
    for direction in Direction:
        rates = [actions[action_name(firefox, direction, label)]
                 for label in ("None", "100 KB/s", "1 MB/s", "5 MB/s", "Custom…")]  # fmt: skip
        group = rates[0].actionGroup()
        assert group is not None and group.isExclusive()
        assert all(action.actionGroup() is group for action in rates)
        assert actions[action_name(firefox, direction, BLOCK_LABEL)].actionGroup() is None
        groups.append(group)
    assert groups[0] is not groups[1]


def test_a_limit_that_is_no_quick_limit_is_said_at_custom() -> None:
    """Seen on screen: a 2 MB/s limit checked "Custom…" and did not say its value."""
    model, tray = make_tray()
    model.apply_snapshot([app("app:stream", "Stream Box", down_bps=2e6, down_limit_bps=2_000_000)])
    tray.rebuild_menu()
    custom = quick_limit_action(tray, "app:stream", Direction.DOWN, "Custom…")
    assert custom is not None and custom.isChecked() and custom.text() == "Custom: 2.00 MB/s…"
    other = quick_limit_action(tray, "app:stream", Direction.UP, "Custom…")
    assert other is not None and not other.isChecked() and other.text() == "Custom…"


def test_a_long_name_is_cut_and_an_ampersand_is_shown() -> None:
    """Under Xvfb one long application name made the tray menu as wide as the
    screen; "AT&T" would have read "ATT", its T a mnemonic."""
    from chadthrottle.gui.tray.tray import MENU_NAME_CHARS

    model, tray = make_tray()
    long_name = "Extraordinarily Long Application Name For Testing Purposes Deluxe Edition"
    model.apply_snapshot(
        [
            app("app:long", long_name, down_bps=9 * MB),
            app("app:att", "AT&T Connect", down_bps=8 * MB),
        ]
    )
    titles = menu_titles(tray)
    assert titles[0].endswith("…") and long_name.startswith(titles[0][:-1])
    metrics = tray.menu.fontMetrics()
    assert metrics.horizontalAdvance(titles[0]) <= metrics.averageCharWidth() * MENU_NAME_CHARS
    assert titles[1] == "AT&&T Connect"  # shown as "AT&T Connect"
    entry = tray.menu.actions()[0]
    assert entry.toolTip() == long_name  # the whole name on pointing


def test_the_menu_is_as_wide_as_its_entries_and_long_names_fit_the_screen() -> None:
    """Under Xvfb at 2x on 1366x768 the menu was 82% of the screen wide: a gap as
    wide as the rates stood between the names and the rates (QMenu counts the
    text after the tab and Fusion counted it again), and a 36-character name
    took a third of the screen. Now as wide as its widest name and rates, and
    with long names no wider than leaves its submenu room beside it (the names
    cut to fit)."""
    model, tray = make_tray()
    model.apply_snapshot(sample_applications())
    tray.rebuild_menu()
    metrics = tray.menu.fontMetrics()
    entries = [a.text().split("\t") for a in tray.menu.actions() if "\t" in a.text()]
    widest_name = max(metrics.horizontalAdvance(name) for name, _ in entries)
    widest_rates = max(metrics.horizontalAdvance(rates) for _, rates in entries)
    # the check column, margins, the room between the columns and the submenu arrow
    assert tray.menu.sizeHint().width() <= widest_name + widest_rates + 5 * metrics.height(), (
        tray.menu.sizeHint().width(), widest_name, widest_rates)  # fmt: skip

    long_names = [app(f"app:long{i}", f"Extraordinarily Long Application Name Number {i} Deluxe",
                      down_bps=(9 - i) * MB, down_limit_bps=MB) for i in range(5)]  # fmt: skip
    model.apply_snapshot(long_names)
    tray.rebuild_menu()
    screen = tray.menu.screen().availableGeometry().width()
    beside = max(m.sizeHint().width() for m in tray.menu.findChildren(type(tray.menu)))
    assert tray.menu.sizeHint().width() + beside <= screen, (
        tray.menu.sizeHint().width(),
        beside,
        screen,
    )
    first = tray.menu.actions()[0]
    assert (
        first.text().split("\t")[0].endswith("… (limited)")
        and first.toolTip() == long_names[0].name
    )


def test_a_rate_a_used_up_quota_holds_is_said_in_the_quick_limits() -> None:
    """Under Xvfb, Harbor Browser's upload quota was used up and held at 100 KB/s: its
    quick limits checked "100 KB/s" under "Upload limit" as if the user had chosen it,
    and "Unlimited" then changed nothing, with nothing saying why."""
    model, tray = make_tray()
    firefox = "app:org.mozilla.firefox"
    model.apply_snapshot([dataclasses.replace(a, up_limit_bps=100_000, up_quota_bytes=10**6, up_quota_left_bytes=0,
                                              up_quota_period="day") if a.id == firefox else a
                          for a in sample_applications()])  # fmt: skip
    tray.rebuild_menu()
    submenu = next(
        m for m in tray.menu.findChildren(type(tray.menu)) if m.objectName() == f"quick:{firefox}"
    )
    sections = [a.text() for a in submenu.actions() if a.isSeparator() and a.text()]
    assert sections[:2] == ["Download limit", "Upload limit (quota used up)"], sections
    held = quick_limit_action(tray, firefox, Direction.UP, "100 KB/s")
    assert held is not None and held.isChecked()
    unlimited = quick_limit_action(tray, firefox, Direction.UP, "None")
    assert unlimited is not None
    assert "all 1.00 MB used today: limited to 100 KB/s until the next day" in unlimited.toolTip()


def test_an_icon_does_not_read_idle_for_a_poll_whose_total_is_being_measured() -> None:
    """The last limit cleared from a busy download: for one poll the helper lists
    that direction measuring and the total is not known ("…"); counted as 0 the
    icon turned idle for that poll and busy again at the next."""
    model, tray = make_tray()
    model.apply_snapshot([app("exe:/x", "x", 12.4 * MB, 0.0, down_limit_bps=20 * MB)])
    assert tray.kind is TrayIconKind.LIMITS_ACTIVE
    model.apply_snapshot([dataclasses.replace(app("exe:/x", "x", 0.0, 0.0), down_measuring=True)])
    assert tray.kind is TrayIconKind.TRAFFIC
    assert tray.icon.toolTip().startswith("down …")
    model.apply_snapshot([app("exe:/x", "x", 0.0, 0.0)])  # known again, and quiet
    assert tray.kind is TrayIconKind.IDLE
