"""chadthrottle-ctl schedule: which options go together (status 2 before any
call), and the table. What the helper refuses: tests/e2e/test_schedules.py."""

from __future__ import annotations

import pytest
from chadthrottle.cli import ctl
from chadthrottle.cli.schedule import format_schedules
from chadthrottle.contract import ADMIN_OWNER, ScheduleInfo

# A whole schedule's when, for the cases that differ in what it does.
MONDAY_9_TO_5 = [
    "schedule",
    "exe:/usr/bin/curl",
    "--days",
    "mon",
    "--from",
    "09:00",
    "--to",
    "17:00",
]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["schedule", "exe:/usr/bin/curl", "--limit", "1M", "--from", "09:00", "--to", "17:00"],
            "give --days",
        ),
        (
            MONDAY_9_TO_5,
            "--block",
        ),
        (
            [
                *MONDAY_9_TO_5,
                "--limit",
                "unlimited",
            ],
            "not 'unlimited'",
        ),
        (["schedule", "remove"], "give APP"),
        (["schedule", "list", "exe:/usr/bin/curl"], "takes no application"),
        (["schedule", "exe:/usr/bin/curl", "extra"], "unexpected 'extra'"),
        (["schedule", "exe:/usr/bin/curl", "--block", "sideways"], "invalid choice"),
        (
            [
                *MONDAY_9_TO_5,
                "--limit",
                "1M",
                "--down",
                "2M",
            ],
            "--limit sets both directions",
        ),  # --down won silently
        (
            [
                *MONDAY_9_TO_5,
                "--up",
                "2M",
                "--limit",
                "1M",
            ],
            "not both",
        ),
    ],
)
def test_options_that_do_not_go_together_stop_before_any_call(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        ctl.main(args)
    assert caught.value.code == ctl.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_the_table_says_rates_blocks_and_whose() -> None:
    table = format_schedules([
        ScheduleInfo("exe:/usr/bin/curl", ADMIN_OWNER, "mon-fri 09:00-17:00", "mon-fri", "09:00", "17:00",
                     1_000_000, 0, False, False, True),
        ScheduleInfo("exe:/usr/bin/curl", 1000, "sat,sun 22:00-06:00", "sat,sun", "22:00", "06:00",
                     0, 0, True, True, False),
    ])  # fmt: skip
    lines = [line.split() for line in table.splitlines()]
    assert lines[0] == ["ID", "SCHEDULE", "DOWN", "UP", "WHOSE", "ACTIVE", "NOW"]
    assert lines[1][:6] == ["exe:/usr/bin/curl", "mon-fri", "09:00-17:00", "1.00", "MB/s", "-"]
    assert (
        lines[1][-1] == "yes" and lines[2][3:5] == ["blocked", "blocked"] and lines[2][-1] == "no"
    )
