"""Start at login: the settings menu writes and removes an XDG autostart entry."""

from __future__ import annotations

import configparser
from pathlib import Path

from chadthrottle.gui import autostart


def test_the_menu_writes_and_removes_the_entry(make_controller, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    entry = tmp_path / "config" / "autostart" / autostart.ENTRY_NAME
    controller = make_controller(autostart_path=entry)
    action = controller.window.header.start_at_login
    assert not action.isChecked()
    action.trigger()
    assert action.isChecked() and autostart.is_enabled(entry)
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read(entry)
    assert parsed["Desktop Entry"]["Exec"].endswith("--hidden")
    assert parsed["Desktop Entry"]["Type"] == "Application"
    action.trigger()
    assert not action.isChecked() and not entry.exists()
    controller.shutdown()


def test_an_existing_entry_shows_checked_and_a_hidden_one_does_not(
    make_controller, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    entry = tmp_path / autostart.ENTRY_NAME
    autostart.set_enabled(entry, True, command="chadthrottle --hidden")
    assert make_controller(autostart_path=entry).window.header.start_at_login.isChecked()
    entry.write_text(entry.read_text() + "Hidden=true\n")  # switched off in the desktop's settings
    assert not make_controller(autostart_path=entry).window.header.start_at_login.isChecked()


def test_a_failure_is_said_and_the_box_stays_honest(make_controller, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    controller = make_controller(autostart_path=blocker / autostart.ENTRY_NAME)
    controller.window.header.start_at_login.trigger()
    assert not controller.window.header.start_at_login.isChecked()
    assert "start at login" in controller.window.status_line.message.text()
