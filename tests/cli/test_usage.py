"""chadthrottle-ctl usage: reading --since, the table, the JSON, and that the
verb costs the other verbs nothing at start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from chadthrottle.cli.usage import (
    UsageArgumentError,
    format_bytes,
    format_usage,
    parse_since,
    shown_names,
    totals_resolution,
    usage_json,
)
from chadthrottle.usage_contract import UsageResolution, UsageRow

NOW = time.mktime((2026, 12, 3, 15, 40, 10, 0, 0, -1))
TODAY = int(time.mktime((2026, 12, 3, 0, 0, 0, 0, 0, -1)))


@pytest.mark.parametrize(("text", "by", "expected"), [
    (None, None, TODAY),
    (None, UsageResolution.HOUR, TODAY),
    (None, UsageResolution.DAY, int(time.mktime((2026, 11, 4, 0, 0, 0, 0, 0, -1)))),
    (None, UsageResolution.MONTH, int(time.mktime((2026, 1, 1, 0, 0, 0, 0, 0, -1)))),
    ("today", None, TODAY),
    ("1d", None, TODAY),
    ("7d", None, int(time.mktime((2026, 11, 27, 0, 0, 0, 0, 0, -1)))),
    ("2w", None, int(time.mktime((2026, 11, 20, 0, 0, 0, 0, 0, -1)))),
    ("3h", None, int(time.mktime((2026, 12, 3, 12, 0, 0, 0, 0, -1)))),
    ("2026-02-28", None, int(time.mktime((2026, 2, 28, 0, 0, 0, 0, 0, -1)))),
    ("@1700000000", None, 1_700_000_000),
])  # fmt: skip
def test_since_forms(text: str | None, by: UsageResolution | None, expected: int) -> None:
    assert parse_since(text, by, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "0d", "2026-02-30", "7 d", "-3h", "@", "1e9", "3m"])
def test_since_that_cannot_be_read_says_what_can(text: str) -> None:
    with pytest.raises(UsageArgumentError):
        parse_since(text, None, NOW)


def test_with_by_the_first_period_is_whole() -> None:
    from chadthrottle.cli.usage import period_start

    moment = int(NOW)
    assert period_start(UsageResolution.HOUR, moment) == int(
        time.mktime((2026, 12, 3, 15, 0, 0, 0, 0, -1))
    )
    assert period_start(UsageResolution.DAY, moment) == TODAY
    assert period_start(UsageResolution.MONTH, moment) == int(
        time.mktime((2026, 12, 1, 0, 0, 0, 0, 0, -1))
    )


def test_totals_use_the_finest_level_kept_for_the_whole_range() -> None:
    assert totals_resolution(TODAY, NOW) is UsageResolution.HOUR
    assert totals_resolution(int(NOW) - 1800, NOW) is UsageResolution.MINUTE
    assert totals_resolution(TODAY - 30 * 86_400, NOW) is UsageResolution.HOUR
    assert totals_resolution(TODAY - 200 * 86_400, NOW) is UsageResolution.DAY


def test_by_offers_every_resolution_but_minutes() -> None:
    from chadthrottle.cli.ctl import USAGE_BY

    assert tuple(r.value for r in UsageResolution if r is not UsageResolution.MINUTE) == USAGE_BY


def test_bytes_are_shown_in_decimal_units() -> None:
    assert [format_bytes(n) for n in (0, 999, 1000, 1234, 45_600, 999_499, 12_345_678, 10**12)] == [
        "0 B",
        "999 B",
        "1.00 KB",
        "1.23 KB",
        "45.6 KB",
        "999 KB",
        "12.3 MB",
        "1.00 TB",
    ]


ROWS = [
    UsageRow("exe:/usr/bin/curl", TODAY, TODAY + 86_400, 5_000_000, 20_000, 7, 7),
    UsageRow("exe:/tmp/\\x1b[31mred", TODAY, TODAY + 86_400, 1_000, 1_000),
    UsageRow("exe:/usr/bin/curl", TODAY + 86_400, TODAY + 2 * 86_400, 1_000_000, 0),
]


def test_the_table_has_the_busiest_first_and_a_total() -> None:
    lines = format_usage(ROWS, None, TODAY).splitlines()
    assert lines[0].startswith("since 2026-12-03 00:00")
    assert lines[1].split() == ["APPLICATION", "DOWNLOAD", "UPLOAD", "TOTAL"]
    assert lines[2].split() == ["exe:/usr/bin/curl", "6.00", "MB", "20.0", "KB", "6.02", "MB"]
    assert "\x1b" not in lines[3] and "\\x1b" in lines[3]
    assert lines[4].split() == ["total", "6.00", "MB", "21.0", "KB", "6.02", "MB"]
    by_day = format_usage(ROWS, UsageResolution.DAY, TODAY).splitlines()
    assert [line.split()[0] for line in by_day[2:]] == [
        "2026-12-03",
        "2026-12-03",
        "2026-12-04",
        "total",
    ]


def test_the_table_names_applications_as_list_does_and_json_keeps_ids() -> None:
    """walk26: `usage` listed ids ("app:org.mozilla.firefox") where `list` says
    "Firefox". A running application by its listed name, a gone one by its
    .desktop file's or its id's end; two of one name with their ids."""
    rows = [
        UsageRow("app:org.mozilla.firefox", TODAY, TODAY + 86_400, 9_000_000, 1_000),
        UsageRow("exe:/usr/bin/curl", TODAY, TODAY + 86_400, 5_000_000, 0),
        UsageRow("exe:/opt/b/curl", TODAY, TODAY + 86_400, 1_000_000, 0),
        UsageRow("app:org.example.NoSuchDesktopFile", TODAY, TODAY + 86_400, 500_000, 0),
    ]
    names = shown_names((r.app_id for r in rows), {"app:org.mozilla.firefox": "Firefox"})
    table = format_usage(rows, None, TODAY, names).splitlines()
    assert [line.split("  ")[0] for line in table[2:6]] == [
        "Firefox",
        "curl (exe:/usr/bin/curl)",
        "curl (exe:/opt/b/curl)",
        "NoSuchDesktopFile",
    ]
    by_day = format_usage(rows, UsageResolution.DAY, TODAY, names).splitlines()
    assert by_day[2].split()[:2] == ["2026-12-03", "Firefox"]
    report = json.loads(usage_json(rows, None, TODAY, int(NOW)))
    assert "app:org.mozilla.firefox" in {total["app_id"] for total in report["totals"]}


def test_json_has_rows_totals_and_loopback_apart() -> None:
    report = json.loads(usage_json(ROWS, UsageResolution.DAY, TODAY, int(NOW)))
    assert report["by"] == "day" and report["since"] == TODAY and len(report["rows"]) == 3
    curl = next(t for t in report["totals"] if t["app_id"] == "exe:/usr/bin/curl")
    assert curl == {"app_id": "exe:/usr/bin/curl", "down_bytes": 6_000_000, "up_bytes": 20_000,
                    "loopback_down_bytes": 7, "loopback_up_bytes": 7}  # fmt: skip
    assert report["total"]["down_bytes"] == 6_001_000
    assert "rows" not in json.loads(usage_json(ROWS, None, TODAY, int(NOW)))


PROBE = """
import sys
before = set(sys.modules)
from chadthrottle.cli import ctl
try:
    ctl.main(sys.argv[1:])
