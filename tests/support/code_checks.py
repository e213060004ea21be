"""mypy over the product code, started in the background when tests are collected.

A cold mypy run (a fresh clone has no .mypy_cache) takes 10-15 s of CPU; the
suite's other tests mostly wait on traffic, so it runs beside them at the lowest
CPU priority (nice 19) and tests/code_checks/test_code_checks.py, which pytest
runs last, only reads the result. ruff takes a tenth of a second and runs in the
test itself. (The hook is in tests/code_checks/conftest.py; the state is here, as
pytest imports a conftest.py under another name than a test module that imports it.)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

REPO_ROOT = Path(__file__).resolve().parents[2]
TYPECHECK = REPO_ROOT / "scripts" / "typecheck.py"
TIMEOUT_S = 240


class Finished(NamedTuple):
    returncode: int
    output: str


class Typecheck:
    """scripts/typecheck.py in a child process, its output in a temporary file."""

    def __init__(self, lowly: bool) -> None:
        # Outlives this call: close() closes it.
        self._output = tempfile.TemporaryFile(mode="w+", prefix="chadthrottle-typecheck-")  # noqa: SIM115
        command = [sys.executable, str(TYPECHECK)]
        self._process = subprocess.Popen(
            ["nice", "-n", "19", *command] if lowly else command,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )

    def result(self) -> Finished:
        """Waits for mypy (at most TIMEOUT_S) and returns its status and messages."""
        try:
            returncode = self._process.wait(TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.close()
            raise AssertionError(f"scripts/typecheck.py took over {TIMEOUT_S} s") from None
        self._output.seek(0)
        return Finished(returncode, self._output.read())

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._output.close()


_started: list[Typecheck] = []


def start(lowly: bool) -> None:
    _started.append(Typecheck(lowly))


def typecheck() -> Finished:
    """The session's background run, or one now if none was started."""
    if not _started:
        start(lowly=False)
    return _started[0].result()


def close_all() -> None:
    while _started:
        _started.pop().close()
