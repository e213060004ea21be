"""The usage view's table at 2x on 1366x768 (683x384 logical): under Xvfb
(gui30) it opened with 4.3 of its 7 rows in sight under the chart (split
160/110), the chart at its least of 120 px. The chart yields height now (six
lines of its font at least), the view opens with usage_dialog.TABLE_ROWS_WANTED rows where
the chart keeps its least, and a split the user moves is kept across openings
(the settings' usage/split)."""

from __future__ import annotations

import time

from chadthrottle.gui.models.usage_periods import UsagePeriod
from chadthrottle.gui.views.usage_dialog import UsageDialog
from chadthrottle.units import UnitSystem
from PySide6.QtCore import QSettings

from tests.gui.usage_rows import row

NAMES = {f"app:demo{n}": f"Demo Application {n}" for n in range(7)}


def _shown(qtbot, dialog: UsageDialog) -> None:  # type: ignore[no-untyped-def]
    dialog.resize(667, 344)  # 1366x768 at 2x, less the frame (as the window manager gave it)
    dialog.show()
    qtbot.waitExposed(dialog)
    now = time.time()
    start = int(now) // 86_400 * 86_400
    rows = [row(app_id, start - day * 86_400, 86_400, (n + 1) * 10**9)
            for n, app_id in enumerate(NAMES) for day in range(7)]  # fmt: skip
    dialog.show_rows(UsagePeriod.WEEK, rows, now, NAMES.__getitem__, UnitSystem.BYTES_DECIMAL)
    qtbot.wait(50)


def _rows_seen(dialog: UsageDialog) -> float:
    return dialog.table.viewport().height() / dialog.table.verticalHeader().defaultSectionSize()


def test_at_2x_the_table_shows_the_rows_wanted_and_the_chart_its_least(qtbot) -> None:  # type: ignore[no-untyped-def]
    dialog = UsageDialog(UsagePeriod.WEEK)
    qtbot.addWidget(dialog)
    _shown(qtbot, dialog)
    assert dialog.table_model.rowCount() == len(NAMES)
    # TABLE_ROWS_WANTED where the chart keeps its least: here room for 5
    assert _rows_seen(dialog) >= 5.0, (_rows_seen(dialog), dialog.split.sizes())
    assert (
        dialog.chart_box.height() <= dialog.chart_box.minimumHeight() + 2
    )  # it gave what it could
    chart = dialog.chart
    assert chart.height() >= chart.minimumHeight() >= 5 * chart.fontMetrics().height()
    assert dialog.legend.geometry().top() >= chart.geometry().bottom()  # not laid over it


def test_a_split_the_user_moved_is_kept_on_the_next_opening(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The handle moved by hand (more chart), the view closed, the window
    started again on the same settings and the view opened: the same split,
    not the default fit. The real controller and UsageFlow."""
    from chadthrottle.gui.controller import AppController
    from chadthrottle.gui.ipc.state import HelperState
    from PySide6.QtCore import QCoreApplication, QEvent

    from tests.gui.test_usage_view import UsageClient, days_of_rows

    path = str(tmp_path / "chadthrottle.ini")

    def opened():  # type: ignore[no-untyped-def]
        app = AppController(lambda: UsageClient(days_of_rows(time.time())),
                            QSettings(path, QSettings.Format.IniFormat), use_tray=False)  # fmt: skip
        app.start(show_window=True)
        qtbot.waitUntil(lambda: app.connection.status.state is HelperState.CONNECTED, timeout=5000)
        dialog = app.usage.open_dialog()
        dialog.resize(667, 344)
        qtbot.waitUntil(lambda: dialog.table_model.rowCount() > 0, timeout=5000)
        qtbot.wait(50)
        return app, dialog

    app, dialog = opened()
    try:
        chart, table = dialog.split.sizes()
        assert table > 80, (chart, table)
        dialog.split.setSizes([chart + table - 60, 60])  # where a drag leaves it
        dialog.split.splitterMoved.emit(chart + table - 60, 1)  # as the drag says it
        moved = dialog.split.sizes()
        dialog.close()
    finally:
        app.dispose()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    app, dialog = opened()
    try:
        assert abs(dialog.split.sizes()[1] - moved[1]) <= 2, (dialog.split.sizes(), moved)
    finally:
        app.dispose()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
