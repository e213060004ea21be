"""A socket of a let-go slot in a network namespace no process is in (kept
alive by a bind mount, `ip netns add`, or by a thread of a process whose
main thread is elsewhere) was missed by the vet's dump of the tags, which
entered only the namespaces of /proc/PID/ns/net: with that socket in flight
(in no table, so no sweep finds it) the slot was let go while the socket
carried it (review34b R3, rule 2). Now the dump also enters the nsfs bind
mounts and the threads' namespaces (socket_diag.network_namespaces)."""

from __future__ import annotations

import ctypes
import os
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from chadthrottle.helper.identity.processes import read_start
from chadthrottle.helper.kernel.datapath import VET_AGAIN_S, Datapath
from chadthrottle.helper.kernel.namespaces import CLONE_NEWNET, in_netns
from chadthrottle.helper.kernel.socket_diag import network_namespaces

from tests.helper.kernel.test_process_keys import SLOT
from tests.helper.kernel.test_slot_passed_on import USER_A
from tests.support.netns import MADE_NAMESPACES, _add_netns
from tests.support.waiting import eventually

# A (in the namespace): connects once told the port (tagged by then), sends
# the connection over the unix socket it was given (to the test's end, never
# received: in flight) and exits.
SENDER = (
    "import array, socket, sys\n"
    "chan = socket.socket(fileno=int(sys.argv[1]))\n"
    "port = int(sys.stdin.readline())\n"
    "tcp = socket.create_connection(('127.0.0.1', port))\n"
    "chan.sendmsg([b'x'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', [tcp.fileno()]))])\n"
    "print('sent', flush=True)\n"
)


@contextmanager
def _bound() -> Iterator[str]:
    """A namespace of a unique name held by its bind mount only (removed after)."""
    name = f"ctvet-{secrets.token_hex(3)}"
    _add_netns(name)
    try:
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        MADE_NAMESPACES.discard(name)


@contextmanager
def _threaded() -> Iterator[str]:
    """A namespace held by a thread of this process only (unshare moves it alone)."""
    made, done = threading.Event(), threading.Event()
    tid: list[int] = []

    def hold() -> None:
        if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET) == 0:
            tid.append(threading.get_native_id())
        made.set()
        done.wait()

    thread = threading.Thread(target=hold, name="netns-holder", daemon=True)
    thread.start()
    try:
        assert made.wait(10) and tid, "unshare(CLONE_NEWNET) failed"
        yield f"/proc/{os.getpid()}/task/{tid[0]}/ns/net"
    finally:
        done.set()
        thread.join(10)


def _namespace_at(path: str) -> str:
    """net:[inode] of the namespace at path (a bind mount or a /proc link)."""
    return f"net:[{os.stat(path).st_ino}]"


def _in_no_process(held: str) -> bool:
    """No process's (main thread's) namespace is held."""
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and os.readlink(f"/proc/{name}/ns/net") == held:
                return False
        except OSError:
            continue
    return True


def _found() -> set[str]:
    """The namespaces network_namespaces finds (its fds closed)."""
    names = set()
    for fd in network_namespaces():
        if fd is not None:
            names.add(f"net:[{os.fstat(fd).st_ino}]")
            os.close(fd)
    return names


def _listener() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server


@pytest.mark.parametrize("holder", [_bound, _threaded], ids=["bind_mount", "thread"])
def test_a_socket_in_a_namespace_no_process_is_in_keeps_its_slot(
    datapath: Datapath, holder: object
) -> None:
    with holder() as path:  # type: ignore[operator]
        subprocess.run(["nsenter", f"--net={path}", "ip", "link", "set", "lo", "up"], check=True)
        server = in_netns(path, _listener)
        assert server is not None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sender = subprocess.Popen(
                ["nsenter", f"--net={path}", "-S", str(USER_A), "-G", str(USER_A),
                 sys.executable, "-c", SENDER, str(theirs.fileno())],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                pass_fds=(theirs.fileno(),))  # fmt: skip
            theirs.close()
            assert sender.stdin and sender.stdout
            start = read_start(sender.pid)
            assert start is not None
            datapath.set_slot_owners({SLOT: USER_A})
            datapath.set_process_slot(sender.pid, SLOT, start)
            sender.stdin.write(f"{server.getsockname()[1]}\n")
            sender.stdin.flush()
            assert sender.stdout.readline().strip() == "sent"
            assert sender.wait(10) == 0
            datapath.forget_process(sender.pid)  # A exited (the engine's word on it)
            datapath.set_slot_owners({})  # A's rule cleared
            held = _namespace_at(path)
            assert _in_no_process(held), "a process is in the namespace: not the case tested"
            assert held in _found()

            def known_in_flight() -> bool:
                assert SLOT not in datapath.release_ready({SLOT}), "released while carried"
                datapath.walk_pending()
                return SLOT in datapath.in_flight_slots()

            # the vet's sweep (nothing in a table), a dump that finds it, its sweep
            assert eventually(known_in_flight, 20 * VET_AGAIN_S, interval_s=0.05)
        finally:
            ours.close()
            server.close()
