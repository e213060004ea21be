"""Forks and execs of every process, from the kernel's process events
connector (netlink), so the helper knows a process's parent even after both
have exited.

Why: a forked child that opens a socket, moves its data and exits within a
millisecond is gone before the helper can read /proc; if it did not exec, it
runs its parent's program and belongs to its parent's application. All kinds
of events are listened to (not only forks, execs and exits): the kernel numbers
each CPU's events over all kinds, and a gap in the numbers says when events
were dropped (a full socket), so that only the children alive then are doubted.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import struct
import threading
import time
from collections import OrderedDict, deque

from chadthrottle.helper.kernel.layout import PROCESS_START_TICK_NS
from chadthrottle.helper.kernel.namespaces import INITIAL_NETNS, in_netns

log = logging.getLogger("chadthrottle.kernel.proc_events")

NETLINK_CONNECTOR = 11
CN_IDX_PROC = CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_EVENT_FORK, PROC_EVENT_EXEC, PROC_EVENT_EXIT = 0x1, 0x2, 0x80000000
# Every kind of event (the kernel's PROC_EVENT_ALL): the connector numbers each
# CPU's events in one sequence over all kinds, so only a listener to all of
# them can tell from a gap in it that the kernel dropped some, and when.
PROC_EVENT_ALL = (
    0x1 | 0x2 | 0x4 | 0x40 | 0x80 | 0x100 | 0x200 | 0x20000000 | 0x40000000 | 0x80000000
)
_NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_CN_MSG = struct.Struct("=IIIIHH")  # idx, val, seq, ack, len, flags
_EVENT_HEADER = struct.Struct("=IIQ")  # what, cpu, timestamp_ns
_FORK = struct.Struct("=IIII")  # parent pid, parent tgid, child pid, child tgid
_EXEC = struct.Struct("=II")  # pid, tgid
_EXIT = struct.Struct("=II")  # pid, tgid (then the exit code and signal, the parent)
NLMSG_DONE = 3
NO_CPU = 0xFFFFFFFF  # the connector's answer to our subscription, not an event
# Forks of every process on the machine that did not exec are kept, about 200
# bytes each; a child's entry is needed until the helper comes to its first
# socket (within milliseconds, or seconds behind under load): a few seconds of
# such forks at a build machine's rate. 65,536 kept 13 MB after a fork storm (issue 20).
REMEMBERED_PROCESSES = 8192
# The connector's socket buffer: the events of a helper held up wait there
# (an event takes about 850 bytes of it); what comes once it is full is lost
# (ProcessLineage.events_lost). Asked for past net.core.rmem_max, which caps
# SO_RCVBUF (212,992 bytes on a stock machine: about 500 events). All kinds
# listened to, a program's run is about four events (fork, exec, comm, exit)
# where forks and execs were two: twice the 4 MB once asked for, so a helper
# may be held up as long as before (taken only while events wait).
RECEIVE_BUFFER_BYTES = 8 * 1024 * 1024
SO_RCVBUFFORCE = 33  # SO_RCVBUF, for CAP_NET_ADMIN: not capped (not in Python's socket)
# A fork's event is stamped after the child's start is (both in copy_process,
# the event later by microseconds, or by a preemption under load): a child
# whose start (in clock ticks) is this close before its fork's stamp is that
# fork's child. Another process under the pid started a whole pid cycle later
# (pid_max forks: 32,768 here, seconds at any fork rate).
FORK_STAMP_SLACK_NS = 100_000_000
# Windows in which events were lost, kept for the children alive in them; an
# older one forgotten doubts every fork before its end.
KEPT_LOSS_WINDOWS = 256
_FOREVER = 1 << 63
# The boot-time offset's reads: two CLOCK_MONOTONIC reads this close bound it
# well within a start's tick (10 ms); at most this many tries.
OFFSET_CLOSE_NS = 100_000
OFFSET_READS = 8


def boottime_offset_ns() -> int:
    """What to add to CLOCK_MONOTONIC (the events' stamps) for CLOCK_BOOTTIME
    (a process's start): the time the machine was suspended. Read between two
    CLOCK_MONOTONIC reads, the closest pair of a few: a thread made to wait
    between two reads (preempted, or another thread holding the GIL for its
    5 ms turns) made the offset short by the wait, every fork of that drain
    stamped that much early, and a child no longer matched its fork by its
    start (acct34: BurstBare under a fork storm, load 13, a child's fork
    14.7 ms before its start: unnamed, its bytes in no application)."""
    closest = (_FOREVER, 0)  # (the two reads' distance, the offset between them)
    for _ in range(OFFSET_READS):
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        boot = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        closest = min(closest, (after - before, boot - (before + after) // 2))
        if closest[0] <= OFFSET_CLOSE_NS:
            break
    return closest[1]


class ProcessLineage:
    """Recent forks that did not exec: each child's parent, when it was forked
    and exited (boot-time ns); and when events were lost (pure)."""

    def __init__(self, capacity: int = REMEMBERED_PROCESSES) -> None:
        self._capacity = capacity
        # tgid -> (parent tgid, forked at, exited at: 0 while not seen)
        self._parent: OrderedDict[int, tuple[int, int, int]] = OrderedDict()
        # per CPU: its last event's number in the connector's sequence, and stamp
        self._last: dict[int, tuple[int, int]] = {}
        # Loss windows (from, to): events stamped between may have been dropped.
        self._windows: deque[tuple[int, int]] = deque()
        self._doubted_until = -1  # forgotten windows: forks up to this are doubted
        self._forgotten_until = -1  # the latest fork pushed out by capacity (the log's why)
        self._unsettled = False  # a loss was said (ENOBUFS): until the socket is read empty
        # When the socket was last read empty: nothing is dropped from an empty
        # socket, and a drop before that was said (ENOBUFS) before it, so a
        # loss seen since began after it (a quiet CPU's last event may be far
        # older: CI read a child that exited before a fork storm as alive in it).
        self._empty_at = -1

    def forked(self, parent_tgid: int, child_tgid: int, at_ns: int = 0) -> None:
        self._parent[child_tgid] = (parent_tgid, at_ns, 0)
        self._parent.move_to_end(child_tgid)
        while len(self._parent) > self._capacity:
            _, (_, forked, _) = self._parent.popitem(last=False)
            self._forgotten_until = max(self._forgotten_until, forked)

    def execd(self, tgid: int) -> None:
        """Forgotten at once: an exec'd process names no parent, known or not. A
        build's forks nearly all exec, and kept they pushed out, by the thousand,
        the forks that did not (flake31: a fork storm of 2,600 a second, a helper
        4 s late, three BurstBare children forgotten before it came to them)."""
        self._parent.pop(tgid, None)

    def exited(self, tgid: int, at_ns: int) -> None:
        if tgid in self._parent:
            parent, forked, _ = self._parent[tgid]
            self._parent[tgid] = (parent, forked, at_ns)

    def sequenced(self, cpu: int, number: int, at_ns: int) -> None:
        """An event arrived, the number-th of its CPU: a gap in the numbers is
        events the kernel dropped, between the one before and this one."""
        last = self._last.get(cpu)
        if last is not None and number != (last[0] + 1) & 0xFFFFFFFF:
            self._lost_between(max(last[1], self._empty_at), at_ns)
        self._last[cpu] = (number, at_ns)

    def events_lost(self) -> None:
        """The kernel said it dropped events (the socket was full): those of a
        CPU followed by one that arrived show as a gap in its numbers; the rest
        come after each CPU's last event, until the socket is read empty."""
        self._unsettled = True

    def read_empty(self, at_ns: int) -> None:
        """The socket was read empty at at_ns: anything dropped before came
        after each CPU's last event or showed as a gap; a drop after this is
        said again (the kernel reports one once its reader caught up)."""
        empty_before, self._empty_at = self._empty_at, at_ns
        if not self._unsettled:
            return
        self._unsettled = False
        for _, since in self._last.values():
            self._lost_between(max(since, empty_before), at_ns)
        if len(self._last) < (os.cpu_count() or 1):  # a CPU not heard from: since ever
            self._lost_between(empty_before, at_ns)

    def _lost_between(self, since_ns: int, until_ns: int) -> None:
        self._windows.append((since_ns, until_ns))
        if len(self._windows) > KEPT_LOSS_WINDOWS:
            self._doubted_until = max(self._doubted_until, self._windows.popleft()[1])

    def same_program_parent(self, tgid: int, start: int = 0) -> int | None:
        """The parent of a process that still runs its parent's program (forked,
        no exec), or None. start: the process's start in clock ticks after boot
        (0: not known). After lost events a child alive while they were lost may
        have exec'd unseen: not vouched for. Known its start, the fork is
        matched to it (another process under the pid, whose fork was lost, is
        not the fork's child); not known, a loss after the fork doubts it."""
        parent, forked, exited = self._parent.get(tgid, (0, 0, 0))
        if not parent or forked <= self._doubted_until:
            return None
        losses = self._windows
        if start:
            if not _forked_at_start(forked, start):
                return None
            alive_until = exited or _FOREVER
            if any(since < alive_until and forked < until for since, until in losses):
                return None
        elif any(until > forked for _, until in losses):
            return None
        return parent

    def parent_or_why(self, tgid: int, start: int = 0) -> tuple[int | None, str]:
        """same_program_parent, and when it names none why_no_parent, from the
        same state: asked apart, events applied in between made the log's
        reason describe a later lineage than the one the naming used."""
        parent = self.same_program_parent(tgid, start)
        return (parent, "") if parent is not None else (None, self.why_no_parent(tgid, start))

    def why_no_parent(self, tgid: int, start: int = 0) -> str:
        """Why same_program_parent names no parent, in a few words for the
        log: a CI run's helper log then says which way a short-lived child's
        bytes went to no application (BlipsBare, 2026-12-07)."""
        parent, forked, _ = self._parent.get(tgid, (0, 0, 0))
        if (
            not parent
            and self._forgotten_until >= 0
            and (
                not start
                or start * PROCESS_START_TICK_NS <= self._forgotten_until + PROCESS_START_TICK_NS
            )
        ):
            return "its fork maybe forgotten among more than kept"
        if not parent:
            return "no fork without an exec seen"
        if forked <= self._doubted_until:
            return "forked before process events lost long ago"
        if start and not _forked_at_start(forked, start):
            return "its fork not matched to its start"
        return "alive while process events were lost"


def _forked_at_start(forked_ns: int, start_ticks: int) -> bool:
    """Whether a fork stamped forked_ns (boot time) made the process started at start_ticks."""
    started_ns = start_ticks * PROCESS_START_TICK_NS
    return (
        started_ns - PROCESS_START_TICK_NS
        <= forked_ns
        <= started_ns + PROCESS_START_TICK_NS + FORK_STAMP_SLACK_NS
    )


def _parse(data: bytes, lineage: ProcessLineage, offset_ns: int = 0) -> None:
    """Apply one read's events; offset_ns: boottime_offset_ns() (their stamps made boot time)."""
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, offset)
        if length < _NLMSG.size:
            return
        body = offset + _NLMSG.size + _CN_MSG.size
        if kind == NLMSG_DONE and body + _EVENT_HEADER.size <= offset + length:
            number = _CN_MSG.unpack_from(data, offset + _NLMSG.size)[2]
            what, cpu, stamp = _EVENT_HEADER.unpack_from(data, body)
            at_ns = stamp + offset_ns
            payload = body + _EVENT_HEADER.size
            if cpu != NO_CPU:
                lineage.sequenced(cpu, number, at_ns)
            if what == PROC_EVENT_FORK:
                _parent_pid, parent_tgid, child_pid, child_tgid = _FORK.unpack_from(data, payload)
                if child_pid == child_tgid:  # a process, not a thread
                    lineage.forked(parent_tgid, child_tgid, at_ns)
            elif what == PROC_EVENT_EXEC:
                lineage.execd(_EXEC.unpack_from(data, payload)[1])
            elif what == PROC_EVENT_EXIT:
                pid, tgid = _EXIT.unpack_from(data, payload)
                if pid == tgid:  # the process (its leader), not one of its threads
                    lineage.exited(tgid, at_ns)
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
        listen = struct.pack("=II", PROC_CN_MCAST_LISTEN, PROC_EVENT_ALL)
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
        with self._lock:
            offset_ns = boottime_offset_ns()
            while True:
                try:
                    data = self._sock.recv(65536)
                except BlockingIOError:
                    self.lineage.read_empty(time.monotonic_ns() + offset_ns)
                    return
                except OSError as error:  # ENOBUFS: events were lost; read on
                    log.debug("process events: %s", error)
                    self.lineage.events_lost()
                    continue
                _parse(data, self.lineage, offset_ns)

    def parent_or_why(self, tgid: int, start: int = 0) -> tuple[int | None, str]:
        self.drain()  # the fork event may still wait in the socket
        with self._lock:
            return self.lineage.parent_or_why(tgid, start)

    def close(self) -> None:
        self._sock.close()


def open_proc_events() -> ProcEvents | None:
    try:
        return ProcEvents()
    except OSError as error:
        log.warning(
            "no process events (forks of short-lived processes are not followed): %s",
            error,
        )
        return None
