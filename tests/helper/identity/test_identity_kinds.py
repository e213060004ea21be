"""Stable identity (issue 14): a snap, an AppImage, a Flatpak, a system
service and a program a .desktop file runs are each the same application
across launches and updates; and what a process controls itself (its
environment, its sandbox's root, its scope's name) renames only that process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from chadthrottle.contract import APP_ID_KINDS
from chadthrottle.helper.adapter.validation import validate_app_id
from chadthrottle.helper.identity.applications import KNOWN_KINDS, AppIdentity, identify
from chadthrottle.helper.identity.desktop_catalog import DesktopCatalog, exec_program
from chadthrottle.helper.identity.processes import ProcessInfo

UUID_A = "0a1b2c3d-1111-2222-3333-444455556666"
UUID_B = "9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff"
USER_APPS = "/user.slice/user-1000.slice/user@1000.service/app.slice"


def _process(exe: str = "/usr/bin/curl", argv: tuple[str, ...] = ("curl",), cgroup: str = "/user.slice/session-2.scope",
             uid: int = 1000, **facts: str) -> ProcessInfo:  # fmt: skip
    return ProcessInfo(
        pid=10, ppid=1, uid=uid, exe=exe, argv=argv, comm="x", cgroup=cgroup, **facts
    )


def _empty_catalog() -> DesktopCatalog:
    return DesktopCatalog(system_dirs=lambda: [], home_of=lambda uid: None)


def _id(process: ProcessInfo, catalog: DesktopCatalog | None = None) -> AppIdentity:
    identity = identify(process, catalog or _empty_catalog())
    assert identity is not None
    assert validate_app_id(identity.app_id) == identity.app_id
    return identity


def test_every_kind_identify_emits_is_one_the_contract_accepts() -> None:
    assert set(KNOWN_KINDS) <= APP_ID_KINDS


# -- snaps --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("leaf", "snap"),
    [
        (f"snap.firefox.firefox-{UUID_A}.scope", "firefox"),
        (f"snap.firefox.firefox.{UUID_A}.scope", "firefox"),  # older snapd
        (f"snap.firefox_beta.firefox-{UUID_A}.scope", "firefox_beta"),  # a parallel install
        (f"snap.code.url-handler-{UUID_A}.scope", "code"),
        (f"snap.lxd.hook.configure-{UUID_A}.scope", "lxd"),
    ],
)
def test_a_snap_scope_names_the_snap(leaf: str, snap: str) -> None:
    identity = _id(_process(exe="/usr/lib/firefox/firefox", cgroup=f"{USER_APPS}/{leaf}"))
    assert identity.app_id == f"snap:{snap}" and identity.scope == f"{USER_APPS}/{leaf}"


def test_two_launches_of_a_snap_are_one_application() -> None:
    first = _id(_process(cgroup=f"{USER_APPS}/snap.firefox.firefox-{UUID_A}.scope"))
    second = _id(_process(cgroup=f"{USER_APPS}/snap.firefox.firefox-{UUID_B}.scope"))
    assert first.app_id == second.app_id == "snap:firefox"


def test_a_snap_service_is_the_snap_not_its_unit() -> None:
    identity = _id(
        _process(exe="/snap/lxd/27000/bin/lxd", cgroup="/system.slice/snap.lxd.daemon.service")
    )
    assert (
        identity.app_id == "snap:lxd" and identity.scope == "/system.slice/snap.lxd.daemon.service"
    )


@pytest.mark.parametrize(
    "leaf",
    [
        "snap.Firefox.firefox-x.scope",
        "snap.firefox.scope",
        f"snap..firefox-{UUID_A}.scope",
        "snap.a.b-1234.scope",
    ],
)
def test_names_that_are_not_snap_scopes(leaf: str) -> None:
    assert _id(_process(cgroup=f"{USER_APPS}/{leaf}")).app_id == "exe:/usr/bin/curl"


@pytest.mark.parametrize(
    ("exe", "argv"),
    [
        ("/snap/firefox/1234/usr/lib/firefox/firefox", ("firefox",)),
        ("/snap/firefox/4321/usr/lib/firefox/firefox", ("firefox",)),  # after a refresh
        ("/snap/firefox/x2/usr/lib/firefox/firefox", ("firefox",)),  # installed from a file
        ("/usr/bin/python3.11", ("python3", "/snap/firefox/1234/bin/helper.py")),
    ],
)
def test_a_snaps_executable_path_names_the_snap_whatever_its_revision(
    exe: str, argv: tuple[str, ...]
) -> None:
    """Outside its scope too (moved out of it, or started without one)."""
    assert _id(_process(exe=exe, argv=argv)).app_id == "snap:firefox"


def test_paths_that_only_look_like_snaps() -> None:
    for exe in (
        "/snap/bin/firefox",
        "/snap/firefox/current",
        "/home/u/snap/firefox/1234/bin/x",
        "/snap/Firefox/12/x",
    ):
        assert _id(_process(exe=exe)).app_id == f"exe:{exe}"


def test_a_snap_is_named_by_its_desktop_file(tmp_path: Path) -> None:
    (tmp_path / "firefox_firefox.desktop").write_text("[Desktop Entry]\nType=Application\nName=Firefox Web Browser\n"
                                                      "Icon=/snap/firefox/1234/default256.png\nExec=/snap/bin/firefox\n")  # fmt: skip
    catalog = DesktopCatalog(system_dirs=lambda: [tmp_path], home_of=lambda uid: None)
    identity = _id(_process(cgroup=f"{USER_APPS}/snap.firefox.firefox-{UUID_A}.scope"), catalog)
    assert (identity.name, identity.icon) == (
        "Firefox Web Browser",
        "/snap/firefox/1234/default256.png",
    )


# -- AppImages ------------------------------------------------------------------


def _appimage(
    mount: str, image: str = "/home/u/Apps/Obsidian-1.4.16.AppImage", exe: str = ""
) -> ProcessInfo:
    return _process(
        exe=exe or f"{mount}/obsidian", argv=("obsidian",), appimage=image, appdir=mount
    )


def test_an_appimage_is_its_image_not_its_mount() -> None:
    first = _id(_appimage("/tmp/.mount_ObsidiAb12Cd"))
    second = _id(_appimage("/tmp/.mount_ObsidiZz98Yx"))
    assert first.app_id == second.app_id == "appimage:/home/u/Apps/Obsidian-1.4.16.AppImage"
    assert first.name == "Obsidian-1.4.16"


def test_appimage_only_counts_for_a_program_inside_the_mount() -> None:
    """A host program the AppImage started inherits APPIMAGE and APPDIR; so
    can any process set them. Outside the mount they name nothing."""
    assert (
        _id(_appimage("/tmp/.mount_ObsidiAb12Cd", exe="/usr/bin/curl")).app_id
        == "exe:/usr/bin/curl"
    )
    assert _id(
        _appimage("/tmp/.mount_ObsidiAb12Cd", exe="/tmp/.mount_ObsidiAb12Cdx/obsidian")
    ).app_id.startswith("exe:")


@pytest.mark.parametrize(
    ("mount", "image"),
    [
        ("/tmp/not-a-mount", "/home/u/x.AppImage"),  # APPDIR is no AppImage mount
        ("/tmp/.mount_Ab12", "x.AppImage"),  # a relative image path
        ("/tmp/.mount_Ab12", ""),
        ("tmp/.mount_Ab12", "/home/u/x.AppImage"),
    ],
)
def test_appimage_claims_that_do_not_hold(mount: str, image: str) -> None:
    assert (
        _id(_process(exe=f"{mount}/bin/app", appimage=image, appdir=mount)).app_id
        == f"exe:{mount}/bin/app"
    )


# -- Flatpak ----------------------------------------------------------------------


def test_a_flatpak_outside_its_scope_is_named_by_its_flatpak_info() -> None:
    info = "[Application]\nname=org.example.Chat\nruntime=runtime/org.gnome.Platform/x86_64/45\n\n[Instance]\n"
    identity = _id(_process(exe="/app/bin/chat", flatpak_info=info))
    assert identity.app_id == "app:org.example.Chat" and identity.scope == ""


def test_a_flatpak_scope_still_names_a_flatpak() -> None:
    cgroup = f"{USER_APPS}/app-flatpak-org.example.Chat-4242.scope"
    assert _id(_process(exe="/app/bin/chat", cgroup=cgroup)).app_id == "app:org.example.Chat"


@pytest.mark.parametrize("info", ["", "[Application]\nname=../../etc\n", "[Runtime]\nname=org.x.Y\n", "name=org.x.Y\n",
                                  "[Application]\nname=nodots\n", "[Application]\nname=" + "a." * 200 + "b\n"])  # fmt: skip
def test_flatpak_info_that_names_no_application(info: str) -> None:
    assert _id(_process(exe="/app/bin/chat", flatpak_info=info)).app_id == "exe:/app/bin/chat"


# -- system services ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cgroup", "unit", "scope"),
    [
        ("/system.slice/nginx.service", "nginx.service", "/system.slice/nginx.service"),
        (
            "/system.slice/system-getty.slice/getty@tty1.service",
            "getty@tty1.service",
            "/system.slice/system-getty.slice/getty@tty1.service",
        ),
        # A delegated service may make and name cgroups below its own: not read.
        (
            "/system.slice/builder.service/payload/sshd.service",
            "builder.service",
            "/system.slice/builder.service",
        ),
    ],
)
def test_a_system_service_is_its_unit(cgroup: str, unit: str, scope: str) -> None:
    identity = _id(_process(exe="/usr/sbin/nginx", cgroup=cgroup, uid=0))
    assert (identity.app_id, identity.name, identity.scope) == (f"unit:{unit}", unit, scope)


def test_a_service_that_exited_is_still_its_unit() -> None:
    assert (
        _id(_process(exe="", argv=(), cgroup="/system.slice/backup.service")).app_id
        == "unit:backup.service"
    )


@pytest.mark.parametrize(
    "cgroup",
    [
        f"{USER_APPS}/syncthing.service",  # a user's own unit: theirs to name
        "/system.slice/docker-0123abcd.scope",  # a container, not a service
        "/system.slice",
        "/user.slice/system.slice/fake.service",
    ],
)
def test_what_is_not_a_system_service(cgroup: str) -> None:
    assert _id(_process(cgroup=cgroup)).app_id == "exe:/usr/bin/curl"


# -- programs that .desktop files run ------------------------------------------------


def _program(directory: Path, name: str, head: bytes = b"\x7fELF\x02\x01\x01") -> Path:
    path = directory / name
    path.write_bytes(head + b"\0" * 64)
    path.chmod(0o755)
    return path


def _desktop(
    directory: Path, desktop_id: str, exec_line: str, name: str = "", extra: str = ""
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{desktop_id}.desktop"
    path.write_text(f"[Desktop Entry]\nType=Application\nName={name or desktop_id}\nIcon={desktop_id}-icon\n"
                    f"Exec={exec_line}\n{extra}")  # fmt: skip
    return path


def test_a_program_started_from_a_terminal_is_its_desktop_app(tmp_path: Path) -> None:
    program = _program(tmp_path, "mailer")
    _desktop(
        tmp_path / "apps",
        "org.example.Mail",
        f"env GTK_THEME=dark {program} --new %U",
        name="Example Mail",
    )
    catalog = DesktopCatalog(system_dirs=lambda: [tmp_path / "apps"], home_of=lambda uid: None)
    terminal = _id(_process(exe=str(program), argv=("mailer",)), catalog)
    menu = _id(
        _process(exe=str(program), cgroup=f"{USER_APPS}/app-gnome-org.example.Mail-77.scope"),
        catalog,
    )
    assert terminal.app_id == menu.app_id == "app:org.example.Mail"
    assert (terminal.name, terminal.icon, terminal.scope) == (
        "Example Mail",
        "org.example.Mail-icon",
        "",
    )


def test_a_script_a_desktop_file_runs(tmp_path: Path) -> None:
    script = _program(tmp_path, "notes", b"#!/usr/bin/python3\n")
    _desktop(tmp_path / "apps", "notes", str(script))
    _desktop(tmp_path / "apps", "viewer", "python3 -u /opt/viewer/viewer.py %f")
    catalog = DesktopCatalog(system_dirs=lambda: [tmp_path / "apps"], home_of=lambda uid: None)
    assert (
        _id(_process(exe="/usr/bin/python3.11", argv=("python3", str(script))), catalog).app_id
        == "app:notes"
    )
    viewer = _process(exe="/usr/bin/python3.11", argv=("python3", "/opt/viewer/viewer.py"))
    assert _id(viewer, catalog).app_id == "app:viewer"
    assert (
        _id(_process(exe="/usr/bin/python3.11", argv=("python3",)), catalog).app_id
        == "exe:/usr/bin/python3.11"
    )


def test_programs_no_single_desktop_file_names(tmp_path: Path) -> None:
    """Two entries running one program (an office suite's), a launcher, an
    interpreter alone: none is matched."""
    office = _program(tmp_path, "soffice")
    launcher = _program(tmp_path, "flatpak")
    _desktop(tmp_path / "apps", "writer", f"{office} --writer %U")
    _desktop(tmp_path / "apps", "calc", f"{office} --calc %U")
    _desktop(tmp_path / "apps", "org.x.Y", f"{launcher} run org.x.Y")
    _desktop(tmp_path / "apps", "python", "/usr/bin/python3")
    _desktop(tmp_path / "apps", "gone", f"{office} %U", extra="Hidden=true\n")
    catalog = DesktopCatalog(system_dirs=lambda: [tmp_path / "apps"], home_of=lambda uid: None)
    for exe in (str(office), str(launcher), os.path.realpath("/usr/bin/python3")):
        assert _id(_process(exe=exe), catalog).app_id == f"exe:{exe}"


@pytest.mark.parametrize(
    "exec_line", ["", "'unclosed", "env -i /bin/true", "relative/path", "%U", "sh -c 'x'"]
)
def test_exec_lines_that_name_no_program(exec_line: str) -> None:
    assert exec_program(exec_line, lambda path: b"") is None


def _user_home(tmp_path: Path, uid: int) -> Path:
    home = tmp_path / f"home{uid}"
    applications = home / ".local/share/applications"
    applications.mkdir(parents=True)
    for path in (home, home / ".local", home / ".local/share", applications):
        os.chown(path, uid, uid)
    return home


def test_a_users_own_desktop_files_name_only_that_users_processes(tmp_path: Path) -> None:
    program = _program(tmp_path, "tool")
    homes = {1000: _user_home(tmp_path, 1000), 1001: _user_home(tmp_path, 1001)}
    mine = _desktop(
        homes[1000] / ".local/share/applications", "com.example.Tool", str(program), name="My Tool"
    )
    os.chown(mine, 1000, 1000)
    catalog = DesktopCatalog(
        system_dirs=lambda: [], home_of=lambda uid: str(homes.get(uid, "/nonexistent"))
    )
    assert _id(_process(exe=str(program), uid=1000), catalog).app_id == "app:com.example.Tool"
    assert _id(_process(exe=str(program), uid=1001), catalog).app_id == f"exe:{program}"
    assert _id(_process(exe=str(program), uid=0), catalog).app_id == f"exe:{program}"


def test_a_users_directory_yields_only_files_the_user_owns(tmp_path: Path) -> None:
    """Not root's files (a link or a copy the user cannot have written), not a
    symlink, not a FIFO (reading it would block the helper), not someone
    else's directory linked in."""
    program = _program(tmp_path, "tool")
    home = _user_home(tmp_path, 1000)
    applications = home / ".local/share/applications"
    _desktop(applications, "roots", str(program))  # owned by root
    elsewhere = _desktop(tmp_path / "other", "linked", str(program))
    (applications / "linked.desktop").symlink_to(elsewhere)
    os.mkfifo(applications / "fifo.desktop")
    os.chown(applications / "fifo.desktop", 1000, 1000)
    catalog = DesktopCatalog(system_dirs=lambda: [], home_of=lambda uid: str(home))
    assert _id(_process(exe=str(program), uid=1000), catalog).app_id == f"exe:{program}"
    # Someone else's directory behind the user's path: not read at all.
    swapped = _user_home(tmp_path, 1001)
    mine = _desktop(swapped / ".local/share/applications", "theirs", str(program))
    os.chown(mine, 1001, 1001)
    catalog = DesktopCatalog(system_dirs=lambda: [], home_of=lambda uid: str(swapped))
    assert _id(_process(exe=str(program), uid=1000), catalog).app_id == f"exe:{program}"


def test_a_users_hidden_entry_hides_the_systems_for_that_user(tmp_path: Path) -> None:
    program = _program(tmp_path, "tool")
    _desktop(tmp_path / "system", "tool", str(program))
    home = _user_home(tmp_path, 1000)
    hidden = _desktop(
        home / ".local/share/applications", "tool", str(program), extra="Hidden=true\n"
    )
    os.chown(hidden, 1000, 1000)
    catalog = DesktopCatalog(
        system_dirs=lambda: [tmp_path / "system"],
        home_of=lambda uid: str(home) if uid == 1000 else None,
    )
    assert _id(_process(exe=str(program), uid=1000), catalog).app_id == f"exe:{program}"
    assert _id(_process(exe=str(program), uid=1001), catalog).app_id == "app:tool"


def test_desktop_files_are_parsed_once_and_again_only_when_their_directory_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chadthrottle.helper.identity import desktop_catalog

    parses: list[Path] = []
    original = desktop_catalog._Directory._parse_all

    def counting(self: desktop_catalog._Directory, descriptor: int) -> object:
        parses.append(self.path)
        return original(self, descriptor)

    monkeypatch.setattr(desktop_catalog._Directory, "_parse_all", counting)
    now = [0.0]
    program, later = _program(tmp_path, "tool"), _program(tmp_path, "later")
    _desktop(tmp_path / "apps", "tool", str(program))
    catalog = DesktopCatalog(
        system_dirs=lambda: [tmp_path / "apps"], home_of=lambda uid: None, clock=lambda: now[0]
    )
    for _ in range(100):
        assert _id(_process(exe=str(program)), catalog).app_id == "app:tool"
    assert len(parses) == 1
    _desktop(tmp_path / "apps", "later", str(later))
    assert (
        _id(_process(exe=str(later)), catalog).app_id == f"exe:{later}"
    )  # looked at once a second at most
    now[0] += 1.5
    assert _id(_process(exe=str(later)), catalog).app_id == "app:later"
    now[0] += 1.5
    _id(_process(exe=str(later)), catalog)
    assert len(parses) == 2  # unchanged since: not parsed again


def test_hostile_desktop_file_names_give_valid_ids(tmp_path: Path) -> None:
    program = _program(tmp_path, "tool")
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / os.fsdecode(b"evil\x1b]0;x\x07\xff.desktop")).write_text(
        f"[Desktop Entry]\nName=\x1b[31mred\nExec={program}\n"
    )
    catalog = DesktopCatalog(system_dirs=lambda: [apps], home_of=lambda uid: None)
    identity = _id(_process(exe=str(program)), catalog)
    assert identity.app_id == "app:evil\\x1b]0;x\\x07\\xff" and identity.name == "\\x1b[31mred"


