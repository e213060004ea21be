"""--wall-clock-file (tests that move time across a schedule's minute): the
file's unix seconds, or the system's clock while it says nothing usable."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from chadthrottle.helper.engine.factory import WALL_CLOCK_FILE_MAX_S, wall_clock_from_file


def test_the_files_seconds_are_the_time(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    path.write_text("1764900000.5\n")
    assert wall_clock_from_file(path)() == 1764900000.5


# 253402300800: the year 10000; 1099511627775 (2**40 - 1): the year 36812, which
# time.localtime reads but datetime (EngineCore._local_now: schedules) does not
@pytest.mark.parametrize(
    "unusable", ["", "soon", "nan", "inf", "-1", "1e300", "253402300800", "1099511627775"]
)
def test_a_time_no_clock_can_show_is_the_systems_clock(tmp_path: Path, unusable: str) -> None:
    """nan and inf read as floats, and time.localtime (schedules, the usage
    history's hours) raised ValueError/OverflowError on them in every tick."""
    path = tmp_path / "clock"
    path.write_text(unusable)
    before = time.time()
    now = wall_clock_from_file(path)()
    assert before <= now <= time.time()
    time.localtime(now)


@pytest.mark.parametrize("hours", [-12, 0, 14])
def test_the_latest_time_the_file_may_say_is_a_date_in_any_zone(tmp_path: Path, hours: int) -> None:
    """The engine reads its clock as a datetime in the local zone every tick
    (EngineCore._local_now): a time the file may say must be one."""
    path = tmp_path / "clock"
    path.write_text(str(WALL_CLOCK_FILE_MAX_S - 1))
    now = wall_clock_from_file(path)()
    assert now == WALL_CLOCK_FILE_MAX_S - 1
    datetime.fromtimestamp(now, timezone(timedelta(hours=hours)))
