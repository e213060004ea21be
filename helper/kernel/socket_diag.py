"""Per-socket TCP byte counters from the kernel (sock_diag, INET_DIAG_INFO).

ListConnections shows each connection's own bytes. The kernel keeps them per
TCP socket in struct tcp_info: bytes_received (payload received) and
bytes_acked (payload sent and acknowledged by the peer). One netlink dump per
address family lists every TCP socket of a network namespace with its
tcp_info; the caller picks its sockets by inode. The netlink socket must be
made inside the namespace whose sockets it lists, so other namespaces are
entered from a throwaway thread (kernel/namespaces.in_netns).

UDP sockets have no byte counters in the kernel (sock_diag reports only memory
for them), so they get none (UNKNOWN_BYTES).

Counts are TCP payload, without headers or retransmissions: a connection's
bytes add up to less than its application's totals, which are counted at L3.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

from chadthrottle.helper.kernel.namespaces import in_netns

UNKNOWN_BYTES = -1  # no counter: UDP, an old kernel, or a namespace that could not be entered

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
INET_DIAG_INFO = 2
ALL_TCP_STATES = 0xFFFFFFFF
DUMP_TIMEOUT_S = 2.0  # the kernel answers in milliseconds; never hang ListConnections on it

_NLMSGHDR = struct.Struct("=IHHII")
_REQUEST = struct.Struct("=BBBxI48s")  # inet_diag_req_v2: family, protocol, ext, states, sockid
_MSG_INODE_OFFSET = (
    68  # inet_diag_msg: 4 bytes, sockid (48), expires, rqueue, wqueue, uid, then inode
)
_MSG_SIZE = 72
_RTATTR = struct.Struct("=HH")
_TCP_INFO_BYTES = struct.Struct("=QQ")  # bytes_acked, bytes_received
_TCP_INFO_BYTES_OFFSET = 120  # in struct tcp_info (Linux 4.1 and later)
_TCP_INFO_SENT = struct.Struct("=QQ")  # bytes_sent (data, resent included), bytes_retrans
_TCP_INFO_SENT_OFFSET = 200  # Linux 4.19 and later
_MSG_STATE_OFFSET = 1  # inet_diag_msg: idiag_family, then idiag_state
_PEER_FIN_STATES = frozenset({8, 9, 11})  # TCP_CLOSE_WAIT, TCP_LAST_ACK, TCP_CLOSING

ESTABLISHED_ONLY = 1 << 1  # TCP_ESTABLISHED's bit in inet_diag_req_v2.idiag_states
_INODE = struct.Struct("=I")
_TCP_INFO_RTT = struct.Struct("=I")  # tcpi_rtt: the smoothed round-trip time, microseconds
_TCP_INFO_RTT_OFFSET = 68

TcpBytes = dict[int, tuple[int, int]]  # socket inode -> (received, sent and acked)


def _request(family: int, seq: int, states: int = ALL_TCP_STATES) -> bytes:
    body = _REQUEST.pack(family, socket.IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), states, b"")
    return (
        _NLMSGHDR.pack(
            _NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0
        )
        + body
    )


def parse_diag_message(payload: bytes) -> tuple[int, tuple[int, int] | None]:
    """One inet_diag_msg with its attributes -> (inode, (received, acked) or None).

    The kernel's counts are of sequence space, so they carry the control
    flags' bytes: bytes_acked the connecting side's SYN and any FIN of ours
    acknowledged, bytes_received the peer's FIN. A download-only connection
    would show "1 B" sent. Sent is therefore capped by the new data sent
    (bytes_sent - bytes_retrans, since 4.19), and received loses the FIN once
    the peer closed (the socket's state says so)."""
    (inode,) = struct.unpack_from("=I", payload, _MSG_INODE_OFFSET)
    info = tcp_info_offset(payload, _TCP_INFO_BYTES_OFFSET + _TCP_INFO_BYTES.size)
    if info is None:
        return inode, None
    acked, received = _TCP_INFO_BYTES.unpack_from(payload, info + _TCP_INFO_BYTES_OFFSET)
    if tcp_info_offset(payload, _TCP_INFO_SENT_OFFSET + _TCP_INFO_SENT.size) is not None:
        sent, resent = _TCP_INFO_SENT.unpack_from(payload, info + _TCP_INFO_SENT_OFFSET)
        acked = min(acked, sent - resent)
    if payload[_MSG_STATE_OFFSET] in _PEER_FIN_STATES:
        received = max(0, received - 1)
    return inode, (received, acked)


def tcp_info_offset(payload: bytes, needed: int) -> int | None:
    """Where the message's struct tcp_info (INET_DIAG_INFO) begins, if it holds
    at least `needed` bytes (older kernels send a shorter one); else None."""
    offset = _MSG_SIZE
    while offset + _RTATTR.size <= len(payload):
        length, kind = _RTATTR.unpack_from(payload, offset)
        if length < _RTATTR.size:
            return None
        if kind == INET_DIAG_INFO and length - _RTATTR.size >= needed:
            return offset + _RTATTR.size
        offset += (length + 3) & ~3
    return None


def parse_rtt_message(payload: bytes) -> tuple[int, int | None]:
    """One inet_diag_msg with its attributes -> (inode, smoothed rtt in us or None)."""
    (inode,) = struct.unpack_from("=I", payload, _MSG_INODE_OFFSET)
    info = tcp_info_offset(payload, _TCP_INFO_RTT_OFFSET + _TCP_INFO_RTT.size)
    return inode, None if info is None else _TCP_INFO_RTT.unpack_from(
        payload, info + _TCP_INFO_RTT_OFFSET
    )[0]


def _dump(sock: socket.socket, family: int, found: dict[int, Any], parse: Any = parse_diag_message,
          states: int = ALL_TCP_STATES) -> None:  # fmt: skip
    sock.send(_request(family, family, states))
    while True:
        data = sock.recv(1 << 16)
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
            if length < _NLMSGHDR.size:
                return
            if kind == NLMSG_DONE:
                return
            if kind == NLMSG_ERROR:
                (errno,) = struct.unpack_from("=i", data, offset + _NLMSGHDR.size)
                if errno:
                    raise OSError(-errno, os.strerror(-errno))
                return
            if kind == SOCK_DIAG_BY_FAMILY and length >= _NLMSGHDR.size + _MSG_SIZE:
                inode, counts = parse(data[offset + _NLMSGHDR.size : offset + length])
                if counts is not None:
                    found[inode] = counts
            offset += (length + 3) & ~3
        if not data:
            return


def tcp_bytes_here() -> TcpBytes:
    """Every TCP socket of the calling thread's network namespace; a malformed
    answer from the kernel is an OSError (counters are a nicety: the caller
    lists the connections without them)."""
    return dump_tcp_sockets(parse_diag_message)


def dump_tcp_sockets(parse: Any, states: int = ALL_TCP_STATES) -> dict[Any, Any]:
    """key -> value for every TCP socket (IPv4 and IPv6) of the calling thread's
    namespace in `states` that parse(message) -> (key, value or None) gives a
    value; OSError on a malformed answer or a kernel error."""
    found: dict[Any, Any] = {}
    with socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG
    ) as sock:
        sock.settimeout(DUMP_TIMEOUT_S)
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                _dump(sock, family, found, parse, states)
            except struct.error as exc:
                raise OSError(f"malformed sock_diag answer: {exc}") from exc
    return found


