"""Rule 1 (a limit holds while the window says so) and a stop that ends, when
the borrowed sockets' closer is full. A walk borrows each socket it looks at
(pidfd_getfd) and hands the copy to socket_tagging.BORROWED_CLOSER; while the
closer is full, open_inet_sockets stops at the socket it could not borrow
(WalkCursor.cut). The whole walks (no deadline) took that for done: the rest
of the process's sockets stayed untagged (set_process_slot's tag walk),
uncapped (set_slot_caps' cap walk) or unadopted (adopt_open_sockets), and a
stop's sweep of a killed helper's caps waited for the closer without end
(review35b after R9). Here the closer is the product's, bounded at one
pending socket, so that 200 sockets fill it (as review35b's R9 test)."""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.helper.errors import KernelError
from chadthrottle.helper.identity.processes import read_start
from chadthrottle.helper.kernel import bpf_maps, socket_tagging
from chadthrottle.helper.kernel.bpf_syscalls import pidfd_getfd
from chadthrottle.helper.kernel.datapath import WHOLE_WALKS_WAIT_S, Datapath
from chadthrottle.helper.kernel.held_caps import record_of
from chadthrottle.helper.kernel.layout import SocketCaps, SockTag
from chadthrottle.helper.kernel.pending_walks import parse_owed
from chadthrottle.helper.kernel.pending_walks import record_of as walks_record_of
from chadthrottle.helper.kernel.socket_tagging import UNCAPPED_PACING, FdCloser

from tests.helper.kernel.test_process_keys import SLOT
from tests.helper.kernel.test_slot_caps_after_kill import KILLED, _end, _spawn, instance  # noqa: F401
from tests.support.waiting import eventually

MANY = 200
CAPS = SocketCaps(pacing_bps=125_000, window_bps=125_000)
CALLS_S = 20.0  # walk_pending calls (each WALK_BUDGET_S at most) until none waits

# Makes MANY TCP connections to the port in argv, prints their descriptors.
HOLDER = (
    "import socket, sys\n"
    f"conns = [socket.create_connection(('127.0.0.1', int(sys.argv[1]))) for _ in range({MANY})]\n"
    "print(*(conn.fileno() for conn in conns), flush=True)\n"
    "sys.stdin.readline()\n"
)


@pytest.fixture
def server() -> Iterator[socket.socket]:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(MANY)
        yield listening


@pytest.fixture
def holder(server: socket.socket) -> Iterator[tuple[subprocess.Popen[str], list[int]]]:
    """A process holding MANY TCP connections, and their descriptors."""
    process = _spawn(HOLDER, str(server.getsockname()[1]))
    try:
        assert process.stdout is not None
        fds = [int(fd) for fd in process.stdout.readline().split()]
        assert len(fds) == MANY
        yield process, fds
    finally:
        _end(process)


def _full_closer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket_tagging, "BORROWED_CLOSER", FdCloser(max_threads=1, max_pending=1))


def _tag_of(datapath: Datapath, pid: int, fd: int) -> int | None:
    """The slot pid's socket fd carries in datapath's tags (None: no tag)."""
    pidfd = os.pidfd_open(pid)
    try:
        with socket.socket(fileno=pidfd_getfd(pidfd, fd)) as sock:
            tag = SockTag()
            found = bpf_maps.lookup(datapath._maps["socket_tags"].fd,
                                    ctypes.c_int(sock.fileno()), tag)  # fmt: skip
            return int(tag.app_slot) if found else None
    finally:
        os.close(pidfd)


def _pacing_of(pid: int, fd: int) -> int:
    pidfd = os.pidfd_open(pid)
    try:
        with socket.socket(fileno=pidfd_getfd(pidfd, fd)) as sock:
            return int.from_bytes(sock.getsockopt(socket.SOL_SOCKET, 47, 8), "little")
    finally:
        os.close(pidfd)


def _start_of(process: subprocess.Popen[str]) -> int:
    start = read_start(process.pid)
    assert start is not None, f"pid {process.pid} gone"
    return start


def _assert_capped(pid: int, fds: list[int]) -> None:
    uncapped = [fd for fd in fds if _pacing_of(pid, fd) >= UNCAPPED_PACING]
    assert not uncapped, f"{len(uncapped)} of {MANY} sockets not held to the rule's caps"


def _walked(datapath: Datapath) -> None:
    """walk_pending until no walk waits (what the engine's ticks do)."""
    assert eventually(lambda: datapath.walk_pending() == 0, CALLS_S, interval_s=0.0), (
        f"walks still waiting after {CALLS_S} s: {datapath.pending_walks()}"
    )


