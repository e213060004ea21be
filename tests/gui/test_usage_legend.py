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
    for width in range(300, 760, 20):  # wherever the label's width makes it wrap
        document = QTextDocument()
        document.setDefaultFont(dialog.legend.font())
        document.setHtml(legend)
        document.setTextWidth(width)
        assert document.size().height() > 0  # laid out
        block = document.firstBlock()
        layout = block.layout()
        text = block.text()
        for number in range(1, layout.lineCount()):
            starts = text[layout.lineAt(number).textStart() :].lstrip()
            assert starts.startswith("■"), (width, starts[:30])
