"""GetUsage's arguments and the helper's --usage-flush-s: every bad value is a
named error before anything is read."""

from __future__ import annotations

import pytest
from chadthrottle.helper.adapter.validation import (
    MAX_UNIX_TIME,
    validate_usage_app_id,
    validate_usage_range,
    validate_usage_resolution,
)
from chadthrottle.helper.errors import InvalidArgument
from chadthrottle.helper.main import parse_arguments
from chadthrottle.usage_contract import OTHER_APPLICATIONS_ID, UsageResolution

NOW = 1_795_000_000.5


@pytest.mark.parametrize(
    "app_id", ["", "exe:/usr/bin/curl", "app:org.mozilla.firefox", OTHER_APPLICATIONS_ID]
)
def test_every_application_one_or_the_folded_rest(app_id: str) -> None:
    assert validate_usage_app_id(app_id) == app_id


@pytest.mark.parametrize(
    "app_id", ["pid:1", "exe:", "curl", "exe:/x\n", "(others)", 5, None, "x" * 600]
)
def test_a_pid_or_no_id_is_refused(app_id: object) -> None:
    with pytest.raises(InvalidArgument):
        validate_usage_app_id(app_id)


def test_until_zero_is_now_and_the_current_minute_is_in() -> None:
    assert validate_usage_range(0, 0, NOW) == (0, int(NOW) + 1)
    assert validate_usage_range(10, 20, NOW) == (10, 20)


@pytest.mark.parametrize(("since", "until"), [(-1, 0), (0, -5), (MAX_UNIX_TIME, 0), (5, MAX_UNIX_TIME), (20, 20),
                                              (21, 20), (True, 0), (1.5, 0), ("1", 0), (int(NOW) + 5, 0)])  # fmt: skip
def test_a_range_out_of_bounds_or_backwards_is_refused(since: object, until: object) -> None:
    with pytest.raises(InvalidArgument):
        validate_usage_range(since, until, NOW)


def test_resolutions() -> None:
    assert [validate_usage_resolution(r.value) for r in UsageResolution] == list(UsageResolution)
    for bad in ("", "Day", "week", "minutes", 1, None):
        with pytest.raises(InvalidArgument, match="minute, hour, day, month"):
            validate_usage_resolution(bad)


def test_flush_interval_option() -> None:
    assert parse_arguments([]).usage_flush_s == 60.0
    assert parse_arguments(["--usage-flush-s", "1"]).usage_flush_s == 1.0
    for bad in ("0.5", "3601", "nan", "soon"):
        with pytest.raises(SystemExit):
            parse_arguments(["--usage-flush-s", bad])
