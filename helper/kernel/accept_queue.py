"""Connections waiting in a listener's accept queue when a process is (un)tagged.

The helper tags a process's open sockets through its descriptors
(socket_tagging). A TCP connection the kernel made from one of its listeners
and that waits to be accepted is in no descriptor table: the kernel copied
the listener's tag to it when it made it (BPF_F_CLONE), the old one, and it
would keep it for its whole life once accepted. So a walk notes the
listeners it met and the inodes it tagged (WalkSeen), and sock_diag lists the
connections on those listeners' addresses (waiting_children): those without
an inode (waiting) or with one the walk did not see (accepted meanwhile)
are pending, by socket cookie. At the next ticks a dump says which pending
ones now have an inode (accepted): the process is walked again then, and
only then (docs/backends.md, "Not reached"). Nothing pending: no dump, no walk.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import struct
from dataclasses import dataclass, field

from chadthrottle.helper.kernel.layout import SocketCaps
from chadthrottle.helper.kernel.namespaces import in_netns
from chadthrottle.helper.kernel.socket_diag import dump_tcp_sockets

log = logging.getLogger("chadthrottle.kernel.accept_queue")

SO_ACCEPTCONN = 30
SIOCGSKNS = 0x894C  # a socket's network namespace, as a new descriptor
# the states a connection waits to be accepted in: TCP_ESTABLISHED, TCP_CLOSE_WAIT
WAITING_STATES = (1 << 1) | (1 << 8)
# inet_diag_msg: family, state, timer, retrans, then inet_diag_sockid: sport
# and dport (big-endian), src[16], dst[16], if, cookie[2]; the inode at 68
_PORT, _SRC, _COOKIE, _INODE = struct.Struct("!H"), 8, struct.Struct("=II"), struct.Struct("=I")
_PORT_AT, _COOKIE_AT, _INODE_AT = 4, 44, 68


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket's local address, as inet_diag's sockid has it."""

    family: int
    address: bytes  # 16 bytes; IPv4 in the first 4; all zero: any address
    port: int
    netns: int  # inode of its network namespace

    def made(self, family: int, address: bytes, port: int) -> bool:
        """Whether a connection with this local address may come from it."""
        any_address = not self.address.strip(b"\0")
        return (family, port) == (self.family, self.port) and (
            any_address or address == self.address
        )


@dataclass
class WalkSeen:
    """What one walk of a process's descriptors met: inet socket inodes, TCP listeners."""

    inodes: set[int] = field(default_factory=set)
    listeners: set[Listener] = field(default_factory=set)

    def note(self, sock_fd: int, kind: int) -> None:
        """Note a socket the walk tagged (sock_fd: the helper's duplicate)."""
        try:
            self.inodes.add(os.fstat(sock_fd).st_ino)
        except OSError:
            return
        if kind == socket.SOCK_STREAM:
            listener = _listener(sock_fd)
            if listener is not None:
                self.listeners.add(listener)


def _listener(sock_fd: int) -> Listener | None:
    sock = socket.socket(fileno=sock_fd)
    try:
        if not sock.getsockopt(socket.SOL_SOCKET, SO_ACCEPTCONN):
            return None
        host, port = sock.getsockname()[:2]
        packed = socket.inet_pton(sock.family, host.split("%")[0]).ljust(16, b"\0")
        namespace = fcntl.ioctl(sock_fd, SIOCGSKNS)
        try:
            netns = os.fstat(namespace).st_ino
        finally:
            os.close(namespace)
        return Listener(int(sock.family), packed, int(port), netns)
    except OSError:
        return None
    finally:
        sock.detach()


