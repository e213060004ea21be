"""Skips that become failures in CI.

A test that needs root, the kernel, a bus or a display may skip on a user's
machine that lacks it, with a clear reason. In CI (CI=true) the machine is
known to have all of them, so such a skip is a failure instead.
"""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip (or, in CI, fail) the calling test unless condition holds."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"required in CI but missing: {reason}", pytrace=False)
    pytest.skip(reason)


def require_root() -> None:
    require(os.geteuid() == 0, "needs root (BPF, tc, network namespaces)")


def require_program(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"needs the program {name!r} on PATH")
    assert path is not None
    return path
