"""Per-socket TCP byte counters through sock_diag, here and in another namespace."""

from __future__ import annotations

import os
import socket
import struct
import sys
import time

from chadthrottle.helper.kernel.socket_diag import (
    INET_DIAG_INFO,
    parse_diag_message,
    tcp_bytes_of_netns,
)

from tests.support.netns import NetnsPair, nsenter_argv, spawn
from tests.support.requirements import require_root


def _connected_pair() -> tuple[socket.socket, socket.socket, socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    return listener, client, server


def test_bytes_of_sockets_in_the_own_namespace() -> None:
    require_root()
    listener, client, server = _connected_pair()
    with listener, client, server:
        client.sendall(b"x" * 300_000)
        got = 0
        while got < 300_000:
            got += len(server.recv(1 << 16))
        server.sendall(b"y" * 777)
        assert len(client.recv(1000)) == 777
        counts = tcp_bytes_of_netns(os.getpid())
        received, acked = counts[os.fstat(server.fileno()).st_ino]
        assert received == 300_000 and acked == 777
        received, acked = counts[os.fstat(client.fileno()).st_ino]
        assert (received, acked) == (777, 300_000)  # the kernel's acked has the SYN too
        assert counts[os.fstat(listener.fileno()).st_ino] == (0, 0)


def test_a_download_only_connection_sent_nothing_after_either_side_closed() -> None:
    """The connecting side sends no data: its SYN (and later its FIN) are
    acknowledged, but no byte was sent. The peer's FIN is no byte received."""
    require_root()
    listener, client, server = _connected_pair()
    with listener, client, server:
        server.sendall(b"d" * 5000)
        got = 0
        while got < 5000:
            got += len(client.recv(1 << 16))
        client.shutdown(socket.SHUT_WR)
        assert server.recv(10) == b""  # the client's FIN arrived
        states = {os.fstat(sock.fileno()).st_ino: sock for sock in (client, server)}

        def counts_once_acked() -> dict[int, tuple[int, int]]:
            for _ in range(200):  # the FIN's acknowledgement is on its way (loopback: microseconds)
                counts = tcp_bytes_of_netns(os.getpid())
                if all(inode in counts for inode in states):
                    client_info = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
                    if client_info[0] == 5:  # TCP_FIN_WAIT2: our FIN acknowledged
                        return counts
                time.sleep(0.005)
            raise AssertionError("the client's FIN was never acknowledged")

        counts = counts_once_acked()
        assert counts[os.fstat(client.fileno()).st_ino] == (5000, 0)  # not (5000, 2): SYN + FIN
        assert counts[os.fstat(server.fileno()).st_ino] == (0, 5000)  # not (1, 5000): the FIN


def test_bytes_of_sockets_in_another_namespace(pair: NetnsPair) -> None:
    """Read from a process in the pair's host namespace: the helper enters it."""
    program = ("import json, os, socket; l = socket.create_server(('127.0.0.1', 0)); "
               "c = socket.create_connection(l.getsockname()); s = l.accept()[0]; c.sendall(b'z' * 4321); "
               "assert len(s.recv(10000)) == 4321; "
               "print(json.dumps({'ready': os.fstat(s.fileno()).st_ino}), flush=True); s.recv(1)")  # fmt: skip
    process = spawn(nsenter_argv(pair.host_ns, [sys.executable, "-c", program]), None)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        inode = int(line.split(":")[1].strip(" }\n"))
        assert tcp_bytes_of_netns(process.pid)[inode][0] == 4321
        assert inode not in tcp_bytes_of_netns(os.getpid())  # not a socket of this namespace
    finally:
        process.kill()
        process.wait(10)
    assert tcp_bytes_of_netns(process.pid) == {}  # gone: nothing, no error


def test_a_message_without_tcp_info_has_no_counts() -> None:
    message = bytearray(72)
    struct.pack_into("=I", message, 68, 99)
    assert parse_diag_message(bytes(message)) == (99, None)
    short_info = struct.pack("=HH", 4 + 100, INET_DIAG_INFO) + bytes(
        100
    )  # an old kernel's tcp_info
    assert parse_diag_message(bytes(message) + short_info) == (99, None)
    info = bytearray(136)
    struct.pack_into("=QQ", info, 120, 5, 6)
    assert parse_diag_message(
        bytes(message) + struct.pack("=HH", 4 + 136, INET_DIAG_INFO) + bytes(info)
    ) == (99, (6, 5))


def test_rtt_of_established_sockets_and_of_an_application() -> None:
    """tcp_info's srtt through sock_diag (listeners are not established: left
    out), and RttWatch's median per application from its processes' sockets."""
    require_root()
    from chadthrottle.helper.engine.rtt import RttWatch
    from chadthrottle.helper.kernel.socket_diag import tcp_rtt_here

    listener, client, server = _connected_pair()
    with listener, client, server:
        client.sendall(b"x" * 1000)
        assert len(server.recv(1000)) == 1000
        rtts = tcp_rtt_here()
        assert (
            0 < rtts[os.fstat(client.fileno()).st_ino] < 1_000_000
        )  # loopback: well under a second
        assert os.fstat(listener.fileno()).st_ino not in rtts
        watch = RttWatch(every_s=60.0)
        assert watch.due()
        watch.measure({"exe:/self": [os.getpid()]})
        assert (
            0 < watch.rtt_us["exe:/self"] < 1_000_000 and watch.elsewhere == {} and not watch.due()
        )
        # Each process read and each namespace dumped is a sign the tick thread
        # works (the engine keeps the leases meanwhile: EngineCore._tick_working).
        steps: list[None] = []
        RttWatch().measure({"exe:/self": [os.getpid(), os.getpid()]},
                           progress=lambda: steps.append(None))  # fmt: skip
        assert len(steps) == 3, f"{len(steps)} signs for two processes and one namespace"


def test_rtt_of_an_application_in_another_namespace_and_where_it_is(pair: NetnsPair) -> None:
    """RttWatch enters the namespace for the dump, and names it: the link tree
    is in the helper's namespace only, so that traffic is reported as not ordered."""
    from chadthrottle.helper.engine.rtt import RttWatch, elsewhere_of

    program = ("import json, os, socket; l = socket.create_server(('127.0.0.1', 0)); "
               "c = socket.create_connection(l.getsockname()); s = l.accept()[0]; c.sendall(b'z' * 4321); "
               "assert len(s.recv(10000)) == 4321; print(json.dumps({'ready': 1}), flush=True); s.recv(1)")  # fmt: skip
    process = spawn(nsenter_argv(pair.host_ns, [sys.executable, "-c", program]), None)
    try:
        assert process.stdout is not None and "ready" in process.stdout.readline()
        watch = RttWatch()
        watch.measure({"exe:/elsewhere": [process.pid], "exe:/gone": [2**22 + 1]})
        assert 0 < watch.rtt_us["exe:/elsewhere"] < 1_000_000 and "exe:/gone" not in watch.rtt_us
        assert watch.elsewhere == {"exe:/elsewhere": os.readlink(f"/proc/{process.pid}/ns/net")}
        assert (
            elsewhere_of([os.getpid(), process.pid]) == watch.elsewhere["exe:/elsewhere"]
        )  # read on the spot
        assert elsewhere_of([os.getpid()]) == ""
        mine = (
            os.getpid()
        )  # a process of another user (uid 4242 here) in the helper's namespace: not elsewhere
        watch.measure({"exe:/elsewhere": [process.pid, mine]}, uids={process.pid: 0, mine: 4242})
        there = watch.elsewhere["exe:/elsewhere"]
        assert (
            watch.seen_by("exe:/elsewhere", 0)[1] == there
            and watch.seen_by("exe:/elsewhere", 0)[0] > 0
        )
        assert (
            watch.seen_by("exe:/elsewhere", 4242)[1] == ""
            and watch.seen_by("exe:/elsewhere", None)[1] == there
        )
        watch.measure(
            {"exe:/elsewhere": [process.pid]}, rtt=False
        )  # nobody looking: no dump, no stale rtt
        assert watch.rtt_us == {} and watch.elsewhere == {
            "exe:/elsewhere": os.readlink(f"/proc/{process.pid}/ns/net")
        }
    finally:
        process.kill()
        process.wait(10)


def _attribute(kind: int, payload: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


def test_a_storage_dumps_value_is_read_from_its_nested_attributes() -> None:
    """sock_diag's INET_DIAG_SK_BPF_STORAGES > SK_DIAG_BPF_STORAGE >
    MAP_ID, MAP_VALUE (the kernel's nesting): the value, and None for a
    socket without one or an attribute cut short (a malformed answer is
    never read past its end)."""
    from chadthrottle.helper.kernel.socket_diag import (
        INET_DIAG_SK_BPF_STORAGES,
        NLA_F_NESTED,
        SK_DIAG_BPF_STORAGE,
        SK_DIAG_BPF_STORAGE_MAP_VALUE,
        storage_value,
    )

    value = bytes(range(24))
    storage = _attribute(2, struct.pack("=I", 77)) + _attribute(
        SK_DIAG_BPF_STORAGE_MAP_VALUE, value
    )
    nested = _attribute(INET_DIAG_SK_BPF_STORAGES | NLA_F_NESTED,
                        _attribute(SK_DIAG_BPF_STORAGE | NLA_F_NESTED, storage))  # fmt: skip
    message = bytes(72) + _attribute(2, bytes(8)) + nested
    assert storage_value(message) == value
    assert storage_value(bytes(72) + _attribute(2, bytes(8))) is None
    assert storage_value(message[:-8]) is None


def test_a_mount_point_is_read_as_mountinfo_escapes_it() -> None:
    """A bind mount's path with a space, tab, newline or backslash is octal-escaped
    in /proc/self/mountinfo: the namespace is opened at the real path."""
    from chadthrottle.helper.kernel.socket_diag import _unescape

    assert _unescape(r"/run/netns/a\040b\011c\012d\134e") == "/run/netns/a b\tc\nd\\e"
    assert _unescape("/run/netns/plain") == "/run/netns/plain"