def test_a_changed_directory_rereads_only_the_files_that_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chadthrottle.helper.identity import desktop_catalog

    parsed: list[str] = []
    original = desktop_catalog._entry
    monkeypatch.setattr(
        desktop_catalog,
        "_entry",
        lambda desktop_id, text: parsed.append(desktop_id) or original(desktop_id, text),
    )
    now = [0.0]
    programs = [_program(tmp_path, f"tool{n}") for n in range(20)]
    for n, program in enumerate(programs):
        _desktop(tmp_path / "apps", f"tool{n}", str(program))
    catalog = DesktopCatalog(
        system_dirs=lambda: [tmp_path / "apps"], home_of=lambda uid: None, clock=lambda: now[0]
    )
    assert _id(_process(exe=str(programs[3])), catalog).app_id == "app:tool3"
    assert len(parsed) == 20
    _desktop(
        tmp_path / "apps", "tool3", str(programs[3]), name="Renamed Tool"
    )  # rewritten: size changes
    (tmp_path / "apps" / "tool7.desktop").unlink()
    now[0] += 2
    identity = _id(_process(exe=str(programs[3])), catalog)
    assert identity.name == "Renamed Tool" and parsed[20:] == ["tool3"]
    assert _id(_process(exe=str(programs[7])), catalog).app_id == f"exe:{programs[7]}"


