"""Starts the Debian package test's slow preparation as soon as the session's
tests are collected (tests/support/package_preparation.py says why and how)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from chadthrottle.helper.standalone import POLKITD

from tests.support import package_preparation

MODULE = Path(__file__).with_name("test_debian_package.py")


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    ours = [item for item in session.items if item.path == MODULE]
    if not ours:
        return
    names = {name for item in ours for name in getattr(item, "fixturenames", ())}
    build = "deb" in names and shutil.which("dpkg-deb") is not None
    root = (
        "fresh_root" in names
        and os.geteuid() == 0
        and POLKITD.exists()
        and all(shutil.which(program) is not None for program in ("debootstrap", "dbus-daemon"))
    )
    lane = hasattr(session.config, "workerinput")  # pytest-xdist: maybe another lane runs it
    package_preparation.start(build, root, lowly=len(ours) < len(session.items), defer=lane)


@pytest.hookimpl(tryfirst=True)  # before tests/conftest.py looks for what the session left
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    package_preparation.close_all()
