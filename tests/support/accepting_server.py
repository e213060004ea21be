"""A copy of this Python under its own name (its own application) that holds
a TCP listener open before any rule and accepts one connection per line it
reads: connections wait in its accept queue until the test says accept."""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from chadthrottle.helper.kernel import bpf_maps
from chadthrottle.helper.kernel.bpf_syscalls import pidfd_getfd
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.layout import SockTag

from tests.support.reused_pids import stop, wait_for_exec

# Listens, says its port, then accepts one connection per line read and says
# so; "fork": a child of it (the same program, the listener shared, as a
# server's workers) accepts one and says its pid and fd, and holds it until
# its parent exits (its end of a pipe then reads EOF).
SERVER = (
    "import os, socket, sys\n"
    "s = socket.create_server(('127.0.0.1', 0))\n"
    "print(s.getsockname()[1], flush=True)\n"
    "kept = []\n"
    "for line in sys.stdin:\n"
    "    if line.strip() == 'fork':\n"
    "        r, w = os.pipe()\n"
    "        if os.fork() == 0:\n"
    "            os.close(w)\n"
    "            c = s.accept()[0]\n"
    "            print('forked', os.getpid(), c.fileno(), flush=True)\n"
    "            os.read(r, 1)\n"
    "            os._exit(0)\n"
    "        os.close(r)\n"
    "        kept.append(w)\n"
    "        continue\n"
    "    kept.append(s.accept()[0])\n"
    "    print('accepted', kept[-1].fileno(), flush=True)\n"
)

Server = tuple[str, subprocess.Popen[str], int]  # (app id, process, port)


@contextlib.contextmanager
def accepting_server(
    prefix: str = "ct-gateaccept-", name: str = "ctgateaccept"
) -> Iterator[Server]:
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    program = directory / name
    shutil.copy(Path(sys.executable).resolve(), program)
    process = subprocess.Popen([str(program), "-c", SERVER], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_for_exec(process.pid, program)
        assert process.stdout is not None
        yield f"exe:{program}", process, int(process.stdout.readline())
    finally:
        stop(process)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()
        shutil.rmtree(directory)


def connect_queued(port: int) -> socket.socket:
    """A client connected to the server on 127.0.0.1:port, once the server's
    end exists in its accept queue (the kernel makes it from the handshake's
    last ACK, which a loaded machine may process after connect returns)."""
    before = _queued(port)
    client = socket.create_connection(("127.0.0.1", port))
    while _queued(port) <= before:
        time.sleep(0.01)
    return client


def _queued(port: int) -> int:
    """Established IPv4 TCP sockets on local port `port` with no inode (no
    descriptor: waiting to be accepted), from /proc/net/tcp."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    local = f":{port:04X}"
    return sum(1 for row in rows if row[1].endswith(local) and row[3] == "01" and row[9] == "0")


def accept(process: subprocess.Popen[str]) -> int:
    """Have the server accept one connection; its fd there."""
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("accept\n")
    process.stdin.flush()
    said, fd = process.stdout.readline().split()
    assert said == "accepted"
    return int(fd)


def fork_accepting(process: subprocess.Popen[str]) -> tuple[int, int, int]:
    """Have a forked child of the server accept one connection: (its pid,
    the connection's fd there, a pidfd of it, readable once it has exited:
    the caller closes it after waiting on it, the server stopped)."""
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("fork\n")
    process.stdin.flush()
    said, pid, fd = process.stdout.readline().split()
    assert said == "forked"
    return int(pid), int(fd), os.pidfd_open(int(pid))


def slot_of_fd(datapath: Datapath, pid: int, fd: int) -> int:
    """The slot the kernel's tag of pid's socket fd carries (0: none)."""
    return slot_of_socket(datapath._maps["socket_tags"].fd, pid, fd)


def slot_of_socket(tags_map_fd: int, pid: int, fd: int) -> int:
    """The slot pid's socket fd carries in the socket_tags map tags_map_fd (0: none)."""
    pidfd = os.pidfd_open(pid)
    try:
        local = pidfd_getfd(pidfd, fd)
    finally:
        os.close(pidfd)
    try:
        tag = SockTag()
        found = bpf_maps.lookup(tags_map_fd, ctypes.c_int(local), tag)
        return int(tag.app_slot) if found else 0
    finally:
        os.close(local)


def stop_with_workers(
    process: subprocess.Popen[str], clients: list[socket.socket], exits: list[int]
) -> None:
    """The clients closed and the server stopped; its forked workers then read
    EOF and exit: each one's exit descriptor (fork_accepting's) waited on."""
    for client in clients:
        client.close()
    stop(process)
    for exited in exits:
        select.select([exited], [], [])
        os.close(exited)
