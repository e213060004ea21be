"""How long a sender may still use a receive window offered before a clamp."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from chadthrottle.helper.kernel.socket_tagging import clamp_open_windows, old_window_drain_s


def test_an_old_window_takes_two_round_trips_or_the_time_to_send_it() -> None:
    # 20 ms round trip, 2.9 MB arriving per 20 ms (rcv_space per rcv_rtt)
    assert old_window_drain_s(20_000, 64_000, 20_000, 2_900_000) == pytest.approx(0.04)
    assert old_window_drain_s(20_000, 16_000_000, 20_000, 2_900_000) == pytest.approx(0.02 + 16e6 / 2.9e6 * 0.02)
    assert old_window_drain_s(20_000, 16_000_000, 0, 0) == pytest.approx(0.04)  # nothing received yet


def test_clamping_a_running_download_reads_its_window_and_pace_from_the_kernel() -> None:
    """Over loopback, this process's own socket: the tcp_info fields behind the
    estimate are read at their offsets (a wrong one reads zeros or nonsense)."""
    listener = socket.create_server(("127.0.0.1", 0))
    sender = socket.create_connection(listener.getsockname())
    receiver, _ = listener.accept()
    done = threading.Event()

    def send() -> None:
        chunk = b"x" * 65536
        while not done.is_set():
            try:
                sender.sendall(chunk)
            except OSError:
                return

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        for _ in range(200):  # 13 MB: autotuning has grown the window
            receiver.recv(65536)
        drains = clamp_open_windows(os.getpid(), 1_000_000)
        srtt_us = receiver.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 72)[68:72]
        assert drains, "no open TCP socket found"
        assert max(drains) >= 2 * int.from_bytes(srtt_us, "little") / 1e6
        assert max(drains) < 1.0  # loopback moves gigabytes a second
    finally:
        done.set()
        for sock in (sender, receiver, listener):
            sock.close()
        thread.join(5)