def test_a_listing_reads_at_most_its_byte_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chadthrottle.helper.identity import desktop_catalog

    program = _program(tmp_path, "tool")
    for n in range(10):
        written = _desktop(
            tmp_path / "apps",
            f"big{n:02}",
            f"{program} --n{n}",
            extra="Comment=" + "x" * 900 + "\n",
        )
    monkeypatch.setattr(desktop_catalog, "MAX_DIRECTORY_BYTES", 3 * written.stat().st_size + 10)
    catalog = DesktopCatalog(system_dirs=lambda: [tmp_path / "apps"], home_of=lambda uid: None)
    assert sorted(catalog._view(None)[0]) == ["big00", "big01", "big02"]


def test_every_identity_carries_the_file_it_runs(tmp_path: Path) -> None:
    """What an administrator's rule on a file id reaches it by (docs/helper.md)."""
    cases = [
        _process(cgroup=f"{USER_APPS}/app-gnome-org.x.Y-1.scope"),
        _process(cgroup=f"{USER_APPS}/snap.firefox.firefox-{UUID_A}.scope"),
        _process(cgroup="/system.slice/backup.service"),
        _appimage("/tmp/.mount_Ab12", exe="/tmp/.mount_Ab12/usr/bin/curl"),
        _process(flatpak_info="[Application]\nname=org.x.Flat\n"),
        _process(),
    ]
    assert {_id(process).file_id for process in cases[:3] + cases[4:]} == {"exe:/usr/bin/curl"}
    assert _id(cases[3]).file_id == "exe:/tmp/.mount_Ab12/usr/bin/curl"
    script = _process(
        exe="/usr/bin/python3.11", argv=("python3", "/opt/x.py"), cgroup="/system.slice/x.service"
    )
    assert _id(script).file_id == "script:/opt/x.py"
    assert (
        identify(
            _process(exe="", argv=(), cgroup="/system.slice/x.service"), _empty_catalog()
        ).file_id
        == ""
    )  # type: ignore[union-attr]


