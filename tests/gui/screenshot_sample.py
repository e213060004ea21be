"""Render the main window with sample data to a PNG, for looking at the design.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python -m tests.gui.screenshot_sample OUT.png [STATE]
STATE is one of connected (default), not-running, not-authorized, not-installed,
kernel-feature-missing, owners (seen by uid 1000: Firefox's download limit is the
administrator's, Steam's is not enforced). SELECT, an application id, picks the
selected row. Not a test: a way to see the window without a helper, at 1366x768.
"""

from __future__ import annotations

import dataclasses
import sys

from chadthrottle.contract import ADMIN_OWNER, BackendInfo, RuleInfo
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.icons import IconProvider
from chadthrottle.gui.models.sort_proxy import ApplicationsProxy
from chadthrottle.gui.settings import Settings
from chadthrottle.gui.views.main_window import MainWindow
from PySide6.QtWidgets import QApplication

from tests.gui.sample_data import apply_history, sample_applications

STATUSES = {
    "connected": HelperStatus(HelperState.CONNECTED, "", True, True),
    "not-running": HelperStatus(HelperState.NOT_RUNNING, "The helper stopped."),
    "not-authorized": HelperStatus(
        HelperState.NOT_AUTHORIZED, "Setting limits was refused.", True, False
    ),
    "not-installed": HelperStatus(HelperState.NOT_INSTALLED, ""),
    "kernel-feature-missing": HelperStatus(
        HelperState.KERNEL_FEATURE_MISSING,
        "No backend can enforce limits on this kernel (ebpf: BTF missing; tc: sch_htb not built). "
        "Monitoring still works.",
        True,
        False,
    ),
}
FOREIGN_FILTER = (
    "a tc filter on eth0 that ChadThrottle did not add sends download traffic past the limit"
)
PROCESS_NAMES = {
    2210: "firefox",
    2251: "Web Content",
    2302: "Isolated Web Co",
    4390: "steam",
    4412: "steamwebhelper",
}


def main() -> int:
    path = sys.argv[1]
    state = sys.argv[2] if len(sys.argv) > 2 else "connected"
    status = STATUSES.get(state, STATUSES["connected"])
    app = QApplication(sys.argv[:1])
    model = ApplicationsModel(IconProvider())
    proxy = ApplicationsProxy()
    proxy.setSourceModel(model)
    proxy.sort_by_activity()
    window = MainWindow(model, proxy, Settings())
    apps = sample_applications()
    if state == "owners":
        model.set_viewer_uid(1000)
        model.set_rules([RuleInfo("app:org.mozilla.firefox", "down", 1_000_000, 0, 1000, False)])
        apps[0] = dataclasses.replace(apps[0], down_limit_owner=ADMIN_OWNER)
        apps[1] = dataclasses.replace(
            apps[1], down_limit_owner=1000, down_limit_problem=FOREIGN_FILTER
        )
        apps[2] = dataclasses.replace(apps[2], up_limit_owner=1000)
    apply_history(model, apps, PROCESS_NAMES)
    window.set_backends(
        (BackendInfo("ebpf", True, "", ("down",)), BackendInfo("tc", True, "", ("up",)))
    )
    window.set_status(status)
    window.resize(1366, 768)
    window.show()
    if len(sys.argv) > 3:
        window.select_application(sys.argv[3])
    window.table.expand(window.table.proxy_index("app:com.valvesoftware.Steam"))
    for _ in range(5):
        app.processEvents()
    window.grab().save(path)
    print(path)
    window.deleteLater()
    app.sendPostedEvents(None, 0)
    del window, proxy, model
    return 0


if __name__ == "__main__":
    sys.exit(main())
