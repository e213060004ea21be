"""Tag (and cap) sockets that were already open, from user space.

sock_create tags every socket created while the datapath is attached. Sockets
opened before, or opened by a process before its application was limited, are
duplicated into the helper with pidfd_getfd and their sk_storage entry written
through the duplicate (the map key is a socket fd in the caller's table).
The same duplicate carries a limited application's socket caps (SocketCaps),
which chadt_sockops gives to the connections it opens later.

Duplicates are closed by BORROWED_CLOSER, never by the caller: when the
process closed its own fd meanwhile, the helper's close is the last one, and
on a TCP socket with SO_LINGER set it waits until the peer has acknowledged
the data, up to the linger time: the process chooses it, and a peer that never
reads makes the wait last all of it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace

from chadthrottle.contract import DOWNLOAD_BURST_S
from chadthrottle.helper.identity.processes import read_start
from chadthrottle.helper.kernel import bpf_maps
from chadthrottle.helper.kernel.accept_queue import WalkSeen
from chadthrottle.helper.kernel.bpf_syscalls import pidfd_getfd
from chadthrottle.helper.kernel.layout import NO_CAPS, SocketCaps, SockTag
from chadthrottle.helper.kernel.namespaces import netns_cookie_of

log = logging.getLogger("chadthrottle.kernel.tagging")

_INET_FAMILIES = (socket.AF_INET, socket.AF_INET6)
SO_MAX_PACING_RATE = 47
UNCAPPED_PACING = 0xFFFFFFFF  # what the kernel reads as "no cap" from a 32-bit value
# IP and TCP header (with the timestamp option) of a full segment
TCP_IPV4_HEADERS, TCP_IPV6_HEADERS = 52, 72
# A download limit clamps each TCP socket's receive window to what the limit
# moves in one round trip plus WINDOW_QUEUE_US: the sender then keeps at most
# that much queued in the shaper, half its leaf queue (htb.LEAF_QUEUE_SECONDS),
# instead of overflowing it and waiting out its retransmission timer
# (docs/backends.md, "Clamping the receive window"). One number with a small
# download class's burst, which makes up a wait of its dequeue from this queue.
WINDOW_QUEUE_US = round(DOWNLOAD_BURST_S * 1_000_000)
UNKNOWN_RTT_US = 200_000  # the RTT assumed while a socket has no sample (0 or ~0)...
MAX_RTT_US = 4_000_000  # ...or an implausible one
UNCLAMPED_WINDOW = 0x3FFFFFFF  # no clamp: the buffer and autotuning size the window
# struct tcp_info (include/uapi/linux/tcp.h): offsets fixed since Linux 4.10
_TCP_INFO_BYTES, _TCPI_RCV_SSTHRESH, _TCPI_RTT, _TCPI_RCV_RTT, _TCPI_RCV_SPACE, _TCPI_MIN_RTT = (
    152,
    64,
    68,
    92,
    96,
    148,
)
_TCP_CLOSE, _TCP_LISTEN = 7, 10  # tcpi_state, the first byte
# Later fields: tcpi_rcv_wscale (the high nibble of byte 6), tcpi_last_data_recv
# (ms), and tcpi_rcv_wnd, the window the socket last advertised, which only
# a longer tcp_info carries (this machine's 6.18 returns 280 bytes).
_TCPI_WSCALE, _TCPI_LAST_DATA_RECV, _TCPI_RCV_WND, _TCP_INFO_LONG_BYTES = 6, 52, 232, 236
# 64-bit byte counts (since 4.19): new data acknowledged (with the SYN), all data sent, data resent
_TCPI_BYTES_ACKED, _TCPI_BYTES_SENT, _TCPI_BYTES_RETRANS = 120, 200, 208
# An MPTCP socket is the connection: it refuses SO_MAX_PACING_RATE and
# TCP_WINDOW_CLAMP, and its TCP_INFO is its first subflow's. chadt_sockops
# clamps its subflows' windows (bpf/datapath.c hold_subflow); their pacing is
# not capped (measured worse).
IPPROTO_MPTCP = 262


def c_constants() -> dict[str, int]:
    """Passed to chadt_sockops (bpf/datapath.c) with -D: the same formulas in C
    and here read the same numbers."""
    return {
        "SO_MAX_PACING_RATE": SO_MAX_PACING_RATE,
        "TCP_IPV4_HEADERS": TCP_IPV4_HEADERS,
        "TCP_IPV6_HEADERS": TCP_IPV6_HEADERS,
        "WINDOW_QUEUE_US": WINDOW_QUEUE_US,
        "UNKNOWN_RTT_US": UNKNOWN_RTT_US,
        "MAX_RTT_US": MAX_RTT_US,
        "UNCLAMPED_WINDOW": UNCLAMPED_WINDOW,
    }


def payload_pacing_bps(wire_bps: int, mss: int, ipv4: bool) -> int:
    """The SO_MAX_PACING_RATE that holds a socket's full segments to wire_bps at
    L3: TCP paces payload bytes, the wire also carries the headers."""
    if mss <= 0:
        return wire_bps
    return wire_bps * mss // (mss + (TCP_IPV4_HEADERS if ipv4 else TCP_IPV6_HEADERS))


def receive_window_bytes(wire_bps: int, rtt_us: int) -> int:
    """The TCP_WINDOW_CLAMP for a download limit of wire_bps: one round trip of
    the limit (the sender needs that much in flight to keep it busy) plus a
    short queue in the shaper."""
    if rtt_us <= 0 or rtt_us > MAX_RTT_US:
        rtt_us = UNKNOWN_RTT_US
    return min(wire_bps * (rtt_us + WINDOW_QUEUE_US) // 1_000_000, UNCLAMPED_WINDOW)


class FdCloser:
    """Closes borrowed fds on its own threads, so a close that lingers holds
    up one of them, never the engine. Bounded: at most max_threads threads,
    and while max_pending fds wait to be closed the helper borrows no more
    (has_room); each waiting fd keeps its socket open until it is closed."""

    def __init__(
        self, max_threads: int = 4, max_pending: int = 256, close: Callable[[int], None] = os.close
    ) -> None:
        self._max_threads, self._max_pending, self._close = max_threads, max_pending, close
        self._queue: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0  # handed over, not closed yet
        self._idle = 0  # threads waiting for an fd
        self._threads = 0

    def has_room(self) -> bool:
        with self._lock:
            return self._pending < self._max_pending

    def pending(self) -> int:
        with self._lock:
            return self._pending

    def threads(self) -> int:
        with self._lock:
            return self._threads

    def close(self, fd: int) -> None:
        """Close fd soon, on a closer thread; returns at once. Takes the fd even
        when full (the caller checks has_room before borrowing)."""
        with self._lock:
            unclaimed = self._pending - (self._threads - self._idle)
            self._pending += 1
            start = self._idle <= unclaimed and self._threads < self._max_threads
            if start:
                self._threads += 1
                self._idle += 1
        self._queue.put(fd)
        if start:
            threading.Thread(target=self._run, name="chadt-fd-closer", daemon=True).start()

    def _run(self) -> None:
        while True:
            fd = self._queue.get()
            with self._lock:
                self._idle -= 1
            try:
                self._close(fd)
            except OSError as error:
                log.debug("closing borrowed fd %d: %s", fd, error)
            finally:
                with self._lock:
                    self._pending -= 1
                    self._idle += 1


BORROWED_CLOSER = FdCloser()

# A walk reads a whole descriptor table, as many as the process's user
# chose: its caller (under the engine's lock) may be called back every
# PAUSE_EVERY_FDS descriptors, in the walking thread only (pausing).
PAUSE_EVERY_FDS = 4096
_walking = threading.local()


@contextlib.contextmanager
def pausing(call: Callable[[], None]) -> Iterator[None]:
    """Within the block, this thread's walks call call every PAUSE_EVERY_FDS
    descriptors (the engine renews the gates' leases: one table of 524,288
    descriptors takes seconds)."""
    was = getattr(_walking, "pause", None)
    _walking.pause = call
    try:
        yield
    finally:
        _walking.pause = was


# A budgeted walk looks at the clock every this many descriptors (and so
# reads at least this many before it stops: each walk gets on).
CUT_CHECK_EVERY_FDS = 16


@dataclass
class WalkCursor:
    """Where a budgeted walk of one process's descriptor table stands: it
    reads the descriptors from next_fd up, in order, and stops once the
    monotonic clock passes deadline (cut: True, next_fd: the first one not
    read), to go on from there in a later walk. Why: a process may hold as
    many descriptors as its user's RLIMIT_NOFILE (524,288 by systemd's
    default), and the engine walks under its lock (pending_walks.py)."""

    deadline: float
    next_fd: int = 0
    cut: bool = False
    # The process meant (read_start; 0: whichever runs): checked once its
    # pidfd is open (it pins that process), so a pid handed out again between
    # the engine's check and the walk has the new process's sockets left alone
    # (review33b R1).
    start: int = 0

    def stop_at(self, fd: int) -> None:
        self.next_fd, self.cut = fd, True


@contextlib.contextmanager
def budgeted(cursor: WalkCursor) -> Iterator[WalkCursor]:
    """Within the block, this thread's walks go from cursor.next_fd and stop
    at cursor.deadline (one walk: the block holds one process's)."""
    was = getattr(_walking, "cursor", None)
    _walking.cursor = cursor
    cursor.cut = False
    try:
        yield cursor
    finally:
        _walking.cursor = was


def _socket_fds(pid: int) -> Iterator[int]:
    """pid's socket descriptors, in order, from the cursor's next_fd up (a
    budgeted walk's; 0 without one). The table is read from the kernel a
    buffer at a time from there (/proc/PID/fd's position is a descriptor's
    number + 2), never listed whole first: a whole listing, 1.1-1.35 us a
    descriptor here, was ~0.5-0.7 s of the lock for a table of 524,288
    before the first look at the clock, once per walk (review31), and so
    once per call for a process that forks children with such a table
    (review33b). What opens since gets the slot as it is made
    (slot_by_tgid is written first)."""
    fd_dir = f"/proc/{pid}/fd"
    cursor: WalkCursor | None = getattr(_walking, "cursor", None)
    try:
        dir_fd = os.open(fd_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.lseek(dir_fd, (cursor.next_fd if cursor is not None else 0) + 2, os.SEEK_SET)
        pause = getattr(_walking, "pause", None)
        count = 0
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                if not entry.name.isdigit():
                    continue
                fd = int(entry.name)
                count += 1
                if pause is not None and count % PAUSE_EVERY_FDS == 0:
                    pause()
                if (
                    cursor is not None
                    and count % CUT_CHECK_EVERY_FDS == 0
                    and time.monotonic() >= cursor.deadline
                ):
                    cursor.stop_at(fd)
                    return
                try:
                    if os.readlink(f"{fd_dir}/{fd}").startswith("socket:["):
                        yield fd
                except OSError:
                    continue
    finally:
        os.close(dir_fd)


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


def _made_by(sock_fd: int, uid: int | None) -> bool:
    """Whether a process of uid (None: anyone) made the socket: the kernel
    gives a socket's inode the fsuid of the process that made it (socket(),
    accept()), and only root can give it to another uid (fchown). A socket
    is shared by every process holding it: one root made and passed to a
    user's process (a descriptor inherited across a drop of privileges, or
    sent over a unix socket) is root's traffic too."""
    if uid is None:
        return True
    try:
        return os.fstat(sock_fd).st_uid == uid
    except OSError:
        return False


def open_inet_sockets(pid: int, made_by: int | None = None) -> Iterator[tuple[int, int]]:
    """(a duplicate of the socket in this process, its type) for each inet
    socket pid has open (made_by: only those a process of that uid made,
    _made_by); each duplicate goes to BORROWED_CLOSER when the caller
    moves on. Stops early while the closer is full."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        meant: WalkCursor | None = getattr(_walking, "cursor", None)
        if meant is not None and meant.start and (read_start(pid) or 0) != meant.start:
            return  # another process under the pid now
        for target_fd in _socket_fds(pid):
            if not BORROWED_CLOSER.has_room():
                log.warning(
                    "not borrowing the sockets of pid %d: %d borrowed sockets still wait to be closed",
                    pid,
                    BORROWED_CLOSER.pending(),
                )
                cursor: WalkCursor | None = getattr(_walking, "cursor", None)
                if cursor is not None:
                    cursor.stop_at(target_fd)  # a budgeted walk goes on from there later
                return
            try:
                local_fd = pidfd_getfd(pidfd, target_fd)
            except OSError:
                continue
            try:
                kind = _inet_type(local_fd)
                if kind is not None and _made_by(local_fd, made_by):
                    yield local_fd, kind
            finally:
                BORROWED_CLOSER.close(local_fd)
    finally:
        os.close(pidfd)


def tag_open_sockets(
    map_fd: int,
    pid: int,
    app_slot: int | None,
    caps: SocketCaps | None = None,
    was: SocketCaps = NO_CAPS,
    by_namespace: Mapping[int, int] | None = None,
    made_by: int | None = None,
    seen: WalkSeen | None = None,
) -> int:
    """Set app_slot on every inet socket process pid has open (made_by: of
    those a process of that uid made), keeping the owner recorded at creation. With app_slot None, only adopt sockets that carry no
    tag yet (opened before the datapath was attached), as unlimited. With caps,
    also hold its TCP sockets to them (see cap_socket; was: the caps they had;
    by_namespace: a divided limit's pacing per netns cookie). seen: notes
    the sockets and listeners met (accept_queue: what waits to be accepted).
    Returns how many sockets were written."""
    tagged = 0
    for sock_fd, kind in open_inet_sockets(pid, made_by):
        if _write_tag(map_fd, sock_fd, pid, app_slot):
            tagged += 1
        if seen is not None:
            seen.note(sock_fd, kind)
        if caps is not None and kind == socket.SOCK_STREAM:
            cap_socket(sock_fd, caps, was, by_namespace)
    return tagged


def retag_carrying(
    map_fd: int, pid: int, carried: frozenset[int], app_slot: int, made_by: int | None = None,
    *, vet: bool = False, lift: SocketCaps = NO_CAPS, caps: SocketCaps = NO_CAPS,
    by_namespace: Mapping[int, int] | None = None,
) -> int:  # fmt: skip
    """Give app_slot to each inet socket of pid (made_by: that uid made) that
    carries one of the carried slots, and leave every other one as it is: a
    process that holds a socket it inherited from one whose untag or retag
    walk it outlived (pending_walks.py, a sweep). vet: every socket
    carrying one, whoever made it: app_slot where it takes that socket
    (made_by None, or that uid made it), else none (a slot let go, and
    this socket another's: passed on, pending_walks.PendingWalks.vet).
    lift: the caps such a one may hold (the carried slots'), lifted from an
    untagged one; a vet also holds one retagged to caps (app_slot's, shares
    by_namespace), lifting lift: a TCP socket keeps the pacing and window
    clamp set on it, and a passed one under another user's process kept a
    cleared rule's for ever (review34b R1). How many were written."""
    written = 0
    for sock_fd, kind in open_inet_sockets(pid, None if vet else made_by):
        tag, key = SockTag(), ctypes.c_int(sock_fd)
        try:
            if not bpf_maps.lookup(map_fd, key, tag) or tag.app_slot not in carried:
                continue
            tag.app_slot = app_slot if not vet or _made_by(sock_fd, made_by) else 0
            bpf_maps.update(map_fd, key, tag)
            written += 1
            if kind != socket.SOCK_STREAM:
                continue
            if not tag.app_slot and lift != NO_CAPS:
                cap_socket(sock_fd, NO_CAPS, lift)
            elif vet and tag.app_slot and (caps != NO_CAPS or lift != NO_CAPS):
                cap_socket(sock_fd, caps, lift, by_namespace)
        except OSError as error:
            log.debug("could not retag fd %d of pid %d: %s", sock_fd, pid, error.strerror)
    return written


def cap_open_sockets(
    pid: int, caps: SocketCaps, was: SocketCaps, by_namespace: Mapping[int, int] | None = None,
    made_by: int | None = None,
) -> int:  # fmt: skip
    """Hold every TCP socket pid has open (made_by: that uid made) to caps; how many were set."""
    return sum(cap_socket(sock_fd, caps, was, by_namespace)
               for sock_fd, kind in open_inet_sockets(pid, made_by)
               if kind == socket.SOCK_STREAM)  # fmt: skip


def pace_open_sockets(
    pid: int, pacing_bps: int, by_namespace: Mapping[int, int], made_by: int | None = None
) -> int:
    """Cap the pacing of every TCP socket pid has open at by_namespace[its
    namespace's cookie], or at pacing_bps in a namespace not there (a divided
    upload limit's shares moved); the window clamps stay. How many were set."""
    caps = SocketCaps(pacing_bps=pacing_bps)
    return cap_open_sockets(pid, caps, caps, by_namespace, made_by)


def old_window_drain_s(
    srtt_us: int, window_bytes: int, rcv_rtt_us: int, rcv_space_bytes: int
) -> float:
    """How long a sender takes to spend a window it was offered before a clamp:
    two round trips at least; a window larger than what arrives in one (the
    receive-side autotuning's rcv_space per rcv_rtt) takes that many more.
    The round trip is the larger of the two estimates: a socket that only
    receives keeps its handshake's srtt, while rcv_rtt follows the queues.
    Measured at a 20 ms round trip (bench/delay_line.py): a 130 MB/s download
    still arrived at full speed 0.1 s after its clamp, where two round trips
    are 40 ms; its rcv_space was 2.9 MB per 20 ms. rcv_space keeps its
    highest value, so after a slowdown this is short of the truth."""
    rtt_us = max(srtt_us, rcv_rtt_us)
    drain_s = 2 * rtt_us / 1e6
    if rcv_rtt_us > 0 and rcv_space_bytes > 0:
        drain_s = max(drain_s, (rtt_us + window_bytes * rcv_rtt_us / rcv_space_bytes) / 1e6)
    return drain_s


def tcp_window_state(info: bytes) -> tuple[int, int, int, int]:
    """(srtt us, rcv_ssthresh bytes, rcv_rtt us, rcv_space bytes) of a
    struct tcp_info, for old_window_drain_s."""
    return tuple(
        struct.unpack_from("I", info, offset)[0]  # type: ignore[return-value]
        for offset in (_TCPI_RTT, _TCPI_RCV_SSTHRESH, _TCPI_RCV_RTT, _TCPI_RCV_SPACE)
    )


def clamp_open_windows(pid: int, wire_bps: int, made_by: int | None = None) -> list[float]:
    """Clamp the receive window of every TCP socket pid has open (made_by:
    that uid made) for a download limit of wire_bps, without tagging them;
    for each, the seconds its sender may still send at the old window's pace
    (old_window_drain_s)."""
    drains = []
    for sock_fd, kind in open_inet_sockets(pid, made_by):
        if kind != socket.SOCK_STREAM:
            continue
        try:
            with borrowed(sock_fd) as sock:
                drain_s = _clamp_window(sock, wire_bps)
        except OSError as error:
            log.debug("could not clamp socket fd %d of pid %d: %s", sock_fd, pid, error)
            continue
        if drain_s is not None:
            drains.append(drain_s)
    return drains


def old_windows_left(
    pid: int, wire_bps: int, idle_ms: int, made_by: int | None = None
) -> bool | None:
    """Whether a TCP socket of pid, clamped for a download limit of wire_bps,
    still advertises more than its clamp: its sender may still send that
    much of the old window at once. The receiver cannot shrink a window it
    offered (the right edge stays), so the advertised window only comes down
    to the clamp once the sender has sent up to the old edge; what it sent
    and is still on its way lies inside that window too. Exact where an
    estimate (old_window_drain_s) is not: a sender that got no CPU while the
    helper waited kept its old window and sent it into the shaper after the
    limit landed (docs/backends.md, "Clamping the receive window").
    Each ask first puts back a clamp that receive autotuning raised: the
    sockets are not tagged yet, so chadt_sockops does not hold it, and the
    kernel sets window_clamp from the buffer it grows as the application
    reads (tcp_rcv_space_adjust); the window then grew past the clamp and
    the wait ran out (a held sender resumed: 30 MB). A socket whose clamp
    was raised is not done at that ask (it may have offered more meanwhile).
    Sockets that received nothing for idle_ms are not waited for (a kept-alive
    connection's window stays open until its sender sends again, which no
    wait can cover). made_by: only the sockets that uid's processes made, as
    a user's clamp clamped (a socket root made and passed to the user's
    process was never clamped: waiting for it kept the limit its full
    WINDOW_DRAIN_MAX_S). None: the kernel's tcp_info does not carry the window."""
    left = False
    for sock_fd, kind in open_inet_sockets(pid, made_by):
        if kind != socket.SOCK_STREAM:
            continue
        try:
            with borrowed(sock_fd) as sock:
                info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LONG_BYTES)
                if not info or info[0] in (_TCP_CLOSE, _TCP_LISTEN):
                    continue
                if len(info) < _TCP_INFO_LONG_BYTES:
                    return None
                clamp = receive_window_bytes(
                    wire_bps, struct.unpack_from("I", info, _TCPI_MIN_RTT)[0]
                )
                raised = sock.proto != IPPROTO_MPTCP and _put_back_clamp(sock, clamp)
        except OSError:
            continue
        if struct.unpack_from("I", info, _TCPI_LAST_DATA_RECV)[0] > idle_ms:
            continue
        grain = 1 << (info[_TCPI_WSCALE] >> 4)  # the window is advertised in these steps
        left = left or raised or struct.unpack_from("I", info, _TCPI_RCV_WND)[0] > clamp + grain
    return left


def _put_back_clamp(sock: socket.socket, clamp: int) -> bool:
    """Set the clamp again if the kernel raised it since; whether it had. Read
    back, as the kernel keeps a clamp of at least half its smallest buffer
    (tcp_set_window_clamp): a tiny limit's clamp reads higher, not raised."""
    held = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP)
    if held <= clamp:
        return False
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP, clamp)
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP) < held)


