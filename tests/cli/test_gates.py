"""chadthrottle-ctl block, unblock and quota: what argparse accepts, and how
list shows a block and a quota (pure; the calls are tested end to end in
tests/e2e/test_block_and_quota.py)."""

from __future__ import annotations

import argparse
import dataclasses

import pytest
from chadthrottle.cli import ctl
from chadthrottle.cli.gates import parse_clock, parse_size
from chadthrottle.contract import ADMIN_OWNER, ApplicationInfo, Direction, RuleInfo


def test_sizes_and_reset_times_parse_as_people_write_them() -> None:
    assert [parse_size(t) for t in ("5MB", "5M", "500mib", "2GB", "1.5g", "1000", "64KiB")] == [
        5_000_000,
        5_000_000,
        500 * 1024**2,
        2 * 10**9,
        1_500_000_000,
        1000,
        65536,
    ]
    for bad in ("5 parsecs", "MB", "-1MB", "5iB"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)
    assert parse_clock("00:00") == 0 and parse_clock("23:59") == 1439
    with pytest.raises(argparse.ArgumentTypeError):
        parse_clock("24:00")


def test_quota_options_that_do_not_go_together_end_with_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv in (
        ["quota", "app:x", "5MB"],
        ["quota", "app:x", "--per", "day"],
        ["quota", "app:x", "5MB", "--off"],
        ["quota", "app:x", "5MB", "--per", "day", "--then", "unlimited"],
        ["block", "app:x", "--up", "--down"],
    ):
        with pytest.raises(SystemExit) as ended:
            ctl.main(argv)
        assert ended.value.code == 2, argv
    assert "quota" in capsys.readouterr().err


def test_list_shows_a_block_as_blocked_and_what_a_quota_has_left() -> None:
    app = ApplicationInfo("app:org.example.Player", "Player", "", (1000,), (5,), 0.0, 0.0, 0, 0, 0, 0,
                          down_limit_owner=ADMIN_OWNER)  # fmt: skip
    blocked = dataclasses.replace(app, down_blocked=True, down_quota_bytes=5_000_000, down_quota_left_bytes=0,
                                  down_quota_period="day", up_limit_bps=1_000_000, up_quota_bytes=2 * 10**9,
                                  up_quota_left_bytes=1_500_000_000, up_quota_period="month")  # fmt: skip
    row = ctl.format_applications([blocked]).splitlines()[1]
    assert "blocked (admin, quota of 5.00 MB used up this day)" in row
    assert "1.00 MB/s (admin, quota 1.50 GB of 2.00 GB left this month)" in row
    assert blocked.blocked(Direction.DOWN) and not blocked.blocked(Direction.UP)


def test_a_block_that_is_not_enforced_says_so() -> None:
    app = ApplicationInfo("app:org.example.Player", "Player", "", (1000,), (5,), 0.0, 0.0, 0, 0, 0, 0,
                          up_blocked=True, up_limit_problem="limits are paused")  # fmt: skip
    assert "blocked (admin) NOT ENFORCED" in ctl.format_applications([app])
    assert ctl.applications_report([app], paused=False).endswith(
        "app:org.example.Player: up block not enforced: limits are paused"
    )


def test_quota_off_refuses_the_options_of_a_quota(capsys: pytest.CaptureFixture[str]) -> None:
    """--off with --then or --reset was accepted and the option silently dropped."""
    for extra in (["--then", "block"], ["--then", "1M"], ["--reset", "06:00"]):
        with pytest.raises(SystemExit) as ended:
            ctl.main(["quota", "app:x", "--off", *extra])
        assert ended.value.code == 2, extra
        assert "quota --off takes no" in capsys.readouterr().err


def test_list_names_the_schedule_that_blocks_or_limits_now() -> None:
    """A schedule's block stays after 'unblock' (which lifts the plain block):
    the row says which schedule holds the direction."""
    app = ApplicationInfo("app:org.example.Player", "Player", "", (1000,), (5,), 0.0, 0.0, 0, 0, 0, 300_000,
                          down_blocked=True, down_schedule="mon-fri 09:00-17:00", up_schedule="daily 00:00-23:59")  # fmt: skip
    row = ctl.format_applications([app]).splitlines()[1]
    assert "blocked (admin, schedule mon-fri 09:00-17:00)" in row
    assert "300 KB/s (admin, schedule daily 00:00-23:59)" in row


class _Schedules:
    """The two calls unblock makes, answered from a list (the call itself is
    tested end to end; this is what is printed)."""

    def __init__(self, schedules: list[object]) -> None:
        self.schedules = schedules

    def set_blocked(self, app_id: str, direction: object, blocked: bool, *, scope: object) -> str:
        return app_id

    def list_schedules(self) -> list[object]:
        return self.schedules


def test_unblock_names_a_schedule_that_still_blocks() -> None:
    """unblock lifts the plain block only; it said 'unblocked' while an active
    schedule kept the application blocked."""
    from chadthrottle.cli.gates import run_gate
    from chadthrottle.contract import ScheduleInfo

    night = ScheduleInfo(
        "app:x",
        ADMIN_OWNER,
        "daily 22:00-06:00",
        "daily",
        "22:00",
        "06:00",
        0,
        0,
        False,
        True,
        True,
    )
    idle = dataclasses.replace(night, name="sat 10:00-11:00", active=False)
    other = dataclasses.replace(night, app_id="app:y")

    def unblock(direction: Direction | None, schedules: list[object]) -> str:
        arguments = argparse.Namespace(
            command="unblock", app="app:x", direction=direction, scope=None
        )
        return run_gate(_Schedules(schedules), arguments)  # type: ignore[arg-type]

    assert unblock(None, [night, idle, other]) == (
        "app:x: down and up unblocked; still blocked by the schedule daily 22:00-06:00 while it is active "
        "(chadthrottle-ctl schedule remove app:x NAME lifts it)"
    )
    assert unblock(Direction.DOWN, [night]) == "app:x: down unblocked"  # it blocks uploads only
    assert unblock(None, [idle, other]) == "app:x: down and up unblocked"


