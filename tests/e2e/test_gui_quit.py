"""Quit means quit: the real GUI, as its own process, ends promptly on SIGTERM
(what a logout sends) and on the tray's Quit, on the first try, while a call
to the helper is in flight and will not be answered.

"In flight" is made two ways: a process that owns the helper's bus name on a
private system bus and is then stopped (SIGSTOP), so the GUI's ListBackends
waits for an answer that never comes; and a socket that accepts the GUI's
connection and never speaks, so connecting to the bus never finishes."""

from __future__ import annotations

import contextlib
import os
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from chadthrottle.contract import INTERFACE
from chadthrottle.helper.standalone import PrivateSystemBus

from tests.support.requirements import require_program

REPO = Path(__file__).resolve().parents[2]
# Measured well under a second; generous for a loaded 2-core machine.
MAX_QUIT_S = 2.5
START_TIMEOUT_S = 30.0

# Owns the helper's name and answers nothing: stopped by the test once it owns it.
SILENT_OWNER = r"""
import asyncio, sys
from chadthrottle.bus_connection import connect_system_bus
from chadthrottle.contract import BUS_NAME

async def main():
    bus = await connect_system_bus(sys.argv[1])
    await bus.request_name(BUS_NAME)
    print("owned", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

# The real entry point with a tray (offscreen has no tray area, so it is said
# to have one); once the window is up and the test says the GUI connected (the
# file QUIT_GO names exists: its first call goes out then), it chooses Quit in
# the tray's menu like a user and says when. It chose at a fixed 2 s until
# review34b, and at load 18 the GUI had not connected by then (2 of 14 runs);
# then 0.2 s after the GUI said it connected, for its first call to go out:
# now the test tells it once that call was seen on the bus (_calls_seen).
QUIT_GO = "CHADT_TEST_QUIT_GO"
TRAY_QUIT = r"""
import os, sys, time
from PySide6.QtCore import QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication
from chadthrottle.gui import app as gui_app
from chadthrottle.gui.tray.tray import TrayController

TrayController.is_available = staticmethod(lambda: True)
application = QApplication(sys.argv[:1])  # timers need it; main() uses this one

def choose_quit():
    menus = [w for w in QApplication.topLevelWidgets() if w.findChildren(QAction, "quit")]
    window = next(w for w in QApplication.topLevelWidgets() if w.objectName() == "mainWindow")
    assert window.isVisible() and window.keep_running_in_tray, "the window keeps running in the tray"
    print(f"quit chosen {time.monotonic()}", flush=True)
    menus[0].findChildren(QAction, "quit")[0].trigger()

def choose_quit_once_told():
    shown = [w for w in QApplication.topLevelWidgets() if w.objectName() == "mainWindow"]
    if not os.path.exists(os.environ["CHADT_TEST_QUIT_GO"]) or not shown or not shown[0].isVisible():
        QTimer.singleShot(50, choose_quit_once_told)
        return
    choose_quit()

QTimer.singleShot(0, choose_quit_once_told)
sys.exit(gui_app.main(sys.argv[1:]))
"""


def _gui_environment(**extra: str) -> dict[str, str]:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONDONTWRITEBYTECODE": "1", **extra}


@contextlib.contextmanager
def _stopped_name_owner(bus: PrivateSystemBus) -> Iterator[subprocess.Popen[str]]:
    """A process owning the helper's bus name, stopped: calls to it hang."""
    owner = subprocess.Popen([sys.executable, "-c", SILENT_OWNER, bus.address], stdout=subprocess.PIPE,
                             text=True, cwd=REPO)  # fmt: skip
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "owned"
        owner.send_signal(signal.SIGSTOP)
        yield owner
    finally:
        owner.kill()  # SIGKILL ends a stopped process too
        owner.wait(10)
        if owner.stdout is not None:
            owner.stdout.close()


