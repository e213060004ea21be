"""Edge cases of parse_rate and format_rate."""

from __future__ import annotations

import pytest
from chadthrottle.contract import MAX_RATE_BPS, MIN_RATE_BPS
from chadthrottle.units import (
    UnitError,
    UnitSystem,
    format_limit,
    format_rate,
    parse_rate,
    parse_size,
)
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500000", 500_000),
        ("500K", 500_000),
        ("500k", 500_000),
        ("500 KB", 500_000),
        ("2M", 2_000_000),
        ("2MB/s", 2_000_000),
        ("1.5M", 1_500_000),
        ("1G", 1_000_000_000),
        ("512KiB", 524_288),
        ("1MiB", 1_048_576),
        (" 1GiB ", 1_073_741_824),
        ("1000", MIN_RATE_BPS),
        ("100G", MAX_RATE_BPS),
    ],
)
def test_parse_rate_accepts(text: str, expected: int) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["unlimited", "UNLIMITED", "none", "off", "0", " 0 "])
def test_parse_rate_unlimited(text: str) -> None:
    assert parse_rate(text) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not a rate"),
        ("fast", "not a rate"),
        ("-5M", "not a rate"),
        ("5X", "not a rate"),
        ("1e9", "not a rate"),
        ("nan", "not a rate"),
        ("inf", "not a rate"),
        ("999", "below the minimum"),
        ("0.5K", "below the minimum"),
        ("101G", "above the maximum"),
        ("9" * 400, "not a rate|above the maximum"),
    ],
)
def test_parse_rate_refuses(text: str, reason: str) -> None:
    with pytest.raises(UnitError, match=reason):
        parse_rate(text)


@given(st.integers(min_value=MIN_RATE_BPS, max_value=MAX_RATE_BPS))
def test_plain_numbers_parse_to_themselves(rate_bps: int) -> None:
    assert parse_rate(str(rate_bps)) == rate_bps


@given(st.text(max_size=20))
def test_parse_rate_never_raises_anything_but_unit_error(text: str) -> None:
    try:
        result = parse_rate(text)
    except UnitError:
        return
    assert result is None or MIN_RATE_BPS <= result <= MAX_RATE_BPS


@pytest.mark.parametrize(
    ("rate_bps", "units", "expected"),
    [
        (0, UnitSystem.BYTES_DECIMAL, "0 B/s"),
        (-5, UnitSystem.BYTES_DECIMAL, "0 B/s"),
        (999, UnitSystem.BYTES_DECIMAL, "999 B/s"),
        (999.6, UnitSystem.BYTES_DECIMAL, "1.00 KB/s"),
        (1000, UnitSystem.BYTES_DECIMAL, "1.00 KB/s"),
        (8_100_000, UnitSystem.BYTES_DECIMAL, "8.10 MB/s"),
        (210_000, UnitSystem.BYTES_DECIMAL, "210 KB/s"),
        (1024, UnitSystem.BYTES_BINARY, "1.00 KiB/s"),
        (125_000, UnitSystem.BITS_DECIMAL, "1.00 Mbit/s"),
        (10**18, UnitSystem.BYTES_DECIMAL, "1000000 TB/s"),
    ],
)
def test_format_rate(rate_bps: float, units: UnitSystem, expected: str) -> None:
    assert format_rate(rate_bps, units) == expected


@given(st.floats(min_value=0, max_value=1e15, allow_nan=False))
def test_format_rate_has_at_most_three_significant_digits_below_tera(rate_bps: float) -> None:
    number, _unit = format_rate(rate_bps).split(" ")
    assert len(number.replace(".", "").lstrip("0")) <= 3 or "TB" in _unit


def test_format_limit() -> None:
    assert format_limit(0) == "none"
    assert format_limit(2_000_000) == "2.00 MB/s"


def test_sizes_up_to_the_largest_quota_read_without_an_exponent() -> None:
    from chadthrottle.contract import MAX_QUOTA_BYTES
    from chadthrottle.units import format_size

    assert [format_size(n) for n in (999, 5_000_000, 999 * 10**12, 10**15, MAX_QUOTA_BYTES)] == [
        "999 B",
        "5.00 MB",
        "999 TB",
        "1.00 PB",
        "1.13 PB",
    ]


