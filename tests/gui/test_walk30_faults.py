"""What gui30's walk (Xvfb, openbox, trayer, the real helper; 1366x768 at 2x)
found wrong, each pinned here."""

from __future__ import annotations

from chadthrottle.contract import RuleInfo
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.views.main_window import MainWindow
from chadthrottle.helper_run_state import LastStop

from tests.gui.test_quota_row import DROPBOX, USER, quota_applications, window  # noqa: F401

STOPPED = "The helper stopped — its limits are off."


def test_a_used_up_quotas_rate_is_not_said_as_a_limit_set_while_the_helper_is_away(
    window: MainWindow,  # noqa: F811
) -> None:
    """The helper stopped, Harbor Browser's used-up upload quota (then 100 KB/s)
    read "Upload: limit 100 KB/s set. Not enforced: the helper stopped. Quota:
    all 1.00 MB used today; limited to 100 KB/s until the next day once the
    helper runs again." in the pane: a limit the user never set. It reads as
    the quota's, as it does paused (gui19)."""
    model = window._model
    model.set_rules([RuleInfo(DROPBOX, "up", 0, 0, USER, False, quota_bytes=2 * 10**9,
                              quota_period="week", quota_then_bps=100_000, quota_left_bytes=0)])  # fmt: skip
    model.apply_snapshot(quota_applications())  # the quota's rate listed, as the helper does
    assert window.select_application(DROPBOX)
    window.set_status(HelperStatus(HelperState.NOT_RUNNING, STOPPED, last_stop=LastStop.STOPPED))
    window.detail.refresh()
    notes = window.detail.limit_notes
    text = notes.toolTip() or notes.text()
    up = next(line for line in text.split("\n") if line.startswith("Upload"))
    said = "Upload quota: all 2.00 GB used this week; limited to 100 KB/s until next week once the helper runs again."
    assert up == said, up
    assert "limit 100 KB/s set" not in text, text


def test_a_row_with_a_quota_line_draws_no_slider_stub_at_the_least_width(
    qtbot,
    monkeypatch,
    window: MainWindow,  # noqa: F811
) -> None:
    """At the window's least (588 px at 1x under Xvfb) the limit columns show the
    value alone (slider_fits), but Fetcher's download, whose cell has a quota
    line under it ("4.98 GB left today"), drew a 20 px slider stub: the cell
    measured the slider's room by the quota line's width. Every slider a cell
    paints has the room slider_fits asks for."""
    import chadthrottle.gui.views.delegates as delegates
    from chadthrottle.gui.models.columns import Column
    from chadthrottle.gui.widgets.limit_slider import SLIDER_SHOWN_LEAST

    drawn: list[tuple[int, int]] = []
    real = delegates.paint_rate_slider

    def spy(painter, slider, *args, **kwargs):  # type: ignore[no-untyped-def]
        drawn.append((slider.rect.width(), slider.rect.height()))
        return real(painter, slider, *args, **kwargs)

    monkeypatch.setattr(delegates, "paint_rate_slider", spy)
    table = window.table
    qtbot.waitUntil(
        lambda: window.resize(1, 1) or window.size() == window.minimumSize(), timeout=2000
    )
    qtbot.wait(50)
    room = table.header().sectionSize(Column.DOWN_LIMIT)
    drawn.clear()
    for delegate in {table.itemDelegateForColumn(c) for c in (Column.DOWN_LIMIT, Column.UP_LIMIT)}:
        if hasattr(delegate, "forget_likenesses"):
            delegate.forget_likenesses()
    table.viewport().grab()  # every cell painted now
    quota_cell = table.visualRect(table.proxy_index(DROPBOX, Column.DOWN_LIMIT))
    assert quota_cell.height() > 0
    assert all(width >= SLIDER_SHOWN_LEAST for width, _ in drawn), (room, drawn)


def test_the_rates_line_says_no_limit_of_a_quota_not_held_while_the_helper_is_away(
    window: MainWindow,  # noqa: F811
) -> None:
    """gui30, seen and left: the helper stopped, the greyed rates line still
    read "up … (limit 100 KB/s, avg …)" of the used-up quota's rate, which
    nothing holds until the helper runs again (the note under it says so)."""
    model = window._model
    model.set_rules([RuleInfo(DROPBOX, "up", 0, 0, USER, False, quota_bytes=2 * 10**9,
                              quota_period="week", quota_then_bps=100_000, quota_left_bytes=0)])  # fmt: skip
    model.apply_snapshot(quota_applications())
    assert window.select_application(DROPBOX)
    window.detail.refresh()
    assert (
        "(limit 100 KB/s" in window.detail.rates_line.label.toolTip() + window.detail.summary.text()
    )
    window.set_status(HelperStatus(HelperState.NOT_RUNNING, STOPPED, last_stop=LastStop.STOPPED))
    window.detail.refresh()
    line = window.detail.summary.text()
    assert "limit 100 KB/s" not in line and "avg" not in line, line


def test_a_used_up_quotas_rate_is_no_limit_in_its_cell_while_the_helper_is_away(
    window: MainWindow,  # noqa: F811
) -> None:
    """gui31, seen and left: the helper stopped, the Up limit cell of a used-up
    quota read "100 KB/s ⚠ not enforced", the quota's rate, as a limit the user
    set. It reads none over "quota not enforced"; with a limit of one's own
    beside the quota, that limit, not enforced."""
    from chadthrottle.contract import Direction
    from chadthrottle.gui.models.columns import Column, Role
    from chadthrottle.gui.models.limit_truth import LimitState

    model = window._model

    def up_cell() -> LimitState:
        state = window.table.proxy_index(DROPBOX, Column.UP_LIMIT).data(Role.LIMIT_STATE)
        assert isinstance(state, LimitState)
        return state

    quota = {"quota_bytes": 2 * 10**9, "quota_period": "week", "quota_then_bps": 100_000,
             "quota_left_bytes": 0}  # fmt: skip
    model.set_rules([RuleInfo(DROPBOX, "up", 0, 0, USER, False, **quota)])  # type: ignore[arg-type]
    model.apply_snapshot(quota_applications())
    assert up_cell().rate_bps == 100_000  # the helper running: the quota holds it there
    control = window.limit_control(DROPBOX, Direction.UP)  # the open control (a selected row)
    assert control is not None and control.field.text() == "100 KB/s", control.field.text()
    window.set_status(HelperStatus(HelperState.NOT_RUNNING, STOPPED, last_stop=LastStop.STOPPED))
    state = up_cell()
    assert state.rate_bps == 0 and state.note_lines[0] == "quota not enforced", state
    assert control.field.text() in ("", "none"), control.field.text()
    model.set_rules([RuleInfo(DROPBOX, "up", 250_000, 0, USER, False, **quota)])  # type: ignore[arg-type]
    state = up_cell()
    assert state.rate_bps == 250_000 and state.note_lines == ("not enforced",), state
