"""Rule 2: a user's rights end at that user's processes. A socket tagged
with a user's rule's slot and passed to another user's process (SCM_RIGHTS)
is in no descriptor table the rule's untag walk reads: when that walk ended
the slot was released (Apply.release_unused) while the other user's socket
still carried it, and the next rule given the slot classed and paced that
socket (rights31). Now a slot whose walks ended drains on until every
process's sockets carrying it were retagged and a dump of the sockets'
tags (sock_diag) finds none, a connection waiting in an accept queue too."""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from chadthrottle.helper.identity.processes import read_start
from chadthrottle.helper.kernel import bpf_maps, socket_tagging
from chadthrottle.helper.kernel.bpf_syscalls import pidfd_getfd
from chadthrottle.helper.kernel.datapath import VET_AGAIN_S, Datapath
from chadthrottle.helper.kernel.layout import SocketCaps, SockTag
from chadthrottle.helper.kernel.socket_tagging import UNCAPPED_PACING, UNCLAMPED_WINDOW, FdCloser

from tests.helper.kernel.test_process_keys import SLOT
from tests.support.waiting import eventually

USER_A, USER_B = 61001, 61002
SO_MAX_PACING_RATE = 47  # not in Python's socket module
CALLS = 500  # walk_pending calls an untag walk may take here (each WALK_BUDGET_S at most)
RELEASED_IN_S = 5 * VET_AGAIN_S  # the sweep, then a dump; a found socket dumped again so late

# A: makes a TCP connection and a UDP socket once told (tagged by then),
# passes both to B over the unix socket (its fd in argv), and closes its own.
SENDER = (
    "import array, os, socket, sys\n"
    "chan = socket.socket(fileno=int(sys.argv[1]))\n"
    "port = int(sys.stdin.readline())\n"
    "tcp = socket.create_connection(('127.0.0.1', port))\n"
    "udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "chan.sendmsg([b'x'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,\n"
    "              array.array('i', [tcp.fileno(), udp.fileno()]))])\n"
    "tcp.close(); udp.close()\n"
    "print('passed', flush=True)\n"
    "sys.stdin.readline()\n"
)
# B: receives them and prints the descriptors they got here.
RECEIVER = (
    "import array, socket, sys\n"
    "chan = socket.socket(fileno=int(sys.argv[1]))\n"
    "fds = array.array('i')\n"
    "_, ancillary, _, _ = chan.recvmsg(1, socket.CMSG_LEN(2 * fds.itemsize))\n"
    "fds.frombytes(ancillary[0][2])\n"
    "print(*fds, flush=True)\n"
    "sys.stdin.readline()\n"
)


def _slot_of(datapath: Datapath, pid: int, fd: int) -> int:
    pidfd = os.pidfd_open(pid)
    try:
        with socket.socket(fileno=pidfd_getfd(pidfd, fd)) as sock:
            tag = SockTag()
            assert bpf_maps.lookup(datapath._maps["socket_tags"].fd,
                                   ctypes.c_int(sock.fileno()), tag)  # fmt: skip
            return int(tag.app_slot)
    finally:
        os.close(pidfd)


def _as(uid: int, code: str, chan: socket.socket) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, str(chan.fileno())],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, user=uid,
                            group=uid, pass_fds=(chan.fileno(),))  # fmt: skip


@dataclass(frozen=True)
class Passed:
    """A's sender and B's receiver; B's descriptors of A's TCP and UDP sockets."""

    sender: subprocess.Popen[str]
    start: int
    receiver: subprocess.Popen[str]
    tcp_fd: int
    udp_fd: int


@contextmanager
def _passed(datapath: Datapath, listener: socket.socket,
            caps: SocketCaps | None = None) -> Iterator[Passed]:  # fmt: skip
    """User A's rule (SLOT, held to caps if given) on A's process, which makes a
    TCP and a UDP socket under it and passes both to user B's process."""
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    sender = _as(USER_A, SENDER, left)
    receiver = _as(USER_B, RECEIVER, right)
    try:
        assert sender.stdin and sender.stdout and receiver.stdin and receiver.stdout
        start = read_start(sender.pid)
        assert start is not None
        datapath.set_slot_owners({SLOT: USER_A})  # user A's rule
        if caps is not None:
            datapath.set_slot_caps(SLOT, caps)
        datapath.set_process_slot(sender.pid, SLOT, start)
        sender.stdin.write(f"{listener.getsockname()[1]}\n")
        sender.stdin.flush()
        assert sender.stdout.readline().strip() == "passed"
        tcp_fd, udp_fd = (int(fd) for fd in receiver.stdout.readline().split())
        yield Passed(sender, start, receiver, tcp_fd, udp_fd)
    finally:
        for process in (sender, receiver):
            process.kill()
            process.wait()
        left.close()
        right.close()


