"""A quota is seen on the row, not only in a tooltip (issue 15): a small line
under the limit ("1.24 GB left today", "quota used up this week"), in the
painted rows and in the real control of the selected row, and in the detail
pane; readable in the dark theme. Real widgets, offscreen."""

from __future__ import annotations

import dataclasses

import pytest
from chadthrottle.contract import ApplicationInfo, Direction
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.theme import Theme, apply_theme, contrast
from chadthrottle.gui.views.main_window import MainWindow
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QColor, QPalette
from PySide6.QtWidgets import QApplication

from tests.gui.bare_window import bare_window
from tests.gui.sample_data import sample_applications

USER = 1000
DROPBOX, STEAM = "app:com.dropbox.Client", "app:com.valvesoftware.Steam"


def quota_applications(down_left: int = 1_240_000_000) -> list[ApplicationInfo]:
    """Dropbox: 1.24 GB of 5 GB left today down; 2 GB a week up, used up and
    throttled to 100 KB/s. Steam: 50 GB a month down, used up and blocked."""
    apps = {a.id: a for a in sample_applications()}
    apps[DROPBOX] = dataclasses.replace(
        apps[DROPBOX], down_limit_owner=USER, up_limit_owner=USER, down_quota_bytes=5 * 10**9,
        down_quota_left_bytes=down_left, down_quota_period="day", up_limit_bps=100_000, up_quota_bytes=2 * 10**9,
        up_quota_left_bytes=0, up_quota_period="week")  # fmt: skip
    apps[STEAM] = dataclasses.replace(
        apps[STEAM], down_limit_bps=0, down_blocked=True, down_limit_owner=USER, down_quota_bytes=50 * 10**9,
        down_quota_left_bytes=0, down_quota_period="month")  # fmt: skip
    return list(apps.values())


@pytest.fixture
def window(qtbot) -> MainWindow:  # type: ignore[no-untyped-def]
    model, win = bare_window()
    model.set_viewer_uid(USER)
    qtbot.addWidget(win)
    win.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    model.apply_snapshot(quota_applications())
    win.show()
    qtbot.waitExposed(win)
    return win


def _text_pixels_in_strip(win: MainWindow, app_id: str, column: Column, height: int) -> int:
    """Pixels near the text colour in the bottom `height` pixels of a painted cell."""
    rect = win.table.visualRect(win.table.proxy_index(app_id, column))
    image = win.table.viewport().grab(rect).toImage()
    text = win.table.palette().color(QPalette.ColorRole.Text)
    near = 0
    for y in range(image.height() - height, image.height()):
        for x in range(image.width()):
            pixel = image.pixelColor(x, y)
            near += (
                abs(pixel.red() - text.red())
                + abs(pixel.green() - text.green())
                + abs(pixel.blue() - text.blue())
                < 200
            )
    return near


def test_the_row_shows_what_a_quota_has_left_and_that_it_is_used_up(
    qtbot, window: MainWindow
) -> None:  # type: ignore[no-untyped-def]
    model = window._model
    assert model.limit_state(DROPBOX, Direction.DOWN).quota_lines == (
        "1.24 GB left today",
        "1.24 GB left",
    )
    assert model.limit_state(DROPBOX, Direction.UP).quota_lines[0] == "quota used up this week"
    assert model.limit_state(STEAM, Direction.DOWN).quota_lines[0] == "quota used up this month"
    assert window.select_application(DROPBOX)
    control = window.limit_control(DROPBOX, Direction.DOWN)
    assert control is not None
    qtbot.waitUntil(
        lambda: control.quota.isVisible() and control.quota.text() == "1.24 GB left today"
    )
    label, field = control.quota, control.field
    assert (
        label.geometry().bottom() < control.height()
        and field.geometry().bottom() < label.geometry().top()
    )
    assert label.width() >= label.fontMetrics().horizontalAdvance(label.text())
    # the painted row (not the selected one): Steam's spent quota in the text colour, under "Blocked"
    line_height = label.fontMetrics().height()
    assert _text_pixels_in_strip(window, STEAM, Column.DOWN_LIMIT, line_height) > 20
    assert (
        _text_pixels_in_strip(window, STEAM, Column.UP_LIMIT, line_height) == 0
    )  # no quota: no line
    # a poll where only the use changed reaches the row and its open control
    model.apply_snapshot(quota_applications(down_left=900_000_000))
    assert label.text() == "900 MB left today"
    # the detail pane says it in full; the tooltips too
    notes = window.detail.limit_notes.text()
    # from when it counts, where the use is shown (not only in the rules dialog): the
    # row's Today column counts the whole day, a quota set since counts from zero
    assert (
        "Download quota: 900 MB of 5.00 GB left today, counted since it was set or the day began."
        in notes
    )
    down_tip = window.table.proxy_index(DROPBOX, Column.DOWN_LIMIT).data(
        Qt.ItemDataRole.ToolTipRole
    )
    assert "900 MB of 5.00 GB left today, counted since it was set or the day began." in down_tip
    assert "Upload quota: all 2.00 GB used this week: limited to 100 KB/s until next week." in notes
    tooltip = window.table.proxy_index(STEAM, Column.DOWN_LIMIT).data(Qt.ItemDataRole.ToolTipRole)
    assert "Quota: all 50.0 GB used this month: blocked until next month." in tooltip
    model.apply_snapshot(sample_applications())  # the quotas removed: the line goes
    assert not label.isVisible() and model.limit_state(DROPBOX, Direction.DOWN).quota_lines == ()


