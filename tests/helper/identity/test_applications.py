"""Which application a process belongs to."""

from __future__ import annotations

from pathlib import Path

import pytest
from chadthrottle.helper.identity import desktop_entries
from chadthrottle.helper.identity.applications import identify
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.processes import ProcessInfo, read_process


def _process(
    pid: int = 10,
    exe: str = "/usr/bin/curl",
    argv: tuple[str, ...] = ("curl",),
    cgroup: str = "/",
    ppid: int = 1,
) -> ProcessInfo:
    return ProcessInfo(
        pid=pid, ppid=ppid, uid=1000, exe=exe, argv=argv, comm=exe.rsplit("/", 1)[-1], cgroup=cgroup
    )


@pytest.mark.parametrize(
    ("cgroup", "app_id"),
    [
        (
            "/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-1234.scope",
            "app:firefox",
        ),
        (
            "/user.slice/user@1000.service/app.slice/app-flatpak-org.mozilla.firefox-12345.scope",
            "app:org.mozilla.firefox",
        ),
        ("/user.slice/app-org.gnome.Terminal-7b3c.scope", "app:org.gnome.Terminal"),
        ("/app.slice/app-kde-org.kde\\x2dkonsole-99.scope/sub", "app:org.kde-konsole"),
    ],
)
def test_app_scopes_name_the_application(cgroup: str, app_id: str) -> None:
    identity = identify(_process(cgroup=cgroup))
    assert identity is not None and identity.app_id == app_id and identity.scope


def test_without_a_scope_the_executable_is_the_application() -> None:
    identity = identify(_process(cgroup="/user.slice/session-3.scope"))
    assert (
        identity is not None and identity.app_id == "exe:/usr/bin/curl" and identity.name == "curl"
    )


def test_a_script_is_its_own_application_not_its_interpreter() -> None:
    identity = identify(
        _process(exe="/usr/bin/python3.11", argv=("python3", "-u", "/opt/backup/run.py", "--all"))
    )
    assert identity is not None and identity.app_id == "script:/opt/backup/run.py"
    inline = identify(_process(exe="/usr/bin/python3.11", argv=("python3", "-c", "print(1)")))
    assert inline is not None and inline.app_id == "exe:/usr/bin/python3.11"


def test_kernel_threads_are_no_application() -> None:
    assert identify(_process(exe="", argv=())) is None


def test_desktop_file_gives_name_and_icon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "applications").mkdir()
    (tmp_path / "applications" / "org.example.Mail.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Example Mail\nIcon=mail-client\nExec=mail\n"
    )
    monkeypatch.setenv("XDG_DATA_DIRS", str(tmp_path))
    desktop_entries.find_desktop_entry.cache_clear()
    try:
        identity = identify(_process(cgroup="/app.slice/app-gnome-org.example.Mail-5.scope"))
        assert identity is not None and (identity.name, identity.icon) == (
            "Example Mail",
            "mail-client",
        )
    finally:
        desktop_entries.find_desktop_entry.cache_clear()


def test_desktop_ids_cannot_walk_out_of_the_data_dirs() -> None:
    assert desktop_entries.find_desktop_entry("../../etc/passwd") is None


def test_index_groups_processes_and_a_forked_child_with_its_parent() -> None:
    processes = {
        1: _process(pid=1, exe="/sbin/init", argv=("init",)),
        20: _process(pid=20, cgroup="/a/app-gnome-org.x.Y-1.scope"),
        21: _process(pid=21, exe="/usr/bin/helper", cgroup="/a/app-gnome-org.x.Y-1.scope", ppid=20),
        30: _process(pid=30, exe="/usr/bin/curl"),
        31: _process(pid=31, exe="/usr/bin/curl", ppid=30),
    }
    index = ApplicationIndex(
        list_pids=lambda: processes, read=processes.get, read_exe=lambda pid: processes[pid].exe
    )
    index.refresh()
    apps = index.applications()
    assert set(apps["app:org.x.Y"].processes) == {20, 21}
    assert set(apps["exe:/usr/bin/curl"].processes) == {30, 31}
    assert apps["exe:/usr/bin/curl"].uids == frozenset({1000})


def test_reading_this_process_works() -> None:
    import os

    me = read_process(os.getpid())
    assert me is not None and me.pid == os.getpid() and me.exe
    assert read_process(2**22 + 12345) is None


def test_index_rereads_a_process_only_when_it_execs() -> None:
    processes = {30: _process(pid=30, exe="/usr/bin/curl")}
    reads: list[int] = []

    def read(pid: int) -> ProcessInfo | None:
        reads.append(pid)
        return processes.get(pid)

    index = ApplicationIndex(
        list_pids=lambda: processes, read=read, read_exe=lambda pid: processes[pid].exe
    )
    index.refresh()
    index.refresh()
    assert reads == [30]  # unchanged: not read again
    processes[30] = _process(pid=30, exe="/usr/bin/wget")  # it exec'd
    index.refresh()
    assert reads == [30, 30] and index.identity_of(30).app_id == "exe:/usr/bin/wget"  # type: ignore[union-attr]


def test_index_does_not_reread_kernel_threads_each_second() -> None:
    """A kernel thread's exe cannot be read (None) and is stored as "": the same."""
    kthread = ProcessInfo(pid=2, ppid=0, uid=0, exe="", argv=(), comm="kthreadd", cgroup="/")
    reads: list[int] = []

    def read(pid: int) -> ProcessInfo | None:
        reads.append(pid)
        return kthread

    index = ApplicationIndex(list_pids=lambda: [2], read=read, read_exe=lambda pid: None)
    for _ in range(5):
        index.refresh()
    assert reads == [2]


def test_read_exe_of_a_real_kernel_thread_matches_what_read_process_stores() -> None:
    from chadthrottle.helper.identity.processes import all_pids, read_exe

    kthreadd = next(
        info for pid in all_pids() if (info := read_process(pid)) and info.comm == "kthreadd"
    )
    assert (read_exe(kthreadd.pid) or "") == kthreadd.exe == ""