def _until_released(datapath: Datapath, carried: Callable[[], dict[int, int]]) -> int:
    """walk_pending, asking each call whether SLOT may go to another rule
    (what Apply.release_unused asks), until it may; whenever it may, no
    socket carries it (carried: fd -> the slot its socket carries). How
    many calls."""
    calls = 0

    def released() -> bool:
        nonlocal calls
        if SLOT in datapath.release_ready({SLOT}):
            now = carried()
            assert SLOT not in now.values(), f"released while sockets carry it: {now}"
            return True
        calls += 1
        datapath.walk_pending()
        return False

    assert eventually(released, RELEASED_IN_S, interval_s=0.02), (
        f"{calls} calls in {RELEASED_IN_S} s and not released: draining {datapath.draining_slots()}"
    )
    return calls


def test_a_socket_passed_to_another_users_process_does_not_carry_a_released_slot(
    datapath: Datapath, listener: socket.socket
) -> None:
    with _passed(datapath, listener) as passed:
        receiver, tcp_fd, udp_fd = passed.receiver.pid, passed.tcp_fd, passed.udp_fd
        assert _slot_of(datapath, receiver, tcp_fd) == SLOT  # made under A's rule
        assert _slot_of(datapath, receiver, udp_fd) == SLOT

        datapath.set_process_slot(passed.sender.pid, 0, passed.start, later=True)  # A's cleared
        datapath.set_slot_owners({})
        calls = _until_released(datapath, lambda: {
            fd: _slot_of(datapath, receiver, fd) for fd in (tcp_fd, udp_fd)})  # fmt: skip
        assert _slot_of(datapath, receiver, tcp_fd) == 0
        assert _slot_of(datapath, receiver, udp_fd) == 0
        print(f"released after {calls} calls")


def test_a_connection_waiting_in_an_accept_queue_keeps_its_listeners_slot_draining(
    datapath: Datapath,
) -> None:
    """The listener's tag is copied to each connection the kernel makes from
    it (BPF_F_CLONE); one still waiting when the untag walk read the table
    carries the old slot until it is accepted and walked again."""
    server = subprocess.Popen(
        [sys.executable, "-c",
         "import socket, sys\n"
         "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(8)\n"
         "print(s.getsockname()[1], flush=True)\n"
         "sys.stdin.readline()\n"
         "c, _ = s.accept()\n"
         "print(c.fileno(), flush=True)\n"
         "sys.stdin.readline()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, user=USER_A, group=USER_A,
    )  # fmt: skip
    client = None
    try:
        assert server.stdin and server.stdout
        port = int(server.stdout.readline())
        start = read_start(server.pid)
        assert start is not None
        datapath.set_process_slot(server.pid, SLOT, start)  # tags the listener
        client = socket.create_connection(("127.0.0.1", port))  # waits in its queue
        datapath.set_process_slot(server.pid, 0, start, later=True)
        for _ in range(CALLS):  # the untag walk ends; the connection waits, unaccepted
            ready = datapath.release_ready({SLOT})
            assert SLOT not in ready, "released while a waiting connection carries it"
            if (
                not datapath.walk_pending()
                and datapath.pending_walks() == {}
                and (datapath.draining_slots() == {SLOT})
            ):
                break
        server.stdin.write("\n")
        server.stdin.flush()
        accepted = int(server.stdout.readline())
        datapath.tag_accepted()  # the connection once accepted: walked again
        _until_released(datapath, lambda: {accepted: _slot_of(datapath, server.pid, accepted)})
    finally:
        if client is not None:
            client.close()
        server.kill()
        server.wait()


def _caps_on(pid: int, fd: int) -> tuple[int, int]:
    """(SO_MAX_PACING_RATE, TCP_WINDOW_CLAMP) of pid's socket fd, as the kernel holds them."""
    pidfd = os.pidfd_open(pid)
    try:
        with socket.socket(fileno=pidfd_getfd(pidfd, fd)) as sock:
            pacing = int.from_bytes(sock.getsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, 8),
                                    "little")  # fmt: skip
            return pacing, int(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP))
    finally:
        os.close(pidfd)


def test_a_passed_socket_keeps_no_caps_of_the_rule_it_was_made_under(
    datapath: Datapath, listener: socket.socket
) -> None:
    """Pacing and a window clamp are set on the socket itself (cap_socket,
    chadt_sockops), not read from its tag: user A's paced rule's TCP socket,
    passed to user B's process and retagged with none by the vet, was still
    paced at A's rate (124,801 B/s of 125,000) once the slot was let go: B's
    socket held to A's cleared rule for ever (review34b R1). The vet lifts the
    caps the slot held sockets to."""
    with _passed(datapath, listener, SocketCaps(pacing_bps=125_000, window_bps=125_000)) as passed:
        receiver, tcp_fd = passed.receiver.pid, passed.tcp_fd
        pacing, clamp = _caps_on(receiver, tcp_fd)
        assert pacing < UNCAPPED_PACING and clamp < UNCLAMPED_WINDOW  # A's rule's, on B's socket

        datapath.set_process_slot(passed.sender.pid, 0, passed.start, later=True)  # A's cleared
        datapath.set_slot_caps(SLOT, SocketCaps(), later=True)
        datapath.set_slot_owners({})
        _until_released(datapath, lambda: {tcp_fd: _slot_of(datapath, receiver, tcp_fd)})
        pacing, clamp = _caps_on(receiver, tcp_fd)
        assert pacing >= UNCAPPED_PACING, f"B's socket still paced at {pacing} B/s by A's rule"
        assert clamp > 125_000, f"B's socket's window still clamped to {clamp} bytes by A's rule"


