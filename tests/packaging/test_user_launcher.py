"""scripts/run-app puts ChadThrottle in the user's application menu and takes it out again.

The module is run on a temporary data home; run-app itself is run as root for a
temporary user (created for the test, with a temporary home, removed after), as
``sudo`` would: the files land in that user's home and are that user's own.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.gui import launcher

from tests.support.requirements import require_program

REPO_ROOT = Path(__file__).resolve().parents[2]
PROGRAM = str(REPO_ROOT / ".venv" / "bin" / "chadthrottle")


def installed_files(data_home: Path) -> list[Path]:
    return [data_home / launcher.ENTRY, *(data_home / place for place in launcher.ICONS.values())]


def read_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text("utf-8"))
    return parser["Desktop Entry"]


def test_install_writes_a_valid_entry_and_the_icons_and_uninstall_removes_them(
    tmp_path: Path,
) -> None:
    data_home = tmp_path / "share"
    written = launcher.install(data_home, PROGRAM)
    assert sorted(written) == sorted(installed_files(data_home))
    entry = read_entry(data_home / launcher.ENTRY)
    assert entry["Exec"] == PROGRAM and entry["TryExec"] == PROGRAM
    assert entry["Icon"] == launcher.APP_ID and entry["Name"] == "ChadThrottle"
    result = subprocess.run([require_program("desktop-file-validate"), str(data_home / launcher.ENTRY)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0 and "error" not in result.stdout.lower(), result.stdout
    icon = data_home / "icons/hicolor/scalable/apps/io.github.chadthrottle.svg"
    assert icon.read_bytes() == launcher.resource("io.github.chadthrottle.svg")
    assert launcher.install(data_home, PROGRAM)  # a second run replaces its own files
    assert sorted(launcher.uninstall(data_home)) == sorted(installed_files(data_home))
    assert not any(path.exists() for path in installed_files(data_home))


def test_files_that_are_not_ours_are_left_alone(tmp_path: Path) -> None:
    data_home = tmp_path / "share"
    entry = data_home / launcher.ENTRY
    entry.parent.mkdir(parents=True)
    entry.write_text("[Desktop Entry]\nType=Application\nName=Mine\nExec=mine\n")
    with pytest.raises(launcher.LauncherError, match="not written by run-app"):
        launcher.install(data_home, PROGRAM)
    icon = data_home / launcher.ICONS["io.github.chadthrottle.svg"]
    icon.parent.mkdir(parents=True)
    icon.write_text("<svg/>")  # the user's own icon
    assert launcher.uninstall(data_home) == []
    assert (
        entry.read_text().startswith("[Desktop Entry]\nType=Application\nName=Mine")
        and icon.exists()
    )


def test_a_relative_program_is_refused(tmp_path: Path) -> None:
    with pytest.raises(launcher.LauncherError, match="absolute"):
        launcher.install(tmp_path, "chadthrottle")
    assert not (tmp_path / launcher.ENTRY).exists()


@pytest.fixture
def desktop_user() -> Iterator[tuple[str, Path]]:
    """A user who ran sudo: a real account with a temporary home, removed after."""
    if os.geteuid() != 0:
        pytest.skip("run-app runs as root")
    name = f"ctl{uuid.uuid4().hex[:8]}"
    base = Path(tempfile.mkdtemp(prefix="chadthrottle-launcher-"))
    base.chmod(0o755)
    home = base / name
    subprocess.run([require_program("useradd"), "--no-create-home", "--home-dir", str(home),
                    "--shell", "/usr/sbin/nologin", "--no-user-group", "--gid", "nogroup", name], check=True)  # fmt: skip
    try:
        home.mkdir()
        shutil.chown(home, name, "nogroup")
        yield name, home
    finally:
        subprocess.run([require_program("userdel"), name], check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_run_app_installs_for_the_sudo_user_and_uninstall_removes_it(
    desktop_user: tuple[str, Path],
) -> None:
    name, home = desktop_user
    environment = {
        **os.environ,
        "SUDO_USER": name,
        "XDG_DATA_HOME": "/root/.local/share",
    }  # root's, ignored
    run = subprocess.run([str(REPO_ROOT / "scripts" / "run-app"), "--install-launcher"], env=environment,
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    data_home = home / ".local" / "share"
    files = installed_files(data_home)
    assert all(path.is_file() for path in files), run.stdout + run.stderr
    uid = int(subprocess.run(["id", "-u", name], capture_output=True, text=True, check=True).stdout)
    created = [*files, home / ".local", data_home, data_home / "applications", data_home / "icons"]
    assert {path: path.stat().st_uid for path in created} == {
        path: uid for path in created
    }  # the user's own
    assert read_entry(data_home / launcher.ENTRY)["Exec"] == PROGRAM

    # What `run-app --uninstall` runs for the launcher (its helper part would touch
    # the machine's D-Bus and polkit files, which tests/packaging covers elsewhere).
    removal = subprocess.run(["runuser", "-u", name, "--", "env", "-u", "XDG_DATA_HOME", f"HOME={home}",
                              str(REPO_ROOT / ".venv" / "bin" / "python"), "-m", "chadthrottle.gui.launcher",
                              "uninstall", "--home", str(home)],
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert removal.returncode == 0, removal.stderr
    assert not any(path.exists() for path in files)
