"""A user's rule never takes over a socket root made and passed on.

A socket is shared by every process holding a descriptor of it (a daemon
that forks a worker and drops to a user's uid, one that hands a connection
over a unix socket). The helper tags and caps the sockets a limited process
holds through pidfd_getfd; a user's own rule on a process of theirs that
holds root's socket limited root's traffic on it to the user's limit, and
capped its pacing (docs/helper.md, "Nothing over another user's processes").
Real helper, real polkitd, a real second uid, real traffic."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.helper.kernel.bpf_syscalls import pidfd_getfd
from chadthrottle.helper.kernel.socket_tagging import SO_MAX_PACING_RATE, UNCAPPED_PACING

from tests.e2e.conftest import MiB, Stack
from tests.support.netns import Stream, nsenter_argv, start_stream
from tests.support.other_users import ClientAs, client_as, granted
from tests.support.requirements import require_program
from tests.support.waiting import eventually

NOBODY = 65534
FAST_BPS = 20 * MiB  # far above the user's limit; the veth does several hundred MiB/s


@pytest.fixture
def nobody(stack: Stack) -> Iterator[ClientAs]:
    with client_as(stack.bus_address, NOBODY) as client, granted(client):
        yield client


def _inet_socket_fd(pid: int) -> int:
    """The fd number of the one TCP socket a traffic.py source holds."""
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        if os.readlink(entry).startswith("socket:["):
            return int(entry.name)
    raise AssertionError(f"pid {pid} holds no socket")


def _runs(pid: int, program: str, uid: int) -> bool:
    """Whether pid runs program as uid (setpriv has exec'd it)."""
    try:
        return (
            os.readlink(f"/proc/{pid}/exe") == os.path.realpath(program)
            and os.stat(f"/proc/{pid}").st_uid == uid
        )
    except OSError:
        return False


def _pacing_cap(sock: socket.socket) -> int:
    return int(struct.unpack("=I", sock.getsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, 4))[0])


def test_a_users_rule_leaves_roots_socket_that_their_process_holds(
    stack: Stack, nobody: ClientAs
) -> None:
    stream: Stream = start_stream(stack.pair, 5830, "up")  # root's upload, root's socket
    holder = None
    pidfd = os.pidfd_open(stream.app_pid)
    try:
        borrowed = pidfd_getfd(pidfd, _inet_socket_fd(stream.app_pid))
        roots = socket.socket(fileno=borrowed)
        setpriv = [require_program("setpriv"), f"--reuid={NOBODY}", f"--regid={NOBODY}",
                   "--clear-groups"]  # fmt: skip
        # the user's process, holding root's socket as its own (a passed descriptor)
        # (a program of its own: the user's client runs Python)
        sleep = require_program("sleep")
        holder = subprocess.Popen(nsenter_argv(stack.pair.host_ns, [*setpriv, sleep, "60"]),
                                  pass_fds=(borrowed,))  # fmt: skip
        assert eventually(lambda: _runs(holder.pid, sleep, NOBODY), 5.0)
        assert eventually(lambda: stream.receiver.rate_bps(0.5) > FAST_BPS, 5.0)

        answer = nobody.ask("set", f"pid:{holder.pid}", "up", MiB)
        assert "ok" in answer, answer
        stream.receiver.rate_bps(1.0)  # a limit lands within 0.3-0.5 s where it reaches
        rate = stream.receiver.rate_bps(2.0)
        print(f"root's upload: {rate / MiB:.1f} MiB/s")
        cap = _pacing_cap(roots)
        assert rate > FAST_BPS, (
            f"root's upload held to {rate / MiB:.2f} MiB/s by a user's rule on their process"
        )
        assert cap == UNCAPPED_PACING, f"root's socket paced at {cap} B/s by a user's rule"
        assert nobody.ask("clear", answer["ok"]) == {"ok": answer["ok"]}
        roots.close()
    finally:
        os.close(pidfd)
        if holder is not None:
            holder.kill()
            holder.wait(timeout=10)
        stream.stop()