def test_a_tag_walk_cut_by_a_full_closer_tags_every_socket(
    datapath: Datapath,
    holder: tuple[subprocess.Popen[str], list[int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """set_process_slot's walk (not later): the rest goes to walk_pending."""
    process, fds = holder
    start = _start_of(process)
    datapath.set_slot_caps(SLOT, CAPS)
    _full_closer(monkeypatch)
    datapath.set_process_slot(process.pid, SLOT, start)
    _walked(datapath)
    untagged = [fd for fd in fds if _tag_of(datapath, process.pid, fd) != SLOT]
    assert not untagged, f"{len(untagged)} of {MANY} sockets not tagged with the rule's slot"
    _assert_capped(process.pid, fds)


def test_a_cap_walk_cut_by_a_full_closer_caps_every_socket(
    datapath: Datapath,
    holder: tuple[subprocess.Popen[str], list[int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """set_slot_caps' walk (not later) of a process tagged already."""
    process, fds = holder
    start = _start_of(process)
    datapath.set_process_slot(process.pid, SLOT, start)  # tagged, no caps (the closer empty)
    assert all(_tag_of(datapath, process.pid, fd) == SLOT for fd in fds)
    _full_closer(monkeypatch)
    datapath.set_slot_caps(SLOT, CAPS)
    _walked(datapath)
    _assert_capped(process.pid, fds)


def test_the_start_adopts_every_socket_though_the_closer_fills(
    kernel_ready: Path,
    holder: tuple[subprocess.Popen[str], list[int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """adopt_open_sockets (at the start, the engine not running yet): sockets
    opened before the datapath was attached get an owner, all of them."""
    process, fds = holder
    datapath = Datapath(cache_dir=kernel_ready)
    try:
        datapath.open()
        _full_closer(monkeypatch)
        adopted = datapath.adopt_open_sockets([process.pid])
        untagged = [fd for fd in fds if _tag_of(datapath, process.pid, fd) is None]
        assert not untagged, f"{len(untagged)} of {MANY} sockets not adopted ({adopted})"
    finally:
        datapath.close()


def test_a_stop_ends_though_the_closer_stays_full_during_a_killed_helpers_sweep(
    kernel_ready: Path,
    instance: str,  # noqa: F811
    server: socket.socket,  # a socket the sweep borrows, whatever else runs
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sweep of a killed predecessor's caps (held_caps.DeadCapsSweep),
    left to the stop: its waits for the closer are bounded like the other
    whole walks at a stop (WHOLE_WALKS_WAIT_S), and what it did not sweep is
    kept for the next start."""
    sleeper = subprocess.Popen(["sleep", "600"])
    start = read_start(sleeper.pid)
    assert start is not None
    killed = _spawn(KILLED, str(kernel_ready), instance, str(SLOT), "0", str(sleeper.pid),
                    str(start))  # fmt: skip
    released = threading.Event()
    restarted = Datapath(cache_dir=kernel_ready, instance=instance)
    stop: threading.Thread | None = None
    try:
        assert killed.stdin and killed.stdout
        assert killed.stdout.readline().strip() == "limited"
        killed.stdin.write("die\n")
        killed.stdin.flush()
        killed.wait(30)
        record = record_of(instance)
        assert record is not None
        restarted.open()
        assert restarted._dead_sweep is not None

        def close_once_released(fd: int) -> None:
            released.wait()
            os.close(fd)

        stuck = FdCloser(max_threads=1, max_pending=1, close=close_once_released)
        monkeypatch.setattr(socket_tagging, "BORROWED_CLOSER", stuck)
        restarted.walk_pending()  # the sweep starts; the closer fills at its first socket
        assert restarted._dead_sweep is not None, "swept whole with the closer full"
        stop = threading.Thread(target=restarted.close, name="stop")
        began = time.monotonic()
        stop.start()
        stop.join(WHOLE_WALKS_WAIT_S + 10.0)
        took = time.monotonic() - began
        assert not stop.is_alive(), f"the stop still waits for the closer after {took:.1f} s"
        print(f"stopped in {took:.2f} s with the closer full")
        assert "map " in record.read_text(), "the dead helper's caps not kept for the next start"
    finally:
        released.set()
        if stop is not None:
            stop.join()
        restarted.close()
        _end(killed)
        sleeper.kill()
        sleeper.wait()


def test_a_stop_that_gives_up_on_a_full_closer_says_so_and_keeps_what_it_owes(
    kernel_ready: Path,
    instance: str,  # noqa: F811
    holder: tuple[subprocess.Popen[str], list[int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The closer held full past WHOLE_WALKS_WAIT_S (its threads in lingering
    closes) at a stop: the sockets left capped are not a clean stop (close
    raises: the run record must not say the limits are off), and the caps
    owed on them stay in the walks' record, for the next start to lift
    (PendingWalks.resume). Before (review36a R1): close() returned, said
    nothing, and emptied the record: 199 of 200 kept the caps for good."""
    process, fds = holder
    start = _start_of(process)
    datapath = Datapath(cache_dir=kernel_ready, instance=instance)
    released = threading.Event()
    try:
        datapath.open()
        datapath.set_slot_caps(SLOT, CAPS)
        datapath.set_process_slot(process.pid, SLOT, start)
        assert all(_pacing_of(process.pid, fd) < UNCAPPED_PACING for fd in fds)

        def close_once_released(fd: int) -> None:
            released.wait()
            os.close(fd)

        stuck = FdCloser(max_threads=1, max_pending=1, close=close_once_released)
        monkeypatch.setattr(socket_tagging, "BORROWED_CLOSER", stuck)
        with pytest.raises(KernelError, match="closer stayed full"):
            datapath.close()
        released.set()
        capped = [fd for fd in fds if _pacing_of(process.pid, fd) < UNCAPPED_PACING]
        assert capped, "the closer did not stay full: nothing was left to keep"
        owed = walks_record_of(instance)
        assert owed is not None and owed.exists(), "the caps left on the sockets not kept"
        assert [tgid for tgid, *_ in parse_owed(owed.read_text())] == [process.pid]
    finally:
        released.set()
        datapath.close()
