"""A traffic source and sink that report bytes and seconds.

Run as a script inside a network namespace:
  traffic.py serve --port P --role sink|source [--udp] [--family 4|6]
  traffic.py connect --host H --port P --role sink|source [--udp] [--seconds S]
The receiving side (the sink) prints one JSON line {"t": seconds, "m": monotonic
seconds, "bytes": n} every REPORT_INTERVAL_S (--report-interval) with cumulative
payload bytes, so a test can compute the rate over any window. A TCP sink adds
"q": the bytes its socket held in order and unread then, so bytes + q is what
had arrived, whenever the sink got to read it. Every run is bounded in time (--seconds, default 120).
SIGTERM ends a run as its deadline would (netns.Stream.end): a source stops
sending and closes its connection, a sink reads what came before the close.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import json
import os
import signal
import socket
import sys
import termios
import time

REPORT_INTERVAL_S = 0.05
CLONE_NEWNET = 0x40000000
CHUNK_BYTES = 64 * 1024
UDP_PAYLOAD_BYTES = 1200
# UDP has no congestion control: an unpaced sender would only burn the CPU the
# receiver needs. Offered load is paced to this by default (--rate to change).
DEFAULT_UDP_RATE_BPS = 30 * 1024 * 1024
_ENDED = [False]  # SIGTERM: every loop ends as at its deadline


def _running(deadline: float) -> bool:
    return not _ENDED[0] and time.monotonic() < deadline


def _end(_signal: int, _frame: object) -> None:
    _ENDED[0] = True


def _report(received: int, started: float, sock: socket.socket | None = None) -> None:
    # "m": the machine's monotonic clock (one for every process and namespace),
    # so a reader can time the bytes when they were counted, not when it read them
    report: dict[str, float | int] = {"bytes": received}
    if sock is not None:
        report["q"] = _queued(sock)
    now = time.monotonic()
    report.update(t=now - started, m=now)
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()


def _queued(sock: socket.socket) -> int:
    """Bytes a TCP socket has received in order and the sink not yet read
    (SIOCINQ): a sink held off the CPU reads them later all at once, which by
    its reads alone looks like a burst after a stall (bench/restart_gap.py)."""
    try:
        return int.from_bytes(fcntl.ioctl(sock.fileno(), termios.FIONREAD, bytes(4)), sys.byteorder)
    except OSError:  # closed meanwhile
        return 0


def _sink(
    sock: socket.socket, deadline: float, udp: bool, interval_s: float = REPORT_INTERVAL_S
) -> None:
    received, started, next_report = 0, time.monotonic(), 0.0
    sock.settimeout(interval_s)
    while _running(deadline):
        try:
            data = sock.recvfrom(CHUNK_BYTES)[0] if udp else sock.recv(CHUNK_BYTES)
            if not data:
                break
            received += len(data)
        except TimeoutError:
            pass  # nothing arrived: report all the same
        now = time.monotonic() - started
        if now >= next_report:
            _report(received, started, None if udp else sock)
            next_report = now + interval_s
    _report(received, started, None if udp else sock)


def _sink_many(listener: socket.socket, deadline: float, connections: int) -> None:
    """Accept connections one after another, reporting the bytes of all of them."""
    received, started = 0, time.monotonic()
    listener.settimeout(REPORT_INTERVAL_S)
    for _ in range(connections):
        while _running(deadline):
            try:
                conn, _ = listener.accept()
                break
            except TimeoutError:
                _report(received, started)
        else:
            return
        with conn:
            while data := conn.recv(CHUNK_BYTES):
                received += len(data)
        _report(received, started)


def _source(
    sock: socket.socket,
    deadline: float,
    udp: bool,
    peer: tuple[str, int] | None,
    rate_bps: float = 0,
    total_bytes: int = 0,
) -> None:
    payload = b"x" * (UDP_PAYLOAD_BYTES if udp else CHUNK_BYTES)
    sock.settimeout(1.0)
    started, sent = time.monotonic(), 0
    while _running(deadline):
        if total_bytes:
            if sent >= total_bytes:
                return
            payload = payload[: total_bytes - sent]
        if rate_bps:
            ahead_s = sent / rate_bps - (time.monotonic() - started)
            if ahead_s > 0.001:
                time.sleep(ahead_s)
        sent += len(payload)
        try:
            if udp and peer is not None:
                sock.sendto(payload, peer)
            else:
                sock.sendall(payload)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return
        except OSError:  # ENOBUFS on a full UDP queue: try again shortly
            time.sleep(0.0005)


def _receive_buffer(sock: socket.socket, args: argparse.Namespace) -> None:
    """--rcvbuf: a UDP sink's receive buffer, past net.core.rmem_max as root
    (SO_RCVBUFFORCE). The default one holds a few ms of a 30 MiB/s stream of
    1200-byte datagrams: a sink held off the CPU longer, as at load 5-8 on 2
    cores, dropped 40-60% of them there (RcvbufErrors; flake36)."""
    if not (args.udp and args.role == "sink" and args.rcvbuf):
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, 33, args.rcvbuf)  # SO_RCVBUFFORCE
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)


def _family(args: argparse.Namespace) -> socket.AddressFamily:
    return socket.AF_INET6 if args.family == 6 else socket.AF_INET


def _protocol(args: argparse.Namespace) -> int:
    """IPPROTO_MPTCP (262) with --mptcp: the kernel sends on subflows it makes itself."""
    return 262 if args.mptcp else 0


def _congestion(sock: socket.socket, args: argparse.Namespace) -> None:
    """--congestion: this TCP socket's algorithm (accepted ones inherit a listener's)."""
    if args.congestion and not args.udp:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, args.congestion.encode())


def serve(args: argparse.Namespace) -> None:
    deadline = time.monotonic() + args.seconds
    kind = socket.SOCK_DGRAM if args.udp else socket.SOCK_STREAM
    listener = socket.socket(_family(args), kind, _protocol(args))
    _congestion(listener, args)
    _receive_buffer(listener, args)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("::" if args.family == 6 else "0.0.0.0", args.port))
    print(json.dumps({"listening": args.port}), flush=True)
    if args.udp:
        if args.role == "sink":
            _sink(listener, deadline, udp=True, interval_s=args.report_interval)
        else:  # wait for the client's hello, then send to it
            _, peer = listener.recvfrom(16)
            _source(listener, deadline, True, peer, args.rate or DEFAULT_UDP_RATE_BPS)
        return
    listener.listen(16)
    if args.role == "sink" and args.connections > 1:
        _sink_many(listener, deadline, args.connections)
        return
    conn, _ = listener.accept()
    if args.role == "sink":
        _sink(conn, deadline, udp=False, interval_s=args.report_interval)
    else:
        _source(conn, deadline, udp=False, peer=None, rate_bps=args.rate)


def _say_hello(sock: socket.socket, peer: tuple[str, int], deadline: float) -> None:
    """Tell a UDP source where to send, again until data comes (a datagram can be lost)."""
    sock.settimeout(0.2)
    while _running(deadline):
        sock.sendto(b"hello", peer)
        try:
            sock.recvfrom(CHUNK_BYTES, socket.MSG_PEEK)
            return
        except TimeoutError:
            continue


def _socket_in(netns_path: str, family: int, kind: int) -> socket.socket:
    """A socket made in another network namespace, the process back in its own
    (a borrowed socket: a namespace where the process is not)."""
    setns = ctypes.CDLL(None, use_errno=True).setns
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    other = os.open(netns_path, os.O_RDONLY)
    try:
        if setns(other, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns_path}")
        try:
            return socket.socket(family, kind)
        finally:
            if setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(own)
        os.close(other)


def connect(args: argparse.Namespace) -> None:
    deadline = time.monotonic() + args.seconds
    kind = socket.SOCK_DGRAM if args.udp else socket.SOCK_STREAM
    sock = (
        _socket_in(args.socket_netns, _family(args), kind)
        if args.socket_netns
        else socket.socket(_family(args), kind, _protocol(args))
    )
    _congestion(sock, args)
    _receive_buffer(sock, args)
    peer = (args.host, args.port)
    if args.udp:
        if args.role == "sink":
            _say_hello(sock, peer, deadline)
            _sink(sock, deadline, udp=True, interval_s=args.report_interval)
        else:
            _source(sock, deadline, True, peer, args.rate or DEFAULT_UDP_RATE_BPS)
        return
    sock.connect(peer)
    print(json.dumps({"connected": args.port}), flush=True)
    if args.role == "sink":
        _sink(sock, deadline, udp=False, interval_s=args.report_interval)
    else:
        _source(sock, deadline, udp=False, peer=None, rate_bps=args.rate, total_bytes=args.bytes)
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=("serve", "connect"))
    parser.add_argument("--host", default="")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--role", choices=("sink", "source"), required=True)
    parser.add_argument("--udp", action="store_true")
    parser.add_argument("--family", type=int, choices=(4, 6), default=4)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument(
        "--bytes", type=int, default=0, help="a source stops after this much payload"
    )
    parser.add_argument(
        "--connections", type=int, default=1, help="a TCP sink accepts this many, one after another"
    )
    parser.add_argument(
        "--rate", type=float, default=0.0, help="paced send rate, bytes/s (UDP default 30 MiB/s)"
    )
    parser.add_argument(
        "--socket-netns", default="", help="make the socket in this namespace (a path), then return"
    )
    parser.add_argument(
        "--congestion", default="", help="TCP congestion control (default: the namespace's)"
    )
    parser.add_argument("--mptcp", action="store_true", help="MPTCP sockets, not TCP")
    parser.add_argument(
        "--rcvbuf", type=int, default=0, help="a UDP sink's receive buffer, bytes (0: the default)"
    )
    parser.add_argument(
        "--report-interval",
        type=float,
        default=REPORT_INTERVAL_S,
        help="a sink reports at most this often, seconds (one stream's reports "
        "interpolated at another's times need them finer than its bursts)",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _end)
    serve(args) if args.command == "serve" else connect(args)


if __name__ == "__main__":
    main()