def sends_unacked(pid: int, marks: Mapping[int, int] | None = None) -> dict[int, int] | None:
    """The TCP sockets of pid with data sent and not yet acknowledged:
    socket inode -> its mark, how many bytes of new data it had sent
    (tcpi_bytes_sent - tcpi_bytes_retrans) when first asked. With marks
    (an earlier answer), those of them whose peer has not yet acknowledged
    up to the mark (tcpi_bytes_acked). Once a mark is acknowledged, every
    segment sent before it arrived, whatever was lost and resent meanwhile:
    what a clsact's graft dropped (docs/backends.md, "Adding a clsact drops
    the uplink's packets for a moment"). None: the kernel's tcp_info does
    not carry the byte counts (before 4.19)."""
    left: dict[int, int] = {}
    for sock_fd, kind in open_inet_sockets(pid):
        if kind != socket.SOCK_STREAM:
            continue
        try:
            inode = os.fstat(sock_fd).st_ino
            if marks is not None and inode not in marks:
                continue
            with borrowed(sock_fd) as sock:
                info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LONG_BYTES)
        except OSError:
            continue
        if not info or info[0] in (_TCP_CLOSE, _TCP_LISTEN):
            continue
        if len(info) < _TCPI_BYTES_RETRANS + 8:
            return None
        acked = struct.unpack_from("Q", info, _TCPI_BYTES_ACKED)[0]
        sent, resent = (
            struct.unpack_from("Q", info, at)[0] for at in (_TCPI_BYTES_SENT, _TCPI_BYTES_RETRANS)
        )
        mark = marks[inode] if marks is not None else sent - resent
        if acked < mark:  # acked counts the SYN too: a mark one byte short of the last is met
            left[inode] = mark
    return left


