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


def test_a_helper_away_for_long_is_not_said_to_be_back_soon(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Seen on screen: a helper stopped for good kept the banner saying "Nothing
    needs doing; this banner goes away by itself", with no limit enforced. It
    says so, and after away_long_s where to look; polls failing again keep it."""
    banner = StateBanner()
    qtbot.addWidget(banner)
    banner.show()
    banner.away_long_s = 0.3
    gone = derive_status(Observations(poll_error_name="org.freedesktop.DBus.Error.ServiceUnknown",
                                      has_polled_ok=True))  # fmt: skip
    assert gone.detail == "The helper stopped."  # not a guess that it is restarting
    assert gone.state is HelperState.NOT_RUNNING
    banner.show_status(gone)
    assert "No limit is enforced until it is back" in banner.text.text()
    assert "Nothing needs doing" not in banner.text.text()
    qtbot.waitUntil(lambda: "journalctl -u chadthrottle-helper" in banner.text.text(), timeout=3000)
    banner.show_status(gone)  # the next failed poll
    assert "journalctl" in banner.text.text()
    assert "within seconds" not in banner.text.text() and "restarting" not in banner.text.text()
    banner.show_status(derive_status(Observations(has_polled_ok=True)))  # back
    assert banner.isHidden()
    banner.show_status(gone)  # away again: from now
    assert "journalctl" not in banner.text.text()


def test_a_stopped_helper_is_not_said_to_be_restarting(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Seen on screen: a helper simply stopped (systemctl stop) read "The helper
    is restarting. … It is usually back within seconds". The bus says only
    that it is gone: the banner says that, and that the window keeps trying."""
    banner = StateBanner()
    qtbot.addWidget(banner)
    banner.show()
    gone = derive_status(Observations(poll_error_name="org.freedesktop.DBus.Error.ServiceUnknown",
                                      has_polled_ok=True))  # fmt: skip
    banner.show_status(gone)
    said = f"{banner.title.text()} {banner.text.text()}"
    assert "restarting" not in said and "usually back" not in said, said
    assert said.startswith("The helper is not running — reconnecting…")
    assert "The helper stopped." in said and "No limit is enforced" in said
    assert "reconnects as soon as it runs again" in said
