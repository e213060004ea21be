"""A poll's new rates repaint the header's totals and the detail pane's rates
line only: their fixed sizes keep setText from invalidating the window's
layout (gui/views/steady_text.py; issue 17, GUI CPU per poll)."""

from __future__ import annotations

import dataclasses

from chadthrottle.gui.views.header_bar import widest_totals
from chadthrottle.units import UnitSystem
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QLabel

from tests.gui.sample_data import sample_applications

FIREFOX = "app:org.mozilla.firefox"  # with a download limit: the longest line


class LayoutRequests(QObject):
    """Counts the layout requests a widget receives."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:
            self.count += 1
        return False


def settle(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    """The first layouts done: waits until 50 ms pass with no layout request
    reaching the window (at most 5 s). Flushing what was posted once was not
    enough on a loaded machine: in a full tests/gui run beside two busy loops
    the window still received one request from its start-up after that."""
    quiet = LayoutRequests()
    window.installEventFilter(quiet)
    try:
        for _ in range(100):
            quiet.count = 0
            qtbot.wait(50)
            QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
            if quiet.count == 0:
                return
        raise AssertionError("the window kept laying itself out for 5 s")
    finally:
        window.removeEventFilter(quiet)


def test_new_totals_do_not_lay_the_window_out_again(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    header = window.header
    header.set_totals(0, 0, UnitSystem.BYTES_DECIMAL, True)
    settle(qtbot, window)
    requests = LayoutRequests()
    window.installEventFilter(requests)
    header.layout().installEventFilter(requests)
    before = header.totals.geometry()
    for down, up in ((1, 2), (123_400_000, 987), (999_999, 12_300_000_000), (5, 5)):
        header.set_totals(down, up, UnitSystem.BYTES_DECIMAL, down != 5)
        qtbot.wait(1)
    window.removeEventFilter(requests)
    assert requests.count == 0
    assert header.totals.geometry() == before
    assert header.totals.text().endswith("5 B/s</span>")  # the text did change


def test_the_fixed_size_fits_the_widest_value_in_every_unit(window) -> None:  # type: ignore[no-untyped-def]
    header = window.header
    probe = QLabel()
    probe.setFont(header.totals.font())
    for units in UnitSystem:
        header.set_totals(0, 0, units, True)
        size = header.totals.size()
        for text in widest_totals(units):
            for shown in (text, f"<span style='color: gray'>{text}</span>"):
                probe.setText(shown)
                hint = probe.sizeHint()
                assert hint.width() <= size.width(), (units, shown)
                assert hint.height() <= size.height(), (units, shown)


def polled(down_bps: float, up_bps: float) -> list:  # type: ignore[type-arg]
    """The sample applications with Firefox at these rates, as a poll brings them."""
    return [
        dataclasses.replace(app, down_bps=down_bps, up_bps=up_bps) if app.id == FIREFOX else app
        for app in sample_applications()
    ]


def test_new_rates_in_the_detail_pane_do_not_lay_the_window_out_again(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    assert window.select_application(FIREFOX)
    summary = window.detail.summary
    window.header.set_totals(0, 0, UnitSystem.BYTES_DECIMAL, True)
    settle(qtbot, window)
    requests = LayoutRequests()
    window.installEventFilter(requests)
    window.detail.layout().installEventFilter(requests)
    size = summary.size()
    texts = []
    for down, up in ((1, 2), (123_400_000, 987), (999_999, 12_300_000_000), (5, 5)):
        window._model.apply_snapshot(polled(down, up))
        qtbot.wait(1)
        texts.append(summary.text())
    window.removeEventFilter(requests)
    assert requests.count == 0
    assert summary.size() == size
    assert len(set(texts)) == 4  # each poll did change the line
    assert texts[1].startswith("Firefox: down 123 MB/s")


def test_the_rates_line_fits_its_widest_values(window) -> None:  # type: ignore[no-untyped-def]
    assert window.select_application(FIREFOX)
    summary = window.detail.summary
    probe = QLabel()
    probe.setFont(summary.font())
    for units in UnitSystem:
        window._model.set_units(units)
        for down in (999, 88_800, 1023 * 1024, 1023 * 1024**2 / 8, 987.6e6 / 8):
            window._model.apply_snapshot(polled(down, down))
            probe.setText(summary.text())
            assert probe.sizeHint().width() <= summary.width(), (units, summary.text())
            assert probe.sizeHint().height() <= summary.height(), (units, summary.text())
