"""GUI tests run on the offscreen platform unless a display was chosen."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _qt_application(qapp):  # type: ignore[no-untyped-def]
    """Every GUI test gets the QApplication: models paint icons, views need it."""
    return qapp
