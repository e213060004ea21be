"""chadthrottle-helper's command line: clean one-line failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