def cap_socket(
    sock_fd: int,
    caps: SocketCaps,
    was: SocketCaps = NO_CAPS,
    by_namespace: Mapping[int, int] | None = None,
) -> bool:
    """Set the pacing cap and the window clamp of a TCP socket as its owner
    would, each one the socket is or was held to (was: the caps it had, so a
    cap that goes away is lifted). by_namespace: the pacing of a limit
    divided between network namespaces, by netns cookie; the socket's
    namespace's replaces caps' (chadt_sockops does the same)."""
    if by_namespace and caps.pacing_bps:
        share = by_namespace.get(_netns_cookie(sock_fd))
        caps = replace(caps, pacing_bps=share) if share else caps
    try:
        with borrowed(sock_fd) as sock:
            if caps.pacing_bps or was.pacing_bps:
                _pace(sock, caps.pacing_bps)
            if caps.window_bps or was.window_bps:
                _clamp_window(sock, caps.window_bps)
        return True
    except OSError as error:
        log.debug("could not cap socket fd %d: %s", sock_fd, error)
        return False


@contextlib.contextmanager
def borrowed(sock_fd: int) -> Iterator[socket.socket]:
    """A socket object over a duplicate the caller owns (and closes)."""
    sock = socket.socket(fileno=sock_fd)
    try:
        yield sock
    finally:
        sock.detach()