def test_a_stopped_helper_leaves_no_caps_on_a_passed_socket(
    kernel_ready: Path, listener: socket.socket
) -> None:
    """The helper stopping lifts the caps it set in the tables of the
    processes it tags; user A's paced rule's socket, passed to user B's
    process, kept its pacing (124,801 B/s) and window clamp (6,254 bytes)
    after Datapath.close(), while the window said the helper's limits were
    off (review34b R4)."""
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    try:
        caps = SocketCaps(pacing_bps=125_000, window_bps=125_000)
        with _passed(datapath, listener, caps) as passed:
            receiver, tcp_fd = passed.receiver.pid, passed.tcp_fd
            pacing, clamp = _caps_on(receiver, tcp_fd)
            assert pacing < UNCAPPED_PACING and clamp < UNCLAMPED_WINDOW  # A's, on B's socket
            datapath.close()  # the helper stops while A's rule holds
            pacing, clamp = _caps_on(receiver, tcp_fd)
            assert pacing >= UNCAPPED_PACING, f"B's socket still paced at {pacing} B/s"
            assert clamp > 125_000, f"B's socket's window still clamped to {clamp} bytes"
    finally:
        datapath.close()  # safe twice


# A: makes MANY TCP connections once told (tagged by then) and passes them
# all to B (who prints its descriptors of them), closing its own.
MANY = 200  # SCM_MAX_FD is 253
SENDER_MANY = (
    "import array, socket, sys\n"
    "chan = socket.socket(fileno=int(sys.argv[1]))\n"
    "port = int(sys.stdin.readline())\n"
    f"conns = [socket.create_connection(('127.0.0.1', port)) for _ in range({MANY})]\n"
    "chan.sendmsg([b'x'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,\n"
    "              array.array('i', [conn.fileno() for conn in conns]))])\n"
    "for conn in conns: conn.close()\n"
    "print('passed', flush=True)\n"
    "sys.stdin.readline()\n"
)
RECEIVER_MANY = (
    "import array, socket, sys\n"
    "chan = socket.socket(fileno=int(sys.argv[1]))\n"
    "fds = array.array('i')\n"
    f"_, ancillary, _, _ = chan.recvmsg(1, socket.CMSG_LEN({MANY} * fds.itemsize))\n"
    "fds.frombytes(ancillary[0][2])\n"
    "print(*fds, flush=True)\n"
    "sys.stdin.readline()\n"
)


def test_a_stop_lifts_the_caps_of_every_passed_socket_though_the_closer_fills(
    kernel_ready: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stop's sweep borrows each socket; while the closer of borrowed
    sockets is full, a walk stops at the socket it could not borrow. The
    stop's sweep (whole, no deadline) took that for done: the rest of that
    process's sockets kept A's caps (review35b R9; rights32 found it in the
    SIGKILL sweep, 5,000 sockets past the closer's 256). Here the closer is
    the product's, bounded at one socket, so that 200 fill it."""
    monkeypatch.setattr(socket_tagging, "BORROWED_CLOSER", FdCloser(max_threads=1, max_pending=1))
    caps = SocketCaps(pacing_bps=125_000, window_bps=125_000)
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    datapath = Datapath(cache_dir=kernel_ready)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(MANY)
        sender, receiver = _as(USER_A, SENDER_MANY, left), _as(USER_B, RECEIVER_MANY, right)
        try:
            assert sender.stdin and sender.stdout and receiver.stdout
            start = read_start(sender.pid)
            assert start is not None
            datapath.open()
            datapath.set_slot_owners({SLOT: USER_A})
            datapath.set_slot_caps(SLOT, caps)
            datapath.set_process_slot(sender.pid, SLOT, start)
            sender.stdin.write(f"{server.getsockname()[1]}\n")
            sender.stdin.flush()
            assert sender.stdout.readline().strip() == "passed"
            fds = [int(fd) for fd in receiver.stdout.readline().split()]
            assert len(fds) == MANY
            assert all(_caps_on(receiver.pid, fd)[0] < UNCAPPED_PACING for fd in fds)  # A's
            datapath.close()  # the helper stops while A's rule holds
            kept = [fd for fd in fds if _caps_on(receiver.pid, fd)[0] < UNCAPPED_PACING
                    or _caps_on(receiver.pid, fd)[1] <= caps.window_bps]  # fmt: skip
            assert not kept, f"{len(kept)} of B's {MANY} sockets still held to A's rule"
        finally:
            datapath.close()  # safe twice
            for process in (sender, receiver):
                process.kill()
                process.wait()
            left.close()
            right.close()
