"""What the usage history work costs the window per poll (issue 14).

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_usage_cost.py [--apps 200] [--polls 300]

The main window on the offscreen platform, fed bench/gui_feed.py's scripted
applications directly (no bus): after a warm-up that fills five minutes of
history, it times each poll's merge (``apply_snapshot``, which also refreshes
the detail graph of the selected application) and the paint that follows,
for each graph span, and, where the window has it, one totals-column update
(``set_usage``, after each poll that moved bytes in the window) for every
application, every figure changed and none. Run it with
PYTHONPATH pointing at an older tree to compare (both use only what every
version has). Prints milliseconds: median and 90th percentile per poll.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.gui.bare_window
from gui_feed import ScriptedApplications


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument("--polls", type=int, default=300)
    arguments = parser.parse_args()
    app = QApplication(sys.argv[:1])
    from tests.gui.bare_window import shown_connected_window

    model, window = shown_connected_window()
    feed = ScriptedApplications(arguments.apps)
    start = time.time() - arguments.polls
    for second in range(arguments.polls):  # five minutes of history, one poll a second
        model.apply_snapshot(feed.snapshot(start + second))
    app.processEvents()
    chosen = model.app_ids()[0]
    window.select_application(chosen)
    print(
        f"{arguments.apps} applications, {arguments.polls} polls of history; {sys.modules['chadthrottle'].__path__}"
    )
    for span in range(window.detail.span.count()):
        window.detail.span.setCurrentIndex(span)
        times = []
        for poll in range(60):
            began = time.perf_counter()
            model.apply_snapshot(feed.snapshot(time.time() + poll))
            app.processEvents()  # the paint the merge asked for
            times.append((time.perf_counter() - began) * 1000)
        times.sort()
        print(f"poll with the graph at {window.detail.span.itemText(span)!r}: median {statistics.median(times):.2f} ms, "
              f"p90 {times[int(len(times) * 0.9)]:.2f} ms")  # fmt: skip
    if hasattr(model, "set_usage"):
        from chadthrottle.gui.models.usage_cells import UsageColumnState

        # Asked after each poll that moved bytes: every figure changed (all moving), or none.
        for moving in (True, False):
            times = []
            for round_ in range(20):
                grown = 10**6 * round_ if moving else 0
                totals = {app_id: (10**9 + grown, 10**8) for app_id in model.app_ids()}
                began = time.perf_counter()
                model.set_usage(UsageColumnState(totals, "Today"))
                app.processEvents()
                times.append((time.perf_counter() - began) * 1000)
            print(f"totals column update (set_usage, {len(totals)} applications, "
                  f"{'every' if moving else 'no'} figure changed): median {statistics.median(times[1:]):.2f} ms")  # fmt: skip
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
