"""Link events: the kernel's word that an interface came, went, came up or
changed its MTU, so the tc shapers follow it at once instead of at the next
tick (docs/backends.md, "Following interfaces").

One socket per network namespace, bound to RTMGRP_LINK in the namespace of
the thread that opens it (a socket keeps its namespace), and one thread that
reads them all. Messages are parsed and checked here, not trusted: a
malformed one is logged and ignored. Only what the shapers use counts as a
change (a device's presence, name, type, up flag, MTU); the helper's own IFBs,
loopback and carrier flaps are not. The thread only notes which namespaces
moved and wakes the engine; the engine's own thread does the work.

The sockets are raw netlink, as in htb_change.py, not pyroute2's IPRoute
bind()/get(): get() blocks one thread per socket, and its asyncio core
refuses a thread with a running loop; one selector over plain sockets needs
one thread for every namespace, and the few fields used are parsed here.

It fails open: if reading stops (an error this code did not foresee), the
thread logs it and ends, and the engine's once-a-second tick still follows
interfaces as it did before this existed.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("chadthrottle.kernel.link_events")

NETLINK_ROUTE = 0
RTMGRP_LINK = 0x1
RTM_NEWLINK, RTM_DELLINK = 16, 17
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN = 1, 2, 3, 4
IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO = 3, 4, 18
IFLA_INFO_KIND = 1
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
IFF_UP, IFF_LOOPBACK = 0x1, 0x8
MAX_MTU = 1 << 20  # far above any device's (64 KiB on loopback); more is not a real MTU
IFNAMSIZ = 16
RECEIVE_BUFFER_BYTES = 1 << 20  # a burst of thousands of events before an overrun
READ_BYTES = 1 << 16
# Datagrams read from one socket per wake of the selector: a namespace whose
# owner floods link events must not keep the thread from (un)watching others
# and from close(); the selector reports the socket again.
READS_PER_WAKE = 64
# How long close() waits for the reader; one still busy then (a wake held up)
# closes its sockets itself when it ends, never under itself.
CLOSE_WAIT_S = 5.0

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_ATTR = struct.Struct("=HH")


class BadLinkMessage(ValueError):
    """A link message that is not what the kernel sends: ignored."""


@dataclass(frozen=True)
class LinkEvent:
    """One RTM_NEWLINK (gone False) or RTM_DELLINK (gone True), as checked."""

    index: int
    name: str
    gone: bool
    up: bool
    loopback: bool
    arp_type: int
    mtu: int
    kind: str  # IFLA_INFO_KIND: "veth", "ifb", ...; "" when the kernel gave none


def _attributes(data: bytes) -> dict[int, bytes]:
    """Route attributes, each checked against the bytes there are."""
    found: dict[int, bytes] = {}
    offset = 0
    while offset + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size or offset + length > len(data):
            raise BadLinkMessage(f"an attribute of {length} bytes at {offset} of {len(data)}")
        found.setdefault(kind & NLA_TYPE_MASK, data[offset + _ATTR.size : offset + length])
        offset += (length + 3) & ~3
    return found


def _link_event(kind: int, body: bytes) -> LinkEvent:
    if len(body) < _IFINFO.size:
        raise BadLinkMessage(f"a link message of {len(body)} bytes, shorter than its header")
    _family, arp_type, index, flags, _change = _IFINFO.unpack_from(body)
    if index <= 0:
        raise BadLinkMessage(f"a link message for interface index {index}")
    attributes = _attributes(body[_IFINFO.size :])
    raw_name = attributes.get(IFLA_IFNAME, b"").split(b"\0", 1)[0]
    if not raw_name or len(raw_name) >= IFNAMSIZ:
        raise BadLinkMessage(f"interface {index}: a name of {len(raw_name)} bytes")
    mtu = 0
    if IFLA_MTU in attributes:
        if len(attributes[IFLA_MTU]) != 4:
            raise BadLinkMessage(f"interface {index}: an MTU of {len(attributes[IFLA_MTU])} bytes")
        (mtu,) = struct.unpack("=I", attributes[IFLA_MTU])
        if mtu > MAX_MTU:
            raise BadLinkMessage(f"interface {index}: MTU {mtu}")
    info = _attributes(attributes.get(IFLA_LINKINFO, b""))
    link_kind = info.get(IFLA_INFO_KIND, b"").split(b"\0", 1)[0]
    return LinkEvent(
        index=index,
        name=raw_name.decode("utf-8", "replace"),
        gone=kind == RTM_DELLINK,
        up=bool(flags & IFF_UP),
        loopback=bool(flags & IFF_LOOPBACK),
        arp_type=arp_type,
        mtu=mtu,
        kind=link_kind.decode("ascii", "replace")[:IFNAMSIZ],
    )


def parse(datagram: bytes) -> tuple[list[LinkEvent], list[str]]:
    """The link events of one datagram, and why the messages left out were
    bad. A datagram whose framing is broken yields what came before it."""
    events: list[LinkEvent] = []
    bad: list[str] = []
    offset = 0
    while offset + _HEADER.size <= len(datagram):
        length, kind, _flags, _seq, _pid = _HEADER.unpack_from(datagram, offset)
        if length < _HEADER.size or offset + length > len(datagram):
            bad.append(f"a message of {length} bytes at {offset} of {len(datagram)}")
            break
        if kind in (RTM_NEWLINK, RTM_DELLINK):
            try:
                events.append(_link_event(kind, datagram[offset + _HEADER.size : offset + length]))
            except BadLinkMessage as error:
                bad.append(str(error))
        elif kind not in (NLMSG_NOOP, NLMSG_DONE, NLMSG_ERROR, NLMSG_OVERRUN):
            bad.append(f"message type {kind}")
        offset += (length + 3) & ~3
    if 0 < len(datagram) - offset < _HEADER.size:
        bad.append(f"{len(datagram) - offset} trailing bytes")
    return events, bad


def open_link_socket() -> socket.socket:
    """A socket for the link events of the calling thread's namespace."""
    sock = socket.socket(
        socket.AF_NETLINK,
        socket.SOCK_RAW | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK,
        NETLINK_ROUTE,
    )
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        sock.bind((0, RTMGRP_LINK))
    except OSError:
        sock.close()
        raise
    return sock


