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


def shown_connected_window(
    width: int = 1100, height: int = 720
) -> tuple[ApplicationsModel, MainWindow]:
    """bare_window() on screen at a desktop size, its helper shown as connected:
    the state the GUI benches measure paints and polls in."""
    from chadthrottle.gui.ipc.state import HelperState, HelperStatus

    model, window = bare_window()
    window.resize(width, height)
    window.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    window.show()
    return model, window
