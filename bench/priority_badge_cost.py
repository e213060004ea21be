"""What the priority badge costs the list's paint (issue 16).

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/priority_badge_cost.py [--apps 200] [--paints 200]

The main window on the offscreen platform with bench/gui_feed.py's scripted
applications: the table's viewport is painted (grab) many times with the name
column's NameDelegate (the badge), and with Qt's plain delegate in its place,
first with no priority (every row Normal: the badge's cost is one data() call a
name cell), then with every fourth application given a priority. Paints
alternate between the two delegates so load on a shared machine falls on
both. Prints milliseconds per full paint (median, 90th percentile) and the
badge's share.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

from PySide6.QtWidgets import QApplication, QStyledItemDelegate

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.gui.bare_window
from gui_feed import ScriptedApplications

PRIORITIES = ("critical", "high", "low")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument("--paints", type=int, default=200)
    arguments = parser.parse_args()
    app = QApplication(sys.argv[:1])
    from chadthrottle.gui.models.columns import Column

    from tests.gui.bare_window import shown_connected_window

    model, window = shown_connected_window()
    feed = ScriptedApplications(arguments.apps)
    applications = feed.snapshot(time.time())
    table = window.table
    badge, plain = table.name_delegate, QStyledItemDelegate(table)
    for label, apps in (("no priority", applications),
                        ("every 4th with one", [dataclasses.replace(a, priority=PRIORITIES[i // 4 % 3])
                                                if i % 4 == 0 else a for i, a in enumerate(applications)])):  # fmt: skip
        model.apply_snapshot(apps)
        app.processEvents()
        times: dict[str, list[float]] = {"badge": [], "plain": []}
        for paint in range(arguments.paints):
            name = "badge" if paint % 2 == 0 else "plain"
            table.setItemDelegateForColumn(Column.NAME, badge if name == "badge" else plain)
            started = time.perf_counter()
            table.viewport().grab()
            times[name].append((time.perf_counter() - started) * 1000)
        with_badge, without = (statistics.median(times[k]) for k in ("badge", "plain"))
        p90 = {k: statistics.quantiles(v, n=10)[-1] for k, v in times.items()}
        print(
            f"{label}: paint {with_badge:.2f} ms (p90 {p90['badge']:.2f}) with the badge delegate, "
            f"{without:.2f} ms (p90 {p90['plain']:.2f}) without: {with_badge - without:+.2f} ms a paint"
        )
    table.setItemDelegateForColumn(Column.NAME, badge)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