class _Rules:
    """A helper client with one ListRules answer and no applications
    (blocking_client's, as `rules` uses it)."""

    def __init__(self, *rules: RuleInfo) -> None:
        self.rules = list(rules)

    def __enter__(self) -> _Rules:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def list_rules(self) -> list[RuleInfo]:
        return self.rules

    def list_applications(self) -> list[object]:  # whether priorities hold: none here
        return []


def test_rules_says_a_block_the_kernel_did_not_take_is_not_in_force(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """in_force false for a refused gate (Gating.failed) reads "no" with that
    among its reasons; `rules` lists, as `list` does, and ends with status 0
    (status 6 is for a verb that set the limit)."""
    held = RuleInfo("app:x", "down", 0, 0, ADMIN_OWNER, True, blocked=True)
    refused = dataclasses.replace(held, app_id="app:y", in_force=False)
    monkeypatch.setattr("chadthrottle.blocking_client.BlockingHelperClient",
                        lambda: _Rules(held, refused))  # fmt: skip
    assert ctl.main(["rules"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[1].endswith(" yes") and "app:x" in rows[1]
    assert "app:y" in rows[2] and "no (" in rows[2] and "not taken by the kernel" in rows[2]


def test_a_size_too_large_for_a_float_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Four hundred nines read as inf: round() raised OverflowError, which argparse
    does not catch (a traceback); now one line naming the argument, exit 2."""
    with pytest.raises(argparse.ArgumentTypeError, match="not an amount of data"):
        parse_size("9" * 400 + "T")
    with pytest.raises(SystemExit) as exited:
        ctl.main(["quota", "app:x", "9" * 400, "--per", "day"])
    assert exited.value.code == ctl.EXIT_USAGE
    error = capsys.readouterr().err
    assert "argument SIZE: not an amount of data" in error and "Traceback" not in error


def test_list_processes_and_watch_say_measuring_where_the_helper_has_no_rate_yet() -> None:
    """API 7: a direction whose rules just changed has no rate until the
    helper's next tick; its 0 B/s said a rate was measured (gui9 saw an
    unblocked download and its running upload listed at 0 B/s)."""
    import json

    from chadthrottle.cli.watch import watch_line
    from chadthrottle.contract import ProcessTraffic

    app = ApplicationInfo("app:org.example.Player", "Player", "", (1000,), (5,), 0.0, 96_600.0, 0, 0, 0, 0,
                          down_measuring=True)  # fmt: skip
    row = ctl.format_applications([app]).splitlines()[1]
    assert "measuring" in row and "0 B/s" not in row and "96.6 KB/s" in row
    process = ProcessTraffic(5, "player", 0.0, 96_600.0, 0, 0, up_measuring=True)
    assert ctl.format_processes([process]).splitlines()[1].split()[2:4] == ["0", "B/s"]
    assert "measuring" in ctl.format_processes([process]).splitlines()[1]

    class Client:
        def list_applications(self) -> list[ApplicationInfo]:
            return [app]

        def get_limits_paused(self) -> bool:
            return False

    assert "measuring" in watch_line(Client(), as_json=False)  # type: ignore[arg-type]
    (listed,) = json.loads(watch_line(Client(), as_json=True))["applications"]  # type: ignore[arg-type]
    assert (listed["down_measuring"], listed["up_measuring"], listed["down_bps"]) == (
        True,
        False,
        0.0,
    )
    (listed,) = json.loads(ctl.to_json([app]))
    assert listed["down_measuring"] is True


class _Quotas:
    """SetQuota answered; ListRules as given, or refused."""

    def __init__(self, rules: list[RuleInfo] | None) -> None:
        self.rules = rules

    def set_quota(self, app: str, *_args: object, **_kwargs: object) -> str:
        return app

    def list_rules(self) -> list[RuleInfo]:
        if self.rules is None:
            from chadthrottle.helper_errors import HelperClientError

            raise HelperClientError("org.freedesktop.DBus.Error.NoReply", "scripted")
        return self.rules


def test_quota_says_the_period_on_the_helpers_clock_and_is_done_without_it() -> None:
    """gui31 (API 8): `quota` says the current period as the helper counts it;
    an older helper's rules say none, and a read back that fails leaves the
    quota set as said (not an error of the set)."""
    from chadthrottle.cli.gates import run_gate

    arguments = argparse.Namespace(command="quota", app="app:x", direction=Direction.DOWN, scope=None,
                                   off=False, then="block", size=5_000_000, per="day", reset=0)  # fmt: skip
    rule = RuleInfo("app:x", "down", 0, 0, ADMIN_OWNER, True, quota_bytes=5_000_000, quota_period="day",
                    quota_period_start=1_800_000_000, quota_period_end=1_800_086_400,
                    quota_start_offset_s=13 * 3600, quota_end_offset_s=13 * 3600)  # fmt: skip
    said = run_gate(_Quotas([rule]), arguments)  # type: ignore[arg-type]
    assert said.endswith(
        "; this period: 2027-01-15 21:00 UTC+13:00 to 2027-01-16 21:00 UTC+13:00"
    ), said
    older = dataclasses.replace(rule, quota_period_start=0, quota_period_end=0)
    plain = "app:x: down quota of 5.00 MB per day, then blocked"
    assert run_gate(_Quotas([older]), arguments) == plain  # type: ignore[arg-type]
    assert run_gate(_Quotas(None), arguments) == plain  # type: ignore[arg-type]