def test_the_quota_line_is_readable_in_the_dark_theme_on_the_selection_and_the_rows(
    qtbot, window: MainWindow
) -> None:  # type: ignore[no-untyped-def]
    application = QApplication.instance()
    assert isinstance(application, QApplication)
    apply_theme(application, Theme.DARK)
    try:
        window.follow_palette()  # as the controller does when a theme is chosen
        window.select_application(DROPBOX)
        control = window.limit_control(DROPBOX, Direction.UP)
        assert control is not None
        qtbot.waitUntil(lambda: control.quota.isVisible())
        label = control.quota
        rows = QApplication.palette()  # the rows' colours; the table keeps its own selection tint
        backgrounds = [
            window.table.palette().color(QPalette.ColorRole.Highlight),
            rows.color(QPalette.ColorRole.Base),
            rows.color(QPalette.ColorRole.AlternateBase),
        ]
        assert max(b.lightness() for b in backgrounds) < 128, [
            b.name() for b in backgrounds
        ]  # dark, selection too
        colour = _text_colour(label)  # used up: as the row's text
        assert all(contrast(colour, b) >= 4.5 for b in backgrounds), (
            colour.name(),
            [b.name() for b in backgrounds],
        )
        control.set_quota_lines(("1.24 GB left today",), spent=False)
        colour = _text_colour(label)  # what is left: grey, as the other notes in the cell
        assert all(contrast(colour, b) >= 3.0 for b in backgrounds), (
            colour.name(),
            [b.name() for b in backgrounds],
        )
    finally:
        apply_theme(application, Theme.SYSTEM)
        window.follow_palette()


def _text_colour(label) -> QColor:  # type: ignore[no-untyped-def]
    """The colour the label's text is drawn in (its style sheet included)."""
    label.ensurePolished()
    return label.palette().color(label.foregroundRole())


def _ink_right(image, top: int, bottom: int) -> int:  # type: ignore[no-untyped-def]
    """The right-most x, in rows top..bottom-1, whose pixel differs from its
    row's background (the cell's last pixel column): where the text there ends."""
    right = -1
    for y in range(top, bottom):
        background = image.pixelColor(image.width() - 1, y)
        for x in range(image.width() - 2, right, -1):
            pixel = image.pixelColor(x, y)
            if (
                abs(pixel.red() - background.red())
                + abs(pixel.green() - background.green())
                + abs(pixel.blue() - background.blue())
                > 120
            ):
                right = x
                break
    return right


