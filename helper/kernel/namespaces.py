"""Which network namespace a netns cookie stands for, and the names of its
interfaces.

The datapath keys interface counters by (netns cookie, ifindex), because every
namespace numbers its devices from 1. The cookie is what BPF programs get from
the kernel (and SO_NETNS_COOKIE gives user space); to name a namespace and its
devices the helper enters each namespace it can find (the named ones under
/run/netns and those of running processes) from a short-lived thread, asks a
socket there for the cookie and lists the interfaces.

Interface and namespace names are bytes to the kernel, and anyone may make a
namespace (unshare -rn) and name its devices: they are escaped like every name
the helper puts on the bus (helper/identity/escaping.py).
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from chadthrottle.helper.identity.escaping import escape_os_name

log = logging.getLogger("chadthrottle.kernel.namespaces")
T = TypeVar("T")

SO_NETNS_COOKIE = 71  # asm-generic/socket.h, Linux 5.14
NETLINK_ROUTE = 0
CLONE_NEWNET = 0x40000000
NAMED_NETNS_DIR = Path("/run/netns")
INITIAL_NETNS = "/proc/1/ns/net"
RESCAN_INTERVAL_S = 5.0  # at most this often, when an unknown cookie shows up


@dataclass(frozen=True)
class NetnsView:
    """A namespace as ListInterfaces presents it: label "" is the helper's own;
    otherwise the `ip netns` name, or net:[inode] for an unnamed one. Label and
    interface names are escaped."""

    label: str
    interface_names: dict[int, str] = field(default_factory=dict)


def netns_cookie_of(sock: socket.socket) -> int:
    return int(struct.unpack("Q", sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8))[0])


def netns_cookie_of_fd(descriptor: int) -> int:
    """The cookie of the namespace a socket descriptor (a netlink socket) lives in."""
    with socket.socket(fileno=os.dup(descriptor)) as probe:
        return netns_cookie_of(probe)


def thread_netns_cookie() -> int:
    """The cookie of the calling thread's network namespace (the socket tags
    carry it). Probed with a netlink socket: the installed unit allows the
    helper only AF_UNIX and AF_NETLINK (RestrictAddressFamilies), and an
    AF_INET probe stopped it at start."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as probe:
        return netns_cookie_of(probe)


def _interface_names() -> dict[int, str]:
    """ifindex -> escaped name, in the calling thread's namespace."""
    return {index: escape_os_name(name) for index, name in socket.if_nameindex()}


def _look_inside() -> tuple[int, dict[int, str]]:
    """(cookie, ifindex -> escaped name) of the calling thread's namespace."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        cookie = netns_cookie_of(sock)
    return cookie, _interface_names()


def in_netns(path: str, work: Callable[[], T]) -> T | None:
    """work() run inside the namespace at path, from a throwaway thread (setns
    moves only the calling thread; sockets made there stay in it); None if the
    namespace cannot be entered or work raises OSError."""
    found: list[T] = []

    def run() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                return
            found.append(work())
        except OSError:
            return
        finally:
            os.close(fd)

    thread = threading.Thread(target=run, name="netns-probe", daemon=True)
    thread.start()
    thread.join(timeout=5)
    return found[0] if found else None


def _look_inside_netns(path: str) -> tuple[int, dict[int, str]] | None:
    return in_netns(path, _look_inside)


def _namespace_paths() -> dict[tuple[int, int], tuple[str, str]]:
    """(dev, inode) of each reachable network namespace -> (path to enter it, label)."""
    found: dict[tuple[int, int], tuple[str, str]] = {}
    named = sorted(NAMED_NETNS_DIR.iterdir()) if NAMED_NETNS_DIR.is_dir() else []
    for path in named:
        try:
            stat = path.stat()
        except OSError:
            continue
        found.setdefault((stat.st_dev, stat.st_ino), (str(path), escape_os_name(path.name)))
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        proc_path = f"/proc/{pid}/ns/net"
        try:
            stat = os.stat(proc_path)
        except OSError:
            continue
        found.setdefault((stat.st_dev, stat.st_ino), (proc_path, f"net:[{stat.st_ino}]"))
    return found


class NamespaceDirectory:
    """Cookie -> NetnsView. The helper's own namespace is read on every call;
    the others are looked for again at most every RESCAN_INTERVAL_S (entering
    each costs a thread), when their names may be old or a cookie is new."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.own_cookie, _ = _look_inside()
        self._others: dict[int, NetnsView] = {}
        self._not_found: set[int] = set()  # looked for in the last scan, in vain
        self._last_scan = float("-inf")

    def views(self, cookies: Iterable[int]) -> dict[int, NetnsView]:
        """A view of each cookie; one whose namespace was not found (it is gone,
        or cannot be entered) is labelled netns:<cookie>."""
        cookies = set(cookies)
        others = cookies - {self.own_cookie}
        new = others - set(self._others) - self._not_found
        if others and (new or self._clock() - self._last_scan > RESCAN_INTERVAL_S):
            self._rescan(others)
        views = {
            cookie: self._others.get(cookie, NetnsView(f"netns:{cookie}")) for cookie in others
        }
        if self.own_cookie in cookies:
            views[self.own_cookie] = NetnsView("", _interface_names())
        return views

    def _rescan(self, wanted: set[int]) -> None:
        self._last_scan = self._clock()
        others = {}
        for path, label in _namespace_paths().values():
            inside = _look_inside_netns(path)
            if inside is not None and inside[0] != self.own_cookie:
                others[inside[0]] = NetnsView(label, inside[1])
        self._others = others
        self._not_found = wanted - set(others)
        log.debug("network namespaces found: %d", len(others))
