"""What /proc tells of real processes that claim an AppImage or a Flatpak:
an AppImage-like mount directory with $APPIMAGE, a process in its own mount
namespace and root with a /.flatpak-info. Both claims are the process's own
to make (docs/helper.md, "Stable identity"): these tests show what they get
and what they are refused (a symlink, a FIFO, a program outside the mount)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.helper.identity.applications import identify
from chadthrottle.helper.identity.desktop_catalog import DesktopCatalog
from chadthrottle.helper.identity.processes import (
    env_bounds_unset,
    environment_pending,
    read_process,
)

from tests.support.requirements import require_root
from tests.support.waiting import eventually

NO_DESKTOP_FILES = DesktopCatalog(system_dirs=lambda: [], home_of=lambda uid: None)
# A child in a mount namespace and root of its own (what a sandbox is to /proc).
SANDBOXED = textwrap.dedent("""
    import ctypes, os, sys, time
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        sys.exit("unshare failed")
    libc.mount(b"none", b"/", None, 0x40000 | 0x4000, None)  # MS_PRIVATE | MS_REC: nothing leaks back
    os.chroot(sys.argv[1])
    print("ready", flush=True)
    time.sleep(60)
""")


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for child in started:
        child.kill()
        child.wait()


def _launch_from_mount(tmp_path: Path, children: list[subprocess.Popen[bytes]], image: Path, mount_name: str,
                       env_extra: dict[str, str] | None = None) -> int:  # fmt: skip
    mount = tmp_path / mount_name
    mount.mkdir()
    program = mount / "AppRun-sleep"
    shutil.copy("/bin/sleep", program)
    env = {
        "PATH": "/usr/bin:/bin",
        "APPIMAGE": str(image),
        "APPDIR": str(mount),
        **(env_extra or {}),
    }
    children.append(subprocess.Popen([str(program), "60"], env=env))
    return children[-1].pid


def _app_id(pid: int) -> str:
    process = read_process(pid)
    assert process is not None
    identity = identify(process, NO_DESKTOP_FILES)
    assert identity is not None
    return identity.app_id


def test_two_launches_of_an_appimage_are_one_application(
    tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    image = tmp_path / "Fake-1.0.AppImage"
    first = _launch_from_mount(tmp_path, children, image, ".mount_FakeAb12")
    second = _launch_from_mount(tmp_path, children, image, ".mount_FakeZz99")
    assert eventually(lambda: all(_read_in_mount(pid, tmp_path) for pid in (first, second)), 5)
    assert _app_id(first) == _app_id(second) == f"appimage:{image}"


def _read_in_mount(pid: int, tmp_path: Path) -> bool:
    """The process as the helper reads it, once its exec into the mount is
    done (read_process gives None while the kernel has switched the
    executable but not yet laid out the environment)."""
    process = read_process(pid)
    return process is not None and process.exe.startswith(str(tmp_path))


def test_a_process_inside_execve_has_its_environment_pending() -> None:
    """The stat line's env_start and env_end (fields 50-51), after a name with
    spaces and ')': both 0 between the exe switch and the new stack."""
    head = "4242 (evil) name) R 1 4242 4242 0 -1 4194304"
    tail = " ".join(["0"] * 36)  # fields 10-45
    mid_exec = f"{head} {tail} 0 0 0 0 0 0 0\n"  # 46-52: ... arg, env bounds, exit code
    settled = f"{head} {tail} 0 0 140 150 150 190 0\n"
    assert env_bounds_unset(mid_exec)
    assert not env_bounds_unset(settled)
    assert not env_bounds_unset(
        "4242 (short) R 1\n"
    )  # an old kernel's line: not known, not pending
    assert not environment_pending(os.getpid())


def test_a_program_outside_any_mount_claiming_an_appimage_stays_itself(
    tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    """Its environment is not even read: its executable is in no AppImage mount."""
    children.append(
        subprocess.Popen(
            ["/bin/sleep", "60"], env={"APPIMAGE": "/opt/Other.AppImage", "APPDIR": "/tmp/.mount_x"}
        )
    )
    pid = children[-1].pid
    assert eventually(lambda: os.readlink(f"/proc/{pid}/exe") == os.path.realpath("/bin/sleep"), 5)
    process = read_process(pid)
    assert process is not None and (process.appimage, process.appdir) == ("", "")
    assert _app_id(pid) == f"exe:{os.path.realpath('/bin/sleep')}"


def _sandboxed(root: Path, children: list[subprocess.Popen[bytes]]) -> int:
    children.append(
        subprocess.Popen([sys.executable, "-c", SANDBOXED, str(root)], stdout=subprocess.PIPE)
    )
    assert children[-1].stdout is not None and children[-1].stdout.readline().strip() == b"ready"
    return children[-1].pid


def test_a_process_with_its_own_root_and_flatpak_info_is_that_flatpak(
    tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    require_root()
    (tmp_path / ".flatpak-info").write_text("[Application]\nname=org.example.Faked\nruntime=x\n")
    assert _app_id(_sandboxed(tmp_path, children)) == "app:org.example.Faked"


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_flatpak_info_that_is_no_regular_file_is_not_read(
    tmp_path: Path, children: list[subprocess.Popen[bytes]], kind: str
) -> None:
    """A symlink (to a file only root may read) is not followed, and a FIFO
    is not waited on: the helper's identity code must never block."""
    require_root()
    secret = tmp_path / "secret"
    secret.write_text("[Application]\nname=org.example.Secret\n")
    secret.chmod(0o600)
    root = tmp_path / "root"
    root.mkdir()
    if kind == "symlink":
        (root / ".flatpak-info").symlink_to(secret)
    else:
        os.mkfifo(root / ".flatpak-info")
    pid = _sandboxed(root, children)
    process = read_process(pid)
    assert process is not None and process.flatpak_info == ""
    assert _app_id(pid).startswith("exe:")


def test_flatpak_info_is_looked_for_only_where_nothing_else_names_the_process() -> None:
    from chadthrottle.helper.identity.processes import _named_by_cgroup

    named = [
        "/user.slice/user-1000.slice/user@1000.service/app.slice/app-flatpak-org.x.Y-12.scope",
        "/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-org.x.Y-12.scope/sub",
        f"/user.slice/user@1000.service/app.slice/snap.firefox.firefox-{'0' * 8}-aaaa-bbbb-cccc-{'1' * 12}.scope",
        "/system.slice/snap.lxd.daemon.service",
        "/system.slice/cron.service",
    ]
    unnamed = [
        "/",
        "/user.slice/user-1000.slice/session-2.scope",
        "/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.gnome.Terminal.slice/vte-spawn-1.scope",
    ]
    assert all(_named_by_cgroup(cgroup) for cgroup in named)
    assert not any(_named_by_cgroup(cgroup) for cgroup in unnamed)
