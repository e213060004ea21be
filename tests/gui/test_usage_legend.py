"""The usage view's legend breaks its lines between applications, never
inside a name: on Xvfb at 1366x768 it read "… ■ Torrent Client With A Long" and,
on the next line, "Name ■ Other". Real widgets, offscreen."""

from __future__ import annotations

import time

from chadthrottle.gui.models.usage_periods import UsagePeriod, local_midnight
from chadthrottle.gui.views.usage_dialog import UsageDialog
from chadthrottle.units import UnitSystem
from PySide6.QtGui import QTextDocument

from tests.gui.usage_rows import row

NAMES = {
    "app:harbor": "Harbor Browser",
    "app:parcel": "Parcel Updates",
    "app:nimbus": "Nimbus Sync",
    "app:game": "Game Launcher",
    "app:photo": "Photo Backup",
    "app:torrent": "Torrent Client With A Long Name",
    "app:mail": "Mail",
    "app:music": "Music Streamer",
}


def _lines_start_at_a_name(dialog: UsageDialog, widths: range) -> None:
    """Laid out at each width, every line of the legend after the first
    starts at an application's square: none begins inside a name."""
    for width in widths:
        document = QTextDocument()
        document.setDefaultFont(dialog.legend.font())
        document.setHtml(dialog.legend.text())
        document.setTextWidth(width)
        assert document.size().height() > 0  # laid out
        block = document.firstBlock()
        layout = block.layout()
        text = block.text()
        for number in range(1, layout.lineCount()):
            starts = text[layout.lineAt(number).textStart() :].lstrip()
            assert starts.startswith("■"), (width, starts[:30])


def test_the_legend_breaks_lines_between_applications(qtbot) -> None:  # type: ignore[no-untyped-def]
    dialog = UsageDialog(UsagePeriod.TODAY)
    qtbot.addWidget(dialog)
    now = time.time()
    start = local_midnight(now)  # today's first hour: an hour ago was yesterday just after midnight
    rows = [row(app_id, start, 600, (len(NAMES) - n) * 10**9) for n, app_id in enumerate(NAMES)]
    dialog.show_rows(UsagePeriod.TODAY, rows, now, NAMES.__getitem__, UnitSystem.BYTES_DECIMAL)
    legend = dialog.legend.text()
    names = [n for n in NAMES.values() if n in legend.replace("&nbsp;", " ")]
    assert "Torrent Client With A Long Name" in names
    _lines_start_at_a_name(dialog, range(300, 760, 20))  # wherever it makes it wrap


def test_a_name_told_apart_by_its_id_is_not_broken_at_its_slashes(qtbot) -> None:  # type: ignore[no-untyped-def]
    """walk28: two scripts called traffic.py are shown "traffic.py (script:/tmp/…
    /traffic.py)"; the legend broke that after "script:/tmp/" and at its hyphens,
    the rest of the name on the next line. Wherever it fits on a line, it is one."""
    names = {
        "script:/tmp/chadthrottle-traffic-9434-pwby84wu/traffic.py":
            "traffic.py (script:/tmp/chadthrottle-traffic-9434-pwby84wu/traffic.py)",
        "script:/tmp/chadthrottle-traffic-8502-m6elc8nw/traffic.py":
            "traffic.py (script:/tmp/chadthrottle-traffic-8502-m6elc8nw/traffic.py)",
        "app:harbor": "Harbor Browser",
    }  # fmt: skip
    dialog = UsageDialog(UsagePeriod.TODAY)
    qtbot.addWidget(dialog)
    now = time.time()
    start = local_midnight(now)
    rows = [row(app_id, start, 600, (len(names) - n) * 10**9) for n, app_id in enumerate(names)]
    dialog.show_rows(UsagePeriod.TODAY, rows, now, names.__getitem__, UnitSystem.BYTES_DECIMAL)
    widest = max(dialog.legend.fontMetrics().horizontalAdvance(f"■ {n}") for n in names.values())
    _lines_start_at_a_name(dialog, range(widest + 20, widest + 400, 20))


def test_a_legend_of_several_lines_is_not_drawn_over_the_chart(qtbot) -> None:  # type: ignore[no-untyped-def]
    """walk28, at 2x on 1366x768 (the view 667x344 device-independent pixels):
    a legend of four lines (names told apart by their ids) was laid over the
    chart's day labels: the chart kept its least height and the box holding
    both was no taller for the legend's lines. Real widgets, offscreen."""
    names = {"app:blocked": "R28Blocked7a521f"}
    names.update({f"script:/tmp/chadthrottle-traffic-{n}-pwby84wu/traffic.py":
                  f"traffic.py (script:/tmp/chadthrottle-traffic-{n}-pwby84wu/traffic.py)"
                  for n in (9434, 10631, 8502)})  # fmt: skip
    names.update({f"app:peer{n}": f"TestBlockPeer692fda44b2d{n}" for n in range(4)})  # and Other
    dialog = UsageDialog(UsagePeriod.TODAY)
    qtbot.addWidget(dialog)
    now = time.time()
    start = local_midnight(now)
    rows = [row(app_id, start, 600, (len(names) - n) * 10**9) for n, app_id in enumerate(names)]
    dialog.resize(667, 344)
    dialog.show()  # as the window does: shown, then the helper's answer
    qtbot.waitExposed(dialog)
    dialog.show_rows(UsagePeriod.TODAY, rows, now, names.__getitem__, UnitSystem.BYTES_DECIMAL)

    def apart() -> bool:
        legend = dialog.legend.geometry()
        return (legend.height() >= dialog.legend.heightForWidth(legend.width())
                and legend.top() > dialog.chart.geometry().bottom())  # fmt: skip

    qtbot.waitUntil(apart, timeout=2000)
    assert dialog.table.isVisible() and dialog.table.height() > 0
