"""A poll paints the detail pane's graph and its rates line once (issue 17's
GUI CPU): pyqtgraph set a plot's new scale in its paint, which painted the
graph again; the selectable rates line laid its new text out in its paint,
which painted it (and its parents) again."""

from __future__ import annotations

import dataclasses

from chadthrottle.gui.views.main_window import MainWindow
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QGraphicsView

from tests.gui.sample_data import KB, MB, sample_applications


def test_a_poll_paints_the_graph_and_the_rates_line_once(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    detail = window.detail
    qtbot.waitUntil(lambda: bool(detail.graphs) and detail.app_id != "")
    view = detail.plot.findChild(QGraphicsView)
    assert view is not None
    painted: dict[str, int] = {}
    watched = {id(detail.summary): "rates line", id(view.viewport()): "graph"}

    class Paints(QObject):
        def eventFilter(self, obj: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint and id(obj) in watched:
                painted[watched[id(obj)]] = painted.get(watched[id(obj)], 0) + 1
            return False

    spy = Paints()
    app = QApplication.instance()
    assert app is not None
    shown = detail.app_id
    qtbot.wait(50)  # what the first show scheduled has run
    app.installEventFilter(spy)
    try:
        for up in (900 * KB, 9 * MB, 90 * MB):  # each moves the upload plot's scale up
            painted.clear()
            tops = [graph.top for graph in detail.graphs.values()]
            window._model.apply_snapshot([dataclasses.replace(a, up_bps=up) if a.id == shown else a
                                          for a in sample_applications()])  # fmt: skip
            qtbot.waitUntil(lambda: "graph" in painted and "rates line" in painted)
            qtbot.wait(60)  # any later pass of this poll has run
            assert [g.top for g in detail.graphs.values()] != tops  # the scale did move
            assert painted == {"graph": 1, "rates line": 1}, (up, painted)
    finally:
        app.removeEventFilter(spy)