def test_a_size_too_large_for_a_float_is_refused_by_name() -> None:
    """The GUI's quota field catches UnitError only: 400 nines read as inf and
    round(inf) raised OverflowError."""
    with pytest.raises(UnitError, match="not an amount of data"):
        parse_size("9" * 400 + "TB")


@pytest.mark.parametrize(
    ("rate_bps", "expected"),
    [(99_960, "100 KB/s"), (99_949, "99.9 KB/s"), (9_996, "10.0 KB/s"), (9_994, "9.99 KB/s"),
     (9_999_600, "10.0 MB/s"), (99_990_000, "100 MB/s"), (999_400, "999 KB/s")],
)  # fmt: skip
def test_format_rate_keeps_three_digits_where_rounding_carries(
    rate_bps: float, expected: str
) -> None:
    """Under Xvfb at 2x a row's Up read '…00 K…': 99.96 KB/s was written
    '100.0 KB/s', four digits, wider than the column was measured for
    ('10.00 KB/s' and '10.00 MB/s' the same): the digits were chosen before
    the rounding carried."""
    assert format_rate(rate_bps) == expected


def test_a_size_that_rounds_up_to_the_next_unit_is_written_in_it() -> None:
    """A quota's 999.96 MB left read '1e+03 MB left today'."""
    from chadthrottle.units import format_size

    assert [format_size(n) for n in (999_960_000, 999_400_000, 999_600, 1_000_000)] == [
        "1.00 GB", "999 MB", "1.00 MB", "1.00 MB"]  # fmt: skip


def test_sizes_are_spelled_as_the_rates_beside_them() -> None:
    """Under Xvfb a quota line read '712 kB left today' beside rates in
    'KB/s' and the usage view's '442 KB': one window, one spelling."""
    from chadthrottle.cli.usage import format_bytes
    from chadthrottle.units import format_size

    for size in (1_000, 45_600, 12_345_678, 10**9):
        assert format_size(size).split()[1] + "/s" == format_rate(size).split()[1]
        assert format_bytes(size) == format_size(size)


def test_sizes_follow_the_unit_system_the_rates_are_shown_in() -> None:
    """With binary units a quota read "712 KB left" beside rates in "KiB/s": a size
    takes the rate's base and name without "/s", bits included; binary's 1000 to
    1023 of a unit read whole, not "1e+03"."""
    from chadthrottle.contract import MAX_QUOTA_BYTES
    from chadthrottle.units import format_size

    for units in UnitSystem:
        for size in (1_000, 45_600, 12_345_678, 10**9, 3 * 10**12):
            assert format_size(size, units).split()[1] + "/s" == format_rate(size, units).split()[1]
    binary = UnitSystem.BYTES_BINARY
    assert [format_size(n, binary) for n in (1_024_000, 5 * 10**9, MAX_QUOTA_BYTES)] == [
        "1000 KiB", "4.66 GiB", "1.00 PiB"]  # fmt: skip
    assert format_size(5 * 10**9, UnitSystem.BITS_DECIMAL) == "40.0 Gbit"


def test_a_number_and_its_unit_stay_together_by_the_formatters_alone() -> None:
    """Text that wraps (the rules dialog's quota sentence, the usage view's bar
    line) parted "97.7" from "KiB/s" and "1.16" from "GB". The no-break space
    that joins them is the formatters' (unbroken=True), one place: until
    2026-12-06 each view replaced the space by hand."""
    from pathlib import Path

    from chadthrottle.units import NO_BREAK_SPACE, format_size

    binary = UnitSystem.BYTES_BINARY
    assert format_rate(100_000, binary, unbroken=True) == "97.7\u00a0KiB/s"
    assert format_size(1_160_000_000, unbroken=True) == "1.16\u00a0GB"
    assert format_rate(100_000, binary) == "97.7 KiB/s" and NO_BREAK_SPACE == "\u00a0"
    repo = Path(__file__).resolve().parents[2]
    by_hand = [
        str(path.relative_to(repo))
        for area in ("gui", "common", "cli")
        for path in sorted((repo / area).rglob("*.py"))
        if path != repo / "common" / "units.py"
        and any(mark in path.read_text() for mark in ("\\u00a0", "\\xa0", "\u00a0"))
    ]
    assert by_hand == [], f"a no-break space made outside common/units.py: {by_hand}"
