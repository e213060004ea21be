"""How long a sender may still use a receive window offered before a clamp,
and whether it still may (old_windows_left)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import struct
import subprocess
import threading
import time

import pytest
from chadthrottle.helper.kernel.socket_tagging import (
    IPPROTO_MPTCP,
    clamp_open_windows,
    old_window_drain_s,
    old_windows_left,
    tcp_window_state,
)

from tests.support.requirements import require_program
from tests.support.waiting import eventually


def test_an_old_window_takes_two_round_trips_or_the_time_to_send_it() -> None:
    # 20 ms round trip, 2.9 MB arriving per 20 ms (rcv_space per rcv_rtt)
    assert old_window_drain_s(20_000, 64_000, 20_000, 2_900_000) == pytest.approx(0.04)
    assert old_window_drain_s(20_000, 16_000_000, 20_000, 2_900_000) == pytest.approx(
        0.02 + 16e6 / 2.9e6 * 0.02
    )
    assert old_window_drain_s(20_000, 16_000_000, 0, 0) == pytest.approx(
        0.04
    )  # nothing received yet
    assert old_window_drain_s(200, 64_000, 30_000, 2_900_000) == pytest.approx(
        0.06
    )  # a receiver's stale srtt


def _ss_fields(port: int) -> dict[str, float]:
    """ss's reading of the receiving end of a loopback connection to port."""
    out = subprocess.run([require_program("ss"), "-tin", "state", "established", f"( dport = :{port} )"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return {
        key: float(value)
        for key, value in re.findall(r"\b(rcv_ssthresh|rcv_rtt|rcv_space|rtt):([\d.]+)", out)
    }


def test_the_window_state_is_read_where_the_kernel_writes_it() -> None:
    """The fields behind the estimate, against ss's own reading of the same
    socket: a wrong offset reads another field or zeros."""
    listener = socket.create_server(("127.0.0.1", 0))
    receiver = socket.create_connection(listener.getsockname())
    sender, _ = listener.accept()
    thread = threading.Thread(target=lambda: sender.sendall(b"x" * (16 << 20)), daemon=True)
    try:
        thread.start()
        received = 0
        while received < 16 << 20:  # autotuning grows the window as the application reads
            received += len(receiver.recv(1 << 20))
        thread.join(5)
        srtt_us, window, rcv_rtt_us, rcv_space = tcp_window_state(
            receiver.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 152)
        )
        ss = _ss_fields(listener.getsockname()[1])
        assert (window, rcv_space) == (
            ss["rcv_ssthresh"],
            ss["rcv_space"],
        ) and rcv_space > 64 * 1024
        assert srtt_us == pytest.approx(ss["rtt"] * 1000, abs=1) and rcv_rtt_us == pytest.approx(
            ss["rcv_rtt"] * 1000, abs=1
        )
    finally:
        for sock in (sender, receiver, listener):
            sock.close()


def test_reading_the_namespace_cookie_of_what_is_not_a_socket_leaks_no_descriptor() -> None:
    """The cookie is read through a copy of the descriptor; a copy of a
    non-socket (a pipe, a process that swapped the fd) was never closed."""
    import os

    from chadthrottle.helper.kernel.socket_tagging import _netns_cookie

    read_end, write_end = os.pipe()
    try:
        before = len(os.listdir("/proc/self/fd"))
        assert [_netns_cookie(read_end) for _ in range(5)] == [0] * 5
        assert len(os.listdir("/proc/self/fd")) == before
        with socket.socket() as real:
            assert _netns_cookie(real.fileno()) > 0
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        os.close(read_end)
        os.close(write_end)


SO_RCVBUFFORCE = 33  # SO_RCVBUF past net.core.rmem_max (root)
RECEIVE_BUFFER_BYTES = 16 << 20  # the kernel doubles it: room for a window over 4 MiB


def _advertised(sock: socket.socket) -> int:
    """tcpi_rcv_wnd: the window the socket last advertised."""
    return int(
        struct.unpack_from("I", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 236), 232)[0]
    )


def test_a_clamped_window_is_left_until_the_sender_spends_it() -> None:
    """The receiver cannot take back the right edge it offered: a sender that
    holds back after the clamp (as one the CPU load holds back) may still
    send the old window at once, and old_windows_left says so until it has;
    a sender quiet for longer than idle_ms is not waited for."""
    listener = socket.create_server(("127.0.0.1", 0))
    receiver = socket.socket()
    # A buffer of a set size: autotuning that grows the buffer moves window_clamp
    # up with it (the kernel's, since 6.7), which would lift a clamp set once from
    # user space; the helper's programs set it again before every packet sent.
    receiver.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER_BYTES)
    receiver.connect(listener.getsockname())
    sender, _ = listener.accept()
    sender.settimeout(0.05)
    sending, stop = threading.Event(), threading.Event()
    sending.set()

    def send() -> None:
        while not stop.is_set():
            if sending.wait(0.05):
                try:
                    sender.send(b"x" * 65536)
                except (TimeoutError, OSError):
                    continue

    def read() -> None:
        while not stop.is_set() and receiver.recv(1 << 20):
            pass

    threads = [
        threading.Thread(target=send, daemon=True),
        threading.Thread(target=read, daemon=True),
    ]
    try:
        for thread in threads:
            thread.start()
        assert eventually(lambda: _advertised(receiver) > 4 << 20, 10.0), _advertised(receiver)
        sending.clear()
        time.sleep(0.1)  # what the sender had written has arrived
        assert clamp_open_windows(os.getpid(), 1_000_000)
        assert old_windows_left(os.getpid(), 1_000_000, idle_ms=5_000) is True
        # a user's clamp did not clamp this socket (root made it): not waited for
        assert old_windows_left(os.getpid(), 1_000_000, idle_ms=5_000, made_by=65534) is False
        time.sleep(0.6)
        assert (
            old_windows_left(os.getpid(), 1_000_000, idle_ms=500) is False
        )  # quiet: not waited for
        assert old_windows_left(os.getpid(), 1_000_000, idle_ms=5_000) is True
        sending.set()
        assert eventually(
            lambda: old_windows_left(os.getpid(), 1_000_000, idle_ms=5_000) is False, 5.0
        ), _advertised(receiver)
        assert _advertised(receiver) <= 1 << 20
    finally:
        stop.set()
        for sock in (sender, receiver, listener):
            sock.shutdown(socket.SHUT_RDWR) if sock is not listener else None
        for thread in threads:
            thread.join(5)
        for sock in (sender, receiver, listener):
            sock.close()