def waiting_children(tgid: int, listeners: frozenset[Listener]) -> dict[int, int] | None:
    """socket cookie -> inode (0: not accepted yet) of each connection in an
    accept-queue state on the local address of one of tgid's listeners, in
    tgid's network namespace (listeners of another are left out); None if
    the namespace could not be read."""
    try:
        netns = os.stat(f"/proc/{tgid}/ns/net").st_ino
        own = os.stat("/proc/thread-self/ns/net").st_ino == netns
    except OSError:
        return None
    wanted = frozenset(listener for listener in listeners if listener.netns == netns)
    if not wanted:
        return {}

    def parse(payload: bytes) -> tuple[int | None, int | None]:
        family, port = payload[0], _PORT.unpack_from(payload, _PORT_AT)[0]
        if not any(one.made(family, payload[_SRC : _SRC + 16], port) for one in wanted):
            return None, None
        low, high = _COOKIE.unpack_from(payload, _COOKIE_AT)
        return low | high << 32, _INODE.unpack_from(payload, _INODE_AT)[0]

    def dump() -> dict[int, int]:
        return dump_tcp_sockets(parse, WAITING_STATES)

    try:
        return dump() if own else in_netns(f"/proc/{tgid}/ns/net", dump)
    except OSError:
        return None


def pending_after_walk(children: dict[int, int], seen: WalkSeen) -> set[int]:
    """The cookies a walk did not reach: waiting (no inode), or accepted
    after the walk read the descriptor table (an inode it did not see)."""
    return {cookie for cookie, inode in children.items() if not inode or inode not in seen.inodes}


def accepted_since(children: dict[int, int] | None, pending: set[int]) -> tuple[set[int], bool]:
    """(the pending cookies still waiting, whether one got an inode: the
    process must be walked again). Closed ones drop out; so do all when the
    dump cannot be read (the process is gone, or its namespace): no walk."""
    if children is None:
        return set(), False
    waiting = {cookie for cookie in pending if children.get(cookie) == 0}
    return waiting, any(children.get(cookie) for cookie in pending)


@dataclass
class _Pending:
    listeners: frozenset[Listener]
    cookies: set[int]
    start: int  # the process walked (read_start)
    was: SocketCaps  # the caps its sockets may carry from before the walk


class AcceptQueues:
    """tgid -> the connections its last walk did not reach, while any."""

    def __init__(self) -> None:
        self._pending: dict[int, _Pending] = {}
        # walks that met listeners, not yet looked at (due): a change's walks
        # are looked at together, one dump per set of listeners
        self._walked: dict[int, tuple[int, WalkSeen, SocketCaps]] = {}

    def after_walk(self, tgid: int, start: int, seen: WalkSeen, was: SocketCaps) -> None:
        """A walk of tgid's descriptors ended (its listeners carry their new
        tag); what it did not reach is noted at the next due()."""
        self._pending.pop(tgid, None)
        self._walked.pop(tgid, None)
        if seen.listeners:
            self._walked[tgid] = (start, seen, was)

    def forget(self, tgid: int) -> None:
        self._pending.pop(tgid, None)
        self._walked.pop(tgid, None)

    def pending(self) -> dict[int, int]:
        """tgid -> how many of its connections wait to be reached."""
        return {tgid: len(pending.cookies) for tgid, pending in self._pending.items()}

    def due(self) -> list[tuple[int, int, SocketCaps]]:
        """(tgid, its start, was) of each process to walk again now: a
        connection pending since its last walk has an inode (it was accepted).
        One dump per set of listeners (the workers of a server that share
        theirs share it), for the walks since the last call and what is
        pending alike; none when neither has any. A connection one of those
        walks reached (a worker's) is reached for all of them."""
        dumps: dict[frozenset[Listener], dict[int, int] | None] = {}
        reached = WalkSeen()
        for _, seen, _ in self._walked.values():
            reached.inodes |= seen.inodes
        for tgid, (start, seen, was) in self._walked.items():
            listeners = frozenset(seen.listeners)
            if listeners not in dumps:
                dumps[listeners] = waiting_children(tgid, listeners)
            cookies = pending_after_walk(dumps[listeners] or {}, reached)
            if cookies:
                log.debug("pid %d: %d connections its walk did not reach", tgid, len(cookies))
                self._pending[tgid] = _Pending(listeners, cookies, start, was)
        self._walked.clear()
        walks = []
        for tgid, pending in list(self._pending.items()):
            if pending.listeners not in dumps:
                dumps[pending.listeners] = waiting_children(tgid, pending.listeners)
            children = dumps[pending.listeners]
            pending.cookies, accepted = accepted_since(children, pending.cookies)
            if accepted:
                walks.append((tgid, pending.start, pending.was))
            if not pending.cookies:
                del self._pending[tgid]
        return walks