def tcp_rtt_here(wanted: frozenset[int] | None = None) -> dict[int, int]:
    """socket inode -> smoothed round-trip time (us) of every established TCP
    socket of the calling thread's network namespace, or of those in wanted
    (the others' attributes are not read); OSError as tcp_bytes_here."""
    parse = parse_rtt_message
    if wanted is not None:

        def parse(payload: bytes) -> tuple[int, int | None]:
            inode = _INODE.unpack_from(payload, _MSG_INODE_OFFSET)[0]
            return (inode, None) if inode not in wanted else parse_rtt_message(payload)

    return dump_tcp_sockets(parse, ESTABLISHED_ONLY)


def tcp_bytes_of_netns(pid: int) -> TcpBytes:
    """Every TCP socket of pid's network namespace; {} if it cannot be read."""
    try:
        own = os.readlink("/proc/self/ns/net") == os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return {}
    try:
        return tcp_bytes_here() if own else (in_netns(f"/proc/{pid}/ns/net", tcp_bytes_here) or {})
    except OSError:
        return {}


def tcp_bytes_by_namespace(readers: set[int]) -> dict[tuple[int, int], tuple[int, int]]:
    """(reader pid, socket inode) -> (received, acked), one dump per reader's
    namespace (connections_of gives one reader per namespace)."""
    return {
        (reader, inode): counts
        for reader in readers
        for inode, counts in tcp_bytes_of_netns(reader).items()
    }


# A socket's BPF storage of one map, in a dump (INET_DIAG_REQ_SK_BPF_STORAGES,
# Linux 5.2; include/uapi/linux/inet_diag.h and sock_diag.h): the request
# names the map by an fd of ours, each answer carries its value nested as
# INET_DIAG_SK_BPF_STORAGES > SK_DIAG_BPF_STORAGE > SK_DIAG_BPF_STORAGE_MAP_VALUE.
INET_DIAG_REQ_SK_BPF_STORAGES = 2
SK_DIAG_BPF_STORAGE_REQ_MAP_FD = 1
INET_DIAG_SK_BPF_STORAGES = 20
SK_DIAG_BPF_STORAGE = 1
SK_DIAG_BPF_STORAGE_MAP_VALUE = 3
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF
_NLATTR = struct.Struct("=HH")
_COOKIE = struct.Struct("=II")
_COOKIE_OFFSET = 44  # inet_diag_msg: 4 bytes, then sockid's ports (4), src, dst (32), if (4)


