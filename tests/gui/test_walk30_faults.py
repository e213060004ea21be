"""What gui30's walk (Xvfb, openbox, trayer, the real helper; 1366x768 at 2x)
found wrong, each pinned here."""

from __future__ import annotations

from chadthrottle.contract import RuleInfo
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.views.main_window import MainWindow
from chadthrottle.helper_run_state import LastStop

from tests.gui.test_quota_row import DROPBOX, USER, quota_applications, window  # noqa: F401

STOPPED = "The helper stopped — its limits are off."


def test_a_used_up_quotas_rate_is_not_said_as_a_limit_set_while_the_helper_is_away(
    window: MainWindow,  # noqa: F811
) -> None:
    """The helper stopped, Harbor Browser's used-up upload quota (then 100 KB/s)
    read "Upload: limit 100 KB/s set. Not enforced: the helper stopped. Quota:
    all 1.00 MB used today; limited to 100 KB/s until the next day once the
    helper runs again." in the pane: a limit the user never set. It reads as
    the quota's, as it does paused (gui19)."""
    model = window._model
    model.set_rules([RuleInfo(DROPBOX, "up", 0, 0, USER, False, quota_bytes=2 * 10**9,
                              quota_period="week", quota_then_bps=100_000, quota_left_bytes=0)])  # fmt: skip
    model.apply_snapshot(quota_applications())  # the quota's rate listed, as the helper does
    assert window.select_application(DROPBOX)
    window.set_status(HelperStatus(HelperState.NOT_RUNNING, STOPPED, last_stop=LastStop.STOPPED))
    window.detail.refresh()
    notes = window.detail.limit_notes
    text = notes.toolTip() or notes.text()
    up = next(line for line in text.split("\n") if line.startswith("Upload"))
    said = "Upload quota: all 2.00 GB used this week; limited to 100 KB/s until next week once the helper runs again."
    assert up == said, up
    assert "limit 100 KB/s set" not in text, text
