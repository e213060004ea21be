"""Start at login: an XDG autostart entry, written or removed on request.

The file in ``$XDG_CONFIG_HOME/autostart`` is the one source of truth (a user
may also remove it from the desktop's own settings), so nothing about it is
kept in QSettings.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

ENTRY_NAME = "io.github.chadthrottle.desktop"


def default_path() -> Path:
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "autostart" / ENTRY_NAME


def launch_command() -> str:
    """The installed ``chadthrottle`` if there is one, else this interpreter."""
    installed = shutil.which("chadthrottle")
    argv = [installed] if installed else [sys.executable, "-m", "chadthrottle.gui.app"]
    return shlex.join([*argv, "--hidden"])


def entry_text(command: str) -> str:
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=ChadThrottle\n"
        "Comment=Per-application bandwidth limits, from the tray\n"
        f"Exec={command}\n"
        "Icon=io.github.chadthrottle\n"
        "Terminal=false\n"
        "X-GNOME-Autostart-enabled=true\n"
    )


def is_enabled(path: Path) -> bool:
    """An entry exists and is not switched off with Hidden=true."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    return not any(line.strip().lower() == "hidden=true" for line in text.splitlines())


def set_enabled(path: Path, enabled: bool, command: str | None = None) -> None:
    """Write or remove the entry; raises OSError when that is not possible."""
    if not enabled:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(entry_text(command or launch_command()))
