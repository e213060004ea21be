"""The connections table's rate and byte columns fit their numbers in the units
shown: sized for "888 KB/s" in every unit, bits read "2.33 Mbi…" at 1x."""

from __future__ import annotations

import pytest
from chadthrottle.gui.models.connection_table import ConnColumn
from chadthrottle.gui.views.detail.pane import DetailPane
from chadthrottle.units import UnitSystem, format_rate, format_size
from PySide6.QtWidgets import QApplication, QStyle

from tests.gui.bare_window import bare_window

# Rates and byte counts whose texts are the widest of their unit: 888, 88.8, 8.88 (and
# 1023 below a binary step), from bytes to gigabytes a second.
SAMPLES = [m * 10**power for power in (0, 3, 6, 9) for m in (888, 88.8, 8.88)] + [
    1023 * 1024**power for power in (0, 1, 2, 3)
]


@pytest.mark.parametrize("units", list(UnitSystem))
def test_rates_and_bytes_fit_their_columns_in_every_unit(qtbot, units: UnitSystem) -> None:  # type: ignore[no-untyped-def]
    _model, window = bare_window()
    qtbot.addWidget(window)
    window.set_units(units)
    pane: DetailPane = window.detail
    view = pane.connections
    header = view.horizontalHeader()
    style = QApplication.style()
    margins = 2 * (style.pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, view) + 1)
    metrics = view.fontMetrics()
    for columns, text in (
        ((ConnColumn.DOWN, ConnColumn.UP), lambda v: format_rate(v, units)),
        ((ConnColumn.RECEIVED, ConnColumn.SENT), lambda v: format_size(int(v), units)),
    ):
        widest = max((text(v) for v in SAMPLES), key=metrics.horizontalAdvance)
        for column in columns:
            assert metrics.horizontalAdvance(widest) + margins <= header.sectionSize(column), (
                units,
                column,
                widest,
                header.sectionSize(column),
            )
