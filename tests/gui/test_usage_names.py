"""An application that no longer runs is named in the usage view as its
.desktop file names it, not by the end of its id: on Xvfb the day's table
listed "X3" and "X2" for Game Launcher and Music Streamer once their
processes had gone (the helper keeps no names). Real files in a temporary
XDG data dir; the real UsageDialog, offscreen."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from chadthrottle.app_names import desktop_name, fallback_name
from chadthrottle.gui.models.usage_periods import UsagePeriod
from chadthrottle.gui.views.usage_dialog import UsageDialog
from chadthrottle.units import UnitSystem

from tests.gui.usage_rows import row


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An XDG data dir holding one application's .desktop file, as installed."""
    applications = tmp_path / "share" / "applications"
    applications.mkdir(parents=True)
    (applications / "org.example.GameLauncher.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Game Launcher\nName[de]=Spielstarter\nExec=true\n"
    )
    (applications / "org.example.Broken.desktop").write_text("not a desktop file\n")
    monkeypatch.setenv("XDG_DATA_DIRS", str(tmp_path / "share"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home-share"))
    desktop_name.cache_clear()
    yield tmp_path
    desktop_name.cache_clear()


def test_a_gone_application_is_named_from_its_desktop_file(qtbot, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    assert fallback_name("app:org.example.GameLauncher") == "Game Launcher"
    assert fallback_name("app:org.example.Broken") == "Broken"  # no Name=: as before
    assert fallback_name("app:org.example.Gone") == "Gone"  # no file: as before
    assert fallback_name("app:../../etc/passwd") != "root"  # an id, never a path
    dialog = UsageDialog(UsagePeriod.TODAY)
    qtbot.addWidget(dialog)
    now = time.time()
    start = int(now) // 3600 * 3600 - 3600
    rows = [row("app:org.example.GameLauncher", start, 600, 2 * 10**9)]
    dialog.show_rows(UsagePeriod.TODAY, rows, now, fallback_name, UnitSystem.BYTES_DECIMAL)
    model = dialog.table_model
    assert [model.index(r, 0).data() for r in range(model.rowCount())] == ["Game Launcher"]
