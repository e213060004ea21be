"""The window fits small and scaled screens, remembers its state, and its graphs
and list tell the truth: scales from what was measured, a filter that says
nothing matches, busiest first on a rate column's first click, a visible
selection in dark mode and a visible focus."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from chadthrottle.contract import Direction
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.theme import contrast
from chadthrottle.gui.views.graph_scale import graph_top
from chadthrottle.gui.views.main_window import MainWindow
from chadthrottle.gui.views.rate_axis import RateAxis
from chadthrottle.gui.views.window_state import restore_window_state, save_window_state
from chadthrottle.gui.widgets.limit_slider import SLIDER_SHOWN_LEAST
from chadthrottle.units import UnitSystem
from PySide6.QtCore import QCoreApplication, QEvent, QSettings, Qt
from PySide6.QtGui import QColor, QFontMetricsF, QPalette
from PySide6.QtWidgets import QApplication, QWidget

from tests.gui.bare_window import bare_window
from tests.gui.sample_data import MB, app, sample_applications

ROOT = Path(__file__).resolve().parents[2]
CONNECTED = HelperStatus(HelperState.CONNECTED, "", True, True)


def make_window(qtbot) -> MainWindow:  # type: ignore[no-untyped-def]
    model, window = bare_window()
    qtbot.addWidget(window)
    window.set_status(CONNECTED)
    model.apply_snapshot(sample_applications())
    return window


def probe(tmp_path: Path, width: int, height: int, scale: float, dpi: int = 96) -> dict:  # type: ignore[type-arg]
    """The fit probe in its own process, on an offscreen screen of that size:
    scaled by QT_SCALE_FACTOR, or by the desktop's font DPI (as Xft.dpi does)."""
    config = tmp_path / f"screen-{width}x{height}-{dpi}.json"
    config.write_text(
        json.dumps(
            {
                "screens": [
                    {
                        "name": "probe",
                        "x": 0,
                        "y": 0,
                        "width": width,
                        "height": height,
                        "logicalDpi": dpi,
                        "dpr": 1,
                    }
                ]
            }
        )
    )
    environment = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}"}
    environment.pop("QT_SCALE_FACTOR", None)
    if dpi == 96:
        environment["QT_SCALE_FACTOR"] = str(scale)
    done = subprocess.run([sys.executable, "-m", "tests.gui.fit_probe"], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("width", "height", "scale", "dpi"),
    [(1366, 768, 2, 96), (1920, 1080, 2, 96), (1366, 768, 1, 96),
     (1920, 1080, 2, 192), (1366, 768, 1.5, 144)],  # the desktop's scale: its font DPI
)  # fmt: skip
def test_everything_fits_the_available_screen(
    tmp_path: Path, width: int, height: int, scale: float, dpi: int
) -> None:
    report = probe(tmp_path, width, height, scale, dpi)
    assert report["scale"] == scale
    left, top, right, bottom = report["available"]
    assert abs(right + 1 - width / scale) <= 1 and abs(bottom + 1 - height / scale) <= 1
    frame = report["frame"]
    assert frame[0] >= left and frame[1] >= top and frame[2] <= right and frame[3] <= bottom, report
    assert report["minimum"][0] <= right + 1 and report["minimum"][1] <= bottom + 1
    assert not report["horizontal_scroll"]
    viewport = report["viewport_width"]
    for name, (position, size) in report["columns"].items():  # every column whole on screen
        assert position >= 0 and position + size <= viewport, (name, report["columns"])
    assert report["columns"]["NAME"][1] >= report["name_minimum"] - 1
    window_width, window_height = report["window"]
    for name, (x0, y0, x1, y1) in report["parts"].items():
        assert x0 >= 0 and y0 >= 0 and x1 < window_width and y1 < window_height, (
            name,
            report["parts"][name],
        )
    assert report["cut_labels"] == []
    # At the window's least a limit column shows a usable slider or none (the value
    # alone): a 34 px stub with 19 px of travel read as broken beside a wide gap
    # before "none" (gui22's walk, 1x and 2x); the value at the control's right end.
    for name, column in report["least"]["columns"].items():
        assert not column["slider_shown"] or column["slider_width"] >= SLIDER_SHOWN_LEAST, (
            name,
            report["least"],
        )
        assert column["control_width"] - column["field_right"] <= 4, (name, report["least"])
    # the notice without a tray, whole or short, never cut ("…, and cl…" at 2x under Xvfb)
    assert "…" not in report["message_shown"], report["message_shown"]
    # Every column title and the overall row's name whole (at 2x they read "Acti…" and
    # "All applicati…": the rate and limit columns were sized for "888.8 Mbit/s" in any unit)
    assert report["cut_titles"] == {}, (report["cut_titles"], report["columns"])
    # and clear of the sort arrow (seen on screen at 2x on 1366x768: "Activity▲" touching)
    assert report["titles_on_arrow"] == {}, (report["titles_on_arrow"], report["columns"])
    assert not report["overall_shown"] or report["overall_name"] == "All applications", report
    # A useful list first: at least five rows of applications (2x on 1366x768 showed 2½
    # beside the graph, which starts folded there); the graph, open, whole and readable.
    assert report["list_rows"] >= 5, report["list_rows"]
    assert report["graph_folded"] is (height / scale < 400), report  # only on the short screen
    # Opened by the user on the short screen (2x on 1366x768: 2.4 rows beside it under
    # Xvfb), the graph goes compact: the list keeps five rows (the "All applications"
    # row one of them), each of the graph's two lanes as tall as the whole graph's
    # at its least, without the time axis (the span beside it says how long).
    unfolded = report["unfolded"]
    assert unfolded["graph_visible"]
    if unfolded["compact"]:
        assert min(unfolded["lanes"]) >= 24 and not unfolded["time_axis"], unfolded
    else:
        assert unfolded["graph"][3] + 1 - unfolded["graph"][1] >= 110 and unfolded["time_axis"], (
            unfolded
        )
    assert unfolded["compact"] is (height / scale < 400), unfolded
    for part in (unfolded["graph"], unfolded["span"]):
        assert part[0] >= 0 and part[1] >= 0 and part[2] < window_width and part[3] < window_height
    # ... but for the lines the notes take past their first: read whole, not cut to
    # a line (gui18: at 2x a quota's two lines left 4.7 rows)
    assert unfolded["list_rows"] + unfolded["notes_rows"] >= 5, unfolded
    assert unfolded["list_rows"] >= 4, unfolded
    assert report["row_height"] >= report["font_height"] + 10
    # a quota's line under the limit: whole in the open control and the painted row, the field whole above it,
    # and at least the useful part (what is left; that it is used up)
    down, up = report["quota"]["down"], report["quota"]["up"]
    for line in (down, up):
        assert (
            line["visible"] and not line["cut"] and line["field_whole"] and line["painted_fits"]
        ), report["quota"]
    assert down["text"].startswith("1.25 GB left") and down["painted"].startswith("1.25 GB left")
    assert up["text"].startswith("quota used up") and up["painted"].startswith("quota used up")


