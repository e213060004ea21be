"""A rate the helper lists as measuring (API 7: its rules just changed, no
rate until its next tick) reads "…" and is counted nowhere for that poll: the
▼▲ totals and the overall row read "…" in that direction (a sum left without it
was never true: gui10), and its sparkline and the row's own history skip the poll.
Before, the GUI guessed from a block alone (gui9, 94f9216) and the totals
counted the rate from before the change. Real widgets (the main window, the
tray menu) on the sample applications."""

from __future__ import annotations

import dataclasses
import math

import pytest
from chadthrottle.contract import Direction
from chadthrottle.gui.models.columns import Column, Role
from chadthrottle.gui.tray.tray import TrayController
from chadthrottle.gui.views.main_window import MainWindow
from chadthrottle.units import format_rate

from tests.gui.sample_data import KB, MB, sample_applications

FIREFOX = "app:org.mozilla.firefox"
STEAM = "app:com.valvesoftware.Steam"


def _with(app_id: str, **changes: object) -> list:  # type: ignore[type-arg]
    return [
        dataclasses.replace(a, **changes) if a.id == app_id else a  # type: ignore[arg-type]
        for a in sample_applications()
    ]


def _sums(apps: list, leave_out: str = "") -> tuple[float, float]:  # type: ignore[type-arg]
    down = sum(a.down_bps for a in apps if a.id != leave_out)
    up = sum(a.up_bps for a in apps)
    return down, up


def test_a_measuring_direction_reads_measuring_and_is_left_out_of_every_total(
    qtbot, window: MainWindow
) -> None:  # type: ignore[no-untyped-def]
    """Firefox's download just limited: the helper lists it measuring. Its
    rate here is the one from before (4.98 MB/s, as an API 6 helper listed it
    until its tick): the signal, not the number, says what is known."""
    model, units = window._model, window._model.units
    row_history = window.table.proxy_index(FIREFOX, Column.NAME).data(Role.HISTORY)
    polls_before = len(row_history)
    overall_before = len(window.table.overall.history)
    listing = _with(FIREFOX, down_measuring=True)
    model.apply_snapshot(listing)
    down = window.table.proxy_index(FIREFOX, Column.DOWN)
    assert down.data() == "…", down.data()
    assert "measuring" in down.data(0x03)  # the tooltip (ToolTipRole) says why
    assert window.table.proxy_index(FIREFOX, Column.UP).data() == "210 KB/s"  # not restarted
    _total_down, total_up = _sums(listing, leave_out=FIREFOX)
    assert model.totals() == (None, total_up)  # not known: "…", not the others' sum
    expected = f"▼ …   ▲ {format_rate(total_up, units)}"
    assert window.header.totals.text() == expected, window.header.totals.text()
    assert window.table.overall.overall_text(Column.DOWN) == "…"
    assert window.table.overall.overall_text(Column.UP) == format_rate(total_up, units)
    assert len(window.table.overall.history) == overall_before  # the poll skipped
    # the row's history has the poll, its download not measured (NaN: a gap in that
    # plot alone), its upload as listed: until gui31 the whole poll was left out, a gap
    # in the upload's graph for a limit set on the download
    assert len(row_history) == polls_before + 1
    down_then, up_then = row_history.recent(1)[0]
    assert math.isnan(down_then) and up_then == pytest.approx(210 * KB), (down_then, up_then)
    # its mean beside a limit and its sparkline take the NaN in their stride
    assert row_history.mean_since(5, 1, 0.0) is not None
    assert not math.isnan(row_history.mean_since(5, 0, 0.0) or 0.0)
    window.table.viewport().grab()  # its sparkline painted with the NaN (carried over)
    assert window.select_application(FIREFOX)  # the detail pane's rates line
    assert window.detail.summary.text().startswith("Firefox: down … (limit 5.00 MB/s, avg")
    tray = TrayController(model)  # and the tray menu's entry and totals
    tray.set_status(window.status)
    tray.rebuild_menu()
    (entry,) = [a.text() for a in tray.menu.actions() if a.text().startswith("Firefox")]
    assert entry.endswith("\t▼ …  ▲ 210 KB/s"), entry
    tray.shutdown()
    # the tick after: the rate measured since the change, counted again
    listing = _with(FIREFOX, down_bps=1.2 * MB)
    model.apply_snapshot(listing)
    assert window.table.proxy_index(FIREFOX, Column.DOWN).data() == format_rate(1.2 * MB, units)
    assert model.totals() == _sums(listing)
    assert len(row_history) == polls_before + 2


def test_the_gui_takes_the_helpers_word_not_a_guess_from_a_block(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    """A block with no measuring word (a poll after the helper's tick, where
    the rate measured since the block is listed) reads as listed, and a
    measuring word without a block (an unblock, a limit) reads "…": the GUI
    guessed from blocks alone, and a listing that repeated a rate after one
    read "…" though the helper had measured it."""
    model = window._model
    model.apply_snapshot(_with(FIREFOX, down_blocked=True, down_bps=0.0, down_measuring=True))
    assert window.table.proxy_index(FIREFOX, Column.DOWN).data() == "…"
    model.apply_snapshot(_with(FIREFOX, down_blocked=True, down_bps=1_700.0))  # the tick after
    assert window.table.proxy_index(FIREFOX, Column.DOWN).data() == "1.70 KB/s"
    model.apply_snapshot(_with(FIREFOX, down_blocked=True, down_bps=1_700.0))  # the same, measured
    assert window.table.proxy_index(FIREFOX, Column.DOWN).data() == "1.70 KB/s"
    model.apply_snapshot(_with(STEAM, up_measuring=True, up_bps=0.0))  # Steam's upload unblocked
    assert window.table.proxy_index(STEAM, Column.UP).data() == "…"
    assert window.table.proxy_index(STEAM, Column.DOWN).data() == "3.90 MB/s"
    steam = model.application(STEAM)
    assert steam is not None and steam.measuring(Direction.UP)
    assert not steam.measuring(Direction.DOWN)
