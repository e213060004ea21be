"""The state banner says each thing once."""

from __future__ import annotations

from chadthrottle.gui.ipc.state import HelperState
from chadthrottle.gui.ipc.status_logic import Observations, derive_status
from chadthrottle.gui.views.state_banner import StateBanner


def test_connecting_is_said_once(qtbot) -> None:  # type: ignore[no-untyped-def]
    banner = StateBanner()
    qtbot.addWidget(banner)
    banner.show()
    status = derive_status(Observations())  # what the window shows before the first answer
    assert status.state is HelperState.CONNECTING and status.detail  # it carries the same words
    banner.show_status(status)
    assert banner.title.text() == "Connecting to the ChadThrottle helper…"
    assert banner.text.isHidden()  # was "Connecting to the helper…" under it
