"""The last two walks a call made whole (rights31): a user's rule taking over
a process an administrator's rule held gave back, in the call, every socket
of the old slot the user may not take (made by another); and the windows
clamped ahead of a refused change were put back in the call. A user chooses
how many descriptors their processes hold, so both now wait for
walk_pending like every other walk (pending_walks.py, bounded per call):
nothing of the table is read in the call, and the old slot drains (no other
rule gets it) until the give-back ends."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from chadthrottle.helper.identity.processes import read_start
from chadthrottle.helper.kernel.bpf_syscalls import pidfd_getfd
from chadthrottle.helper.kernel.datapath import Datapath

from tests.helper.kernel.test_slot_passed_on import CALLS, _slot_of

ADMIN_SLOT, USER_SLOT = 7, 8
USER = 61003
# holds a socket root made (inherited: fd in argv) and makes its own, then waits
HOLDER = (
    "import socket, sys\n"
    "port = int(sys.argv[2])\n"
    "own = socket.create_connection(('127.0.0.1', port))\n"
    "print(own.fileno(), flush=True)\n"
    "sys.stdin.readline()\n"
)


def _walk_until_done(datapath: Datapath) -> int:
    for calls in range(CALLS):
        if not datapath.walk_pending():
            return calls
    raise AssertionError(f"{CALLS} calls and walks still wait: {datapath.pending_walks()}")


def _window_clamp(pid: int, fd: int) -> int:
    pidfd = os.pidfd_open(pid)
    try:
        with socket.socket(fileno=pidfd_getfd(pidfd, fd)) as sock:
            return int(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP))
    finally:
        os.close(pidfd)


def test_a_users_rule_taking_over_an_administrators_process_gives_back_by_walks(
    datapath: Datapath, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    roots = socket.create_connection(
        ("127.0.0.1", port)
    )  # root made it; the user's process holds it
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(roots.fileno()), str(port)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              user=USER, group=USER, pass_fds=(roots.fileno(),))  # fmt: skip
    try:
        assert holder.stdout is not None
        own = int(holder.stdout.readline())
        start = read_start(holder.pid)
        assert start is not None
        datapath.set_process_slot(holder.pid, ADMIN_SLOT, start)  # an administrator's rule: both
        assert _slot_of(datapath, holder.pid, roots.fileno()) == ADMIN_SLOT
        assert _slot_of(datapath, holder.pid, own) == ADMIN_SLOT

        datapath.set_slot_owners({USER_SLOT: USER})
        datapath.set_process_slot(holder.pid, USER_SLOT, start, later=True)  # the user's takes over
        # nothing of its table read in the call: root's socket still carries the old slot
        assert _slot_of(datapath, holder.pid, roots.fileno()) == ADMIN_SLOT, "given back whole"
        assert ADMIN_SLOT in datapath.draining_slots()
        _walk_until_done(datapath)
        assert _slot_of(datapath, holder.pid, own) == USER_SLOT
        assert _slot_of(datapath, holder.pid, roots.fileno()) == 0  # root's: not the user's rule's
        assert ADMIN_SLOT not in datapath.draining_slots()
    finally:
        holder.kill()
        holder.wait()
        roots.close()


def test_windows_clamped_ahead_of_a_refused_change_are_put_back_by_walks(
    datapath: Datapath, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, "-1", str(port)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None
        own = int(holder.stdout.readline())
        unclamped = _window_clamp(holder.pid, own)
        datapath.clamp_windows(holder.pid, 1_000_000)  # ahead of a change then refused
        clamped = _window_clamp(holder.pid, own)
        assert clamped < unclamped
        datapath.unclamp_windows(holder.pid, 0)  # its slot (none) holds no window
        assert _window_clamp(holder.pid, own) == clamped, "put back whole, in the call"
        assert holder.pid in datapath.pending_walks()
        _walk_until_done(datapath)
        assert _window_clamp(holder.pid, own) > clamped
    finally:
        holder.kill()
        holder.wait()
