"""What `clear` says stays (pure; end to end in tests/e2e/test_cli_clear_says_what_stays.py):
another owner's rule is said, with no command of the caller's to lift it."""

from __future__ import annotations

from chadthrottle.cli.clear import clear_report
from chadthrottle.contract import ADMIN_OWNER, RuleInfo, RuleScope

APP = "app:org.example.Player"


def test_an_administrators_rule_is_said_and_not_offered_to_lift() -> None:
    rules = [
        RuleInfo(APP, "down", 0, 0, 1000, True, blocked=True),
        RuleInfo(APP, "up", 0, 0, 1000, True, blocked=True),
        RuleInfo(
            APP, "up", 300_000, 0, ADMIN_OWNER, True, quota_bytes=2 * 10**9, quota_period="week"
        ),
        RuleInfo("app:other", "up", 0, 0, 1000, True, blocked=True),
    ]
    assert clear_report(APP, rules, [], 1000).splitlines() == [
        f"{APP}: rate limits removed",
        f"{APP}: still set: download blocked (you); upload blocked (you); upload quota of "
        "2.00 GB a week (admin); upload limit 300 KB/s (admin)",
        f"to lift yours: chadthrottle-ctl unblock {APP}",
    ]
    assert clear_report(APP, rules[3:], [], 1000) == f"{APP}: rate limits removed"
    own = clear_report(APP, rules[:1], [], 0, RuleScope.OWN)  # root's own, not user 1000's
    assert "still set: download blocked (" in own and "to lift" not in own, own


def test_one_directions_limit_removed_says_what_stays_of_that_direction() -> None:
    """`limit APP --down unlimited` said "down limit removed" beside a download
    block; what stays of the other direction is not its news."""
    from chadthrottle.cli.clear import what_stays
    from chadthrottle.contract import ScheduleInfo

    rules = [
        RuleInfo(APP, "down", 0, 0, 1000, True, blocked=True),
        RuleInfo(APP, "up", 0, 0, 1000, True, quota_bytes=10**9, quota_period="day"),
    ]
    uploads = ScheduleInfo(APP, 1000, "sat 01:00-02:00", "sat", "01:00", "02:00", 0, 5000,
                           False, False, False)  # fmt: skip
    assert what_stays(APP, rules, [uploads], 1000, directions={"down"}) == [
        f"{APP}: still set: download blocked (you)",
        f"to lift yours: chadthrottle-ctl unblock {APP} --down",
    ]
    assert what_stays(APP, rules, [uploads], 1000, directions={"up"}) == [
        f"{APP}: still set: upload quota of 1.00 GB a day (you); schedule sat 01:00-02:00 (you)",
        f"to lift yours: chadthrottle-ctl quota {APP} --off --up; chadthrottle-ctl schedule remove {APP}",
    ]