LinkState = tuple[str, bool, int, int]  # name, up, ARP type, MTU


class LinkWatcher:
    """Reads every watched namespace's link socket on one thread; notes the
    namespaces (keys) whose links moved and calls wake() (which must not block)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._lock = threading.Lock()
        self._moved: set[int] = set()
        self._seen: dict[int, dict[int, LinkState]] = {}  # key -> ifindex -> state
        self._sockets: dict[int, socket.socket] = {}
        self._pending: list[tuple[int, socket.socket | None]] = []  # (un)registrations
        self._bad_said: set[int] = set()  # keys whose malformed messages were logged
        self._selector = selectors.DefaultSelector()
        self._poke_read, self._poke_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._poke_read, selectors.EVENT_READ)
        self._stopping = False
        self._closed = False  # the reader ended and closed its files (under _lock)
        self.alive = True
        self._thread = threading.Thread(target=self._run, name="link-events", daemon=True)
        self._thread.start()

    def watch(self, key: int, sock: socket.socket) -> None:
        """Read sock's events as key's (a namespace's inode); the watcher owns it now."""
        self._change(key, sock)

    def unwatch(self, key: int) -> None:
        self._change(key, None)

    def take_moved(self) -> set[int]:
        """The keys whose links moved since the last call."""
        with self._lock:
            moved, self._moved = self._moved, set()
        return moved

    def close(self) -> None:
        """Stop reading; the reader closes every socket as it ends (review
        L5: closed under a reader still running, its selector failed and a
        number it read could be another file's by then). Safe to call twice."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        self._poke()
        self._thread.join(timeout=CLOSE_WAIT_S)
        if self._thread.is_alive():
            log.warning("link events: the reader did not stop within %.1f s", CLOSE_WAIT_S)

    def _change(self, key: int, sock: socket.socket | None) -> None:
        with self._lock:
            if self._stopping or not self.alive:
                if sock is not None:
                    sock.close()
                return
            self._pending.append((key, sock))
        self._poke()

    def _poke(self) -> None:
        with self._lock, contextlib.suppress(BlockingIOError):  # full: a poke is pending anyway
            if not self._closed:
                os.write(self._poke_write, b"\0")

    def _run(self) -> None:
        try:
            while True:
                if self._apply_pending():
                    return
                for selected, _mask in self._selector.select():
                    if selected.fd == self._poke_read:
                        self._drain_pokes()
                    else:
                        self._read(selected.data)
        except Exception:
            log.exception("link events stopped: interfaces are followed every second instead")
        finally:
            self._close_files()

    def _close_files(self) -> None:
        """On the reader's own thread as it ends; later watch() calls close
        their sockets themselves (alive is False)."""
        with self._lock:
            self.alive = False
            self._closed = True
            pending, self._pending = self._pending, []
            os.close(self._poke_read)
            os.close(self._poke_write)
        for watched in [*self._sockets.values(), *(sock for _, sock in pending if sock)]:
            watched.close()
        self._sockets.clear()
        self._selector.close()

    def _drain_pokes(self) -> None:
        try:
            while os.read(self._poke_read, 4096):
                pass
        except BlockingIOError:
            pass

    def _apply_pending(self) -> bool:
        """(Un)registrations asked for since the last look; True when stopping."""
        with self._lock:
            pending, self._pending = self._pending, []
            stopping = self._stopping
        for key, sock in pending:
            old = self._sockets.pop(key, None)
            if old is not None:
                self._selector.unregister(old)
                old.close()
            self._seen.pop(key, None)
            self._bad_said.discard(key)
            if sock is not None:
                self._sockets[key] = sock
                self._selector.register(sock, selectors.EVENT_READ, key)
                self._mark(key)  # anything may have moved before it was watched
        return stopping

    def _read(self, key: int) -> None:
        sock = self._sockets.get(key)
        if sock is None:
            return
        for _ in range(READS_PER_WAKE):
            try:
                datagram, (sender, _groups) = sock.recvfrom(READ_BYTES)
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno != errno.ENOBUFS:
                    raise
                self._seen.pop(key, None)  # events were lost: whatever comes next counts
                self._mark(key)
                continue
            if sender != 0:  # only the kernel speaks on this group
                continue
            events, bad = parse(datagram)
            if bad and key not in self._bad_said:
                self._bad_said.add(key)
                log.warning(
                    "ignored malformed link messages (namespace %d): %s", key, "; ".join(bad)
                )
            if any([self._note(key, event) for event in events]):
                self._mark(key)

    def _note(self, key: int, event: LinkEvent) -> bool:
        """Whether the event changes anything a shaper uses."""
        if event.kind == "ifb" or event.loopback:
            return False  # the helper's own IFBs come and go as it works
        seen = self._seen.setdefault(key, {})
        if event.gone:
            seen.pop(event.index, None)
            return True
        state = (event.name, event.up, event.arp_type, event.mtu)
        if seen.get(event.index) == state:
            return False
        seen[event.index] = state
        return True

    def _mark(self, key: int) -> None:
        with self._lock:
            self._moved.add(key)
        self._wake()
