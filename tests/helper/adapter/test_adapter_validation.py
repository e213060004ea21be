"""Argument validation: the forms and bounds of the contract, nothing more."""

from __future__ import annotations

import contextlib
import re

import pytest
from chadthrottle.contract import (
    APP_ID_KINDS,
    BOTH_DIRECTIONS,
    MAX_APP_ID_LENGTH,
    MAX_BURST_BYTES,
    MAX_RATE_BPS,
    MIN_BURST_BYTES,
    MIN_RATE_BPS,
    Direction,
)
from chadthrottle.helper.adapter.validation import (
    validate_app_id,
    validate_burst_bytes,
    validate_clear_directions,
    validate_direction,
    validate_paused,
    validate_rate_bps,
)
from chadthrottle.helper.errors import InvalidArgument
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    "app_id",
    ["pid:1", "pid:4194304", "app:org.mozilla.firefox", "flatpak:org.gnome.Maps",
     "exe:/usr/bin/curl", "exe:/opt/My App/bin/app", "snap:firefox", "script:/home/u/bin/sync.py", "exe:/usr/bin/ünïcode"],
)  # fmt: skip
def test_valid_app_ids(app_id: str) -> None:
    assert validate_app_id(app_id) == app_id


@pytest.mark.parametrize(
    ("app_id", "reason"),
    [
        ("", "empty"),
        ("pid:0", "positive"),
        ("pid:-1", "positive"),
        ("pid:01", "positive"),
        ("pid:1.5", "positive"),
        ("pid:", "positive"),
        ("pid:99999999999", "positive"),
        ("pid:١٢", "positive"),  # Arabic-Indic digits are digits to str.isdigit
        ("curl", "not an application id"),
        (":curl", "not an application id"),
        ("EXE:/usr/bin/curl", "not an application id"),
        ("cgroup:/sys/fs/cgroup", "unknown application id kind"),
        ("exe:", "empty value"),
        ("exe:   ", "empty value"),
        ("exe:/usr/bin/cu\nrl", "control characters"),
        ("exe:/usr/bin/\x00", "control characters"),
        ("exe:/usr/bin/\x7f", "control characters"),
        ("exe:/" + "a" * MAX_APP_ID_LENGTH, "longer than"),
        (42, "string"),
        (None, "string"),
    ],
)
def test_invalid_app_ids(app_id: object, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=reason):
        validate_app_id(app_id)


def test_app_id_at_the_length_limit() -> None:
    app_id = "exe:/" + "a" * (MAX_APP_ID_LENGTH - 5)
    assert validate_app_id(app_id) == app_id


@given(st.sampled_from(sorted(APP_ID_KINDS)), st.text(min_size=1, max_size=200))
def test_app_id_is_accepted_exactly_when_well_formed(kind: str, value: str) -> None:
    app_id = f"{kind}:{value}"
    well_formed = value.strip() != "" and not re.search(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]", value)
    if well_formed:
        assert validate_app_id(app_id) == app_id
    else:
        with pytest.raises(InvalidArgument):
            validate_app_id(app_id)


@given(st.integers(min_value=1, max_value=2**31 - 1))
def test_every_positive_pid_is_accepted(pid: int) -> None:
    assert validate_app_id(f"pid:{pid}") == f"pid:{pid}"


@given(st.text(max_size=40))
def test_validate_app_id_raises_only_invalid_argument(text: str) -> None:
    with contextlib.suppress(InvalidArgument):
        validate_app_id(text)


def test_directions() -> None:
    assert validate_direction("down") is Direction.DOWN
    assert validate_direction("up") is Direction.UP
    for bad in ("both", "DOWN", "", "sideways", 1, None):
        with pytest.raises(InvalidArgument, match="direction must be one of down, up"):
            validate_direction(bad)


def test_clear_directions() -> None:
    assert validate_clear_directions(BOTH_DIRECTIONS) == (Direction.DOWN, Direction.UP)
    assert validate_clear_directions("up") == (Direction.UP,)
    with pytest.raises(InvalidArgument, match="down, up, both"):
        validate_clear_directions("all")


@given(st.integers(min_value=MIN_RATE_BPS, max_value=MAX_RATE_BPS))
def test_rates_in_bounds_are_accepted(rate_bps: int) -> None:
    assert validate_rate_bps(rate_bps) == rate_bps


@given(st.one_of(st.integers(max_value=MIN_RATE_BPS - 1), st.integers(min_value=MAX_RATE_BPS + 1)))
def test_rates_out_of_bounds_are_refused(rate_bps: int) -> None:
    with pytest.raises(InvalidArgument, match="outside"):
        validate_rate_bps(rate_bps)


@pytest.mark.parametrize("value", [True, 1000.0, "1000", None])
def test_rates_must_be_integers(value: object) -> None:
    with pytest.raises(InvalidArgument, match="integer"):
        validate_rate_bps(value)


@given(st.integers(min_value=MIN_BURST_BYTES, max_value=MAX_BURST_BYTES))
def test_bursts_in_bounds_are_accepted(burst_bytes: int) -> None:
    assert validate_burst_bytes(burst_bytes) == burst_bytes


def test_burst_zero_means_default() -> None:
    assert validate_burst_bytes(0) == 0


@given(st.one_of(st.integers(min_value=1, max_value=MIN_BURST_BYTES - 1),
                 st.integers(min_value=MAX_BURST_BYTES + 1, max_value=2**64 - 1)))  # fmt: skip
def test_bursts_out_of_bounds_are_refused(burst_bytes: int) -> None:
    with pytest.raises(InvalidArgument, match="0 = default"):
        validate_burst_bytes(burst_bytes)


def test_paused_must_be_a_boolean() -> None:
    assert validate_paused(True) is True and validate_paused(False) is False
    for value in (1, 0, "true", None):
        with pytest.raises(InvalidArgument, match="true or false"):
            validate_paused(value)
