"""Tag sockets that were already open, from user space.

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
from collections.abc import Iterator
from pathlib import Path

from bcc.libbcc import lib

from chadthrottle.helper.kernel.bpf_syscalls import pidfd_getfd
from chadthrottle.helper.kernel.layout import SockTag

log = logging.getLogger("chadthrottle.kernel.tagging")

_INET_FAMILIES = (socket.AF_INET, socket.AF_INET6)


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


def _is_inet(fd: int) -> bool:
    try:
        probe = socket.socket(fileno=fd)
    except OSError:
        return False
    try:
        return probe.family in _INET_FAMILIES
    finally:
        probe.detach()


def tag_open_sockets(map_fd: int, pid: int, app_slot: int | None) -> int:
    """Set app_slot on every inet socket process pid has open, keeping the owner
    recorded at creation. With app_slot None, only adopt sockets that carry no
    tag yet (opened before the datapath was attached), as unlimited. Returns how
    many sockets were written."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return 0
    tagged = 0
    try:
        for target_fd in _socket_fds(pid):
            try:
                local_fd = pidfd_getfd(pidfd, target_fd)
            except OSError:
                continue
            try:
                if _is_inet(local_fd) and _write_tag(map_fd, local_fd, pid, app_slot):
                    tagged += 1
            finally:
                os.close(local_fd)
    finally:
        os.close(pidfd)
    return tagged


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