def _attributes(data: bytes, offset: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(type without flags, start of payload, end of payload) of each netlink attribute."""
    while offset + _NLATTR.size <= end:
        length, kind = _NLATTR.unpack_from(data, offset)
        if length < _NLATTR.size or offset + length > end:
            return
        yield kind & NLA_TYPE_MASK, offset + _NLATTR.size, offset + length
        offset += (length + 3) & ~3


def storage_value(payload: bytes) -> bytes | None:
    """The one map's value a message of a storage dump carries (None: the
    socket has no storage in it)."""
    for kind, start, end in _attributes(payload, _MSG_SIZE, len(payload)):
        if kind != INET_DIAG_SK_BPF_STORAGES:
            continue
        for inner, istart, iend in _attributes(payload, start, end):
            if inner != SK_DIAG_BPF_STORAGE:
                continue
            for field_kind, fstart, fend in _attributes(payload, istart, iend):
                if field_kind == SK_DIAG_BPF_STORAGE_MAP_VALUE:
                    return payload[fstart:fend]
    return None


def _storage_request(family: int, protocol: int, seq: int, map_fd: int) -> bytes:
    body = _REQUEST.pack(family, protocol, 0, ALL_TCP_STATES, b"")
    map_attr = _NLATTR.pack(_NLATTR.size + 4, SK_DIAG_BPF_STORAGE_REQ_MAP_FD) + struct.pack(
        "=I", map_fd
    )
    nested = _NLATTR.pack(_NLATTR.size + len(map_attr),
                          INET_DIAG_REQ_SK_BPF_STORAGES | NLA_F_NESTED) + map_attr  # fmt: skip
    length = _NLMSGHDR.size + len(body) + len(nested)
    header = _NLMSGHDR.pack(length, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
    return header + body + nested


class StorageDump:
    """A dump of the sk_storage map map_fd's values on every TCP socket (IPv4
    and IPv6, any state: those waiting in an accept queue too) of the
    network namespaces given (None: the caller's; else an fd of ours that
    holds it, closed once dumped: a namespace whose processes exit meanwhile
    is still entered, never taken for one without sockets), read
    a netlink answer at a time until a deadline and gone on with later (the
    kernel keeps a dump's place in its socket): a user chooses how many
    sockets there are, and the engine reads under its lock (15,000 tagged
    sockets took 0.21-0.25 s whole here, ~6 ms more a namespace:
    bench/vet_cost.py). parse(value bytes, inode, cookie) ->
    (key, value or None) fills found. UDP sockets are not dumped: the
    kernel's udp_diag gives no storage (6.18 here). Needs CAP_NET_ADMIN."""

    def __init__(self, map_fd: int, parse: Any, namespaces: list[int | None]) -> None:
        self._map_fd, self._parse = map_fd, parse
        self._namespaces = list(namespaces)
        self._families: list[int] = []
        self._sock: socket.socket | None = None
        self._reading = False
        self.found: dict[Any, Any] = {}
        self.failed = ""  # why a namespace could not be dumped ("": none failed)

    def go_on(self, deadline: float) -> bool:
        """Read until the monotonic deadline; whether the dump is done (failed
        says if it is incomplete)."""
        while time.monotonic() < deadline:
            if self._sock is None:
                if not self._namespaces:
                    return True
                namespace = self._namespaces.pop(0)
                if namespace is None:
                    self._sock = _diag_socket()
                else:
                    self._sock = in_netns(f"/proc/self/fd/{namespace}", _diag_socket)
                    os.close(namespace)
                if self._sock is None:
                    self.failed = "a namespace not entered"
                    self.close()
                    return True
                self._families = [socket.AF_INET, socket.AF_INET6]
            if not self._reading:
                if not self._families:
                    self._sock.close()
                    self._sock = None
                    continue
                family = self._families.pop(0)
                try:  # the ask fails as a read does (a namespace or socket gone bad)
                    self._sock.send(_storage_request(family, socket.IPPROTO_TCP, family,
                                                     self._map_fd))  # fmt: skip
                except OSError as error:
                    return self._fail(error)
                self._reading = True
            try:
                self._reading = _read_some(self._sock, self.found, self._message)
            except (OSError, struct.error) as error:
                return self._fail(error)
        return False

    def _fail(self, error: Exception) -> bool:
        """Done, incomplete: the slots dumped for stay draining (failed)."""
        self.failed = f"the dump failed: {error}"
        self.close()
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for namespace in self._namespaces:
            if namespace is not None:
                os.close(namespace)
        self._namespaces.clear()

    def _message(self, payload: bytes) -> tuple[Any, Any]:
        value = storage_value(payload)
        if value is None:
            return None, None
        (inode,) = _INODE.unpack_from(payload, _MSG_INODE_OFFSET)
        low, high = _COOKIE.unpack_from(payload, _COOKIE_OFFSET)
        return self._parse(value, inode, low | high << 32)


def network_namespaces() -> list[int | None]:
    """Every network namespace this helper can find, once each, for a dump of
    the sockets' tags: None for the helper's own, else an fd of ours that
    holds it (the caller closes it: a StorageDump does). Found where a
    namespace can be kept alive: a process's (/proc/PID/ns/net), a thread's
    whose process is elsewhere (/proc/PID/task/TID/ns/net), and a bind mount
    (`ip netns add`: an nsfs mount in /proc/self/mountinfo). Each fd is
    checked to hold the namespace its path named (a pid reused, a mount
    replaced meanwhile). Not found (review34b R3): a namespace held only by
    an open nsfs descriptor of some process (/proc/PID/fd links to
    net:[...]), or only by a bind mount in another mount namespace, or only
    by its sockets."""
    own = os.stat("/proc/self/ns/net")  # nsfs: st_dev its, st_ino the namespace's
    seen: set[str] = {f"net:[{own.st_ino}]"}
    held: list[int | None] = [None]
    for path, named in _nsfs_net_mounts() + _process_namespace_paths():
        try:
            namespace = named or os.readlink(path)
            if namespace in seen:
                continue
            # a mount point unmounted meanwhile may be a user's FIFO or link now
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | (_NOT_FOLLOWED if named else 0))
        except OSError:
            continue  # exited, or unmounted: held elsewhere too, or gone
        opened = os.fstat(fd)  # (readlink names a bind mount's fd by its path)
        if opened.st_dev != own.st_dev or f"net:[{opened.st_ino}]" != namespace:
            os.close(fd)
            continue
        seen.add(namespace)
        held.append(fd)
    return held


