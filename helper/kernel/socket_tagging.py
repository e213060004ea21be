"""Tag (and pace) sockets that were already open, from user space.

sock_create tags every socket created while the datapath is attached. Sockets
opened before, or opened by a process before its application was limited, are
duplicated into the helper with pidfd_getfd and their sk_storage entry written
through the duplicate (the map key is a socket fd in the caller's table).
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

from bcc.libbcc import lib

from chadthrottle.helper.kernel.bpf_syscalls import pidfd_getfd
from chadthrottle.helper.kernel.layout import SockTag

log = logging.getLogger("chadthrottle.kernel.tagging")

_INET_FAMILIES = (socket.AF_INET, socket.AF_INET6)
SO_MAX_PACING_RATE = 47
UNCAPPED_PACING = 0xFFFFFFFF  # what the kernel reads as "no cap" from a 32-bit value
# IP and TCP header (with the timestamp option) of a full segment; the same
# numbers are in chadt_sockops (bpf/datapath.c)
TCP_IPV4_HEADERS, TCP_IPV6_HEADERS = 52, 72


def payload_pacing_bps(wire_bps: int, mss: int, ipv4: bool) -> int:
    """The SO_MAX_PACING_RATE that holds a socket's full segments to wire_bps at
    L3: TCP paces payload bytes, the wire also carries the headers."""
    if mss <= 0:
        return wire_bps
    return wire_bps * mss // (mss + (TCP_IPV4_HEADERS if ipv4 else TCP_IPV6_HEADERS))


def _socket_fds(pid: int) -> Iterator[int]:
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fd_dir.iterdir())
    except OSError:
        return
    for entry in entries:
        try:
            if os.readlink(entry).startswith("socket:["):
                yield int(entry.name)
        except (OSError, ValueError):
            continue


def _inet_type(fd: int) -> int | None:
    """The socket type (SOCK_STREAM, SOCK_DGRAM) of an inet socket, else None."""
    try:
        probe = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        return probe.type if probe.family in _INET_FAMILIES else None
    finally:
        probe.detach()


def _open_inet_sockets(pid: int) -> Iterator[tuple[int, int]]:
    """(a duplicate of the socket in this process, its type) for each inet
    socket pid has open; each duplicate is closed when the caller moves on."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        for target_fd in _socket_fds(pid):
            try:
                local_fd = pidfd_getfd(pidfd, target_fd)
            except OSError:
                continue
            try:
                kind = _inet_type(local_fd)
                if kind is not None:
                    yield local_fd, kind
            finally:
                os.close(local_fd)
    finally:
        os.close(pidfd)


def tag_open_sockets(map_fd: int, pid: int, app_slot: int | None, wire_cap_bps: int | None = None) -> int:
    """Set app_slot on every inet socket process pid has open, keeping the owner
    recorded at creation. With app_slot None, only adopt sockets that carry no
    tag yet (opened before the datapath was attached), as unlimited. With
    wire_cap_bps, also cap the pacing of its TCP sockets (see pace_socket).
    Returns how many sockets were written."""
    tagged = 0
    for sock_fd, kind in _open_inet_sockets(pid):
        if _write_tag(map_fd, sock_fd, pid, app_slot):
            tagged += 1
        if wire_cap_bps is not None and kind == socket.SOCK_STREAM:
            pace_socket(sock_fd, wire_cap_bps)
    return tagged


def pace_open_sockets(pid: int, wire_cap_bps: int) -> int:
    """Cap the pacing of every TCP socket pid has open; how many were set."""
    return sum(pace_socket(sock_fd, wire_cap_bps) for sock_fd, kind in _open_inet_sockets(pid)
               if kind == socket.SOCK_STREAM)  # fmt: skip


def pace_socket(sock_fd: int, wire_bps: int) -> bool:
    """Cap a TCP socket at wire_bps on the wire (0: not capped) through
    SO_MAX_PACING_RATE, as the socket's owner would set it; TCP then paces its
    packets at most that fast."""
    try:
        probe = socket.socket(fileno=sock_fd)
    except OSError:
        return False
    try:
        value = UNCAPPED_PACING
        if wire_bps > 0:
            mss = probe.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
            value = min(payload_pacing_bps(wire_bps, mss, _carries_ipv4(probe)), UNCAPPED_PACING - 1)
        probe.setsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, struct.pack("=I", value))
        return True
    except OSError as error:
        log.debug("could not pace socket fd %d: %s", sock_fd, error)
        return False
    finally:
        probe.detach()


def _carries_ipv4(sock: socket.socket) -> bool:
    """IPv4 on the wire: an AF_INET socket, or AF_INET6 with a v4-mapped peer."""
    if sock.family == socket.AF_INET:
        return True
    try:
        return str(sock.getpeername()[0]).startswith("::ffff:")
    except OSError:  # not connected (yet): chadt_sockops paces it when it is
        return False


def _write_tag(map_fd: int, sock_fd: int, pid: int, app_slot: int | None) -> bool:
    key = ctypes.c_int(sock_fd)
    tag = SockTag()
    if lib.bpf_lookup_elem(map_fd, ctypes.byref(key), ctypes.byref(tag)) != 0:
        tag.owner_tgid = pid  # opened before the datapath was attached
        tag.app_slot = 0
    elif app_slot is None:
        return False  # already tagged: leave it
    if app_slot is not None:
        tag.app_slot = app_slot
    result = lib.bpf_update_elem(map_fd, ctypes.byref(key), ctypes.byref(tag), 0)
    if result != 0:
        log.debug("could not tag fd %d of pid %d: %s", sock_fd, pid, os.strerror(-result))
    return bool(result == 0)
