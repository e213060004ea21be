"""A slot of a user's rule takes only the open sockets that user's processes
made (Datapath.set_slot_owners): a socket root made and passed to the user's
process is left as it is, and one an administrator's slot took before is
given back (untagged, uncapped) when the process moves to the user's slot.
Real datapath, a real process of uid 65534 holding root's socket."""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.helper.kernel import bpf_maps
from chadthrottle.helper.kernel.bpf_syscalls import pidfd_getfd
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.layout import SocketCaps, SockTag
from chadthrottle.helper.kernel.socket_tagging import SO_MAX_PACING_RATE, UNCAPPED_PACING

from tests.support.requirements import require_program

NOBODY = 65534
ADMIN_SLOT, USER_SLOT = 9, 10
# The user's process: a socket of its own, and root's (inherited, fd 3).
HOLDER = (
    "import socket, time; own = socket.socket(); print(own.fileno(), flush=True); time.sleep(60)"
)


def _pacing(sock: socket.socket) -> int:
    return int(struct.unpack("=I", sock.getsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, 4))[0])


def _slot(datapath: Datapath, sock: socket.socket) -> int:
    tag = SockTag()
    found = bpf_maps.lookup(datapath._maps["socket_tags"].fd, ctypes.c_int(sock.fileno()), tag)
    return tag.app_slot if found else 0


@pytest.fixture
def connected() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A TCP connection on loopback: root's client socket and the server side."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname()[:2])
        server = listener.accept()[0]
    try:
        yield client, server
    finally:
        client.close()
        server.close()


def test_a_users_slot_leaves_roots_socket_and_takes_back_what_an_admin_slot_took(
    kernel_ready: Path, connected: tuple[socket.socket, socket.socket]
) -> None:
    roots, _server = connected
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    setpriv = [
        require_program("setpriv"),
        f"--reuid={NOBODY}",
        f"--regid={NOBODY}",
        "--clear-groups",
    ]
    holder = subprocess.Popen([*setpriv, sys.executable, "-c", HOLDER], pass_fds=(roots.fileno(),),
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    pidfd = -1
    try:
        assert holder.stdout is not None
        pidfd = os.pidfd_open(holder.pid)
        own = socket.socket(fileno=pidfd_getfd(pidfd, int(holder.stdout.readline())))
        datapath.set_slot_caps(ADMIN_SLOT, SocketCaps(pacing_bps=500_000))
        datapath.set_slot_caps(USER_SLOT, SocketCaps(pacing_bps=700_000))

        # an administrator's rule takes every socket the process holds
        datapath.set_process_slot(holder.pid, ADMIN_SLOT)
        assert (_slot(datapath, roots), _slot(datapath, own)) == (ADMIN_SLOT, ADMIN_SLOT)
        assert _pacing(roots) != UNCAPPED_PACING

        # the user's rule in its place: root's socket given back, the user's own taken
        datapath.set_slot_owners({USER_SLOT: NOBODY})
        datapath.set_process_slot(holder.pid, USER_SLOT)
        assert (_slot(datapath, roots), _pacing(roots)) == (0, UNCAPPED_PACING)
        assert _slot(datapath, own) == USER_SLOT and _pacing(own) != UNCAPPED_PACING

        # untagged and tagged again by the user's rule: root's socket stays untouched
        datapath.set_process_slot(holder.pid, 0)
        datapath.set_process_slot(holder.pid, USER_SLOT)
        assert (_slot(datapath, roots), _pacing(roots)) == (0, UNCAPPED_PACING)
        own.close()
    finally:
        if pidfd >= 0:
            os.close(pidfd)
        holder.kill()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()
        datapath.close()
