"""The traffic generator of the accounting scenarios (stdlib only; run as a
script inside a network namespace). It counts the payload it moves itself.

  scenario_traffic.py serve --port P [--seconds S]
      dual-stack TCP and UDP server (the "internet" side)
  scenario_traffic.py tcp --host H --port P --up N --down M
      one connection: send N bytes, receive M bytes, close first (as a client
      such as curl does, so its side goes through TIME_WAIT)
  scenario_traffic.py threads ...   the same from two threads: one sends, one receives
  scenario_traffic.py child ...     the same from a forked child process
  scenario_traffic.py burst --connections K ...
      K connections one after another, each from its own short-lived forked process
  scenario_traffic.py blips --connections K --up N ...
      K processes one after another, each sends one N-byte UDP datagram and
      exits at once (a DNS lookup's lifetime: gone before anyone reads /proc)
  scenario_traffic.py udp --host H --port P --up N --down M
      N bytes of datagrams to the server, then M bytes back from it

Clients print one JSON line: {"sent": payload bytes, "received": payload bytes}.
Protocol: a TCP client sends a 16-byte header (up, down as two u64), then `up`
bytes; the server reads them, sends `down` bytes and waits for the client to
close. A UDP datagram from the client is counted; one starting with DOWN_MAGIC
asks for `down` bytes back.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable

HEADER = struct.Struct("!QQ")
CHUNK_BYTES = 64 * 1024
UDP_PAYLOAD_BYTES = 1200
UDP_RATE_BPS = 20 * 1024 * 1024  # paced: no congestion control, the receiver must keep up
DOWN_MAGIC = b"DOWN"
UDP_IDLE_END_S = 0.5  # a UDP download is over after this long without a datagram


def _recv_exactly(sock: socket.socket, count: int) -> int:
    received = 0
    while received < count:
        data = sock.recv(min(CHUNK_BYTES, count - received))
        if not data:
            break
        received += len(data)
    return received


def _send_exactly(sock: socket.socket, count: int) -> int:
    payload = b"x" * CHUNK_BYTES
    sent = 0
    while sent < count:
        chunk = payload[: count - sent]
        sock.sendall(chunk)
        sent += len(chunk)
    return sent


def _paced_datagrams(sock: socket.socket, count: int, peer: object = None) -> int:
    payload, sent, started = b"u" * UDP_PAYLOAD_BYTES, 0, time.monotonic()
    while sent < count:
        ahead_s = sent / UDP_RATE_BPS - (time.monotonic() - started)
        if ahead_s > 0.001:
            time.sleep(ahead_s)
        chunk = payload[: count - sent]
        try:
            sock.sendto(chunk, peer) if peer is not None else sock.send(chunk)
        except OSError:  # ENOBUFS: the datagram was not sent; try again shortly
            time.sleep(0.001)
            continue
        sent += len(chunk)
    return sent


# --- server ----------------------------------------------------------------------


def _serve_tcp_connection(conn: socket.socket) -> None:
    with conn:
        header = b""
        while len(header) < HEADER.size:
            data = conn.recv(HEADER.size - len(header))
            if not data:
                return
            header += data
        up, down = HEADER.unpack(header)
        _recv_exactly(conn, up)
        _send_exactly(conn, down)
        while conn.recv(CHUNK_BYTES):  # until the client closes
            pass


def _serve_tcp(listener: socket.socket) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve_tcp_connection, args=(conn,), daemon=True).start()


def _serve_udp(sock: socket.socket) -> None:
    while True:
        data, peer = sock.recvfrom(CHUNK_BYTES)
        if data.startswith(DOWN_MAGIC) and len(data) == len(DOWN_MAGIC) + 8:
            (down,) = struct.unpack("!Q", data[len(DOWN_MAGIC) :])
            threading.Thread(target=_paced_datagrams, args=(sock, down, peer), daemon=True).start()


def serve(args: argparse.Namespace) -> None:
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    listener.bind(("::", args.port))
    listener.listen(64)
    udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    udp.bind(("::", args.port))
    for target, sock in ((_serve_tcp, listener), (_serve_udp, udp)):
        threading.Thread(target=target, args=(sock,), daemon=True).start()
    print(json.dumps({"listening": args.port}), flush=True)
    time.sleep(args.seconds)


# --- clients ---------------------------------------------------------------------


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def tcp_exchange(host: str, port: int, up: int, down: int) -> tuple[int, int]:
    """(payload sent, payload received) of one connection."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.connect((host, port))
        sock.sendall(HEADER.pack(up, down))
        sent = HEADER.size + _send_exactly(sock, up)
        received = _recv_exactly(sock, down)
    return sent, received


