"""Request/response round trips over one TCP connection, for bench/upload_hop.py.

    python bench/pingpong.py serve --port P          echo every message back
    python bench/pingpong.py client --host H --port P --count N --size S

The client connects, prints "ready", waits for a line on stdin (the bench
sets a limit meanwhile, so the open socket is tagged), then sends N messages
of S bytes one at a time, each after the previous echo, and prints the round
trips in microseconds as one JSON list.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the peer closed")
        data += chunk
    return data


def serve(port: int, size: int) -> None:
    listener = socket.create_server(("", port), reuse_port=True)
    print("listening", flush=True)
    sock, _ = listener.accept()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            sock.sendall(_exactly(sock, size))
    except ConnectionError:
        return


def client(host: str, port: int, count: int, size: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=10)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print("ready", flush=True)
    sys.stdin.readline()
    message = b"x" * size
    for _ in range(200):  # warm up
        sock.sendall(message)
        _exactly(sock, size)
    rtts = []
    for _ in range(count):
        began = time.perf_counter_ns()
        sock.sendall(message)
        _exactly(sock, size)
        rtts.append((time.perf_counter_ns() - began) / 1000)
    print(json.dumps(rtts), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=("serve", "client"))
    parser.add_argument("--host", default="")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.port, args.size)
    else:
        client(args.host, args.port, args.count, args.size)


if __name__ == "__main__":
    main()
