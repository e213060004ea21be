"""--wall-clock-file (tests that move time across a schedule's minute): the
file's unix seconds, or the system's clock while it says nothing usable."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from chadthrottle.helper.engine.factory import wall_clock_from_file


def test_the_files_seconds_are_the_time(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    path.write_text("1764900000.5\n")
    assert wall_clock_from_file(path)() == 1764900000.5


@pytest.mark.parametrize("unusable", ["", "soon", "nan", "inf", "-1", "1e300"])
def test_a_time_no_clock_can_show_is_the_systems_clock(tmp_path: Path, unusable: str) -> None:
    """nan and inf read as floats, and time.localtime (schedules, the usage
    history's hours) raised ValueError/OverflowError on them in every tick."""
    path = tmp_path / "clock"
    path.write_text(unusable)
    before = time.time()
    now = wall_clock_from_file(path)()
    assert before <= now <= time.time()
    time.localtime(now)
