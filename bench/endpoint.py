"""A traffic source or sink for the benchmarks, reporting what the kernel saw.

Like tests/support/traffic.py, but every report also carries the socket's own
TCP counters, so the benchmark can count bytes on the wire at L3 per flow
without trusting the helper:
  endpoint.py serve|connect --port P --role sink|source [--host H] [--udp] [--family 4|6] [--seconds S]
Each line is JSON: {"t": s, "bytes": payload moved by the application,
  "rcvd": tcpi_bytes_received, "segs": tcpi_data_segs_in,          (TCP sink)
  "dgrams": datagrams received,                                     (UDP sink)
  "sent": tcpi_bytes_sent, "retrans": tcpi_total_retrans}           (TCP source)
A source reports every 0.25 s; for UDP "bytes" is what sendto() accepted.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time

REPORT_INTERVAL_S = 0.05
CHUNK_BYTES = 64 * 1024
UDP_PAYLOAD_BYTES = 1200
UDP_RCVBUF_BYTES = 8 << 20
TCP_INFO_BYTES = 232
# Offsets in struct tcp_info (include/uapi/linux/tcp.h).
_TOTAL_RETRANS, _BYTES_RECEIVED, _DATA_SEGS_IN, _BYTES_SENT = 100, 128, 152, 200


def tcp_counters(sock: socket.socket) -> dict[str, int]:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_BYTES)
    if len(info) < _BYTES_SENT + 8:
        return {}
    return {
        "rcvd": struct.unpack_from("Q", info, _BYTES_RECEIVED)[0],
        "segs": struct.unpack_from("I", info, _DATA_SEGS_IN)[0],
        "sent": struct.unpack_from("Q", info, _BYTES_SENT)[0],
        "retrans": struct.unpack_from("I", info, _TOTAL_RETRANS)[0],
    }


def _report(started: float, moved: int, sock: socket.socket, udp: bool, dgrams: int) -> None:
    now = time.monotonic()  # CLOCK_MONOTONIC: the same clock as the benchmark's
    report: dict[str, float | int] = {"t": round(now - started, 6), "mono": now, "bytes": moved}
    if udp:
        report["dgrams"] = dgrams
    else:
        report.update(tcp_counters(sock))
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()


def _sink(sock: socket.socket, deadline: float, udp: bool) -> None:
    if udp:  # room for a scheduling hiccup of the reader at 50 MiB/s (root may exceed rmem_max)
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), UDP_RCVBUF_BYTES)
    received = dgrams = 0
    started = time.monotonic()
    next_report = 0.0
    sock.settimeout(REPORT_INTERVAL_S)
    while time.monotonic() < deadline:
        try:
            data = sock.recvfrom(CHUNK_BYTES)[0] if udp else sock.recv(CHUNK_BYTES)
            if not data and not udp:
                break
            received += len(data)
            dgrams += 1
        except TimeoutError:
            pass
        now = time.monotonic() - started
        if now >= next_report:
            _report(started, received, sock, udp, dgrams)
            next_report = now + REPORT_INTERVAL_S
    _report(started, received, sock, udp, dgrams)


def _source(sock: socket.socket, deadline: float, udp: bool, peer: tuple[str, int] | None) -> None:
    payload = b"x" * (UDP_PAYLOAD_BYTES if udp else CHUNK_BYTES)
    sent = 0
    started = time.monotonic()
    next_report = 0.0
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            if udp and peer is not None:
                sent += sock.sendto(payload, peer)
            else:
                sent += sock.send(payload)
        except TimeoutError:
            pass
        except (BrokenPipeError, ConnectionResetError):
            return
        except OSError:  # ENOBUFS on a full UDP queue
            time.sleep(0.0005)
        now = time.monotonic() - started
        if now >= next_report:
            _report(started, sent, sock, udp, 0)
            next_report = now + 0.25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=("serve", "connect"))
    parser.add_argument("--host", default="")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--role", choices=("sink", "source"), required=True)
    parser.add_argument("--udp", action="store_true")
    parser.add_argument("--family", type=int, choices=(4, 6), default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--congestion", help="TCP congestion control (default: the namespace's)")
    args = parser.parse_args()
    deadline = time.monotonic() + args.seconds
    family = socket.AF_INET6 if args.family == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM if args.udp else socket.SOCK_STREAM)
    if (
        args.congestion and not args.udp
    ):  # root may pick any loaded one; accepted sockets inherit it
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, args.congestion.encode())
    if args.command == "serve":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::" if args.family == 6 else "0.0.0.0", args.port))
        print(json.dumps({"listening": args.port}), flush=True)
        if args.udp:
            if args.role == "sink":
                _sink(sock, deadline, True)
            else:
                _, peer = sock.recvfrom(16)  # the client's hello says where to send
                _source(sock, deadline, True, peer)
            return
        sock.listen(1)
        sock, _ = sock.accept()
    else:
        peer = (args.host, args.port)
        if args.udp:
            if args.role == "sink":
                sock.sendto(b"hello", peer)
                _sink(sock, deadline, True)
            else:
                _source(sock, deadline, True, peer)
            return
        sock.connect(peer)
        print(json.dumps({"connected": args.port}), flush=True)
    if args.role == "sink":
        _sink(sock, deadline, False)
    else:
        _source(sock, deadline, False, None)


if __name__ == "__main__":
    main()