def test_state_is_restored_after_a_restart(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = QSettings(str(tmp_path / "chadthrottle.conf"), QSettings.Format.IniFormat)
    first = make_window(qtbot)
    first.show()
    first.resize(700, 500)
    qtbot.waitUntil(lambda: first.width() == 700)
    first.table.header().resizeSection(Column.UP_LIMIT, 260)  # as a drag on the divider does
    first.table.sortByColumn(Column.UP, Qt.SortOrder.AscendingOrder)
    first.detail.span.setCurrentIndex(1)
    first.detail.fold_button.click()  # the graph folded away by the user
    save_window_state(first, store)
    first.close()

    second = make_window(qtbot)
    restore_window_state(
        second, QSettings(str(tmp_path / "chadthrottle.conf"), QSettings.Format.IniFormat)
    )
    second.show()
    qtbot.waitExposed(second)
    assert (second.width(), second.height()) == (700, 500)
    assert second.table.preferred_widths()[Column.UP_LIMIT] == 260
    assert second.table.header().sortIndicatorSection() == Column.UP
    assert second.table.header().sortIndicatorOrder() == Qt.SortOrder.AscendingOrder
    assert second.table.model().index(0, 0).data() == "curl"  # 0 B/s up: first going up
    assert second.detail.span.currentIndex() == 1
    assert second.detail.folded and not second.detail.plot.isVisible()  # as the user left it

    second.showMaximized()
    qtbot.waitUntil(second.isMaximized)
    save_window_state(second, store)
    third = make_window(qtbot)
    restore_window_state(
        third, QSettings(str(tmp_path / "chadthrottle.conf"), QSettings.Format.IniFormat)
    )
    third.show()
    qtbot.waitUntil(third.isMaximized)


def test_a_folded_graph_gives_the_list_its_room_and_costs_nothing(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Folded: the pane is its rates line, the list takes the rest, no connections
    are fetched for it; the row menu's "show connections" opens it again."""
    window = make_window(qtbot)
    window.resize(700, 600)
    window.show()
    qtbot.waitExposed(window)
    assert not window.detail.folded  # room for the list beside the graph: it starts open
    firefox = "app:org.mozilla.firefox"
    window.select_application(firefox)
    row = window.table.visualRect(window.table.proxy_index(firefox)).height()
    open_rows = window.table.viewport().height() / row
    with qtbot.waitSignal(window.connectionsWanted) as wanted:
        window.detail.fold_button.click()
    assert wanted.args == [[]] and window.detail.folded
    qtbot.waitUntil(lambda: window.table.viewport().height() / row > open_rows + 3)
    assert window.detail.height() <= window.detail.summary.height() + 30
    assert window.detail.summary.text().startswith("Firefox: down")  # the rates still follow
    with qtbot.waitSignal(window.connectionsWanted) as wanted:
        window.show_connections_of(firefox)
    assert wanted.args == [[firefox]] and not window.detail.folded
    qtbot.waitUntil(window.detail.plot.isVisible)
    assert window.detail.plot.height() >= 80


def test_column_widths_saved_by_an_older_layout_are_dropped(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Before 1328f2e every column's width was saved, the wide defaults of then
    among them (a rate column sized for '888.8 Mbit/s' in every unit), with no
    layout version: read back, they were all taken as dragged by the user and
    kept. Dropped now: every column follows the units, as in a new window."""
    fresh = make_window(qtbot)
    old = [fresh.table.header().sectionSize(c) + 120 for c in range(len(Column))]
    store = QSettings(str(tmp_path / "older.conf"), QSettings.Format.IniFormat)
    store.setValue("table/column_widths", [str(width) for width in old])
    window = make_window(qtbot)
    restore_window_state(window, store)
    assert window.table.preferred_widths()[1:] == [0] * (len(Column) - 1)  # none dragged
    assert window.table._preferred == fresh.table._preferred


def test_garbled_state_falls_back_to_defaults(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = QSettings(str(tmp_path / "bad.conf"), QSettings.Format.IniFormat)
    for key, value in (("window/geometry", "garbage"), ("table/column_widths", ["a", "b"]),
                       ("table/sort_column", "99"), ("graph/span", "-4"), ("graph/folded", "maybe")):  # fmt: skip
        store.setValue(key, value)
    window = make_window(qtbot)
    restore_window_state(window, store)
    assert window.table.header().sortIndicatorSection() == Column.ACTIVITY
    assert window.detail.span.currentIndex() == 0
    assert not window.detail.folded and not window.fold_decided  # decided when first shown


def test_graph_scale_ignores_a_distant_limit(qtbot) -> None:  # type: ignore[no-untyped-def]
    assert graph_top(2 * MB, 900 * MB) == graph_top(2 * MB)  # far above: not on the scale
    assert graph_top(2 * MB, 5 * MB) >= 5 * MB  # near: the line is on the scale
    window = make_window(qtbot)
    model = window._model
    steam = "app:org.example.Download"
    for second in range(20):
        model.apply_snapshot(
            [app(steam, "Download", 2 * MB + 10_000 * second, 50_000, down_limit_bps=900 * MB)]
        )
    window.show()
    window.select_application(steam)
    window.detail.refresh()
    down = window.detail.graphs[Direction.DOWN]
    top = down.item.viewRange()[1][1]
    assert 2.19 * MB <= top <= 3 * MB  # the traffic fills the plot, not 900 MB/s
    assert down.limit_marker.isVisible() and not down.limit_line.isVisible()
    assert "900 MB/s" in down.limit_marker.textItem.toPlainText()
    up_top = window.detail.graphs[Direction.UP].item.viewRange()[1][1]
    assert 50_000 <= up_top <= 100_000  # upload on its own scale, readable beside 2 MB/s down


def test_sparklines_share_one_scale(qtbot) -> None:  # type: ignore[no-untyped-def]
    window = make_window(qtbot)
    window._model.apply_snapshot(sample_applications())
    scale = window.table.sparkline_delegate.scale
    assert scale is not None
    rates = np.array([(a.down_bps, a.up_bps) for a in sample_applications()])
    assert scale == (graph_top(rates[:, 0].max()), graph_top(rates[:, 1].max()))
    tooltip = window.table.proxy_index("app:com.dropbox.Client", Column.ACTIVITY).data(
        Qt.ItemDataRole.ToolTipRole
    )
    assert (
        "every row on one scale" in tooltip and "up to 7.50 MB/s" in tooltip
    )  # 4.98 MB/s down, with room


def test_a_filter_that_matches_nothing_says_so(qtbot) -> None:  # type: ignore[no-untyped-def]
    window = make_window(qtbot)
    window.header.filter.setText("zzz")
    assert window.table.model().rowCount() == 0
    assert window.table.empty_text == "No application matches “zzz”."
    window.header.filter.setText("")
    assert "No application is using the network" in window.table.empty_text


def test_first_click_on_a_rate_column_sorts_busiest_first(qtbot) -> None:  # type: ignore[no-untyped-def]
    window = make_window(qtbot)
    window.show()
    qtbot.waitExposed(window)
    header = window.table.header()
    for column, first in ((Column.DOWN, "Firefox"), (Column.UP, "syncthing")):
        x = header.sectionViewportPosition(column) + header.sectionSize(column) // 2
        qtbot.mouseClick(
            header.viewport(), Qt.MouseButton.LeftButton, pos=header.rect().center().__class__(x, 5)
        )
        assert header.sortIndicatorSection() == column
        assert header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder
        assert window.table.model().index(0, 0).data() == first


def test_the_selected_row_stands_out_in_dark_mode(qtbot) -> None:  # type: ignore[no-untyped-def]
    application = QApplication.instance()
    assert isinstance(application, QApplication)
    light = application.palette()
    dark = QPalette(light)
    for role, colour in ((QPalette.ColorRole.Base, "#1e1e1e"), (QPalette.ColorRole.AlternateBase, "#262626"),
                         (QPalette.ColorRole.Text, "#eeeeee"), (QPalette.ColorRole.Window, "#2b2b2b"),
                         (QPalette.ColorRole.Highlight, "#3584e4")):  # fmt: skip
        dark.setColor(role, QColor(colour))
    application.setPalette(dark)
    try:
        window = make_window(qtbot)
        palette = window.table.palette()
        selected = palette.color(QPalette.ColorRole.Highlight)
        for role in (QPalette.ColorRole.Base, QPalette.ColorRole.AlternateBase):
            assert contrast(selected, palette.color(role)) >= 1.4, role
        assert contrast(palette.color(QPalette.ColorRole.HighlightedText), selected) >= 4.5
    finally:
        application.setPalette(light)
    window = make_window(qtbot)  # and on the light palette: soft, still visible
    palette = window.table.palette()
    for role in (QPalette.ColorRole.Base, QPalette.ColorRole.AlternateBase):
        assert contrast(palette.color(QPalette.ColorRole.Highlight), palette.color(role)) >= 1.15, (
            role
        )


def test_focus_is_visible_on_sliders_and_fields(qtbot) -> None:  # type: ignore[no-untyped-def]
    window = make_window(qtbot)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    control = window.limit_control("app:com.dropbox.Client", Direction.DOWN)
    assert control is not None
    for part in (control.slider, control.field):
        window.header.filter.setFocus()
        qtbot.waitUntil(lambda part=part: not part.hasFocus())
        unfocused = part.grab().toImage()
        part.setFocus()
        qtbot.waitUntil(part.hasFocus)
        focused = part.grab().toImage()
        assert focused != unfocused, type(part).__name__


def test_every_focusable_widget_has_an_accessible_name(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Not only buttons and fields: anything that can take the focus (a selectable
    label, a graph's viewport) is announced by a screen reader, so it is named."""
    window = make_window(qtbot)
    window.show()
    qtbot.waitExposed(window)
    window.limit_control(
        "app:com.dropbox.Client", Direction.DOWN
    )  # a row's editors, as the pointer opens them
    window.header.filter.setText("o")
    window.set_status(
        HelperStatus(HelperState.NOT_RUNNING, "The helper is restarting.")
    )  # the banner's button
    window.set_limits_paused(True)  # the paused notice's button
    focusable = [w for w in window.findChildren(QWidget)
                 if w.focusPolicy() != Qt.FocusPolicy.NoFocus and w.isVisibleTo(window)]  # fmt: skip
    assert len(focusable) >= 10
    unnamed = [
        f"{type(w).__name__} in {type(w.parent()).__name__}"
        for w in focusable
        if not w.accessibleName()
    ]
    assert unnamed == []


def test_tab_order_follows_the_layout_with_a_banner_shown(qtbot) -> None:  # type: ignore[no-untyped-def]
    window = make_window(qtbot)
    window.set_status(
        HelperStatus(HelperState.NOT_AUTHORIZED, "Setting limits was refused.", True, False)
    )
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    window.header.filter.setFocus()
    order = []
    for _ in range(5):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        order.append(QApplication.focusWidget())
    # top to bottom: filter, usage, settings, the banner's button, the list
    assert order[:4] == [window.header.usage_button, window.header.menu_button, window.banner.retry_button,
                         window.table]  # fmt: skip


@pytest.mark.parametrize("height_px", [30, 60, 110, 300])
def test_graph_axis_labels_never_crowd(height_px: int) -> None:
    """As many labelled ticks as fit the plot's height, at least one inside it."""
    axis = RateAxis()
    line = QFontMetricsF(QApplication.font()).height()
    for top in (200_000.0, 7.5 * MB, 75 * MB):
        ((_step, values),) = axis.tickValues(0.0, top, height_px)
        inside = [v for v in values if 0 < v < top]
        assert inside, (height_px, top, values)
        assert len(inside) * line * 1.5 <= max(height_px, line * 1.5), (
            height_px,
            top,
            values,
        )  # edge labels are dropped


def test_graph_axis_keeps_a_label_at_every_height_and_top() -> None:
    """Under Xvfb with the helper away, a 70 px download plot topped at about
    4.5 MB/s had no label and no grid line at all (a 5 MB/s step, only 0
    under it), and a 20 px one had two labels touching: every top a graph
    takes (graph_top) at every plot height has one to as many as fit."""
    axis = RateAxis()
    line = QFontMetricsF(QApplication.font()).height()
    for peak in np.geomspace(1_000.0, 900 * MB, 160):
        top = graph_top(float(peak), 0)
        for height_px in range(20, 200, 5):
            ((_step, values),) = axis.tickValues(0.0, top, height_px)
            inside = [v for v in values if 0 < v < top]
            assert inside, (height_px, top, values)
            assert len(inside) * line * 1.5 <= max(height_px, line * 1.5), (height_px, top, values)


@pytest.mark.parametrize(
    ("units", "top", "label"),
    [(UnitSystem.BITS_DECIMAL, 60 * MB, "Mbit/s"), (UnitSystem.BYTES_BINARY, 60 * MB, "MiB/s")],
)
def test_graph_axis_steps_are_round_in_the_units_shown(
    units: UnitSystem, top: float, label: str
) -> None:
    axis = RateAxis(units)
    ((step, _values),) = axis.tickValues(0.0, top, 300)
    number, unit = axis.tickStrings([step], 1.0, 0.0)[0].split(" ")
    mantissa = float(number) / 10 ** math.floor(math.log10(float(number)))
    assert unit == label and round(mantissa, 6) in (1, 2, 5), (
        number,
        unit,
    )  # 50 Mbit/s, not 40 (5 MB/s)


def test_the_application_saves_its_window_state_on_quit_and_restores_it(
    qtbot, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Through AppController, as the application runs (no helper: it only reconnects)."""
    from chadthrottle.gui.controller import AppController
    from chadthrottle.gui.ipc.client_protocol import default_client_factory

    path = str(tmp_path / "app.conf")

    def quit_app(controller: AppController) -> None:
        """As the application quits: shut down, then deleted with its window (dispose)."""
        controller.dispose()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)

    def start() -> AppController:
        controller = AppController(default_client_factory("unix:path=/nonexistent/bus"),
                                   QSettings(path, QSettings.Format.IniFormat), use_tray=False,
                                   autostart_path=tmp_path / "autostart.desktop")  # fmt: skip
        controller.start(show_window=True)
        qtbot.waitExposed(controller.window)
        return controller

    first = start()
    first.window.resize(640, 420)
    first.window.detail.span.setCurrentIndex(2)
    first.window.table.sortByColumn(Column.NAME, Qt.SortOrder.AscendingOrder)
    qtbot.waitUntil(lambda: first.window.width() == 640)
    quit_app(first)
    second = start()
    try:
        assert (second.window.width(), second.window.height()) == (640, 420)
        assert second.window.detail.span.currentIndex() == 2
        assert second.window.table.header().sortIndicatorSection() == Column.NAME
    finally:
        quit_app(second)


def test_from_none_the_rows_slider_starts_near_what_the_application_uses(qtbot) -> None:  # type: ignore[no-untyped-def]
    window = make_window(qtbot)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    control = window.limit_control("exe:/usr/bin/syncthing", Direction.UP)  # 1.4 MB/s up, no limit
    assert control is not None and control.limit() is None
    control.slider.setFocus()
    qtbot.keyClick(control.slider, Qt.Key.Key_Left)
    assert control.field.text() == "1.20 MB/s"  # at or just below 1.4 MB/s, not 900 MB/s
    with qtbot.waitSignal(window.limitRequested) as blocker:
        qtbot.keyClick(control.slider, Qt.Key.Key_Return)
    assert blocker.args == ["exe:/usr/bin/syncthing", "up", 1_200_000]


@pytest.mark.parametrize("size", [(1100, 700), (683, 384)])  # roomy; 1366x768 at 2x (folded first)
def test_the_graph_shows_its_whole_span_with_the_legend_inside(
    qtbot, size: tuple[int, int]
) -> None:  # type: ignore[no-untyped-def]
    """The plots' x range was set before the pane was laid out and, linked by
    screen size, stayed at ~56 s of 60 with the legend half off the left edge
    ("wnload ┄ limit") until the scale next moved: it is set again on resize."""
    window = make_window(qtbot)
    window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    window.select_application("app:org.mozilla.firefox")
    if window.detail.folded:
        window.detail.set_folded(False)
    for direction in Direction:
        graph = window.detail.graphs[direction]
        box = graph.item.getViewBox()
        qtbot.waitUntil(lambda box=box: box.sceneBoundingRect().width() > 0)
        qtbot.waitUntil(lambda box=box: abs(box.viewRange()[0][0] + 60) < 0.01, timeout=2000)
        assert box.viewRange()[0][1] == 0
        qtbot.waitUntil(  # the legend follows its view's transform
            lambda graph=graph, box=box: (
                graph.label.sceneBoundingRect().left() >= box.sceneBoundingRect().left() - 0.5
            ),
            timeout=2000,
        )
