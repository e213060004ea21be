"""Closing a borrowed socket never blocks the helper.

The helper borrows a process's sockets with pidfd_getfd. If the process closes
its own fd meanwhile, the helper's close is the last reference, and on a TCP
socket with SO_LINGER {on, 30 s} and data its peer does not take, close()
waits up to 30 s. These tests make that happen for real, over loopback: a
separate process with such a socket closes its fd exactly while the helper
holds the copy, and the helper's call must still return at once.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from chadthrottle.helper.kernel import socket_tagging
from chadthrottle.helper.kernel.layout import SocketCaps

from tests.support.waiting import eventually

# The application: a TCP socket lingering 30 s, its send queue full because the
# peer never reads; it prints its fd, closes it when told, and waits.
_APP = r"""
import os, socket, struct, sys
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 30))
sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
sock.setblocking(False)
try:
    while True:
        sock.send(b"x" * 65536)
except BlockingIOError:
    pass
print(sock.fileno(), flush=True)
sys.stdin.readline()
os.close(sock.detach())
print("closed", flush=True)
sys.stdin.readline()
"""
CALL_MAX_S = 0.5  # "returns at once"; the old code took the whole 30 s linger


class LingeringApp:
    """The application process and the peer that never reads from it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.process = subprocess.Popen(
            [sys.executable, "-c", _APP, str(self.listener.getsockname()[1])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.peer, _ = self.listener.accept()
        assert self.process.stdout is not None
        self.fd = int(self.process.stdout.readline())

    def close_its_fd(self) -> None:
        """Tell the application to close its socket; return once it has."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("close\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "closed"
        assert not Path(f"/proc/{self.process.pid}/fd/{self.fd}").exists()

    def stop(self) -> None:
        """Reset the connection (the peer closes with unread data: RST), which
        also ends any close still waiting on the linger, then end the process."""
        self.peer.close()
        self.listener.close()
        self.process.kill()
        self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def app() -> Iterator[LingeringApp]:
    created = LingeringApp()
    try:
        yield created
    finally:
        created.stop()


@pytest.fixture
def closes_while_borrowed(app: LingeringApp, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race, made certain: the application closes its fd right after the
    helper duplicated it, so the helper holds the last reference."""
    real_getfd = socket_tagging.pidfd_getfd

    def getfd_then_owner_closes(pidfd: int, target_fd: int) -> int:
        local_fd = real_getfd(pidfd, target_fd)
        if target_fd == app.fd:
            app.close_its_fd()
        return local_fd

    monkeypatch.setattr(socket_tagging, "pidfd_getfd", getfd_then_owner_closes)


def _timed_call(call: Callable[[], object], wait_s: float = 3.0) -> float:
    """Run call in a thread; its duration, or fail if it is still running after
    wait_s (the thread is left to finish when the fixture resets the peer)."""
    done = threading.Event()
    started = time.monotonic()

    def run() -> None:
        call()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    if not done.wait(wait_s):
        pytest.fail(
            f"the helper call was still blocked after {wait_s} s (closing the borrowed socket lingers)"
        )
    return time.monotonic() - started


def _stays_open(app: LingeringApp) -> bool:
    """The connection is still there (the peer would see EOF or RST otherwise)."""
    app.peer.setblocking(False)
    try:
        return app.peer.recv(1, socket.MSG_PEEK) == b"x"
    except BlockingIOError:
        return True


@pytest.mark.usefixtures("closes_while_borrowed")
def test_capping_a_socket_its_owner_closes_meanwhile_does_not_block(app: LingeringApp) -> None:
    took_s = _timed_call(
        lambda: socket_tagging.cap_open_sockets(
            app.process.pid, SocketCaps(pacing_bps=1_000_000), SocketCaps()
        )
    )
    assert took_s < CALL_MAX_S
    assert _stays_open(app)  # the copy was really the last reference, and lingers in the closer


@pytest.mark.usefixtures("closes_while_borrowed")
def test_clamping_windows_of_a_socket_its_owner_closes_meanwhile_does_not_block(
    app: LingeringApp,
) -> None:
    took_s = _timed_call(lambda: socket_tagging.clamp_open_windows(app.process.pid, 1_000_000))
    assert took_s < CALL_MAX_S


def test_the_lingering_copy_is_closed_once_the_linger_ends(
    app: LingeringApp, closes_while_borrowed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    closer = socket_tagging.FdCloser()
    monkeypatch.setattr(socket_tagging, "BORROWED_CLOSER", closer)
    socket_tagging.cap_open_sockets(app.process.pid, SocketCaps(pacing_bps=1_000_000), SocketCaps())
    time.sleep(0.2)
    assert closer.pending() == 1 and _stays_open(app)  # lingering on the closer's thread
    app.peer.close()  # RST: the linger ends, the closer's close returns
    assert eventually(lambda: closer.pending() == 0, 5.0, 0.01)


def test_borrowing_stops_while_the_closer_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounded: while max_pending copies wait to be closed, the helper borrows no
    more (each borrowed fd is an fd held in its table)."""
    release = threading.Event()
    closed: list[int] = []

    def slow_close(fd: int) -> None:
        release.wait(10)
        os.close(fd)
        closed.append(fd)

    closer = socket_tagging.FdCloser(max_threads=2, max_pending=3, close=slow_close)
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        # With the real closer: the listener, at least. (With the slow one, the
        # test process's other sockets, D-Bus's from earlier tests among them,
        # would fill it before the listener is reached.)
        assert list(socket_tagging.open_inet_sockets(os.getpid()))
        monkeypatch.setattr(socket_tagging, "BORROWED_CLOSER", closer)
        while closer.has_room():
            closer.close(os.dup(listener.fileno()))
        assert closer.pending() == 3 and closer.threads() == 2
        assert list(socket_tagging.open_inet_sockets(os.getpid())) == []
        release.set()
        assert eventually(lambda: closer.pending() == 0 and closer.has_room(), 5.0, 0.01)
        assert len(closed) == 3 and closer.threads() == 2
    finally:
        release.set()
        listener.close()
