"""Fixtures shared by the helper's engine and kernel tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def program() -> Iterator[Path]:
    """A copy of sleep under a name no other test runs (its own application);
    its directory readable by all, so that nobody may run it too."""
    directory = Path(tempfile.mkdtemp(prefix="ct-program-"))
    try:
        directory.chmod(0o755)
        shutil.copy("/bin/sleep", directory / "sleep")
        yield directory / "sleep"
    finally:
        shutil.rmtree(directory)
