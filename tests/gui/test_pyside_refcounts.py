"""The Qt binding keeps None alive through the model's data() overrides.

PySide6 6.12.0 dropped one reference to None each time C++ called a Python
data() override that returned None; every painted cell asks for roles the
model does not have, so with 200 applications the GUI aborted ("deallocating
None") within seconds. pyproject excludes that release; this test fails on any
binding that does it again.
"""

from __future__ import annotations

import gc
import sys

from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.icons import IconProvider
from chadthrottle.gui.models.sort_proxy import ApplicationsProxy
from PySide6.QtCore import Qt

from tests.gui.sample_data import sample_applications

CALLS = 2000


def test_data_returning_none_keeps_none_alive() -> None:
    model = ApplicationsModel(IconProvider())
    proxy = ApplicationsProxy()
    proxy.setSourceModel(model)
    model.apply_snapshot(sample_applications())
    index = proxy.index(0, 0)
    assert index.data(Qt.ItemDataRole.WhatsThisRole) is None  # a role the model does not have
    gc.collect()
    before = sys.getrefcount(None)
    for _ in range(CALLS):
        index.data(Qt.ItemDataRole.WhatsThisRole)
    gc.collect()
    lost = before - sys.getrefcount(None)
    assert lost < CALLS // 10, f"None lost {lost} references over {CALLS} data() calls"
