"""The GUI's options of seconds: refused by name when not a finite number a
Qt timer can hold (nan and inf were a traceback at start-up, int(nan * 1000);
-1 a timer Qt silently set to 1 ms), taken as given otherwise."""

from __future__ import annotations

import pytest
from chadthrottle.gui.app import parse_arguments

OPTIONS = ("--quit-after", "--screenshot-timeout", "--screenshot-history")


@pytest.mark.parametrize(
    ("option", "value"),
    [(option, value) for option in OPTIONS for value in ("-1", "nan", "inf", "soon")]
    + [("--quit-after", "1e7"), ("--screenshot-timeout", "1e7")],  # past a timer's 2**31 ms
)
def test_a_bad_number_of_seconds_is_a_named_usage_error(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_arguments([f"{option}={value}"])
    assert exited.value.code == 2
    assert f"error: argument {option}: " in capsys.readouterr().err


@pytest.mark.parametrize("option", OPTIONS)
def test_a_good_number_of_seconds_is_taken_as_given(option: str) -> None:
    arguments = parse_arguments([f"{option}=2.5"])
    assert getattr(arguments, option[2:].replace("-", "_")) == 2.5
