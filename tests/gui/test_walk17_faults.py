"""Faults the last walk of the real app on a screen found and left (gui10:
Xvfb, openbox and trayer, the real helper in network namespaces), fixed by
gui17, each with the real widgets."""

from __future__ import annotations

from chadthrottle.contract import Direction
from chadthrottle.gui.views.rules_dialog import AppRules, RulesDialog
from chadthrottle.units import UnitSystem

FIREFOX = "app:org.mozilla.firefox"


def test_every_quota_line_of_the_rules_dialog_ends_with_a_full_stop(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The Block and quota tab's line read "Upload: all 1.00 MB used today:
    held to 100 KB/s until the next day", with no full stop, beside lines that
    each end with one ("No quota. A new quota counts from when it is set."); two
    quotas were one sentence joined by ";". Each quota is a sentence."""
    quotas = {
        Direction.DOWN: (5_000_000_000, 1_200_000_000, "day"),
        Direction.UP: (10**6, 0, "day"),
    }
    rules = AppRules(FIREFOX, "Firefox", quotas=quotas, held_by_quota={Direction.UP: 100_000})
    dialog = RulesDialog(rules, UnitSystem.BYTES_DECIMAL)
    qtbot.addWidget(dialog)
    assert dialog.quota_state.text() == (
        "Download: 1.20 GB of 5.00 GB left today, counted since it was set or the day began. "
        "Upload: all 1.00 MB used today: held to 100\u00a0KB/s until the next day."
    ), dialog.quota_state.text()
    dialog.show_rules(AppRules(FIREFOX, "Firefox"))
    assert dialog.quota_state.text() == "No quota. A new quota counts from when it is set."
