"""How long a sender may still use a receive window offered before a clamp."""

from __future__ import annotations

import re
import socket
import subprocess
import threading

import pytest
from chadthrottle.helper.kernel.socket_tagging import old_window_drain_s, tcp_window_state

from tests.support.requirements import require_program


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
