"""chadthrottle-helper's command line: clean one-line failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from chadthrottle.helper.main import parse_arguments


def run_helper_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chadthrottle.helper.main", *args],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_defaults() -> None:
    arguments = parse_arguments([])
    assert arguments.bus_address is None
    assert arguments.state_dir == Path("/var/lib/chadthrottle")
    assert arguments.backend == "auto"


def test_help_needs_no_engine() -> None:
    result = run_helper_command("--help")
    assert result.returncode == 0
    assert "--bus-address" in result.stdout and "--backend" in result.stdout


def test_no_bus_is_a_one_line_failure(tmp_path: Path) -> None:
    result = run_helper_command(
        "--bus-address", f"unix:path={tmp_path}/missing", "--state-dir", str(tmp_path)
    )
    assert result.returncode == 1
    assert result.stderr.startswith("chadthrottle-helper: cannot connect to the system bus")
    assert result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing was built


def test_unknown_backend_is_a_usage_error() -> None:
    result = run_helper_command("--backend", "nftables")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


@pytest.mark.parametrize("option", ["--hook-linger-s", "--idle-exit-s", "--usage-flush-s"])
@pytest.mark.parametrize("value", ["-1", "nan", "inf", "-inf", "soon"])
def test_a_bad_number_of_seconds_is_a_named_usage_error(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused with the option's name, not clamped to 0 (-1, nan) or taken
    for "never" (inf): parse_arguments exits before anything is built."""
    with pytest.raises(SystemExit) as exited:
        parse_arguments([f"{option}={value}"])  # "-inf" alone would read as an option
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"chadthrottle-helper: error: argument {option}: ")
    assert repr(value) in error


@pytest.mark.parametrize(
    ("option", "value", "attribute"),
    [("--hook-linger-s", "0", "hook_linger_s"), ("--hook-linger-s", "2.5", "hook_linger_s"),
     ("--idle-exit-s", "0", "idle_exit_s"), ("--idle-exit-s", "60", "idle_exit_s"),
     ("--usage-flush-s", "1", "usage_flush_s"), ("--usage-flush-s", "3600", "usage_flush_s")],
)  # fmt: skip
def test_a_good_number_of_seconds_is_taken_as_given(
    option: str, value: str, attribute: str
) -> None:
    assert getattr(parse_arguments([option, value]), attribute) == float(value)


def test_a_negative_hook_linger_fails_the_start_in_one_line() -> None:
    """The whole command: exit 2, one usage line naming the option, no traceback."""
    result = run_helper_command("--hook-linger-s", "-1", "--bus-address", "unix:path=/nonexistent")
    assert result.returncode == 2
    assert "argument --hook-linger-s: '-1' is below 0 seconds" in result.stderr
    assert "Traceback" not in result.stderr
