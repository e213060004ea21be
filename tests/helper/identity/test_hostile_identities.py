"""Processes whose paths or cgroups are not UTF-8, hold control characters or
are very long still get an application id the adapter accepts, and one that
names them alone."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.contract import MAX_APP_ID_LENGTH
from chadthrottle.helper.adapter.validation import validate_app_id
from chadthrottle.helper.identity import desktop_entries
from chadthrottle.helper.identity.applications import AppIdentity, identify
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.processes import ProcessInfo, read_exe, read_process

from tests.support.waiting import eventually


def _os(raw: bytes) -> str:
    """A path as os.readlink gives it."""
    return os.fsdecode(raw)


def _process(
    exe: bytes = b"/usr/bin/curl", argv: tuple[bytes, ...] = (b"curl",), cgroup: bytes = b"/"
) -> ProcessInfo:
    return ProcessInfo(pid=10, ppid=1, uid=1000, exe=_os(exe), argv=tuple(_os(a) for a in argv), comm="x",
                       cgroup=_os(cgroup))  # fmt: skip


def _valid(identity: AppIdentity | None) -> AppIdentity:
    assert identity is not None
    assert validate_app_id(identity.app_id) == identity.app_id
    for text in (identity.app_id, identity.name, identity.icon):
        text.encode("utf-8")  # no lone surrogate: D-Bus can carry it
        assert not any(ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F for char in text), text
    return identity


def test_an_executable_path_that_is_not_utf8() -> None:
    identity = _valid(identify(_process(exe=b"/tmp/\xff\xfe/tool\xff")))
    assert (identity.app_id, identity.name) == ("exe:/tmp/\\xff\\xfe/tool\\xff", "tool\\xff")


def test_an_executable_path_with_an_escape_sequence() -> None:
    identity = _valid(identify(_process(exe=b"/tmp/\x1b[31m/\x1b]0;title\x07")))
    assert identity.app_id == "exe:/tmp/\\x1b[31m/\\x1b]0;title\\x07"


def test_a_script_path_with_control_characters() -> None:
    identity = _valid(
        identify(_process(exe=b"/usr/bin/python3.11", argv=(b"python3", b"/srv/\x9b2J\n.py")))
    )
    assert identity.app_id == "script:/srv/\\x9b2J\\x0a.py"  # a lone 0x9b is not UTF-8


def test_long_paths_get_bounded_ids_of_their_own() -> None:
    deep = b"/tmp/" + b"/".join([b"n" * 200] * 3)
    first = _valid(identify(_process(exe=deep + b"/first")))
    second = _valid(identify(_process(exe=deep + b"/second")))
    assert len(first.app_id) <= MAX_APP_ID_LENGTH and first.app_id != second.app_id
    assert first.name == "first"


def test_an_app_scope_whose_name_is_not_utf8_or_holds_escapes() -> None:
    raw = _valid(identify(_process(cgroup=b"/user.slice/app-gnome-org.evil.\xff\xfe-12.scope")))
    assert raw.app_id == "app:org.evil.\\xff\\xfe" and raw.name == "\\xff\\xfe"
    assert raw.scope == _os(
        b"/user.slice/app-gnome-org.evil.\xff\xfe-12.scope"
    )  # the kernel's path, to find it
    systemd = _valid(
        identify(_process(cgroup=b"/app.slice/app-gnome-org.evil\\x1b\\x2dx\\x5cy-3.scope"))
    )
    assert (
        systemd.app_id == "app:org.evil\\x1b-x\\\\y"
    )  # systemd's \xNN are bytes; the backslash one is escaped


def test_an_app_scope_with_a_blank_desktop_id_falls_back_to_the_executable() -> None:
    identity = _valid(identify(_process(cgroup=b"/app.slice/app-gnome-\\x20-5.scope")))
    assert identity.app_id == "exe:/usr/bin/curl"


def test_a_desktop_entry_with_control_characters_in_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "applications").mkdir()
    (tmp_path / "applications" / "org.example.Evil.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Evil\x1b[2J\\ Mail\nIcon=mail\x07\nExec=mail\n"
    )
    monkeypatch.setenv("XDG_DATA_DIRS", str(tmp_path))
    desktop_entries.find_desktop_entry.cache_clear()
    try:
        identity = _valid(
            identify(_process(cgroup=b"/app.slice/app-gnome-org.example.Evil-5.scope"))
        )
        assert (identity.name, identity.icon) == ("Evil\\x1b[2J\\\\ Mail", "mail\\x07")
    finally:
        desktop_entries.find_desktop_entry.cache_clear()


def test_a_desktop_id_with_a_nul_byte_is_not_looked_up() -> None:
    assert desktop_entries.find_desktop_entry("org.x\0y") is None


@pytest.fixture
def sleeper_at_hostile_path(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], bytes]]:
    """A real program (sleep) run from a path that is not UTF-8 and holds an
    escape sequence."""
    directory = os.fsencode(tmp_path) + b"/\xff\xfe\x1b[31m"
    os.mkdir(directory)
    program = directory + b"/sl\xffep"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
    process = subprocess.Popen([program, "30"])
    try:
        yield process, program
    finally:
        process.kill()
        process.wait()


def test_a_real_process_at_a_hostile_path(
    tmp_path: Path, sleeper_at_hostile_path: tuple[subprocess.Popen[bytes], bytes]
) -> None:
    process, program = sleeper_at_hostile_path
    assert eventually(lambda: read_exe(process.pid) == os.fsdecode(program), 5.0), "it did not exec"
    info = read_process(process.pid)
    assert info is not None
    identity = _valid(identify(info))
    assert identity.app_id == f"exe:{tmp_path}/\\xff\\xfe\\x1b[31m/sl\\xffep"

    # The index compares read_exe with what read_process kept: the same form,
    # so the process is not read again every second.
    reads: list[int] = []

    def read(pid: int) -> ProcessInfo | None:
        reads.append(pid)
        return read_process(pid)

    index = ApplicationIndex(list_pids=lambda: [process.pid], read=read, read_exe=read_exe)
    index.refresh()
    index.refresh()
    assert reads == [process.pid]
    assert index.application(identity.app_id) is not None
