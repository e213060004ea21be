"""The BPF datapath on the real kernel: attaches at the cgroup root, counts a
real stream at the socket, tags open sockets, and leaves nothing behind."""

from __future__ import annotations

import signal
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


def test_open_attaches_three_programs_and_close_detaches_them(kernel_ready: Path) -> None:
    before = {prog_id for _type, prog_id, _name in our_programs(cgroup2_mount())}  # other live datapaths
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    try:
        ours = [(t.name, name) for t, prog_id, name in our_programs(cgroup2_mount()) if prog_id not in before]
        assert sorted(ours) == [("INET_EGRESS", "chadt_egress"), ("INET_INGRESS", "chadt_ingress"),
                                ("INET_SOCK_CREATE", "chadt_sock")]
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
            assert len(_our_programs()) == 3  # legacy attach: they outlive the process
        finally:
            removed = remove_leftover_programs(cgroup2_mount())
    assert removed == 3
    assert _our_programs() == []


def test_a_second_live_datapath_keeps_its_programs(kernel_ready: Path) -> None:
    before = len(our_programs(cgroup2_mount()))  # other live datapaths
    first = Datapath(cache_dir=kernel_ready)
    first.open()
    try:
        second = Datapath(cache_dir=kernel_ready)
        second.open()  # its leftover sweep must spare the first one's programs
        try:
            assert len(our_programs(cgroup2_mount())) == before + 6
        finally:
            second.close()
        assert len(our_programs(cgroup2_mount())) == before + 3
    finally:
        first.close()
