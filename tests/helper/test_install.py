"""chadthrottle-helper install/uninstall into a temporary root."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from chadthrottle.helper.install import MANIFEST, InstallError, install, uninstall
from chadthrottle.helper.main import idle_exit_seconds
from chadthrottle.helper.run_state import RunRecord
from chadthrottle.helper_run_state import STATUS_DIR, LastStop, read_last_stop

from tests.support.requirements import require_program

BUS = "unix:path=/tmp/no-such-bus-of-lock26"

HELPER = Path("/usr/bin/chadthrottle-helper")
ACTIVATION = Path("usr/share/dbus-1/system-services/io.github.chadthrottle.Helper1.service")
BUS_POLICY = Path("usr/share/dbus-1/system.d/io.github.chadthrottle.Helper1.conf")
POLKIT = Path("usr/share/polkit-1/actions/io.github.chadthrottle.policy")
UNIT = Path("usr/lib/systemd/system/chadthrottle-helper.service")
TMPFILES = Path("usr/lib/tmpfiles.d/chadthrottle.conf")


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()}


def test_install_writes_the_integration_and_is_idempotent(tmp_path: Path) -> None:
    changed = install(tmp_path, HELPER, systemd=False)
    assert {p.relative_to("/") for p in changed} == {ACTIVATION, BUS_POLICY, POLKIT}
    assert _files(tmp_path) == {ACTIVATION, BUS_POLICY, POLKIT, MANIFEST}
    activation = (tmp_path / ACTIVATION).read_text()
    assert f"Exec={HELPER} --idle-exit-s 60\n" in activation
    assert "\nSystemdService=" not in activation  # no unit without systemd
    assert (tmp_path / POLKIT).stat().st_mode & 0o777 == 0o644
    before = {p: (tmp_path / p).read_bytes() for p in _files(tmp_path)}
    assert install(tmp_path, HELPER, systemd=False) == []
    assert {p: (tmp_path / p).read_bytes() for p in _files(tmp_path)} == before


def test_with_systemd_the_unit_starts_the_installed_helper(tmp_path: Path) -> None:
    install(tmp_path, HELPER, systemd=True)
    unit = (tmp_path / UNIT).read_text()
    assert f"\nExecStart={HELPER} --idle-exit-s 60\n" in unit and "ProtectSystem=strict" in unit
    assert "SystemdService=chadthrottle-helper.service" in (tmp_path / ACTIVATION).read_text()


def test_with_systemd_the_run_records_directory_is_made_at_boot(tmp_path: Path) -> None:
    """A Flatpak window is given /run/chadthrottle-status only if it exists when
    the window starts (docs/packaging.md), and its first call may start the
    helper that would make it: systemd-tmpfiles makes it at boot, as the
    helper makes it (root's, 0755), and a helper's record is written there."""
    tmpfiles = require_program("systemd-tmpfiles")
    install(tmp_path, HELPER, systemd=True)
    entries = [line for line in (tmp_path / TMPFILES).read_text().splitlines()
               if line and not line.startswith("#")]  # fmt: skip
    assert entries == [f"d {STATUS_DIR} 0755 root root -"]
    booted = tmp_path / "booted"
    booted.mkdir()
    made = subprocess.run([tmpfiles, f"--root={booted}", "--create", str(tmp_path / TMPFILES)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert made.returncode == 0, made.stderr
    folder = booted / STATUS_DIR.relative_to("/")
    found = folder.lstat()
    assert stat.S_ISDIR(found.st_mode) and (found.st_uid, found.st_mode & 0o777) == (0, 0o755)
    assert read_last_stop(BUS, folder) is LastStop.UNKNOWN  # trusted, and empty
    record = RunRecord(BUS, folder)
    record.start()
    assert read_last_stop(BUS, folder) is LastStop.RUNNING
    record.stopped()
    assert read_last_stop(BUS, folder) is LastStop.STOPPED


def test_a_helper_outside_usr_gets_no_unit(tmp_path: Path) -> None:
    install(tmp_path, Path("/home/me/chadthrottle/.venv/bin/chadthrottle-helper"), systemd=True)
    assert UNIT not in _files(tmp_path)
    assert TMPFILES not in _files(tmp_path)


def test_reinstall_without_systemd_removes_the_unit_it_wrote(tmp_path: Path) -> None:
    install(tmp_path, HELPER, systemd=True)
    install(tmp_path, HELPER, systemd=False)
    assert UNIT not in _files(tmp_path)
    assert TMPFILES not in _files(tmp_path)
    assert "\nSystemdService=" not in (tmp_path / ACTIVATION).read_text()


def test_uninstall_removes_only_what_install_wrote(tmp_path: Path) -> None:
    theirs = tmp_path / "usr/share/dbus-1/system.d/org.example.Other.conf"
    theirs.parent.mkdir(parents=True)
    theirs.write_text("<busconfig/>")
    install(tmp_path, HELPER, systemd=True)
    (tmp_path / POLKIT).write_text("edited by an administrator")
    removed = uninstall(tmp_path)
    assert {p.relative_to("/") for p in removed} == {ACTIVATION, BUS_POLICY, UNIT, TMPFILES}
    assert _files(tmp_path) == {theirs.relative_to(tmp_path), POLKIT}  # the edited file stays
    assert uninstall(tmp_path) == []


def test_someone_elses_file_is_not_overwritten_without_force(tmp_path: Path) -> None:
    (tmp_path / BUS_POLICY).parent.mkdir(parents=True)
    (tmp_path / BUS_POLICY).write_text("<busconfig>packaged</busconfig>")
    with pytest.raises(InstallError, match="not installed by this command"):
        install(tmp_path, HELPER, systemd=False)
    assert _files(tmp_path) == {BUS_POLICY}  # nothing written at all
    install(tmp_path, HELPER, systemd=False, force=True)
    assert "packaged" not in (tmp_path / BUS_POLICY).read_text()


def test_an_identical_packaged_file_is_left_to_its_owner(tmp_path: Path) -> None:
    install(tmp_path / "pkg", HELPER, systemd=False)
    (tmp_path / BUS_POLICY).parent.mkdir(parents=True)
    (tmp_path / BUS_POLICY).write_bytes((tmp_path / "pkg" / BUS_POLICY).read_bytes())
    install(tmp_path, HELPER, systemd=False)
    uninstall(tmp_path)
    assert (tmp_path / BUS_POLICY).exists()


def test_a_strange_helper_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InstallError):
        install(tmp_path, Path("/opt/my helper/x\nExec=/bin/sh"), systemd=False)
    assert _files(tmp_path) == set()


def test_the_command_line(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "chadthrottle.helper.main", *args],
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    first = run("install", "--root", str(tmp_path), "--helper", str(HELPER), "--systemd", "no")
    assert first.returncode == 0, first.stderr
    assert f"installed /{ACTIVATION}" in first.stdout
    assert (
        run("install", "--root", str(tmp_path), "--helper", str(HELPER), "--systemd", "no").stdout
        == "nothing to do\n"
    )
    gone = run("uninstall", "--root", str(tmp_path))
    assert gone.returncode == 0 and f"removed /{POLKIT}" in gone.stdout
    assert _files(tmp_path) == set()


def test_idle_exit_defaults_to_a_minute_only_when_activated() -> None:
    assert idle_exit_seconds(None, {}) == 0
    assert idle_exit_seconds(None, {"DBUS_STARTER_BUS_TYPE": "system"}) == 60
    assert idle_exit_seconds(5, {"DBUS_STARTER_BUS_TYPE": "system"}) == 5
    assert idle_exit_seconds(0, {"DBUS_STARTER_BUS_TYPE": "system"}) == 0