def _pace(sock: socket.socket, wire_bps: int) -> None:
    """SO_MAX_PACING_RATE for wire_bps on the wire (0: not capped); TCP then
    paces its packets at most that fast."""
    value = UNCAPPED_PACING
    if wire_bps > 0:
        mss = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
        value = min(payload_pacing_bps(wire_bps, mss, carries_ipv4(sock)), UNCAPPED_PACING - 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, struct.pack("=I", value))


def _clamp_window(sock: socket.socket, wire_bps: int) -> float | None:
    """TCP_WINDOW_CLAMP for a download limit of wire_bps (0: unclamped); returns
    the seconds the old window may still take (old_window_drain_s), or None for
    a listening or closed socket, which is left as it is (a listener's clamp
    would pass to every connection it accepts, and its own is 0, "none"). The
    kernel never takes back a window it offered: the sender may still send what
    the old one allows, at most rcv_ssthresh (read before the clamp lowers it)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_BYTES)
    if not info or info[0] in (_TCP_CLOSE, _TCP_LISTEN):
        return None
    complete = len(info) >= _TCP_INFO_BYTES
    value = UNCLAMPED_WINDOW
    if wire_bps > 0:
        value = receive_window_bytes(
            wire_bps, struct.unpack_from("I", info, _TCPI_MIN_RTT)[0] if complete else 0
        )
    if sock.proto != IPPROTO_MPTCP:  # its subflows: chadt_sockops, from windows_first
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP, value)
    if not complete:
        return 0.0
    return old_window_drain_s(*tcp_window_state(info))


def carries_ipv4(sock: socket.socket) -> bool:
    """IPv4 on the wire: an AF_INET socket, or AF_INET6 with a v4-mapped peer."""
    if sock.family == socket.AF_INET:
        return True
    try:
        return str(sock.getpeername()[0]).startswith("::ffff:")
    except OSError:  # not connected (yet): chadt_sockops paces it when it is
        return False


def _netns_cookie(sock_fd: int) -> int:
    """The socket's namespace's cookie (SO_NETNS_COOKIE), which chadt_sock stores in a new
    socket's tag; 0 if it cannot be read: the programs then ask the kernel per packet."""
    try:
        duplicate = os.dup(sock_fd)
    except OSError:
        return 0
    try:
        raw = socket.socket(fileno=duplicate)
    except OSError:  # not a socket: the copy would leak (one fd per try, forever)
        os.close(duplicate)
        return 0
    with raw:
        try:
            return netns_cookie_of(raw)
        except OSError:
            return 0