except SystemExit:
    pass
heavy = {"asyncio", "dbus_fast", "typing", "shutil", "ast", "dis", "tokenize"}
mine = {"chadthrottle.cli.usage", "chadthrottle.usage_contract"}
print("imported:" + ",".join(sorted(n for n in set(sys.modules) - before if n.split(".")[0] in heavy or n in mine)), file=sys.stderr)
"""


@pytest.mark.parametrize(("args", "loads_usage"), [(["list", "--json"], False), (["usage", "--json"], True),
                                                   (["usage", "--by", "day"], True)])  # fmt: skip
def test_the_verb_loads_its_module_only_when_it_runs_and_nothing_heavy(args: list[str], loads_usage: bool,
                                                                        tmp_path: os.PathLike[str]) -> None:  # fmt: skip
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path}/no-bus"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, timeout=60
    )
    marker = [line for line in result.stderr.splitlines() if line.startswith("imported:")]
    expected = (
        "imported:chadthrottle.cli.usage,chadthrottle.usage_contract"
        if loads_usage
        else "imported:"
    )
    assert marker == [expected], result.stderr


def test_the_table_is_shown_when_the_names_cannot_be_had() -> None:
    """review28: the usage came, the names' ListApplications failed (a timeout):
    the table is still printed, applications named as gone ones are."""
    import argparse

    from chadthrottle.cli.usage import usage_report
    from chadthrottle.helper_errors import HelperClientError

    class NamesFail:
        def get_usage(self, *_: object) -> list[UsageRow]:
            return ROWS[:1]

        def list_applications(self) -> list[object]:
            raise HelperClientError("org.freedesktop.DBus.Error.NoReply", "no reply")

    arguments = argparse.Namespace(since_unix=TODAY, by=None, app=None, json=False)
    lines = usage_report(NamesFail(), arguments).splitlines()  # type: ignore[arg-type]
    assert lines[2].split()[0] == "curl"
