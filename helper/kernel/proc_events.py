"""Forks and execs of every process, from the kernel's process events
connector (netlink), so the helper knows a process's parent even after both
have exited.

Why: a forked child that opens a socket, moves its data and exits within a
millisecond is gone before the helper can read /proc; if it did not exec, it
runs its parent's program and belongs to its parent's application. The events
are filtered in the kernel (Linux 6.6+) to forks and execs.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import struct
import threading
from collections import OrderedDict

from chadthrottle.helper.kernel.namespaces import INITIAL_NETNS, in_netns

log = logging.getLogger("chadthrottle.kernel.proc_events")

NETLINK_CONNECTOR = 11
CN_IDX_PROC = CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_EVENT_FORK, PROC_EVENT_EXEC = 0x1, 0x2
_NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_CN_MSG = struct.Struct("=IIIIHH")  # idx, val, seq, ack, len, flags
_EVENT_HEADER = struct.Struct("=IIQ")  # what, cpu, timestamp_ns
_FORK = struct.Struct("=IIII")  # parent pid, parent tgid, child pid, child tgid
_EXEC = struct.Struct("=II")  # pid, tgid
NLMSG_DONE = 3
# Forks of every process on the machine are kept, about 200 bytes each; a
# child's entry is needed only until its first socket is reported (within
# milliseconds), so a few seconds of forks at a build machine's rate is
# plenty. 65,536 kept 13 MB after a fork storm (issue 20).
REMEMBERED_PROCESSES = 8192
# The connector's socket buffer: the events of a helper held up wait there
# (an event takes about 850 bytes of it); what comes once it is full is lost
# (ProcessLineage.events_lost). Asked for past net.core.rmem_max, which caps
# SO_RCVBUF (212,992 bytes on a stock machine: about 500 events).
RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
SO_RCVBUFFORCE = 33  # SO_RCVBUF, for CAP_NET_ADMIN: not capped (not in Python's socket)


class ProcessLineage:
    """Recent processes: each one's parent, and whether it exec'd since (pure)."""

    def __init__(self, capacity: int = REMEMBERED_PROCESSES) -> None:
        self._capacity = capacity
        self._parent: OrderedDict[int, tuple[int, bool, int]] = (
            OrderedDict()
        )  # tgid -> (parent tgid, exec'd, the fork's number)
        self._forks = 0
        self._vouched_after = 0  # forks up to this number may have lost their exec

    def forked(self, parent_tgid: int, child_tgid: int) -> None:
        self._forks += 1
        self._parent[child_tgid] = (parent_tgid, False, self._forks)
        self._parent.move_to_end(child_tgid)
        while len(self._parent) > self._capacity:
            self._parent.popitem(last=False)

    def execd(self, tgid: int) -> None:
        if tgid in self._parent:
            parent, _, fork = self._parent[tgid]
            self._parent[tgid] = (parent, True, fork)

    def events_lost(self) -> None:
        """The kernel dropped events (the socket was full): a child known so far
        may have exec'd unseen, or be another process under its pid whose fork
        was dropped: none of them is vouched for any more."""
        self._vouched_after = self._forks

    def same_program_parent(self, tgid: int) -> int | None:
        """The parent of a process that still runs its parent's program (forked,
        no exec), or None."""
        parent, execd, fork = self._parent.get(tgid, (0, True, 0))
        return None if execd or not parent or fork <= self._vouched_after else parent


def _parse(data: bytes, lineage: ProcessLineage) -> None:
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, offset)
        if length < _NLMSG.size:
            return
        body = offset + _NLMSG.size + _CN_MSG.size
        if kind == NLMSG_DONE and body + _EVENT_HEADER.size <= offset + length:
            what = _EVENT_HEADER.unpack_from(data, body)[0]
            payload = body + _EVENT_HEADER.size
            if what == PROC_EVENT_FORK:
                _parent_pid, parent_tgid, child_pid, child_tgid = _FORK.unpack_from(data, payload)
                if child_pid == child_tgid:  # a process, not a thread
                    lineage.forked(parent_tgid, child_tgid)
            elif what == PROC_EVENT_EXEC:
                lineage.execd(_EXEC.unpack_from(data, payload)[1])
        offset += (length + 3) & ~3


def _subscribe() -> socket.socket:
    """A connector socket listening to forks and execs (in the calling thread's
    network namespace); OSError where there is no connector."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER_BYTES)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        sock.bind((0, CN_IDX_PROC))
        listen = struct.pack("=II", PROC_CN_MCAST_LISTEN, PROC_EVENT_FORK | PROC_EVENT_EXEC)
        message = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(listen), 0) + listen
        sock.send(_NLMSG.pack(_NLMSG.size + len(message), NLMSG_DONE, 0, 0, os.getpid()) + message)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class ProcEvents:
    """The connector socket; poll() applies pending events to the lineage. Not
    available (OSError) without CONFIG_PROC_EVENTS or CAP_NET_ADMIN."""

    def __init__(self) -> None:
        self.lineage = ProcessLineage()
        self._lock = threading.Lock()
        # the connector speaks only in the initial network namespace, and the
        # helper may run in another one (tests and benchmarks do); where pid 1
        # cannot be inspected (a sandbox), the parent's namespace may be it
        for path in (INITIAL_NETNS, f"/proc/{os.getppid()}/ns/net"):
            sock = in_netns(path, _subscribe)
            if sock is not None:
                break
        else:
            sock = _subscribe()
        self._sock = sock

    def poll(self, timeout_s: float) -> None:
        """Wait up to timeout_s for events, then apply what is waiting."""
        ready, _, _ = select.select([self._sock], [], [], timeout_s)
        if ready:
            self.drain()

    def drain(self) -> None:
        """Apply every event waiting in the socket, without waiting."""
        lost = False
        with self._lock:
            while True:
                try:
                    data = self._sock.recv(65536)
                except BlockingIOError:
                    if lost:  # once what was queued around the gap is read
                        self.lineage.events_lost()
                    return
                except OSError as error:  # ENOBUFS: events were lost; read on
                    log.debug("process events: %s", error)
                    lost = True
                    continue
                _parse(data, self.lineage)

    def same_program_parent(self, tgid: int) -> int | None:
        self.drain()  # the fork event may still wait in the socket
        with self._lock:
            return self.lineage.same_program_parent(tgid)

    def close(self) -> None:
        self._sock.close()


def open_proc_events() -> ProcEvents | None:
    try:
        return ProcEvents()
    except OSError as error:
        log.warning(
            "no process events (forks of short-lived processes are not followed): %s", error
        )
        return None
