"""``chadthrottle-helper install`` / ``uninstall``: the system integration.

Installs the bus policy (only root may own the name), the polkit actions, the
D-Bus activation file (Exec= the helper actually installed, with an idle exit)
and, where systemd runs and the helper lives under /usr, the hardened unit and
a tmpfiles.d entry that makes the run records' directory at boot (a Flatpak
window binds it only if it exists when the window starts: docs/packaging.md).
What was written is recorded with its checksum in a manifest, so install is
idempotent and uninstall removes exactly those files, and only while they are
unchanged. A file somebody else put there is never overwritten without
--force. ``--root DIR`` installs into a tree below DIR (packaging, tests).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from chadthrottle.helper_run_state import STATUS_DIR

log = logging.getLogger("chadthrottle.helper.install")

BUS_POLICY = "io.github.chadthrottle.Helper1.conf"
POLKIT_POLICY = "io.github.chadthrottle.policy"
ACTIVATION_FILE = "io.github.chadthrottle.Helper1.service"
SYSTEMD_UNIT = "chadthrottle-helper.service"
TMPFILES = Path("/usr/lib/tmpfiles.d/chadthrottle.conf")
# The run records' directory from boot, as the helper makes it (helper/run_state.py):
# root's, 0755, so readers enter. Empty until a helper runs: readers say "unknown".
TMPFILES_TEXT = (
    '# chadthrottle-helper\'s run records (docs/helper.md, "Stopped or killed"): made at\n'
    "# boot so a Flatpak window started before the helper can be given them.\n"
    f"d {STATUS_DIR} 0755 root root -\n"
)
MANIFEST = Path("var/lib/chadthrottle/installed-files.json")
MANIFEST_VERSION = 1
IDLE_EXIT_S = 60
_SAFE_PATH = re.compile(r"/[A-Za-z0-9._+/-]+")


class InstallError(Exception):
    """The integration could not be (un)installed; the message says why."""


@dataclass(frozen=True)
class PlannedFile:
    target: Path  # absolute, as on the installed system
    content: bytes


def _resource(name: str) -> str:
    return resources.files("chadthrottle.resources").joinpath(name).read_text("utf-8")


def default_helper_path() -> Path:
    """The chadthrottle-helper script of this installation."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "chadthrottle-helper" and argv0.exists():
        return argv0.absolute()
    beside_python = Path(sys.executable).parent / "chadthrottle-helper"
    if beside_python.exists():
        return beside_python
    found = shutil.which("chadthrottle-helper")
    if found is None:
        raise InstallError("cannot find the chadthrottle-helper script; give --helper PATH")
    return Path(found).absolute()


def plan(helper: Path, systemd: bool) -> list[PlannedFile]:
    """Every file install writes, with its content. The systemd unit only where
    systemd runs and the helper is under /usr: its ProtectHome= would hide a
    helper in a home directory, so there dbus-daemon starts the helper itself."""
    if not _SAFE_PATH.fullmatch(str(helper)):
        raise InstallError(
            f"the helper path {str(helper)!r} must be absolute, with no spaces or odd characters"
        )
    exec_line = f"{helper} --idle-exit-s {IDLE_EXIT_S}"
    with_unit = systemd and str(helper).startswith("/usr/")
    activation = re.sub(r"(?m)^Exec=.*$", f"Exec={exec_line}", _resource(ACTIVATION_FILE))
    if not with_unit:
        activation = re.sub(r"(?m)^SystemdService=.*\n", "", activation)
    files = [
        PlannedFile(
            Path("/usr/share/dbus-1/system.d") / BUS_POLICY, _resource(BUS_POLICY).encode()
        ),
        PlannedFile(
            Path("/usr/share/polkit-1/actions") / POLKIT_POLICY, _resource(POLKIT_POLICY).encode()
        ),
        PlannedFile(
            Path("/usr/share/dbus-1/system-services") / ACTIVATION_FILE, activation.encode()
        ),
    ]
    if with_unit:
        unit = re.sub(r"(?m)^ExecStart=.*$", f"ExecStart={exec_line}", _resource(SYSTEMD_UNIT))
        files.append(PlannedFile(Path("/usr/lib/systemd/system") / SYSTEMD_UNIT, unit.encode()))
        files.append(PlannedFile(TMPFILES, TMPFILES_TEXT.encode()))
    return files


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _under(root: Path, path: Path) -> Path:
    return root / path.relative_to("/")