def test_the_quota_line_ends_where_the_limit_above_it_ends(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    """The line under "100 KB/s" is right-aligned with it, not 6 px further right
    (2 px from the column's edge, against the next column): in the painted row
    and in the open control of the selected row."""
    line_height = window.table.fontMetrics().height()  # at least the small line's
    rect = window.table.visualRect(window.table.proxy_index(DROPBOX, Column.UP_LIMIT))
    image = window.table.viewport().grab(rect).toImage()
    small = round(line_height * 0.85)
    value_right = _ink_right(image, 0, image.height() - small - 1)
    quota_right = _ink_right(image, image.height() - small, image.height())
    assert value_right > 0 and quota_right > 0
    assert abs(quota_right - value_right) <= 1, (value_right, quota_right, image.width())
    window.select_application(DROPBOX)
    control = window.limit_control(DROPBOX, Direction.UP)
    assert control is not None
    qtbot.waitUntil(lambda: control.quota.isVisible())
    control.field.clearFocus()
    grabbed = control.grab().toImage()
    label = control.quota.geometry()
    value_right = _ink_right(grabbed, 0, label.top())
    quota_right = _ink_right(grabbed, label.top(), grabbed.height())
    assert abs(quota_right - value_right) <= 1, (value_right, quota_right, grabbed.width())


def test_a_blocked_direction_reads_blocked_in_the_open_control_too(
    qtbot, window: MainWindow
) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb a quota used up that blocks the download: the other rows
    read "Blocked", the selected (or pointed at) row's open control "none"
    beside a slider at its right end, as if nothing held it."""
    from chadthrottle.gui.widgets.rate_width import BLOCKED_TEXT

    assert window.select_application(STEAM)
    control = window.limit_control(STEAM, Direction.DOWN)
    assert control is not None
    qtbot.waitUntil(control.isVisible)
    assert control.field.text() == BLOCKED_TEXT
    assert not control.slider.isVisible() and control.field.isReadOnly()
    assert control.field.property("limited")  # bold in the accent, as the painted rows
    # where the painted rows have it: at the right edge, not in the middle of the cell
    assert control.field.geometry().right() >= control.width() - 8, control.field.geometry()
    up = window.limit_control(STEAM, Direction.UP)  # the other direction is not blocked
    assert up is not None and up.slider.isVisible() and up.field.text() != BLOCKED_TEXT
    unblocked = [
        dataclasses.replace(a, down_blocked=False, down_quota_bytes=0) if a.id == STEAM else a
        for a in quota_applications()
    ]
    window._model.apply_snapshot(unblocked)  # unblocked (from the menu): a limit can be set again
    assert control.field.text() != BLOCKED_TEXT
    assert control.slider.isVisible() and not control.field.isReadOnly()


def test_a_quota_alone_says_it_is_not_enforced_while_the_helper_is_away(
    window: MainWindow,
) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb, the helper stopped: a download quota with no limit beside it
    still read "14.2 MB of 20 MB left today" in the detail pane, as if counted
    and enforced, while the limited rows said "not enforced"."""
    assert window.select_application(DROPBOX)  # a download quota, no download limit
    window.set_status(HelperStatus(HelperState.NOT_RUNNING, "The helper is restarting."))
    notes = window.detail.limit_notes.toolTip() or window.detail.limit_notes.text()
    down = next(line for line in notes.split("\n") if line.startswith("Download quota:"))
    assert "left today" in down and "Not enforced: the helper is not running" in down, down
    tooltip = window.table.proxy_index(DROPBOX, Column.DOWN_LIMIT).data(Qt.ItemDataRole.ToolTipRole)
    assert "Not enforced: the helper is not running" in tooltip, tooltip
    window.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))  # back: no such words
    notes = window.detail.limit_notes.toolTip() or window.detail.limit_notes.text()
    assert "Not enforced" not in notes, notes