_NOT_FOLLOWED = os.O_NOFOLLOW | os.O_NONBLOCK


def _unescape(field: str) -> str:
    """A mountinfo path: space, tab, newline and backslash are octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def _nsfs_net_mounts() -> list[tuple[str, str]]:
    """(mount point, net:[inode]) of each network namespace bound to a path
    (`ip netns add`) in this helper's mount namespace (an nsfs mount's root
    field names its namespace)."""
    mounts: list[tuple[str, str]] = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as lines:
            for line in lines:
                fields, _, after = line.partition(" - ")
                parts = fields.split()
                if (
                    len(parts) < 5
                    or not after.startswith("nsfs ")
                    or not parts[3].startswith("net:[")
                ):
                    continue
                mounts.append((_unescape(parts[4]), parts[3]))
    except OSError:
        pass
    return mounts


def _process_namespace_paths() -> list[tuple[str, str]]:
    """/proc/PID/ns/net of every process, and /proc/PID/task/TID/ns/net of
    each of its other threads (setns and unshare move a thread alone)."""
    paths: list[tuple[str, str]] = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        paths.append((f"/proc/{name}/ns/net", ""))
        try:
            tasks = os.listdir(f"/proc/{name}/task")
        except OSError:
            continue
        paths.extend((f"/proc/{name}/task/{tid}/ns/net", "") for tid in tasks if tid != name)
    return paths


def _diag_socket() -> socket.socket:
    """A sock_diag socket of the calling thread's namespace (it dumps that one's sockets)."""
    sock = socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG
    )
    sock.settimeout(DUMP_TIMEOUT_S)
    return sock


def _read_some(sock: socket.socket, found: dict[Any, Any], parse: Any) -> bool:
    """One read of a dump's answers, each message through parse; whether more follow."""
    data = sock.recv(1 << 16)
    if not data:
        return False
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or kind == NLMSG_DONE:
            return False
        if kind == NLMSG_ERROR:
            (errno,) = struct.unpack_from("=i", data, offset + _NLMSGHDR.size)
            if errno:
                raise OSError(-errno, os.strerror(-errno))
            return False
        if kind == SOCK_DIAG_BY_FAMILY and length >= _NLMSGHDR.size + _MSG_SIZE:
            key, value = parse(data[offset + _NLMSGHDR.size : offset + length])
            if value is not None:
                found[key] = value
        offset += (length + 3) & ~3
    return True
