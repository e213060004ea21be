"""The application-menu launcher and icon, installed for one user (XDG).

``scripts/run-app`` runs this as the desktop user (the one who ran sudo, with
runuser: root never writes into a user's home, where a symlink could send it
elsewhere, and the files are the user's own), so the application menu has
ChadThrottle after the first run; ``scripts/run-app --uninstall`` removes
exactly what it wrote:

    python -m chadthrottle.gui.launcher install --home ~ --exec /path/to/.venv/bin/chadthrottle
    python -m chadthrottle.gui.launcher uninstall --home ~

The entry is resources/io.github.chadthrottle.desktop with Exec= pointing at
the given program (a checkout's .venv is not on PATH) and a marker line, so
uninstall never removes an entry a package or the user put there.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

APP_ID = "io.github.chadthrottle"
MARKER = "X-ChadThrottle-Installed-By=run-app"
ICONS = {  # resource file -> place under the data home
    f"{APP_ID}.svg": f"icons/hicolor/scalable/apps/{APP_ID}.svg",
    f"{APP_ID}-symbolic.svg": f"icons/hicolor/symbolic/apps/{APP_ID}-symbolic.svg",
}
ENTRY = f"applications/{APP_ID}.desktop"


class LauncherError(Exception):
    """A bad argument or a file that cannot be written; nothing is half-done on purpose."""


def resource(name: str) -> bytes:
    return resources.files("chadthrottle.resources").joinpath(name).read_bytes()


def entry_text(program: str) -> str:
    """The shipped desktop entry, started through ``program``."""
    lines = []
    for line in resource(f"{APP_ID}.desktop").decode("utf-8").splitlines():
        if line.startswith("Exec="):
            line = f"Exec={shlex.quote(program)}"
            lines.append(f"TryExec={program}")
        lines.append(line)
    lines.append(MARKER)
    return "\n".join(lines) + "\n"


def _write(path: Path, data: bytes) -> None:
    """Whole or not at all: a menu never reads half an entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    temporary.chmod(0o644)
    temporary.replace(path)


def _refresh_caches(data_home: Path) -> None:
    """Tell menus and icon themes, where their tools exist; harmless without."""
    for argv in (["update-desktop-database", "-q", str(data_home / "applications")],
                 ["gtk-update-icon-cache", "-q", "-t", str(data_home / "icons" / "hicolor")]):  # fmt: skip
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(argv, check=False, capture_output=True, timeout=20)


def install(data_home: Path, program: str) -> list[Path]:
    """Write the entry and icons; returns the files written."""
    if not Path(program).is_absolute():
        raise LauncherError(f"the program must be an absolute path: {program!r}")
    entry = data_home / ENTRY
    if entry.exists() and MARKER not in entry.read_text(errors="replace"):
        raise LauncherError(f"{entry} exists and was not written by run-app: left alone")
    written = []
    try:
        _write(entry, entry_text(program).encode("utf-8"))
        written.append(entry)
        for name, place in ICONS.items():
            _write(data_home / place, resource(name))
            written.append(data_home / place)
    except OSError as error:
        raise LauncherError(f"could not write the launcher: {error}") from error
    _refresh_caches(data_home)
    return written


def uninstall(data_home: Path) -> list[Path]:
    """Remove what install wrote: our entry, and icons identical to ours."""
    removed = []
    entry = data_home / ENTRY
    if entry.exists() and MARKER in entry.read_text(errors="replace"):
        entry.unlink()
        removed.append(entry)
    for name, place in ICONS.items():
        icon = data_home / place
        if icon.exists() and icon.read_bytes() == resource(name):
            icon.unlink()
            removed.append(icon)
    if removed:
        _refresh_caches(data_home)
    return removed


def user_data_home(home: Path, environment: dict[str, str]) -> Path:
    """$XDG_DATA_HOME if set (run-app clears it: sudo's may be root's), else ~/.local/share."""
    value = environment.get("XDG_DATA_HOME", "")
    return Path(value) if value.startswith("/") else home / ".local" / "share"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="chadthrottle-launcher", description=__doc__.splitlines()[0]
    )
    parser.add_argument("action", choices=("install", "uninstall"))
    parser.add_argument("--home", type=Path, required=True, help="the user's home folder")
    parser.add_argument("--exec", dest="program", help="the program the launcher starts (install)")
    options = parser.parse_args(argv)
    data_home = user_data_home(options.home, dict(os.environ))
    try:
        if options.action == "uninstall":
            for path in uninstall(data_home):
                print(f"removed {path}")
            return 0
        if not options.program:
            raise LauncherError("install needs --exec PROGRAM")
        for path in install(data_home, options.program):
            print(f"installed {path}")
    except LauncherError as error:
        print(f"chadthrottle-launcher: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
