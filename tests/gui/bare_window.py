"""The main window over an empty applications model, sorted busiest first, as
the GUI builds it but without a controller or a helper: for the GUI tests, the
probes they run in a child process and the GUI benches."""

from __future__ import annotations

from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.icons import IconProvider
from chadthrottle.gui.models.sort_proxy import ApplicationsProxy
from chadthrottle.gui.settings import Settings
from chadthrottle.gui.views.main_window import MainWindow


def bare_window(settings: Settings | None = None) -> tuple[ApplicationsModel, MainWindow]:
    model = ApplicationsModel(IconProvider())
    proxy = ApplicationsProxy()
    proxy.setSourceModel(model)
    proxy.sort_by_activity()
    return model, MainWindow(model, proxy, settings if settings is not None else Settings())