def _read_manifest(root: Path) -> dict[str, str]:
    try:
        document: Any = json.loads(_under(root, Path("/") / MANIFEST).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise InstallError(f"the install manifest {MANIFEST} is unreadable: {error}") from None
    files = document.get("files") if isinstance(document, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise InstallError(f"the install manifest {MANIFEST} is not one this program wrote")
    return {str(k): v for k, v in files.items()}


def _write_atomically(path: Path, content: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(content)
    temporary.chmod(mode)
    os.replace(temporary, path)


def _write_manifest(root: Path, files: dict[str, str]) -> None:
    path = _under(root, Path("/") / MANIFEST)
    if not files:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    document = {"version": MANIFEST_VERSION, "files": dict(sorted(files.items()))}
    _write_atomically(path, (json.dumps(document, indent=2) + "\n").encode(), 0o600)


def install(root: Path, helper: Path, systemd: bool, force: bool = False) -> list[Path]:
    """Write the planned files; returns those that changed. Running it twice
    changes nothing the second time."""
    manifest = _read_manifest(root)
    planned = plan(helper, systemd)
    for file in planned:
        path = _under(root, file.target)
        if (
            path.exists()
            and str(file.target) not in manifest
            and path.read_bytes() != file.content
            and not force
        ):
            raise InstallError(f"{file.target} exists and was not installed by this command; "
                               "remove it or use --force")  # fmt: skip
    changed = []
    for file in planned:
        path = _under(root, file.target)
        if path.exists() and path.read_bytes() == file.content:
            if str(file.target) not in manifest:
                continue  # someone else's identical file: theirs to keep
        else:
            _write_atomically(path, file.content, 0o644)
            changed.append(file.target)
        manifest[str(file.target)] = _digest(file.content)
    # A file from an earlier install that this plan no longer has (e.g. the unit).
    wanted = {str(file.target) for file in planned}
    for stale in set(manifest) - wanted:
        if _remove_if_unchanged(root, Path(stale), manifest[stale]):
            changed.append(Path(stale))
        del manifest[stale]
    _write_manifest(root, manifest)
    return changed


def _remove_if_unchanged(root: Path, target: Path, digest: str) -> bool:
    path = _under(root, target)
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return False
    if _digest(content) != digest:
        log.warning("%s was changed since it was installed; leaving it", target)
        return False
    path.unlink()
    return True


def uninstall(root: Path) -> list[Path]:
    """Remove what install wrote and is still as written; returns what went."""
    manifest = _read_manifest(root)
    removed = [
        Path(t)
        for t, digest in sorted(manifest.items())
        if _remove_if_unchanged(root, Path(t), digest)
    ]
    _write_manifest(root, {})
    return removed


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()


def _reload_systemd() -> None:
    """The new unit known, and the run records' directory made now (not only
    at the next boot) where the tmpfiles.d entry is installed."""
    commands = [["systemctl", "daemon-reload"]]
    if TMPFILES.exists():
        commands.append(["systemd-tmpfiles", "--create", str(TMPFILES)])
    for command in commands:
        try:
            subprocess.run(command, check=False, timeout=30, capture_output=True)
        except (OSError, subprocess.TimeoutExpired) as error:
            log.warning("could not run %s: %s", command[0], error)


def add_install_commands(commands: Any) -> None:
    """The install/uninstall subparsers, on the helper's argument parser."""
    install_parser = commands.add_parser(
        "install", help="install the D-Bus, polkit and systemd files"
    )
    install_parser.add_argument(
        "--root", type=Path, default=Path("/"), help="install below DIR (default: /)"
    )
    install_parser.add_argument(
        "--helper",
        type=Path,
        default=None,
        help="the helper the bus should start (default: this one)",
    )
    install_parser.add_argument(
        "--systemd",
        choices=("auto", "yes", "no"),
        default="auto",
        help="install the systemd unit (default: auto, when systemd runs)",
    )
    install_parser.add_argument(
        "--force", action="store_true", help="overwrite files installed by others"
    )
    uninstall_parser = commands.add_parser("uninstall", help="remove the files install wrote")
    uninstall_parser.add_argument(
        "--root", type=Path, default=Path("/"), help="uninstall below DIR"
    )


def run_install_command(arguments: argparse.Namespace) -> int:
    root: Path = arguments.root.absolute()
    try:
        if arguments.command == "install":
            systemd = (
                systemd_running() if arguments.systemd == "auto" else arguments.systemd == "yes"
            )
            helper = arguments.helper.absolute() if arguments.helper else default_helper_path()
            changed = install(root, helper, systemd, arguments.force)
            verb = "installed"
        else:
            changed = uninstall(root)
            verb = "removed"
    except (InstallError, OSError) as error:
        print(f"chadthrottle-helper: {arguments.command} failed: {error}", file=sys.stderr)
        return 1
    for path in changed:
        print(f"{verb} {path}")
    if not changed:
        print("nothing to do")
    if root == Path("/") and systemd_running():
        _reload_systemd()
    return 0
