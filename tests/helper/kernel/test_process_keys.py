"""A pid the kernel hands out again, on the real datapath: the counters and
the announcements are the process's (its pid and its start time), so a new
process under an exited one's pid counts apart from the first byte, and is
announced though the helper never told the datapath the old one exited; nor
does it get the old process's limit slot (slot_by_tgid) for its sockets.
The pid is reused for real (ns_last_pid)."""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from chadthrottle.helper.identity.processes import read_start
from chadthrottle.helper.kernel import bpf_maps
from chadthrottle.helper.kernel.bpf_syscalls import pidfd_getfd
from chadthrottle.helper.kernel.datapath import Datapath, TrafficSample
from chadthrottle.helper.kernel.layout import SockTag

from tests.support.reused_pids import start_at, stop

# Sends `count` datagrams of 512 bytes to the port given, says so, then waits to be killed.
SENDER = (
    "import socket, sys, time\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "for _ in range(int(sys.argv[2])): s.sendto(b'x' * 512, ('127.0.0.1', int(sys.argv[1])))\n"
    "print('sent', flush=True)\n"
    "time.sleep(600)\n"
)
DATAGRAM_L3 = 512 + 8 + 20  # UDP and IPv4 headers


def _sent_by(datapath: Datapath, pid: int) -> dict[int, int]:
    """owner_start -> bytes sent, of the owners under pid."""
    sent: dict[int, int] = {}
    for sample in datapath.read_traffic():
        if sample.owner_tgid == pid and sample.tx_bytes:
            sent[sample.owner_start] = sent.get(sample.owner_start, 0) + sample.tx_bytes
    return sent


def _until(condition: Callable[[], bool], what: Callable[[], str], datapath: Datapath) -> None:
    """Wait for condition (the owners' announcements delivered meanwhile); what: says what was not."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what()
        datapath.poll_new_owners(50)


def test_a_new_process_under_a_reused_pid_counts_apart_and_is_announced(
    kernel_ready: Path,
) -> None:
    announced: list[tuple[int, int]] = []
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    port = str(receiver.getsockname()[1])
    first = subprocess.Popen([sys.executable, "-c", SENDER, port, "1"], stdout=subprocess.PIPE)
    second: subprocess.Popen[bytes] | None = None
    try:
        datapath.watch_new_owners(lambda tgid, cgroup, start: announced.append((tgid, start)))
        pid = first.pid
        assert first.stdout is not None and first.stdout.readline() == b"sent\n"
        old_start = read_start(pid)
        assert old_start
        _until(lambda: _sent_by(datapath, pid) == {old_start: DATAGRAM_L3},
               lambda: f"the first process's datagram alone: {_sent_by(datapath, pid)}", datapath)  # fmt: skip
        _until(lambda: (pid, old_start) in announced,
               lambda: f"the first process announced: {announced}", datapath)  # fmt: skip
        first.kill()
        first.wait()

        # under the same pid, nothing retired or forgotten by the helper meanwhile
        second = start_at(pid, [sys.executable, "-c", SENDER, port, "2"])
        new_start = read_start(pid)
        assert new_start and new_start != old_start
        _until(lambda: _sent_by(datapath, pid) == {old_start: DATAGRAM_L3, new_start: 2 * DATAGRAM_L3},
               lambda: f"each process's own bytes: {_sent_by(datapath, pid)}", datapath)  # fmt: skip
        _until(lambda: (pid, new_start) in announced,
               lambda: f"the second process announced: {announced}", datapath)  # fmt: skip

        ours = [
            s for s in datapath.read_traffic() if s.owner_tgid == pid and s.owner_start == old_start
        ]
        retired: list[TrafficSample] = datapath.retire_owners(ours)
        assert sum(s.tx_bytes for s in retired) == DATAGRAM_L3
        assert _sent_by(datapath, pid) == {new_start: 2 * DATAGRAM_L3}, (
            "the new process's counters stay"
        )
    finally:
        stop(first, second)
        receiver.close()
        datapath.close()


# Makes a UDP socket for each line read (or one at once with "now"), printing its fd.
SOCKET_MAKER = (
    "import socket, sys, time\n"
    "made = []\n"
    "for line in ([''] if sys.argv[1:] == ['now'] else sys.stdin):\n"
    "    made.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))\n"
    "    print(made[-1].fileno(), flush=True)\n"
    "time.sleep(600)\n"
)
SLOT = 7


def _slot_of(datapath: Datapath, pid: int, fd: int) -> int:
    """The limit slot chadt_sock gave a process's socket."""
    pidfd = os.pidfd_open(pid)
    try:
        with socket.socket(fileno=pidfd_getfd(pidfd, fd)) as sock:
            tag = SockTag()
            assert bpf_maps.lookup(
                datapath._maps["socket_tags"].fd, ctypes.c_int(sock.fileno()), tag
            )
            return int(tag.app_slot)
    finally:
        os.close(pidfd)


def test_a_new_process_under_a_reused_pid_does_not_get_the_old_ones_slot(
    kernel_ready: Path,
) -> None:
    """The old process was limited (its pid's slot in slot_by_tgid); the new one
    makes a socket before the helper's next tick could untag the pid. Before,
    its socket got the old process's slot: its traffic limited, or blocked, as
    another application's until then."""
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    first = subprocess.Popen([sys.executable, "-c", SOCKET_MAKER], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    second: subprocess.Popen[bytes] | None = None
    try:
        assert first.stdin is not None and first.stdout is not None
        datapath.set_process_slot(first.pid, SLOT)
        first.stdin.write("\n")
        first.stdin.flush()
        assert _slot_of(datapath, first.pid, int(first.stdout.readline())) == SLOT
        first.kill()
        first.wait()

        second = start_at(
            first.pid, [sys.executable, "-c", SOCKET_MAKER, "now"], stdout=subprocess.PIPE
        )
        assert second.stdout is not None
        assert _slot_of(datapath, second.pid, int(second.stdout.readline())) == 0
    finally:
        stop(first, second)
        datapath.close()