def test_a_clamp_receive_autotuning_raises_while_the_window_is_waited_for_is_put_back() -> None:
    """While the engine waits out an old window the sockets are not tagged yet,
    so chadt_sockops does not hold their clamp (nor for a socket opened before
    the limit: the per-packet hook is turned on when a connection opens). The
    kernel's receive autotuning, growing the buffer as the application reads,
    sets window_clamp from it (tcp_rcv_space_adjust), and the window grows
    past the clamp again: a held sender then kept a 30 MB window, the wait ran
    out and the leaf dropped 2,076-2,378 packets (issue 13, e2e
    test_limit_lands_on_a_held_sender). Each ask puts such a clamp back.
    Segments of 1448 B and a 32 KB clamp: loopback's 64 KB segments would not
    fit the clamp, and the first growth of the buffer from its initial size
    (131,072 B) raises window_clamp past 32 KB (20 of 20 probes, within 0.3 ms)."""
    listener = socket.socket()
    receiver = socket.socket()
    for sock in (listener, receiver):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1448)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    receiver.connect(listener.getsockname())
    sender, _ = listener.accept()
    sender.settimeout(0.05)
    wire_bps = 640_000  # x (RTT + 50 ms): about 32 KB
    assert clamp_open_windows(os.getpid(), wire_bps)
    clamp = receiver.getsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP)
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            try:
                sender.send(b"x" * 65536)
            except (TimeoutError, OSError):
                continue

    def read() -> None:
        while not stop.is_set() and receiver.recv(1 << 20):
            pass

    threads = [threading.Thread(target=f, daemon=True) for f in (send, read)]
    raised: list[tuple[int, int, bool | None]] = []  # raised to, held after the ask, its answer
    try:
        for thread in threads:
            thread.start()
        # Asked once a raise is seen, read without asking till then (nothing puts it
        # back meanwhile). Asked every 10 ms whatever the clamp, a raise that came
        # inside an ask, before its put-back, was put back unseen, and the buffer had
        # grown for good: 1-3 growths in the first 60 ms, none after, so a run whose
        # growths all fell inside asks judged nothing (CI; flake36, docs/benchmarks/flakes.md)
        started = time.monotonic()
        while len(raised) < 3 and time.monotonic() < started + (0.5 if raised else 10.0):
            before = receiver.getsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP)
            if before <= clamp:
                time.sleep(0.001)
                continue
            left = old_windows_left(os.getpid(), wire_bps, idle_ms=5_000)  # as the engine asks
            held = receiver.getsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP)
            raised.append((before, held, left))
        assert raised, "autotuning raised no clamp in 10 s: nothing judged"
        # not done at an ask that found it raised: the window may have grown meanwhile;
        # put back by the ask (the reader may raise it again before it is read back:
        # CI run v read 15,335,197 once, so not every read-back is the clamp)
        assert all(left is True for _, _, left in raised), (clamp, raised)
        assert any(held == clamp for _, held, _ in raised), (clamp, raised)
    finally:
        stop.set()
        for sock in (sender, receiver):
            sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(5)
        for sock in (sender, receiver, listener):
            sock.close()


def test_an_mptcp_connections_open_window_is_waited_for() -> None:
    """An MPTCP socket refuses TCP_WINDOW_CLAMP (EOPNOTSUPP) but its TCP_INFO is
    its first subflow's: the wait reads its window as a TCP socket's. Since
    baf03eb asked every socket for its clamp first, the refusal skipped the
    socket and a download limit landed on an MPTCP receiver without waiting
    for the window it had offered (fixed in 1b73fc1)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    receiver.connect(listener.getsockname())
    sender, _ = listener.accept()
    sender.settimeout(0.05)
    wire_bps = 10_000  # a clamp of the kernel's least: any open window is past it
    try:
        with pytest.raises(OSError):  # what made the wait skip it
            receiver.getsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP)
        deadline = time.monotonic() + 5.0
        open_bytes = 1 << 18  # far past the clamp (CI run v reached 724,992 of 1 MiB in 5 s)
        while _advertised(receiver) <= open_bytes and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError, OSError):
                sender.send(b"x" * 65536)
            with contextlib.suppress(BlockingIOError):  # autotuning grows the window as it reads
                receiver.recv(1 << 20, socket.MSG_DONTWAIT)
        assert _advertised(receiver) > open_bytes, _advertised(receiver)
        assert old_windows_left(os.getpid(), wire_bps, idle_ms=5_000) is True
    finally:
        for sock in (sender, receiver, listener):
            sock.close()