def test_the_index_knows_which_processes_run_a_file_under_another_name() -> None:
    from chadthrottle.helper.identity.index import ApplicationIndex

    processes = {
        10: _process(),
        11: ProcessInfo(
            11, 1, 0, "/usr/bin/curl", ("curl",), "curl", "/system.slice/backup.service"
        ),
        12: ProcessInfo(
            12, 1, 0, "/usr/bin/wget", ("wget",), "wget", "/system.slice/backup.service"
        ),
    }
    index = ApplicationIndex(
        list_pids=lambda: list(processes),
        read=processes.get,
        read_exe=lambda pid: processes[pid].exe,
    )
    index.refresh()
    assert {file_id: set(found) for file_id, found in index.renamed_runners().items()} == {
        "exe:/usr/bin/curl": {11},
        "exe:/usr/bin/wget": {12},
    }
    index.update_process(
        ProcessInfo(11, 1, 0, "/usr/bin/curl", ("curl",), "curl", "/user.slice/session-1.scope")
    )
    assert set(index.renamed_runners()) == {
        "exe:/usr/bin/wget"
    }  # moved out of the service: its own name again


def test_a_users_rule_on_an_appimage_that_was_deleted_is_dropped(tmp_path: Path) -> None:
    from chadthrottle.helper.identity.program_files import program_is_gone

    image = tmp_path / "Tool.AppImage"
    image.write_bytes(b"")
    assert not program_is_gone(f"appimage:{image}")
    image.unlink()
    assert program_is_gone(f"appimage:{image}") and not program_is_gone("unit:gone.service")


