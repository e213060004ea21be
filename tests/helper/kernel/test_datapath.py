"""The BPF datapath on the real kernel: attaches at the cgroup root, counts a
real stream at the socket, tags open sockets, and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from chadthrottle.helper.kernel import bpf_syscalls
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.kernel.datapath import Datapath, our_programs, remove_leftover_programs
from chadthrottle.helper.kernel.layout import SocketCaps
from chadthrottle.helper.kernel.ownership import holding_machine_lock
from chadthrottle.helper.kernel.socket_tagging import (
    UNCLAMPED_WINDOW,
    payload_pacing_bps,
    receive_window_bytes,
)

from bench.suspendable import SuspendableDatapath
from tests.support.netns import NetnsPair, entered_netns, netns_device, nsenter_argv, start_stream
from tests.support.waiting import eventually


def _our_programs() -> list[str]:
    return [name for _type, _id, name in our_programs(cgroup2_mount())]


def test_open_attaches_four_programs_and_close_detaches_them(kernel_ready: Path) -> None:
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    own = _ids_of(datapath)  # other datapaths (the other lane's helpers) come and go
    try:
        ours = [
            (t.name, name) for t, prog_id, name in our_programs(cgroup2_mount()) if prog_id in own
        ]
        assert sorted(ours) == [
            ("INET_EGRESS", "chadt_egress"),
            ("INET_INGRESS", "chadt_ingress"),
            ("INET_SOCK_CREATE", "chadt_sock"),
            ("SOCK_OPS", "chadt_sockops"),
        ]
    finally:
        datapath.close()
    assert len(own) == 4 and not own & _attached_ids()


def test_counts_a_stream_at_its_socket(pair: NetnsPair, kernel_ready: Path) -> None:
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    stream = start_stream(pair, 5301, "up", seconds=2, congestion="cubic")
    try:
        received = stream.wait()
        samples = [s for s in datapath.read_traffic() if s.owner_tgid == stream.app_pid]
        counted = sum(s.tx_bytes for s in samples)
        # counters are L3 wire bytes: payload plus TCP/IP headers (52 per 1448 at MTU 1500)
        assert received > 10_000_000
        assert 1.0 <= counted / received < 1.06
        # keyed by the device's own namespace: its ifindex means nothing elsewhere
        assert {(s.netns_cookie, s.ifindex) for s in samples} == {
            netns_device(pair.host_ns, pair.host_if)
        }
        # an exited owner's counters are removed, handing back their final values
        retired = datapath.retire_owners(samples)
        assert sum(s.tx_bytes for s in retired) >= counted > 0
        assert not any(s.owner_tgid == stream.app_pid for s in datapath.read_traffic())
    finally:
        stream.stop()
        datapath.close()


def test_sockets_open_before_attach_are_adopted(pair: NetnsPair, kernel_ready: Path) -> None:
    stream = start_stream(pair, 5302, "up", seconds=20)
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    try:
        assert datapath.adopt_open_sockets([stream.app_pid]) == {stream.app_pid: 1}
        assert eventually(
            lambda: any(
                s.owner_tgid == stream.app_pid and s.tx_bytes > 0 for s in datapath.read_traffic()
            ),
            10.0,
        )
    finally:
        stream.stop()
        datapath.close()


KILLED_HELPER = textwrap.dedent(
    """
    import os, signal
    from pathlib import Path
    from chadthrottle.helper.kernel.datapath import Datapath
    Datapath(cache_dir=Path({cache!r}), instance={instance!r}).open(machine_lock_held=True)  # the test holds it
    print("attached", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _killed_helper(kernel_ready: Path, instance: str = "") -> None:
    """A process that attaches a datapath (of a helper instance, or of none)
    and dies by SIGKILL; call it holding the machine lock, so no other
    datapath sweeps its programs meanwhile."""
    result = subprocess.run(
        [sys.executable, "-c", KILLED_HELPER.format(cache=str(kernel_ready), instance=instance)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == -signal.SIGKILL and "attached" in result.stdout, result.stderr


@pytest.mark.machine_alone
def test_programs_of_a_killed_helper_are_found_and_detached(kernel_ready: Path) -> None:
    with holding_machine_lock():  # no live datapath: every program of ours is a leftover
        _killed_helper(kernel_ready)
        try:
            assert len(_our_programs()) == 4  # legacy attach: they outlive the process
        finally:
            removed = remove_leftover_programs(cgroup2_mount(), "")
    assert removed == 4
    assert _our_programs() == []


@pytest.mark.machine_alone
def test_a_killed_helpers_programs_are_its_own_instances_to_detach(kernel_ready: Path) -> None:
    """Another helper (a test session's beside the user's) must not detach a
    killed helper's programs: its successor (same state directory) needs them
    classifying until it has taken the sockets over. Before, any start swept
    every dead record (review8, 2026-12-06)."""
    killed, other = "a1" * 8, "b2" * 8
    with holding_machine_lock():
        _killed_helper(kernel_ready, instance=killed)
        try:
            assert remove_leftover_programs(cgroup2_mount(), other) == 0
            assert len(_our_programs()) == 4, "another instance detached them"
        finally:
            removed = remove_leftover_programs(cgroup2_mount(), killed)
    assert removed == 4
    assert _our_programs() == []


@pytest.mark.machine_alone
def test_a_new_datapath_attaches_beside_a_killed_helpers_programs_until_they_are_detached(
    kernel_ready: Path,
) -> None:
    """Restarting after SIGKILL: the old programs keep classifying (their socket
    tags are what the limits run on) until the new helper has tagged the
    sockets and detaches them; opening does not detach them."""
    with holding_machine_lock():  # no other datapath may sweep them meanwhile
        _killed_helper(kernel_ready)
        new = Datapath(cache_dir=kernel_ready)
        try:
            new.open(machine_lock_held=True)
            assert len(_our_programs()) == 8, "opening detached the killed helper's programs"
            assert remove_leftover_programs(cgroup2_mount(), "") == 4
            assert len(_our_programs()) == 4
        finally:
            new.close()
            remove_leftover_programs(cgroup2_mount(), "")
    assert _our_programs() == []


def test_a_program_of_ours_that_no_record_lists_is_left_alone(kernel_ready: Path) -> None:
    """Only what a dead helper's record lists is detached: a program named like
    ours that no record lists was not shown to be a helper's (a benchmark loads
    the same programs without one). Before, every unrecorded program was taken
    for a killed helper's, and helpers started beside benchmarks detached theirs
    ("detached 8 programs left behind by an earlier helper", 2026-12-05)."""
    unrecorded = Datapath(cache_dir=kernel_ready)
    unrecorded.open()
    try:
        assert unrecorded._record is not None
        unrecorded._record.close()  # attached, and no record says whose
        ids = _ids_of(unrecorded)
        assert len(ids) == 4 and ids <= _attached_ids()
        remove_leftover_programs(cgroup2_mount(), "")
        assert ids <= _attached_ids(), "programs no record lists were detached"
    finally:
        unrecorded.close()
    assert not ids & _attached_ids()


def _attached_ids() -> set[int]:
    return {prog_id for _type, prog_id, _name in our_programs(cgroup2_mount())}


def _ids_of(datapath: Datapath) -> set[int]:
    return {bpf_syscalls.program_id(fd) for fd, _type in datapath._attached}


def test_a_second_live_datapath_keeps_its_programs(kernel_ready: Path) -> None:
    """By program id: other test sessions' datapaths come and go meanwhile."""
    first = Datapath(cache_dir=kernel_ready)
    first.open()
    try:
        second = Datapath(cache_dir=kernel_ready)
        second.open()
        try:
            assert len(_ids_of(first)) == len(_ids_of(second)) == 4
            assert _ids_of(first) | _ids_of(second) <= _attached_ids()
            remove_leftover_programs(cgroup2_mount(), "")  # what any start does: live ones stay
            assert _ids_of(first) | _ids_of(second) <= _attached_ids()
        finally:
            second_ids = _ids_of(second)
            second.close()
        assert _ids_of(first) <= _attached_ids() and not second_ids & _attached_ids()
    finally:
        first.close()


def _pacing_cap(sock: socket.socket) -> int:
    (value,) = struct.unpack("=I", sock.getsockopt(socket.SOL_SOCKET, 47, 4))  # SO_MAX_PACING_RATE
    return int(value)


UNCAPPED = 0xFFFFFFFF


def _paced_at(sock: socket.socket, wire_bps: int) -> bool:
    """The socket's pacing cap holds its full segments to wire_bps at L3."""
    mss = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
    return _pacing_cap(sock) == payload_pacing_bps(wire_bps, mss, sock.family == socket.AF_INET)


def _window_clamp(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP)


def _clamped_for(sock: socket.socket, wire_bps: int) -> bool:
    """The receive window is clamped for a download limit of wire_bps. chadt_sockops
    reads the handshake's RTT, user space the minimum since: over loopback they
    differ by microseconds, so by a few bytes."""
    min_rtt_us = struct.unpack_from(
        "I", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 152), 148
    )[0]
    return abs(_window_clamp(sock) - receive_window_bytes(wire_bps, min_rtt_us)) <= wire_bps // 1000


def _exchange_a_byte(one: socket.socket, other: socket.socket) -> None:
    one.sendall(b"x")
    assert other.recv(1) == b"x"
    other.sendall(b"y")
    assert one.recv(1) == b"y"


def test_a_slots_tcp_sockets_are_capped_open_new_and_accepted_and_uncapped_again(
    kernel_ready: Path,
) -> None:
    """Over loopback, IPv4 and IPv6, with this test process as the limited
    application. Open sockets are capped from user space, new ones by
    chadt_sockops: both must turn the wire rates into the same pacing rate and
    window clamp."""
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    listeners = [
        socket.create_server(("127.0.0.1", 0)),
        socket.create_server(("::1", 0), family=socket.AF_INET6),
    ]
    sockets = list(listeners)
    try:
        before = [
            socket.create_connection(listener.getsockname()[:2]) for listener in listeners
        ]  # before the limit
        sockets += before + [listener.accept()[0] for listener in listeners]
        assert [_pacing_cap(s) for s in before] == [UNCAPPED] * 2
        assert not any(_clamped_for(s, 2_000_000) for s in before)
        datapath.set_slot_caps(9, SocketCaps(pacing_bps=500_000, window_bps=2_000_000))
        datapath.set_process_slot(os.getpid(), 9)
        assert all(
            _paced_at(s, 500_000) and _clamped_for(s, 2_000_000) for s in before
        )  # through a duplicate
        after = [
            socket.create_connection(listener.getsockname()[:2]) for listener in listeners
        ]  # chadt_sockops
        accepted = [
            listener.accept()[0] for listener in listeners
        ]  # tags cloned from the listeners'
        sockets += after + accepted
        capped = before + after + accepted
        assert all(
            _paced_at(s, 500_000) for s in capped
        )  # before any data: sending may lower the MSS
        for one, other in zip(
            after, accepted, strict=True
        ):  # the clamp is set again before each packet sent
            _exchange_a_byte(one, other)
        assert all(_clamped_for(s, 2_000_000) for s in capped)
        datapath.set_slot_caps(
            9, SocketCaps(pacing_bps=800_000, window_bps=3_000_000)
        )  # new rates reach them
        assert all(_paced_at(s, 800_000) and _clamped_for(s, 3_000_000) for s in capped)
        datapath.set_slot_caps(
            9, SocketCaps(window_bps=3_000_000)
        )  # the upload limit goes, the download stays
        assert all(_pacing_cap(s) == UNCAPPED and _clamped_for(s, 3_000_000) for s in capped)
        datapath.set_slot_caps(9, SocketCaps(pacing_bps=800_000, window_bps=3_000_000))
        datapath.set_process_slot(os.getpid(), 0)  # no longer limited: uncapped
        assert [(_pacing_cap(s), _window_clamp(s)) for s in capped] == [
            (UNCAPPED, UNCLAMPED_WINDOW)
        ] * 6
        datapath.set_process_slot(os.getpid(), 9)
        assert all(_paced_at(s, 800_000) and _clamped_for(s, 3_000_000) for s in capped)
        datapath.close()  # a stopping helper uncaps what it capped
        assert [(_pacing_cap(s), _window_clamp(s)) for s in capped] == [
            (UNCAPPED, UNCLAMPED_WINDOW)
        ] * 6
        assert [_window_clamp(listener) for listener in listeners] == [
            0,
            0,
        ]  # never clamped: as found
    finally:
        for sock in sockets:
            sock.close()
        datapath.close()


def test_another_helpers_program_leaves_a_limited_sockets_clamp_alone(kernel_ready: Path) -> None:
    """Every datapath's chadt_sockops runs on every socket (all attach at the
    cgroup root): one that has no slot for a socket must not lift the clamp
    and the per-packet flag another set there. It did, and a download limited
    before it started overflowed the shaper whenever two helpers ran."""
    limiting, other = Datapath(cache_dir=kernel_ready), Datapath(cache_dir=kernel_ready)
    limiting.open()
    listener = socket.create_server(("127.0.0.1", 0))
    sockets = [listener]
    try:
        other.open()  # attached after: runs after the limiting one on each packet
        limiting.set_slot_caps(9, SocketCaps(window_bps=2_000_000))
        limiting.set_process_slot(os.getpid(), 9)
        client = socket.create_connection(listener.getsockname()[:2])
        sockets += [client, listener.accept()[0]]
        for _ in range(3):  # packets each way: the header-option hook of both programs runs
            _exchange_a_byte(sockets[1], sockets[2])
        assert all(_clamped_for(s, 2_000_000) for s in sockets[1:])
    finally:
        for sock in sockets:
            sock.close()
        other.close()
        limiting.close()


@pytest.mark.machine_alone
def test_opens_under_the_machine_lock_its_caller_holds(kernel_ready: Path) -> None:
    """A benchmark holds the machine lock (no other datapath) and attaches its own:
    the shared lock that open() takes otherwise would wait for it forever."""
    with holding_machine_lock():
        datapath = Datapath(cache_dir=kernel_ready)
        datapath.open(machine_lock_held=True)
        try:
            assert sorted(_our_programs()) == [
                "chadt_egress",
                "chadt_ingress",
                "chadt_sock",
                "chadt_sockops",
            ]
        finally:
            datapath.close()
        assert _our_programs() == []


def test_run_time_statistics_count_the_programs_runs(pair: NetnsPair, kernel_ready: Path) -> None:
    before_attach = {
        prog_id for _type, prog_id, _name in our_programs(cgroup2_mount())
    }  # other live datapaths
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    egress_fd = -1
    stats_fd = bpf_syscalls.enable_run_time_stats()
    try:
        egress_id = next(
            prog_id
            for _type, prog_id, name in our_programs(cgroup2_mount())
            if name == "chadt_egress" and prog_id not in before_attach
        )
        egress_fd = bpf_syscalls.open_program(egress_id)
        before = bpf_syscalls.program_run_stats(egress_fd)
        start_stream(pair, 5303, "up", seconds=1).wait()
        run_ns, runs = (
            a - b for a, b in zip(bpf_syscalls.program_run_stats(egress_fd), before, strict=True)
        )
        assert runs > 100
        assert 0 < run_ns / runs < 100_000
    finally:
        os.close(stats_fd)
        if egress_fd >= 0:
            os.close(egress_fd)
        datapath.close()


def test_suspend_takes_the_programs_off_and_resume_puts_the_same_back(kernel_ready: Path) -> None:
    datapath = SuspendableDatapath(cache_dir=kernel_ready)  # bench/overhead.py's
    datapath.open()
    own = _ids_of(datapath)  # other datapaths (the other lane's helpers) come and go

    def ours() -> set[tuple[str, int]]:
        return {
            (t.name, prog_id)
            for t, prog_id, _name in our_programs(cgroup2_mount())
            if prog_id in own
        }

    try:
        attached = ours()
        assert len(attached) == 4
        datapath.suspend()
        assert ours() == set()
        datapath.resume()
        assert ours() == attached
        datapath.suspend()
    finally:
        datapath.close()  # suspended or not, nothing stays
    assert ours() == set()


SEND_20_MB = textwrap.dedent(
    """
    import socket
    with socket.create_connection(({host!r}, {port})) as sock:
        sock.sendall(bytes(20 << 20))
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)  # the peer read everything and closed: all was sent and acknowledged
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
        # tcpi_bytes_sent (retransmissions included) and tcpi_segs_out
        print(int.from_bytes(info[200:208], "little"), int.from_bytes(info[136:140], "little"))
    """
)


def test_gso_packets_count_each_segment_with_its_headers(
    pair: NetnsPair, kernel_ready: Path
) -> None:
    """A sender's counters against its own tcp_info: every segment it sent (a GSO
    packet stands for many), retransmissions too, each with IPv4 + TCP headers."""
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    try:
        with entered_netns(pair.peer_ns):  # a socket keeps the namespace it was made in
            listener = socket.create_server((pair.peer_addr, 5304))
        with listener:
            sender = subprocess.Popen(
                nsenter_argv(
                    pair.host_ns,
                    [sys.executable, "-c", SEND_20_MB.format(host=pair.peer_addr, port=5304)],
                ),
                stdout=subprocess.PIPE,
                text=True,
            )
            connection, _ = listener.accept()
            with connection:
                while connection.recv(1 << 20):
                    pass
            out, _ = sender.communicate(timeout=30)
        bytes_sent, segments_out = (int(word) for word in out.split())
        assert bytes_sent >= 20 << 20
        # 20 (IPv4) + 32 (TCP with timestamps) per segment; the SYN has 8 bytes more options
        expected = bytes_sent + segments_out * 52 + 8

        def counted() -> int:
            return sum(s.tx_bytes for s in datapath.read_traffic() if s.owner_tgid == sender.pid)

        assert eventually(lambda: counted() == expected, 5.0), (counted(), expected)  # the last ACK
    finally:
        datapath.close()


SOCKET_MAKER = "import socket, sys\nfor line in sys.stdin:\n    socket.socket().close()\n    print('made', flush=True)\n"


def test_a_process_first_socket_is_announced_with_its_cgroup_and_again_once_forgotten(
    kernel_ready: Path,
) -> None:
    announced: list[tuple[int, int]] = []
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    maker = subprocess.Popen([sys.executable, "-c", SOCKET_MAKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    try:
        datapath.watch_new_owners(lambda tgid, cgroup, start: announced.append((tgid, cgroup)))
        cgroup = Path(f"/proc/{maker.pid}/cgroup").read_text().strip().split("::", 1)[1]
        expected = (maker.pid, os.stat(cgroup2_mount() / cgroup.lstrip("/")).st_ino)

        def make_socket_and_wait_for(count: int) -> None:
            assert maker.stdin is not None and maker.stdout is not None
            maker.stdin.write("\n")
            maker.stdin.flush()
            assert maker.stdout.readline().strip() == "made"
            deadline = time.monotonic() + 10
            while announced.count(expected) < count and time.monotonic() < deadline:
                datapath.poll_new_owners(100)

        make_socket_and_wait_for(1)
        make_socket_and_wait_for(1)
        time.sleep(0.2)
        datapath.poll_new_owners(0)
        assert announced.count(expected) == 1  # only its first socket
        datapath.forget_owner(maker.pid)
        make_socket_and_wait_for(2)
        assert announced.count(expected) == 2
    finally:
        maker.kill()
        maker.wait()
        datapath.close()


MEMORY_PROBE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from chadthrottle.helper.kernel.datapath import Datapath
    datapath = Datapath(cache_dir=Path({cache!r}))
    datapath.open()
    try:
        print("bcc" in sys.modules, "libLLVM" in Path("/proc/self/maps").read_text())
    finally:
        datapath.close()
    """
)


def test_the_process_that_opens_the_datapath_never_maps_bcc_or_llvm(kernel_ready: Path) -> None:
    """bcc compiles in a child: the helper keeps about 50 MiB, not 180 (issue 19)."""
    result = subprocess.run([sys.executable, "-c", MEMORY_PROBE.format(cache=str(kernel_ready))],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