def _report(sent: int, received: int) -> None:
    print(json.dumps({"sent": sent, "received": received}), flush=True)


def run_tcp(args: argparse.Namespace) -> None:
    _report(*tcp_exchange(args.host, args.port, args.up, args.down))


def run_threads(args: argparse.Namespace) -> None:
    """One thread sends, the other receives, each on its own connection."""
    results: list[tuple[int, int]] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(tcp_exchange(args.host, args.port, args.up, 0))
        ),
        threading.Thread(
            target=lambda: results.append(tcp_exchange(args.host, args.port, 0, args.down))
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _report(sum(r[0] for r in results), sum(r[1] for r in results))


def _in_child(work: Callable[[], tuple[int, int]]) -> tuple[int, int] | None:
    """Run work in a forked child; its (sent, received) come back through a pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            os.write(write_end, HEADER.pack(*work()))
            os._exit(0)
        except BaseException:
            os._exit(1)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    return HEADER.unpack(data) if status == 0 and len(data) == HEADER.size else None


def run_child(args: argparse.Namespace) -> None:
    result = _in_child(lambda: tcp_exchange(args.host, args.port, args.up, args.down))
    if result is None:
        sys.exit("the child failed")
    _report(*result)


def run_burst(args: argparse.Namespace) -> None:
    sent = received = 0
    for _ in range(args.connections):
        result = _in_child(lambda: tcp_exchange(args.host, args.port, args.up, args.down))
        if result is None:
            sys.exit("a child failed")
        sent, received = sent + result[0], received + result[1]
    _report(sent, received)


def _blip(host: str, port: int, size: int) -> tuple[int, int]:
    with socket.socket(_family(host), socket.SOCK_DGRAM) as sock:
        return sock.sendto(b"b" * size, (host, port)), 0


def run_blips(args: argparse.Namespace) -> None:
    sent = 0
    for _ in range(args.connections):
        result = _in_child(lambda: _blip(args.host, args.port, args.up))
        if result is None:
            sys.exit("a child failed")
        sent += result[0]
    _report(sent, 0)


def run_udp(args: argparse.Namespace) -> None:
    with socket.socket(_family(args.host), socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        sock.connect((args.host, args.port))
        sent = _paced_datagrams(sock, args.up)
        request = DOWN_MAGIC + struct.pack("!Q", args.down)
        sock.send(request)
        sent += len(request)
        received = 0
        sock.settimeout(UDP_IDLE_END_S)
        while received < args.down:
            try:
                received += len(sock.recv(CHUNK_BYTES))
            except TimeoutError:
                break  # the rest was lost
    _report(sent, received)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "command", choices=("serve", "tcp", "threads", "child", "burst", "blips", "udp")
    )
    parser.add_argument("--host", default="")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--up", type=int, default=0, help="payload bytes the client sends")
    parser.add_argument("--down", type=int, default=0, help="payload bytes the client receives")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=600.0, help="how long a server runs")
    args = parser.parse_args()
    commands = {"serve": serve, "tcp": run_tcp, "threads": run_threads, "child": run_child,
                "burst": run_burst, "blips": run_blips, "udp": run_udp}  # fmt: skip
    commands[args.command](args)


if __name__ == "__main__":
    main()
