"""The real controller on a scripted client, for GUI tests without a helper."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from chadthrottle.gui.controller import AppController
from PySide6.QtCore import QCoreApplication, QEvent, QSettings


@contextlib.contextmanager
def scripted_app(client: object, tmp_path: Path, refresh_s: float = 0.2) -> Iterator[AppController]:
    """The real AppController on client (no tray), its own settings and
    autostart entry, polling every refresh_s once started. Disposed of on
    leaving as the app quits (shut down, then deleted with its window), also
    when the test fails, so no worker is left for the next test."""
    app = AppController(lambda: client, QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat),  # type: ignore[arg-type, return-value]
                        use_tray=False, autostart_path=tmp_path / "a.desktop")  # fmt: skip
    try:
        app.connection.set_refresh_interval(refresh_s)
        yield app
    finally:
        app.dispose()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
