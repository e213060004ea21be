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

from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.kernel.datapath import Datapath, holding_machine_lock, our_programs, remove_leftover_programs
from tests.support.netns import NetnsPair, netns_device, start_stream


def _our_programs() -> list[str]:
    return [name for _type, _id, name in our_programs(cgroup2_mount())]


def test_open_attaches_four_programs_and_close_detaches_them(kernel_ready: Path) -> None:
    before = {prog_id for _type, prog_id, _name in our_programs(cgroup2_mount())}  # other live datapaths
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    try:
        ours = [(t.name, name) for t, prog_id, name in our_programs(cgroup2_mount()) if prog_id not in before]
        assert sorted(ours) == [("INET_EGRESS", "chadt_egress"), ("INET_INGRESS", "chadt_ingress"),
                                ("INET_SOCK_CREATE", "chadt_sock"), ("SOCK_OPS", "chadt_sockops")]
    finally:
        datapath.close()
    assert {prog_id for _type, prog_id, _name in our_programs(cgroup2_mount())} <= before


def test_counts_a_stream_at_its_socket(pair: NetnsPair, kernel_ready: Path) -> None:
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    stream = start_stream(pair, 5301, "up", seconds=2)
    try:
        received = stream.wait()
        samples = [s for s in datapath.read_traffic() if s.owner_tgid == stream.app_pid]
        counted = sum(s.tx_bytes for s in samples)
        # counters are L3 wire bytes: payload plus TCP/IP headers (52 per 1448 at MTU 1500)
        assert received > 10_000_000
        assert 1.0 <= counted / received < 1.06
        # keyed by the device's own namespace: its ifindex means nothing elsewhere
        assert {(s.netns_cookie, s.ifindex) for s in samples} == {netns_device(pair.host_ns, pair.host_if)}
        # an exited owner's counters are removed, handing back their final values
        retired = datapath.retire_owners({stream.app_pid})
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
        assert datapath.adopt_open_sockets([stream.app_pid]) == 1
        time.sleep(0.5)
        assert any(s.owner_tgid == stream.app_pid and s.tx_bytes > 0 for s in datapath.read_traffic())
    finally:
        stream.stop()
        datapath.close()


KILLED_HELPER = textwrap.dedent(
    """
    import os, signal
    from pathlib import Path
    from chadthrottle.helper.kernel.datapath import Datapath
    Datapath(cache_dir=Path({cache!r})).open()
    print("attached", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_programs_of_a_killed_helper_are_found_and_detached(kernel_ready: Path) -> None:
    result = subprocess.run([sys.executable, "-c", KILLED_HELPER.format(cache=str(kernel_ready))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == -signal.SIGKILL and "attached" in result.stdout
    with holding_machine_lock():  # no live datapath: every program of ours is a leftover
        try:
            assert len(_our_programs()) == 4  # legacy attach: they outlive the process
        finally:
            removed = remove_leftover_programs(cgroup2_mount())
    assert removed == 4
    assert _our_programs() == []


def test_a_second_live_datapath_keeps_its_programs(kernel_ready: Path) -> None:
    before = len(our_programs(cgroup2_mount()))  # other live datapaths
    first = Datapath(cache_dir=kernel_ready)
    first.open()
    try:
        second = Datapath(cache_dir=kernel_ready)
        second.open()  # its leftover sweep must spare the first one's programs
        try:
            assert len(our_programs(cgroup2_mount())) == before + 8
        finally:
            second.close()
        assert len(our_programs(cgroup2_mount())) == before + 4
    finally:
        first.close()


def _pacing_cap(sock: socket.socket) -> int:
    (value,) = struct.unpack("=I", sock.getsockopt(socket.SOL_SOCKET, 47, 4))  # SO_MAX_PACING_RATE
    return int(value)


UNCAPPED = 0xFFFFFFFF


def test_a_slots_tcp_sockets_are_paced_open_new_and_accepted_and_uncapped_again(kernel_ready: Path) -> None:
    """Over loopback, with this test process as the limited application."""
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    listener = socket.create_server(("127.0.0.1", 0))
    sockets = [listener]
    try:
        before = socket.create_connection(listener.getsockname())  # open before the limit
        sockets += [before, listener.accept()[0]]
        assert _pacing_cap(before) == UNCAPPED
        datapath.set_slot_pacing(9, 500_000)
        datapath.set_process_slot(os.getpid(), 9)
        assert _pacing_cap(before) == 500_000  # from user space, through a duplicate
        after = socket.create_connection(listener.getsockname())  # chadt_sockops at connect
        accepted = listener.accept()[0]  # its tag was cloned from the listener's
        sockets += [after, accepted]
        assert _pacing_cap(after) == _pacing_cap(accepted) == 500_000
        datapath.set_slot_pacing(9, 800_000)  # a new rate reaches the open sockets
        assert [_pacing_cap(s) for s in (before, after, accepted)] == [800_000] * 3
        datapath.set_process_slot(os.getpid(), 0)  # no longer limited: uncapped
        assert [_pacing_cap(s) for s in (before, after, accepted)] == [UNCAPPED] * 3
        datapath.set_process_slot(os.getpid(), 9)
        datapath.close()  # a stopping helper uncaps what it capped
        assert [_pacing_cap(s) for s in (before, after, accepted)] == [UNCAPPED] * 3
    finally:
        for sock in sockets:
            sock.close()
        datapath.close()