def test_a_program_the_helper_may_not_look_at_is_not_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under the packaged unit (ProtectHome=yes, no CAP_DAC_OVERRIDE) /home
    cannot be entered: EACCES is no reason to drop a user's rule."""
    from chadthrottle.helper.identity import program_files

    def refused(path: str) -> None:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(program_files.os, "lstat", refused)
    assert not program_files.program_is_gone("appimage:/home/u/Apps/Tool.AppImage")
    assert not program_files.program_is_gone("exe:/home/u/bin/tool")


def test_the_helpers_own_service_names_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Started from a service (a CI runner), the programs beside it keep their names."""
    from chadthrottle.helper.identity import applications

    monkeypatch.setattr(applications, "own_service_path", lambda: "/system.slice/runner.service")
    assert _id(_process(cgroup="/system.slice/runner.service")).app_id == "exe:/usr/bin/curl"
    assert _id(_process(cgroup="/system.slice/other.service")).app_id == "unit:other.service"


def test_the_helpers_own_service_is_read_from_its_cgroup() -> None:
    from chadthrottle.helper.identity.applications import own_service_path
    from chadthrottle.helper.identity.origins import system_service

    cgroup = next(
        line[3:]
        for line in Path("/proc/self/cgroup").read_text().splitlines()
        if line.startswith("0::")
    )
    service = system_service(cgroup)
    assert own_service_path() == (service[1] if service else "")
