"""Waiting for a condition instead of sleeping a guessed time."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    """True as soon as condition() holds; False if it still does not after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()
