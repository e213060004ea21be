"""A caps change (a new rate: set_slot_caps later) walks every process the
slot tags, as of the datapath's record: a process that exited since, its pid
handed out again before the engine's next tick forgot it, must keep the new
process's sockets uncapped (review33b: the walk was queued with the start of
whatever ran under the pid at the change)."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

from chadthrottle.helper.identity.processes import read_start
from chadthrottle.helper.kernel.bpf_syscalls import pidfd_getfd
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.layout import SocketCaps

from tests.helper.kernel.test_process_keys import SLOT
from tests.support.reused_pids import start_at, stop

TCP_MAKER = (
    "import socket, time\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
    "print(s.fileno(), flush=True)\n"
    "time.sleep(600)\n"
)
SO_MAX_PACING_RATE = 47


def _pacing(pid: int, fd: int) -> int:
    pidfd = os.pidfd_open(pid)
    try:
        with socket.socket(fileno=pidfd_getfd(pidfd, fd)) as sock:
            return int(
                struct.unpack("Q", sock.getsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, 8))[0]
            )
    finally:
        os.close(pidfd)


def test_a_caps_change_leaves_alone_the_sockets_of_a_process_that_got_a_tagged_pid(
    kernel_ready: Path,
) -> None:
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    maker = [sys.executable, "-c", TCP_MAKER]
    first = subprocess.Popen(maker, stdout=subprocess.PIPE, text=True)
    second: subprocess.Popen[str] | None = None
    try:
        assert first.stdout is not None
        fd = int(first.stdout.readline())
        pid = first.pid
        datapath.set_process_slot(pid, SLOT, read_start(pid) or 0)
        first.kill()
        first.wait()
        second = start_at(pid, maker, stdout=subprocess.PIPE, text=True)  # type: ignore[assignment]
        assert second is not None and second.stdout is not None
        assert int(second.stdout.readline()) == fd
        uncapped = _pacing(pid, fd)
        datapath.set_slot_caps(SLOT, SocketCaps(pacing_bps=1_000_000), later=True)
        datapath.walk_pending()
        assert _pacing(pid, fd) == uncapped, "another process's socket got the slot's pacing"
    finally:
        stop(first, second)
        datapath.close()
