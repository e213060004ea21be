"""Starts mypy in the background once the session's tests are collected, and
runs the code checks last (tests/support/code_checks.py says why)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import code_checks

MODULE = Path(__file__).with_name("test_code_checks.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path == MODULE)  # stable: the others keep their order


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    # Each xdist lane collects every test: one lane starts mypy. If the file runs
    # in another lane, its test starts a run then, which waits for this one's
    # cache (scripts/typecheck.py runs one at a time).
    if os.environ.get("PYTEST_XDIST_WORKER", "gw0") != "gw0":
        return
    if any(item.path == MODULE and "mypy" in item.name for item in session.items):
        code_checks.start(lowly=any(item.path != MODULE for item in session.items))


@pytest.hookimpl(tryfirst=True)  # before tests/conftest.py looks for what the session left
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    code_checks.close_all()
