"""Faults a walk of the real app on a screen found (gui10: Xvfb, openbox and
trayer, the real helper in network namespaces, 1366x768 at 1x and 2x), each
with the real widgets."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.contract import ApplicationInfo
from chadthrottle.gui.controller import AppController
from chadthrottle.gui.ipc.state import HelperState
from PySide6.QtCore import QCoreApplication, QEvent, QSettings

from tests.gui.sample_data import sample_applications
from tests.gui.test_connection import ScriptedClient

FIREFOX = "app:org.mozilla.firefox"
# A process name that is not UTF-8: /proc/PID/comm holds the bytes a program
# was started under (a file name from a Latin-1 disk, a program that sets its own).
HOSTILE_COMM = bytes([0xFF]) + b"bad" + bytes([0xFE])


@pytest.fixture
def hostile_process() -> Iterator[int]:
    """A real process whose /proc/PID/comm is not UTF-8; its pid."""
    process = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; open('/proc/self/comm', 'wb').write(bytes.fromhex(sys.argv[1])); "
         "print(flush=True); sys.stdin.read()", HOSTILE_COMM.hex()],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stdin is not None
    process.stdout.readline()  # its name is written
    try:
        assert Path(f"/proc/{process.pid}/comm").read_bytes() == HOSTILE_COMM + b"\n"
        yield process.pid
    finally:
        process.stdin.close()  # it ends at the end of its input
        process.wait(30)
        process.stdout.close()


class HostileClient(ScriptedClient):
    """A helper that lists Firefox with one more process: the hostile one."""

    def __init__(self, pid: int) -> None:
        super().__init__()
        self.pid = pid

    async def list_applications(self) -> list[ApplicationInfo]:
        return [
            dataclasses.replace(a, pids=(*a.pids, self.pid)) if a.id == FIREFOX else a
            for a in sample_applications()
        ]


def test_a_process_name_that_is_not_utf8_does_not_cut_the_window_from_the_helper(
    qtbot, tmp_path, hostile_process: int
) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb, while another session's test ran programs at hostile paths,
    the window said "The helper is not running — reconnecting…" for 8 s
    (log: helper unavailable: chadthrottle.gui.Unexpected ('utf-8' codec can't
    decode byte 0xff ...)): the window reads each listed pid's /proc/PID/comm
    itself, as UTF-8 text, and one name that was not took every poll down.
    The name is shown with its bad bytes replaced; the window stays connected."""
    client = HostileClient(hostile_process)
    app = AppController(lambda: client, QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat),
                        use_tray=False, autostart_path=tmp_path / "a.desktop")  # fmt: skip
    try:
        app.connection.set_refresh_interval(0.2)
        polls: list[object] = []
        states: list[HelperState] = []
        app.connection.applicationsUpdated.connect(polls.append)
        app.connection.statusChanged.connect(lambda status: states.append(status.state))
        app.start(show_window=True)
        qtbot.waitUntil(
            lambda: len(polls) >= 3 or HelperState.NOT_RUNNING in states, timeout=20_000
        )
        assert HelperState.NOT_RUNNING not in states, app.connection.status
        row = next(r for r in app.window._model._rows if r.info.id == FIREFOX)
        names = {p.pid: p.name for p in row.processes}
        assert names[hostile_process] == "\ufffdbad\ufffd", names
    finally:
        app.dispose()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