def _write_tag(map_fd: int, sock_fd: int, pid: int, app_slot: int | None) -> bool:
    key = ctypes.c_int(sock_fd)
    tag = SockTag()
    try:
        found = bpf_maps.lookup(map_fd, key, tag)
    except OSError:  # a socket sk_storage cannot hold (the update below says why)
        found = False
    if not found:
        tag.owner_tgid = pid  # opened before the datapath was attached
        tag.owner_start = read_start(pid) or 0
        tag.app_slot = 0
        tag.netns_cookie = _netns_cookie(sock_fd)
    elif app_slot is None:
        return False  # already tagged: leave it
    if app_slot is not None:
        tag.app_slot = app_slot
    try:
        bpf_maps.update(map_fd, key, tag)
    except OSError as error:
        log.debug("could not tag fd %d of pid %d: %s", sock_fd, pid, error.strerror)
        return False
    return True


def sends_rtt_us(pid: int, marks: Mapping[int, int]) -> int:
    """The largest smoothed round-trip time (tcpi_rtt, us) of these TCP
    sockets of pid (marks: sends_unacked's answer, by inode): how long the wait for a
    clsact graft's losses to be resent may take (kernel_hold.graft_wait_s);
    0 when none is read."""
    rtt_us = 0
    for sock_fd, kind in open_inet_sockets(pid):
        if kind != socket.SOCK_STREAM:
            continue
        try:
            if os.fstat(sock_fd).st_ino not in marks:
                continue
            with borrowed(sock_fd) as sock:
                info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_BYTES)
        except OSError:
            continue
        if len(info) >= _TCPI_RTT + 4:
            rtt_us = max(rtt_us, struct.unpack_from("I", info, _TCPI_RTT)[0])
    return rtt_us