@contextlib.contextmanager
def _calls_seen(bus: PrivateSystemBus, member: str) -> Iterator[Callable[[], None]]:
    """dbus-monitor on the bus, ready before this yields; yields a wait for
    the first method call named member (the GUI's, to the stopped owner: a
    call in flight that will not be answered)."""
    require_program("dbus-monitor")
    rule = f"type='method_call',interface='{INTERFACE}',member='{member}'"
    monitor = subprocess.Popen(["dbus-monitor", "--address", bus.address, rule],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in monitor.stdout or ()],
                              name="test-dbus-monitor")  # fmt: skip
    reader.start()

    def wait_for(text: str) -> None:
        seen = []
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any(text in line for line in seen):
            try:
                seen.append(lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                pytest.fail(f"dbus-monitor saw no {text!r}: {''.join(seen)[-2000:]}")

    try:
        wait_for("member=NameLost")  # it became a monitor: it sees every call from now on
        yield lambda: wait_for(f"member={member}")
    finally:
        monitor.terminate()
        monitor.wait(10)
        reader.join(10)
        if monitor.stdout is not None:
            monitor.stdout.close()


@contextlib.contextmanager
def _mute_socket(path: Path) -> Iterator[list[float]]:
    """A unix socket that accepts connections and never answers; yields the
    times (monotonic) at which it accepted one."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    server.settimeout(0.2)
    accepted: list[float] = []
    held: list[socket.socket] = []
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(connection)
            accepted.append(time.monotonic())

    thread = threading.Thread(target=serve, name="test-mute-bus")
    thread.start()
    try:
        yield accepted
    finally:
        done.set()
        thread.join(5)
        for connection in held:
            connection.close()
        server.close()


@contextlib.contextmanager
def _gui(argv: list[str], log_path: Path, **env: str) -> Iterator[subprocess.Popen[str]]:
    """The GUI as a child process, stdout piped, stderr to log_path; killed on exit."""
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log_file, text=True,
                                   env=_gui_environment(**env), cwd=REPO)  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def _read_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    """One line of the process's stdout, or "" if none comes in time."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    return process.stdout.readline() if ready else ""


def _exit_within(process: subprocess.Popen[str], since: float, log_path: Path) -> float:
    """Seconds from `since` to the process's exit; fails after MAX_QUIT_S."""
    try:
        process.wait(max(0.0, since + MAX_QUIT_S - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"still running {MAX_QUIT_S} s after being asked to quit:\n{log_path.read_text()[-4000:]}"
        )
    return time.monotonic() - since


def _gui_argv(bus_address: str, settings: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "chadthrottle.gui.app", "--bus-address", bus_address,
            "--settings", str(settings), "-v", *extra]  # fmt: skip


def test_sigterm_ends_the_gui_while_a_helper_call_hangs(
    private_bus: PrivateSystemBus, tmp_path: Path
) -> None:
    log_path = tmp_path / "gui.log"
    argv = _gui_argv(private_bus.address, tmp_path / "s.ini", "--no-tray")
    with _stopped_name_owner(private_bus), _calls_seen(private_bus, "ListBackends") as call_sent, \
            _gui(argv, log_path) as gui:  # fmt: skip
        call_sent()  # the GUI's first call is on its way to the stopped owner
        assert gui.poll() is None and "helper unavailable" not in log_path.read_text(), (
            "the call must hang"
        )
        sent = time.monotonic()
        gui.send_signal(signal.SIGTERM)
        _exit_within(gui, sent, log_path)
    assert gui.returncode == 0, log_path.read_text()[-4000:]
    assert "quitting on SIGTERM" in log_path.read_text()
    assert "Traceback" not in log_path.read_text()


def test_sigterm_ends_the_gui_while_the_bus_never_answers(tmp_path: Path) -> None:
    log_path = tmp_path / "gui.log"
    socket_path = tmp_path / "bus"
    with _mute_socket(socket_path) as accepted, \
            _gui(_gui_argv(f"unix:path={socket_path}", tmp_path / "s.ini", "--no-tray"), log_path) as gui:  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while not accepted and time.monotonic() < deadline and gui.poll() is None:
            time.sleep(0.05)
        assert accepted, f"the GUI never tried the bus:\n{log_path.read_text()[-4000:]}"
        time.sleep(0.5)
        sent = time.monotonic()
        gui.send_signal(signal.SIGTERM)
        _exit_within(gui, sent, log_path)
    assert gui.returncode == 0, log_path.read_text()[-4000:]


def test_tray_quit_ends_the_gui_on_the_first_try_while_a_call_hangs(
    private_bus: PrivateSystemBus, tmp_path: Path
) -> None:
    log_path = tmp_path / "gui.log"
    argv = [
        sys.executable,
        "-c",
        TRAY_QUIT,
        *_gui_argv(private_bus.address, tmp_path / "s.ini")[3:],
    ]
    go = tmp_path / "quit-go"
    with _stopped_name_owner(private_bus), _calls_seen(private_bus, "ListBackends") as call_sent, \
            _gui(argv, log_path, **{QUIT_GO: str(go)}) as gui:  # fmt: skip
        call_sent()  # the GUI's first call is on its way to the stopped owner
        go.touch()
        line = _read_line(gui, START_TIMEOUT_S)  # the probe chooses Quit once told
        assert line.startswith("quit chosen "), f"{line!r}\n{log_path.read_text()[-4000:]}"
        assert "helper unavailable" not in log_path.read_text(), "the call must hang"
        _exit_within(gui, float(line.split()[-1]), log_path)
    assert gui.returncode == 0, log_path.read_text()[-4000:]
    assert "Traceback" not in log_path.read_text()
