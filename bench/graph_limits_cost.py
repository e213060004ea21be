"""What keeping each sample's limit costs the window (graph28): the model's
merge of one poll (ApplicationsModel.apply_snapshot: the held limits worked
out and stored per sample) and the Activity sparkline's paint of a row (its
limit drawn per sample), offscreen, no helper.

    .venv/bin/python bench/graph_limits_cost.py [--apps 200] [--limited 20]

Prints the least CPU time (time.process_time) of 7 runs: per poll of --apps
applications, --limited of them with a download limit; per sparkline row.
The least of several runs, as other work on the machine only adds to it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument("--limited", type=int, default=20)
    args = parser.parse_args()
    from PySide6.QtCore import QRect
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtWidgets import QApplication, QStyleOptionViewItem

    qt = QApplication([])
    from chadthrottle.gui.models.columns import Column

    from tests.gui.bare_window import bare_window
    from tests.gui.sample_data import app

    model, window = bare_window()
    apps = [app(f"exe:/x/{i}", f"a{i}", 1000.0 * i, 10.0 * i, pids=(1000 + i,),
                down_limit_bps=500_000 if i < args.limited else 0) for i in range(args.apps)]  # fmt: skip

    def poll(k: int) -> None:
        model.apply_snapshot([dataclasses.replace(a, down_bps=a.down_bps + k) for a in apps])

    for k in range(70):  # the sparklines' minute filled
        poll(k)
    runs = []
    for _ in range(7):
        started = time.process_time()
        for k in range(50):
            poll(k)
        runs.append((time.process_time() - started) / 50 * 1e3)
    print(f"apply_snapshot, {args.apps} apps ({args.limited} limited): {min(runs):.2f} ms CPU per poll "
          f"(7 runs {min(runs):.2f}-{max(runs):.2f})")  # fmt: skip
    table = window.table
    table.sparkline_delegate.scale = (300_000.0, 3000.0)
    image = QImage(120, 24, QImage.Format.Format_ARGB32)
    option = QStyleOptionViewItem()
    table.initViewItemOption(option)
    option.rect = QRect(0, 0, 120, 24)
    indexes = [model.index(row, Column.ACTIVITY) for row in range(model.rowCount())]
    runs = []
    for _ in range(7):
        painter = QPainter(image)
        started = time.process_time()
        for _ in range(5):
            for index in indexes:
                table.sparkline_delegate.paint(painter, option, index)
        runs.append((time.process_time() - started) / (5 * len(indexes)) * 1e6)
        painter.end()
    print(
        f"sparkline paint: {min(runs):.1f} us CPU per row (7 runs {min(runs):.1f}-{max(runs):.1f})"
    )
    del qt
    return 0


if __name__ == "__main__":
    sys.exit(main())
