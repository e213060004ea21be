"""A poll's new totals repaint the header's label only: its fixed size keeps
setText from invalidating the window's layout (issue 17, GUI CPU per poll)."""

from __future__ import annotations

from chadthrottle.gui.views.header_bar import widest_totals
from chadthrottle.units import UnitSystem
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QLabel


class LayoutRequests(QObject):
    """Counts the layout requests a widget receives."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:
            self.count += 1
        return False


def test_new_totals_do_not_lay_the_window_out_again(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    header = window.header
    header.set_totals(0, 0, UnitSystem.BYTES_DECIMAL, True)
    qtbot.wait(50)  # the first layout settles
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
