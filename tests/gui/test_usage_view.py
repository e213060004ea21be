"""Usage history in the window (issue 14): the totals column and overall row,
the usage view (table and stacked bars, in dark and light palettes), the
detail graph's first hour and time axis, and an older helper without
GetUsage. Real widgets offscreen; the rows come through the real codec and
the D-Bus wire format (tests/gui/usage_rows.py), from a scripted client on
the real worker thread."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from chadthrottle.app_names import fallback_name
from chadthrottle.client import HelperClientError
from chadthrottle.contract import ApplicationInfo, Direction
from chadthrottle.gui.controller import AppController
from chadthrottle.gui.ipc.state import HelperState
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.models.graph_series import graph_series
from chadthrottle.gui.models.usage_periods import (
    PERIODS,
    UsagePeriod,
    local_midnight,
    period_since,
    slot_label,
    slot_starts,
    totals_resolution,
)
from chadthrottle.gui.models.usage_table import UsageColumn
from chadthrottle.gui.models.usage_totals import OTHER_KEY, stacked_bars
from chadthrottle.gui.settings import Theme
from chadthrottle.gui.theme import apply_theme
from chadthrottle.gui.usage_flow import GRAPH_OLD_HELPER, OLD_HELPER, load_period
from chadthrottle.gui.views.usage_chart import OTHER_COLOUR, SERIES_COLOURS
from chadthrottle.units import UnitSystem
from chadthrottle.usage_contract import OTHER_APPLICATIONS_ID, UsageResolution, UsageRow
from PySide6.QtCore import QCoreApplication, QEvent, QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QAction, QColor, QContextMenuEvent, QPalette
from PySide6.QtWidgets import QApplication

from tests.gui.sample_data import sample_applications
from tests.gui.test_connection import ScriptedClient
from tests.gui.usage_rows import over_the_wire, row

GB, MB = 1_000_000_000, 1_000_000
FIREFOX, STEAM = "app:org.mozilla.firefox", "app:com.valvesoftware.Steam"


class UsageClient(ScriptedClient):
    """The scripted client, answering GetUsage from stored rows the way the
    helper sums them (periods that begin in [since, until), by resolution)."""

    def __init__(self, rows_by_resolution: dict[UsageResolution, list[UsageRow]]) -> None:
        super().__init__()
        self.rows = rows_by_resolution
        self.usage_calls: list[tuple[str, int, UsageResolution]] = []

    async def get_usage(
        self, app_id: str, since: int, until: int, resolution: UsageResolution
    ) -> list[UsageRow]:
        self.usage_calls.append((app_id, since, resolution))
        rows = [
            r
            for r in self.rows.get(resolution, [])
            if r.start >= since and app_id in ("", r.app_id)
        ]
        return over_the_wire(rows)


class OldHelperClient(ScriptedClient):
    async def get_usage(
        self, app_id: str, since: int, until: int, resolution: UsageResolution
    ) -> list[UsageRow]:
        raise HelperClientError(
            "org.freedesktop.DBus.Error.UnknownMethod", "No such method 'GetUsage'"
        )


def days_of_rows(now: float) -> dict[UsageResolution, list[UsageRow]]:
    """A week of days: Firefox 1 GB a day, Steam 3 GB on one day, eight smaller
    applications (50 to 400 MB a day), the helper's "(other)"; today's hours; the last minutes."""
    days: list[UsageRow] = []
    for back in range(7):
        start = local_midnight(now, back)
        days.append(row(FIREFOX, start, 86_400, 900 * MB, 100 * MB))
        for small in range(8):
            days.append(row(f"exe:/usr/bin/tool{small}", start, 86_400, (small + 1) * 50 * MB))
        days.append(row(OTHER_APPLICATIONS_ID, start, 86_400, 2 * MB))
    days.append(row(STEAM, local_midnight(now, 2), 86_400, 3 * GB))
    midnight = local_midnight(now)
    hours = [row(FIREFOX, midnight, 3600, 900 * MB, 100 * MB)]
    minute = int(now) - int(now) % 60
    minutes = [row(FIREFOX, minute - 60 * back, 60, 6 * MB, 600_000) for back in (3, 4, 5)]
    months = [row(FIREFOX, midnight, 86_400, 900 * MB, 100 * MB),
              row("exe:/usr/bin/tool0", midnight, 86_400, 1 * MB)]  # fmt: skip
    return {UsageResolution.DAY: days, UsageResolution.HOUR: hours,
            UsageResolution.MINUTE: minutes, UsageResolution.MONTH: months}  # fmt: skip


def test_stacked_bars_keep_the_busiest_and_sum_the_rest() -> None:
    now = time.time()
    rows = over_the_wire(days_of_rows(now)[UsageResolution.DAY])
    starts = slot_starts(UsagePeriod.WEEK, now)
    assert len(starts) == 7 and starts[-1] == local_midnight(now)
    bars = stacked_bars(rows, starts, top=3)
    assert bars.series == (FIREFOX, STEAM, "exe:/usr/bin/tool7", OTHER_KEY)  # 7 GB, 3 GB, 2.8 GB
    steam_day = starts.index(local_midnight(now, 2))
    assert bars.values[steam_day][:2] == (1 * GB, 3 * GB)
    # Other: the seven smaller tools and the helper's own "(other)" (2 MB), each day.
    assert all(bar[3] == sum(range(1, 8)) * 50 * MB + 2 * MB for bar in bars.values)
    assert sum(bars.slot_total(s) for s in range(7)) == sum(r.down_bytes + r.up_bytes for r in rows)
    assert fallback_name("exe:/usr/bin/tool7") == "tool7"
    assert fallback_name("appimage:/home/a/Krita-5.2.AppImage") == "Krita-5.2"
    assert (
        fallback_name("unit:nginx.service") == "nginx"
        and fallback_name("snap:spotify") == "spotify"
    )


def test_periods_begin_at_local_midnight_and_a_garbled_choice_is_today(tmp_path) -> None:  # type: ignore[no-untyped-def]
    now = time.mktime(
        (2026, 3, 29, 15, 30, 0, 0, 0, -1)
    )  # a clock change in Europe, none elsewhere
    assert period_since(UsagePeriod.TODAY, now) == local_midnight(now)
    month = slot_starts(UsagePeriod.THIS_MONTH, now)
    assert len(month) == 29 and time.localtime(month[0])[1:4] == (
        3,
        1,
        0,
    )  # the 1st to today, by midnight
    assert all(
        time.localtime(start)[3:5] == (0, 0) for start in month
    )  # every bar at a local midnight
    hours = slot_starts(UsagePeriod.TODAY, now)
    assert hours[0] == local_midnight(now) and hours[-1] <= now < hours[-1] + 3600
    assert (
        slot_label(UsagePeriod.DAYS_30, month[0])
        == time.strftime("%b", time.localtime(month[0])) + " 1"
    )
    store = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    store.setValue("usage/period", "fortnight")
    assert load_period(store) is UsagePeriod.TODAY
    store.setValue("usage/period", "30d")
    assert load_period(store) is UsagePeriod.DAYS_30


def test_graph_series_seeds_the_hour_and_breaks_at_gaps() -> None:
    now = 1_800_000_000.0
    minute = int(now) - int(now) % 60
    minutes = over_the_wire(
        [row(FIREFOX, minute - 600, 60, 6 * MB), row(FIREFOX, minute - 420, 60, 12 * MB)]
    )
    # Live samples every second from 60 s ago, with 20 s missing (the helper was away).
    times = np.array([t for t in np.arange(now - 60, now, 1.0) if not now - 40 <= t < now - 20])
    rates = np.ones((len(times), 2)) * 1000.0
    x, data = graph_series(times, rates, minutes, now, 3600, 1.0)
    seeded = x < -60
    # The minutes from the first recorded one up to the live samples, each at its middle: 0 where no row.
    assert list(data[seeded][:4, 0]) == [100_000.0, 0.0, 0.0, 200_000.0]
    assert np.all(np.diff(x[~np.isnan(x)]) > 0)  # a real time axis: in order, never squeezed
    gaps = np.isnan(data[:, 0])
    assert gaps.sum() == 1 and -40 <= x[gaps][0] <= -20  # one break, where the polls are missing


def test_a_gap_in_the_polls_breaks_the_graph_line(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    """The helper away for 20 s: the detail graph breaks its line there (NaN), draws, and says so on hover."""
    history = window._model.history(FIREFOX)
    now = time.time()
    for second in range(60, 0, -1):
        if not 20 < second < 40:
            history.append(2e6, 1e5, now - second)
    window.select_application(FIREFOX)
    window.detail.refresh()
    x, data = window.detail.plotted
    gap = np.flatnonzero(np.isnan(data[:, 0]))
    assert len(gap) == 1 and -40 <= x[gap[0]] <= -20
    assert (
        window.detail.graphs[Direction.DOWN].top >= 2e6
    )  # scaled to what was measured, not to NaN
    assert window.detail.hover_text(float(x[gap[0]])) == "not measured"


@pytest.fixture
def controller(qtbot, tmp_path, request):  # type: ignore[no-untyped-def]
    client = request.param()
    settings = QSettings(str(tmp_path / "chadthrottle.ini"), QSettings.Format.IniFormat)
    app = AppController(lambda: client, settings, use_tray=False)
    app.connection.set_refresh_interval(0.2)
    qtbot.addWidget(app.window)
    app.start(show_window=True)
    qtbot.waitUntil(lambda: app.connection.status.state is HelperState.CONNECTED, timeout=5000)
    yield app, client
    app.dispose()  # as the app quits: shut down, then deleted with its window
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.mark.parametrize(
    "controller", [lambda: UsageClient(days_of_rows(time.time()))], indirect=True
)
def test_totals_column_usage_view_and_seeded_graph(qtbot, controller) -> None:  # type: ignore[no-untyped-def]
    app, client = controller
    model, window = app.model, app.window
    qtbot.waitUntil(lambda: model.usage.totals is not None, timeout=5000)
    # Today's totals on every row and the overall row, asked for by day from local midnight.
    assert ("", local_midnight(time.time()), UsageResolution.DAY) in client.usage_calls
    assert model.index_of(FIREFOX, Column.USAGE).data() == "1.00 GB"
    assert (
        model.index_of("app:com.dropbox.Client", Column.USAGE).data() == "0 B"
    )  # ran, moved nothing today
    assert "Today: 900 MB down, 100 MB up" in model.index_of(FIREFOX, Column.USAGE).data(
        Qt.ItemDataRole.ToolTipRole
    )
    assert model.headerData(Column.USAGE, Qt.Orientation.Horizontal) == "Today"
    qtbot.waitUntil(
        lambda: window.table.overall.overall_text(Column.USAGE) == "2.80 GB", timeout=2000
    )  # with 1.8 GB + 2 MB of others
    header = window.table.header()
    assert (
        header.visualIndex(Column.USAGE) == header.visualIndex(Column.UP) + 1
    )  # next to the rates

    # The usage view, from the keyboard: a week, sortable, stacked bars.
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    qtbot.keyClick(window.table, Qt.Key.Key_U, Qt.KeyboardModifier.ControlModifier)
    dialog = app.usage.dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    dialog.choose_period(UsagePeriod.WEEK)
    qtbot.waitUntil(
        lambda: dialog.table_model.rowCount() == 11, timeout=5000
    )  # 10 applications and "(other)"
    names = [dialog.table_model.index(r, UsageColumn.NAME).data() for r in range(11)]
    assert names[:2] == ["Firefox", "Steam"]  # 7 GB, then 3 GB: the most first
    assert "Other applications" in names and "tool7" in names  # names for ids not running
    header = dialog.table.horizontalHeader()
    qtbot.mouseClick(
        header.viewport(),
        Qt.MouseButton.LeftButton,
        pos=QPoint(header.sectionViewportPosition(UsageColumn.NAME) + 10, header.height() // 2),
    )
    assert dialog.table_model.index(0, UsageColumn.NAME).data() == "Firefox"
    assert dialog.table_model.index(1, UsageColumn.NAME).data() == "Other applications"
    assert (
        "All applications, last 7 days: <b>22.6 GB</b>" in dialog.total.text()
    )  # 7 + 3 GB + 7 x 1.802 GB
    window.set_units(UnitSystem.BITS_DECIMAL)  # as the settings do: the view follows
    assert dialog.table_model.index(0, UsageColumn.TOTAL).data() == "56.0 Gbit"  # Firefox's 7 GB
    window.set_units(UnitSystem.BYTES_DECIMAL)
    # The week is the view's: the list's column keeps its own period (test below).
    assert model.headerData(Column.USAGE, Qt.Orientation.Horizontal) == "Today"
    assert app.usage.view_period is UsagePeriod.WEEK and app.usage.period is UsagePeriod.TODAY

    chart = dialog.chart
    chart.setFocus()
    qtbot.keyClick(chart, Qt.Key.Key_End)
    assert dialog.chosen_bar.text().startswith(time.strftime("%a ", time.localtime()))
    qtbot.keyClick(chart, Qt.Key.Key_Left)
    qtbot.keyClick(chart, Qt.Key.Key_Left)
    assert (
        "Steam 3.00\u00a0GB" in dialog.chosen_bar.text()
        and "Firefox 1.00\u00a0GB" in dialog.chosen_bar.text()
    )
    for theme in (
        Theme.DARK,
        Theme.LIGHT,
        Theme.SYSTEM,
    ):  # the bars' colours on either palette; then as before
        if theme is Theme.SYSTEM:
            apply_theme(QApplication.instance(), theme)
            break
        apply_theme(QApplication.instance(), theme)
        dark = theme is Theme.DARK
        qtbot.waitUntil(
            lambda dark=dark: (
                (chart.palette().color(QPalette.ColorRole.Window).lightness() < 128) == dark
            )
        )
        image = chart.grab().toImage()
        colours = {
            QColor(image.pixel(x, y)).name()
            for x in range(image.width())
            for y in range(image.height())
        }
        assert {SERIES_COLOURS[0].name(), SERIES_COLOURS[1].name(), OTHER_COLOUR.name()} <= colours
        text = chart.palette().color(QPalette.ColorRole.WindowText).name()
        assert text in colours  # the axis labels in the palette's text colour, readable on it
    slot = chart.slot_at(QPoint(chart.width() - 20, chart.height() // 2))
    assert slot == 6 and chart.describe_bar(slot).startswith(time.strftime("%a ", time.localtime()))

    # The detail graph of Firefox starts with the helper's last minutes, on a time axis in minutes.
    window.select_application(FIREFOX)
    window.detail.span.setCurrentIndex(2)  # the last hour
    qtbot.waitUntil(lambda: (window.detail.plotted[0] < -2).any(), timeout=5000)
    x, data = window.detail.plotted
    assert 100_000.0 in data[:, 0]  # 6 MB in a minute: 100 kB/s
    assert window.detail.graphs[Direction.UP].time_unit == "minutes ago"
    assert window.detail.history_note == ""
    # Pointing at the graph: a line there and, in the upper plot, the time and both rates.
    down = window.detail.graphs[Direction.DOWN]
    view = down.item.getViewBox().scene().views()[0]
    seeded_x = float(
        x[np.flatnonzero(data[:, 0] == 100_000.0)[0]]
    )  # a minute from the helper, not a live sample
    qtbot.waitUntil(
        lambda: down.item.getViewBox().viewRange()[0][0] == -60, timeout=2000
    )  # laid out: the hour
    qtbot.wait(50)
    at = view.mapFromScene(down.item.getViewBox().mapViewToScene(QPointF(seeded_x, down.top / 2)))
    qtbot.mouseMove(view.viewport(), at)
    qtbot.waitUntil(lambda: down.hover_label.isVisible(), timeout=2000)
    assert "▼ 100 KB/s" in down.hover_label.textItem.toPlainText()
    assert window.detail.graphs[Direction.UP].hover_line.isVisible()
    window.select_application(STEAM)
    window.select_application(FIREFOX)  # selected again: its past at once, not after a round trip
    assert (window.detail.plotted[0] < -2).any()

    # Alt+3 chooses the last 30 days, in bold.
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow)
    qtbot.keyClick(dialog, Qt.Key.Key_3, Qt.KeyboardModifier.AltModifier)
    assert dialog.period is UsagePeriod.DAYS_30 and dialog.buttons.button(2).font().bold()
    assert not dialog.buttons.button(1).font().bold()
    qtbot.waitUntil(lambda: len(dialog.chart.bars.slot_starts) == 30, timeout=5000)
    # An answer for a period no longer chosen changes nothing.
    before = [
        dialog.table_model.index(r, UsageColumn.TOTAL).data()
        for r in range(dialog.table_model.rowCount())
    ]
    app.usage._on_usage(
        "view:today", over_the_wire([row(FIREFOX, local_midnight(time.time()), 3600, 1)]), ""
    )
    assert [
        dialog.table_model.index(r, UsageColumn.TOTAL).data()
        for r in range(dialog.table_model.rowCount())
    ] == before


def _right_click_title(header, column: Column) -> None:  # type: ignore[no-untyped-def]
    """What the platform sends with a right press on a column's title."""
    viewport = header.viewport()
    where = QPoint(header.sectionViewportPosition(column) + 8, header.title_height() // 2)
    QApplication.sendEvent(
        viewport,
        QContextMenuEvent(QContextMenuEvent.Reason.Mouse, where, viewport.mapToGlobal(where)),
    )


@pytest.mark.parametrize(
    "controller", [lambda: UsageClient(days_of_rows(time.time()))], indirect=True
)
def test_the_totals_column_keeps_its_own_period_chosen_on_its_title(
    qtbot, controller, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb (walk26, gui28's brief) "Last 7 days" in the usage view renamed
    the list's "Today" column: one period for two views. Each keeps its own,
    remembered apart; the column's is chosen by a right click on its title
    (another title's opens nothing)."""
    from PySide6.QtWidgets import QMenu

    app, client = controller
    model, window = app.model, app.window
    qtbot.waitUntil(lambda: model.index_of(FIREFOX, Column.USAGE).data() == "1.00 GB", timeout=5000)
    dialog = app.usage.open_dialog()
    qtbot.waitExposed(dialog)
    dialog.choose_period(UsagePeriod.DAYS_30)
    qtbot.waitUntil(lambda: dialog.table_model.rowCount() > 0, timeout=5000)
    assert (
        model.headerData(Column.USAGE, Qt.Orientation.Horizontal) == "Today"
    )  # "30 days" until gui28
    assert model.index_of(FIREFOX, Column.USAGE).data() == "1.00 GB"
    tip = model.headerData(Column.USAGE, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)
    assert tip.endswith(
        "Right-click the title for another period, or use the ☰ menu (Data used in the list)."
    )
    header = window.table.overall
    _right_click_title(header, Column.DOWN)
    assert QApplication.activePopupWidget() is None and window._row_menu is None
    _right_click_title(header, Column.USAGE)
    qtbot.waitUntil(lambda: isinstance(QApplication.activePopupWidget(), QMenu), timeout=5000)
    menu = app.usage.column_menu
    assert menu is QApplication.activePopupWidget()
    assert [a.text() for a in menu.actions() if not a.isSeparator()] == [
        "Data used in this column",
        "Today",
        "Last 7 days",
        "Last 30 days",
        "This month",
    ]
    assert menu.findChild(QAction, "usage-column:today").isChecked()
    menu.findChild(QAction, "usage-column:7d").trigger()
    menu.close()
    week = ("", period_since(UsagePeriod.WEEK, time.time()), totals_resolution(UsagePeriod.WEEK))
    qtbot.waitUntil(
        lambda: week in client.usage_calls and model.usage.totals is not None, timeout=5000
    )
    assert model.headerData(Column.USAGE, Qt.Orientation.Horizontal) == "7 days"
    assert dialog.period is UsagePeriod.DAYS_30 and dialog.buttons.button(2).isChecked()
    store = app.usage._store
    store.sync()
    assert (store.value("usage/period"), store.value("usage/column_period")) == ("30d", "7d")


class MovingClient(ScriptedClient):
    """Steam, whose bytes move while `moving`: the listing's counters and its
    usage today grow by 1 MB a poll; GetUsage counted per call."""

    def __init__(self) -> None:
        super().__init__()
        self.moving = False
        self.moved = 0
        self.totals_calls = 0

    async def list_applications(self) -> list[ApplicationInfo]:
        if self.moving:
            self.moved += MB
        return [dataclasses.replace(info, rx_bytes=self.moved) if info.id == STEAM else info
                for info in sample_applications()]  # fmt: skip

    async def get_usage(
        self, app_id: str, since: int, until: int, resolution: UsageResolution
    ) -> list[UsageRow]:
        # Today's totals (from local midnight); not the alerts' ask for the helper's zone
        self.totals_calls += resolution is UsageResolution.DAY and since >= local_midnight(
            time.time()
        )
        return over_the_wire([row(STEAM, local_midnight(time.time()), 86_400, self.moved)])


@pytest.mark.parametrize("controller", [MovingClient], indirect=True)
def test_the_totals_follow_each_poll_that_moved_bytes(qtbot, controller) -> None:  # type: ignore[no-untyped-def]
    """Not every 15 s: a new application moving 350 MB/s read 'Today 0 B'."""
    app, client = controller  # polled every 0.2 s
    qtbot.waitUntil(lambda: app.model.usage.totals is not None, timeout=5000)
    qtbot.wait(600)  # three polls, nothing moved: not asked again
    idle_calls = client.totals_calls
    assert idle_calls <= 2, idle_calls  # at the connection, and perhaps the first poll
    client.moving = True
    qtbot.waitUntil(lambda: client.totals_calls >= idle_calls + 4, timeout=2000)
    client.moving = False
    shown = client.moved
    qtbot.waitUntil(lambda: app.model.usage.of(STEAM) == (shown, 0), timeout=2000)
    asked = client.totals_calls
    qtbot.wait(600)
    assert client.totals_calls <= asked + 1  # still: asked no more


@pytest.mark.parametrize("controller", [OldHelperClient], indirect=True)
def test_an_older_helper_says_history_is_unavailable(qtbot, controller) -> None:  # type: ignore[no-untyped-def]
    app, _client = controller
    qtbot.waitUntil(lambda: app.usage.history_supported is False, timeout=5000)
    tip = app.model.index_of(FIREFOX, Column.USAGE).data(Qt.ItemDataRole.ToolTipRole)
    assert tip == OLD_HELPER and app.model.index_of(FIREFOX, Column.USAGE).data() == "—"
    dialog = app.usage.open_dialog()
    qtbot.waitUntil(lambda: dialog.note.text() == OLD_HELPER, timeout=5000)
    app.window.select_application(FIREFOX)
    app.window.select_application(STEAM)
    detail = app.window.detail
    qtbot.waitUntil(
        lambda: detail.history_note == GRAPH_OLD_HELPER and detail.limit_notes.isVisible(),
        timeout=2000,
    )
    assert detail.limit_notes.text() == GRAPH_OLD_HELPER
    assert app.connection.status.state is HelperState.CONNECTED  # the rest goes on


def test_a_bars_line_lists_its_applications_biggest_first_other_last(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The series keep the span's order (its busiest first: the legend, the
    colours); one bar's line lists that bar's bytes biggest first: at 2x the
    day's line read "Relay Chat 111 MB, Media Server 156 MB", as if sorted."""
    from chadthrottle.gui.models.usage_totals import StackedBars
    from chadthrottle.gui.views.usage_chart import UsageChart

    chart = UsageChart()
    qtbot.addWidget(chart)
    names = {"app:relay": "Relay Chat", "app:media": "Media Server"}
    bars = StackedBars((0,), ("app:relay", "app:media", OTHER_KEY),
                       ((111_000_000, 156_000_000, 200_000_000),))  # fmt: skip
    chart.set_bars(bars, ["Fri 4"], UnitSystem.BYTES_DECIMAL, names.__getitem__)
    assert chart.describe_bar(0).replace("\u00a0", " ") == (
        "Fri 4: 467 MB — Media Server 156 MB, Relay Chat 111 MB, Other 200 MB"
    )


def test_a_bars_line_never_parts_an_amount_from_its_unit(qtbot) -> None:  # type: ignore[no-untyped-def]
    """At 2x on 1366x768 the chosen bar's line wrapped as "..., Fetcher 1.16" and
    "GB, Media Server ...": at no width does a line of it begin with a unit."""
    from chadthrottle.gui.models.usage_totals import StackedBars
    from chadthrottle.gui.views.usage_chart import UsageChart
    from PySide6.QtGui import QTextLayout, QTextOption

    chart = UsageChart()
    qtbot.addWidget(chart)
    names = {"app:h": "Harbor Browser", "app:p": "Parcel Updates", "app:f": "Fetcher"}
    bars = StackedBars((0,), ("app:h", "app:p", "app:f", OTHER_KEY),
                       ((22_700_000_000, 5_230_000_000, 1_160_000_000, 64_300_000),))  # fmt: skip
    chart.set_bars(bars, ["Sat 5"], UnitSystem.BYTES_DECIMAL, names.__getitem__)
    text = chart.describe_bar(0)
    units = ("B", "KB", "MB", "GB", "TB", "B,", "KB,", "MB,", "GB,", "TB,")
    for width in range(120, 720, 3):
        layout = QTextLayout(text, chart.font())
        option = QTextOption()
        option.setWrapMode(QTextOption.WrapMode.WordWrap)
        layout.setTextOption(option)
        layout.beginLayout()
        starts = []
        while (line := layout.createLine()).isValid():
            line.setLineWidth(width)
            starts.append(
                text[line.textStart() : line.textStart() + line.textLength()].split(" ")[0]
            )
        layout.endLayout()
        assert not any(start.split("\u00a0")[0] in units for start in starts[1:]), (width, starts)


def test_the_chosen_bar_stays_a_time_when_the_period_changes(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb, the week's last bar (Sat 5) chosen, then Today: the chart chose
    its 7th hour and the line under it read "06:00: 0 B". A bar is kept where its
    time is a bar again (the same period redrawn), else none is chosen."""
    from chadthrottle.gui.models.usage_totals import StackedBars
    from chadthrottle.gui.views.usage_chart import UsageChart

    chart = UsageChart()
    qtbot.addWidget(chart)
    said: list[str] = []
    chart.barChosen.connect(said.append)
    day = 86_400
    week = StackedBars(tuple(range(0, 7 * day, day)), ("app:f",), tuple((GB,) for _ in range(7)))
    labels = ["Sun 29", "Mon 30", "Tue 1", "Wed 2", "Thu 3", "Fri 4", "Sat 5"]
    chart.set_bars(week, labels, UnitSystem.BYTES_DECIMAL, {"app:f": "Fetcher"}.__getitem__)
    chart.chosen = 6
    chart.set_bars(week, labels, UnitSystem.BYTES_DECIMAL, {"app:f": "Fetcher"}.__getitem__)
    assert chart.chosen == 6 and said[-1].startswith("Sat 5: 1.00")  # redrawn: kept
    hours = StackedBars(tuple(6 * day + 3600 * h for h in range(24)), ("app:f",),
                        tuple((MB * (h == 21),) for h in range(24)))  # fmt: skip
    chart.set_bars(hours, [f"{h:02d}:00" for h in range(24)], UnitSystem.BYTES_DECIMAL,
                   {"app:f": "Fetcher"}.__getitem__)  # fmt: skip
    assert chart.chosen == -1 and said[-1] == "", said[-1]
    chart.set_bars(week, labels, UnitSystem.BYTES_DECIMAL, {"app:f": "Fetcher"}.__getitem__)
    chart.chosen = 6  # a week after which the days moved on by one: Sat 5 is the 6th bar
    later = StackedBars(tuple(range(day, 8 * day, day)), ("app:f",), tuple((GB,) for _ in range(7)))
    chart.set_bars(later, [*labels[1:], "Sun 6"], UnitSystem.BYTES_DECIMAL,
                   {"app:f": "Fetcher"}.__getitem__)  # fmt: skip
    assert chart.chosen == 5 and said[-1].startswith("Sat 5: 1.00")


def test_the_focus_frame_follows_the_period_chosen_with_alt_n(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb at 2x the usage view opened on Today, Alt+2 chose "Last 7 days"
    (bold) and the focus frame stayed on "Today": two buttons looked chosen."""
    from chadthrottle.gui.views.usage_dialog import UsageDialog

    dialog = UsageDialog(UsagePeriod.TODAY)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow)
    today, week = dialog.buttons.button(0), dialog.buttons.button(1)
    today.setFocus()
    qtbot.waitUntil(today.hasFocus)
    qtbot.keyClick(dialog, Qt.Key.Key_2, Qt.KeyboardModifier.AltModifier)
    assert dialog.period is UsagePeriod.WEEK and week.isChecked()
    qtbot.waitUntil(week.hasFocus, timeout=1000)


def test_the_view_opens_with_the_focus_frame_on_its_period(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb at 2x (walk28) the view opened on its remembered "This month"
    (bold) with the focus frame on "Today", the first button: two looked chosen."""
    from chadthrottle.gui.views.usage_dialog import UsageDialog

    dialog = UsageDialog(UsagePeriod.THIS_MONTH)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow)
    month = dialog.buttons.button(list(PERIODS).index(UsagePeriod.THIS_MONTH))
    assert month.isChecked()
    qtbot.waitUntil(month.hasFocus, timeout=1000)
    assert not dialog.buttons.button(0).hasFocus()


def same_named_rows(now: float) -> dict[UsageResolution, list[UsageRow]]:
    """Two scripts called traffic.py (two folders) and Firefox, each day of a week."""
    days = []
    for back in range(7):
        start = local_midnight(now, back)
        days += [row("script:/tmp/a/traffic.py", start, 86_400, 2 * GB),
                 row("script:/tmp/b/traffic.py", start, 86_400, 1 * GB),
                 row(FIREFOX, start, 86_400, 500 * MB)]  # fmt: skip
    return {UsageResolution.DAY: days}


@pytest.mark.parametrize("controller", [lambda: UsageClient(same_named_rows(time.time()))], indirect=True)  # fmt: skip
def test_applications_of_one_name_are_told_apart_in_the_usage_view(qtbot, controller) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb (walk28) the usage view listed three "traffic.py" rows and
    legend entries, different scripts that nothing told apart, where
    `chadthrottle-ctl usage` said "traffic.py (script:/tmp/…/traffic.py)".
    The same rule here: the name, and the id where two share a name."""
    app, _client = controller
    app.usage.open_dialog()
    dialog = app.usage.dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    dialog.choose_period(UsagePeriod.WEEK)
    qtbot.waitUntil(lambda: dialog.table_model.rowCount() == 3, timeout=5000)
    names = [dialog.table_model.index(r, UsageColumn.NAME).data() for r in range(3)]
    assert names == ["traffic.py (script:/tmp/a/traffic.py)", "traffic.py (script:/tmp/b/traffic.py)",
                     "Firefox"]  # fmt: skip
    legend = [dialog.chart.series_name(key) for key in ("script:/tmp/a/traffic.py", FIREFOX)]
    assert legend == ["traffic.py (script:/tmp/a/traffic.py)", "Firefox"]
