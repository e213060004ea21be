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


def test_the_commands_offered_lift_only_what_is_said_and_paste_as_typed() -> None:
    """`limit APP --up unlimited` offered "schedule remove APP", which removes
    every schedule of the caller's, the download's too, not said; and an id
    with a space was printed unquoted, a command that fails when pasted."""
    from chadthrottle.cli.clear import what_stays
    from chadthrottle.contract import ScheduleInfo

    def schedule(name: str, down: int, up: int, app: str = APP) -> ScheduleInfo:
        return ScheduleInfo(app, 1000, name, name.split()[0], "01:00", "02:00", down, up,
                            False, False, False)  # fmt: skip

    both = [schedule("sat 01:00-02:00", 0, 5000), schedule("sun 01:00-02:00", 7000, 0)]
    assert what_stays(APP, [], both, 1000, directions={"up"}) == [
        f"{APP}: still set: schedule sat 01:00-02:00 (you)",
        f"to lift yours: chadthrottle-ctl schedule remove {APP} 'sat 01:00-02:00'",
    ]  # "schedule remove APP" until review28: the sunday download schedule went too
    assert what_stays(APP, [], both, 1000)[-1] == (
        f"to lift yours: chadthrottle-ctl schedule remove {APP}"
    )  # every one said: all of them
    script = "script:/home/ann/my tools/sync.py"
    rules = [RuleInfo(script, "down", 0, 0, 1000, True, blocked=True)]
    lifts = what_stays(script, rules, [schedule("sat 01:00-02:00", 9, 0, script)], 1000)[-1]
    assert lifts == (
        "to lift yours: chadthrottle-ctl unblock 'script:/home/ann/my tools/sync.py' --down; "
        "chadthrottle-ctl schedule remove 'script:/home/ann/my tools/sync.py'"
    )