def test_sizes_follow_the_units_the_rates_are_shown_in(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    """With binary units chosen, a quota read "1.24 GB left today" beside rates in
    "KiB/s" (format_size was decimal whatever the setting): the row's line, the
    open control, the detail pane, the tooltip and the rules dialog say the
    quota in the units the window shows, bits included."""
    from chadthrottle.gui.views.rules_dialog import AppRules, RulesDialog
    from chadthrottle.units import UnitSystem

    model = window._model
    window.set_units(UnitSystem.BYTES_BINARY)
    assert model.limit_state(DROPBOX, Direction.DOWN).quota_lines == (
        "1.15 GiB left today",
        "1.15 GiB left",
    )
    assert window.select_application(DROPBOX)
    control = window.limit_control(DROPBOX, Direction.DOWN)
    assert control is not None
    qtbot.waitUntil(lambda: control.quota.text() == "1.15 GiB left today")
    notes = window.detail.limit_notes.text()
    assert "Download quota: 1.15 GiB of 4.66 GiB left today" in notes, notes
    assert "Upload quota: all 1.86 GiB used this week: limited to 97.7 KiB/s" in notes, notes
    tooltip = window.table.proxy_index(DROPBOX, Column.DOWN_LIMIT).data(Qt.ItemDataRole.ToolTipRole)
    assert "1.15 GiB of 4.66 GiB left today" in tooltip
    window.set_units(UnitSystem.BITS_DECIMAL)
    qtbot.waitUntil(lambda: control.quota.text() == "9.92 Gbit left today")
    rules = AppRules(DROPBOX, "Dropbox", quotas={Direction.DOWN: (5 * 10**9, 1_240_000_000, "day")})
    dialog = RulesDialog(rules, UnitSystem.BYTES_BINARY, window)
    qtbot.addWidget(dialog)
    assert dialog.quota_state.text().startswith("Download: 1.15 GiB of 4.66 GiB left today")


def test_a_paused_quotas_line_says_what_it_holds_to_from_the_rules(window: MainWindow) -> None:
    """Under Xvfb, limits paused, Harbor Browser's used-up upload quota (then 100
    KB/s) read "all 1.00 MB used today: blocked until the next day": paused,
    the helper lists no rate, and no rate was read as a block. What the quota
    holds the direction to is its rule's (ListRules); without it, not said."""
    from chadthrottle.contract import RuleInfo

    model = window._model
    apps = [dataclasses.replace(a, up_limit_bps=0, up_limit_owner=0) if a.id == DROPBOX else a
            for a in quota_applications()]  # fmt: skip
    model.apply_snapshot(apps)  # as the helper lists it paused: nothing held
    window.set_limits_paused(True)
    assert window.select_application(DROPBOX)
    notes = window.detail.limit_notes
    text = notes.toolTip() or notes.text()  # whole in the tooltip when cut to its lines
    assert (
        "Upload quota: all 2.00 GB used this week; not enforced while limits are paused." in text
    ), text
    assert "blocked" not in text
    model.set_rules([RuleInfo(DROPBOX, "up", 0, 0, USER, False, quota_bytes=2 * 10**9,
                              quota_period="week", quota_then_bps=100_000, quota_left_bytes=0)])  # fmt: skip
    window.detail.refresh()
    text = notes.toolTip() or notes.text()
    # short and plain (gui19): what it holds to once they resume, said once
    said = "Upload quota: all 2.00 GB used this week; limited to 100 KB/s until next week once limits resume."
    assert said in text and "blocked" not in text and "Not enforced" not in text, text


@pytest.mark.parametrize("away", ["paused", "helper away"])
def test_a_block_nothing_enforces_says_so_under_its_value_and_in_the_pane(
    qtbot, window: MainWindow, away: str
) -> None:  # type: ignore[no-untyped-def]
    """Paused under Xvfb at 2x, a used-up quota's cell read "Blocked" over
    "quota used up today" while its traffic flowed, and the detail pane began
    "Upload: blocked: no data passes, open connections included." before
    "Not enforced: limits are paused". Nothing enforcing it, the line under
    the value says "not enforced" in a quota's place, and the pane says the
    block is set and does not hold; enforced again, the quota's line is back."""
    if away == "paused":
        window.set_limits_paused(True)
    else:
        window.set_status(HelperStatus(HelperState.NOT_RUNNING, "The helper is restarting."))
    painted = window._model.limit_state(STEAM, Direction.DOWN)  # what the delegate paints
    assert painted.note_lines == ("not enforced",) and painted.note_is_problem
    assert window.select_application(STEAM)
    control = window.limit_control(STEAM, Direction.DOWN)
    assert control is not None
    qtbot.waitUntil(lambda: control.quota.text() == "not enforced")
    assert control.quota.property("problem") is True
    notes = window.detail.limit_notes.toolTip() or window.detail.limit_notes.text()
    down = next(line for line in notes.split("\n") if line.startswith("Download:"))
    assert down.startswith("Download: block set.") and "no data passes" not in down, down
    assert "Not enforced: " in down and down.endswith(": traffic flows."), down
    if away == "paused":
        window.set_limits_paused(False)
    else:
        window.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    qtbot.waitUntil(lambda: control.quota.text() == "quota used up this month")
    assert (
        window._model.limit_state(STEAM, Direction.DOWN).note_lines[0] == "quota used up this month"
    )
    notes = window.detail.limit_notes.toolTip() or window.detail.limit_notes.text()
    assert "Not enforced" not in notes and "block set" not in notes, notes


def test_clear_limits_is_not_offered_for_a_used_up_quotas_rate_alone(window: MainWindow) -> None:
    """Under Xvfb (real helper) Parcel Updates' download, held to 100 KB/s by
    its used-up quota alone, had "Clear limits" enabled in its row menu;
    choosing it changed nothing (the rate is the quota's, no limit of one's
    own: walk26, shots/55-2x-clear-quota-rate.png). It is offered for a limit
    of one's own, also beside such a quota."""
    from chadthrottle.contract import RuleInfo

    quota = RuleInfo(DROPBOX, "up", 0, 0, USER, True, quota_bytes=2 * 10**9, quota_period="week",
                     quota_then_bps=100_000, quota_left_bytes=0)  # fmt: skip
    model = window._model
    model.set_rules([quota])
    clear = window.row_menu(DROPBOX).findChild(QAction, "clear-limits")
    assert clear is not None and not clear.isEnabled()
    model.set_rules([dataclasses.replace(quota, rate_bps=50_000)])  # one's own limit too
    clear = window.row_menu(DROPBOX).findChild(QAction, "clear-limits")
    assert clear is not None and clear.isEnabled()
