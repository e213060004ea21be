"""A "call": small UDP packets at a steady pace each way, and their round trip.

A voice or video call sends a small packet every 20 ms in each direction and
suffers from every millisecond a queue adds, not from a lack of throughput.
The `echo` side (the far end, in the peer namespace) sends every packet back;
the `call` side (the application) sends one every interval, stamped with its
sequence number and send time, and measures each one's round trip when its
echo returns. Both run on one machine, so one monotonic clock serves both ends.

    python -m bench.call_probe echo --port P
    python -m bench.call_probe call --host H --port P --seconds S [--rate 50] [--payload 200]

`echo` prints {"listening": true}; `call` prints one JSON line at the end:
{"sent": n, "received": n, "rtts_ms": [...], "sequences": [...], "up_ms": [...],
"down_ms": [...]} (each echo's round trip, the number of the packet it echoed,
and the round trip's two halves: the echo writes its own receive time into the
packet, in place, so where a queue is shows; echoes still in flight
LATE_GRACE_S after the last send count as lost).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import select
import socket
import struct
import sys
import time

STAMP = struct.Struct("!Qq")  # sequence number, send time (monotonic ns)
ECHO_STAMP = struct.Struct("!q")  # the echo's receive time (monotonic ns), right after STAMP
LATE_GRACE_S = 2.0  # longer than the deepest queue the bench builds


def echo(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", port))
        print(json.dumps({"listening": True}), flush=True)
        while True:
            data, sender = sock.recvfrom(2048)
            if len(data) >= STAMP.size + ECHO_STAMP.size:
                data = (
                    data[: STAMP.size]
                    + ECHO_STAMP.pack(time.monotonic_ns())
                    + data[STAMP.size + ECHO_STAMP.size :]
                )
            sock.sendto(data, sender)


def call(host: str, port: int, seconds: float, rate: float, payload: int) -> dict[str, object]:
    """Send at `rate` packets/s for `seconds`; the round trip of each echo."""
    interval_ns = int(1e9 / rate)
    padding = b"\0" * max(0, payload - STAMP.size)
    up_ms: list[float] = []
    down_ms: list[float] = []
    rtts_ms: list[float] = []
    sequences: list[int] = []
    seen: set[int] = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        sock.setblocking(False)
        print(json.dumps({"connected": True}), flush=True)
        started = time.monotonic_ns()
        stop_sending = started + int(seconds * 1e9)
        stop_waiting = stop_sending + int(LATE_GRACE_S * 1e9)
        sent = 0
        while True:
            now = time.monotonic_ns()
            if now >= stop_waiting or (now >= stop_sending and len(seen) == sent):
                break
            due = started + sent * interval_ns
            if now >= due and due < stop_sending:
                # the local queue full: this packet is lost, as a real call's would be
                with contextlib.suppress(BlockingIOError):
                    sock.send(STAMP.pack(sent, now) + padding)
                sent += 1
                continue
            wait_ns = (due if due < stop_sending else stop_waiting) - now
            if select.select([sock], [], [], max(0.0, wait_ns / 1e9))[0]:
                while True:
                    try:
                        data = sock.recv(2048)
                    except (BlockingIOError, ConnectionRefusedError):
                        break
                    sequence, sent_ns = STAMP.unpack_from(data)
                    if sequence not in seen:
                        now_ns = time.monotonic_ns()
                        seen.add(sequence)
                        rtts_ms.append((now_ns - sent_ns) / 1e6)
                        sequences.append(sequence)
                        if (
                            len(data) >= STAMP.size + ECHO_STAMP.size
                        ):  # one clock for both ends: one machine
                            (echoed_ns,) = ECHO_STAMP.unpack_from(data, STAMP.size)
                            up_ms.append((echoed_ns - sent_ns) / 1e6)
                            down_ms.append((now_ns - echoed_ns) / 1e6)
    return {
        "sent": sent,
        "received": len(seen),
        "rtts_ms": rtts_ms,
        "sequences": sequences,
        "up_ms": up_ms,
        "down_ms": down_ms,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.call_probe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    roles = parser.add_subparsers(dest="role", required=True)
    echo_role = roles.add_parser("echo")
    echo_role.add_argument("--port", type=int, required=True)
    call_role = roles.add_parser("call")
    call_role.add_argument("--host", required=True)
    call_role.add_argument("--port", type=int, required=True)
    call_role.add_argument("--seconds", type=float, required=True)
    call_role.add_argument("--rate", type=float, default=50.0, help="packets per second each way")
    call_role.add_argument("--payload", type=int, default=200, help="UDP payload bytes")
    arguments = parser.parse_args()
    if arguments.role == "echo":
        echo(arguments.port)
    else:
        result = call(
            arguments.host, arguments.port, arguments.seconds, arguments.rate, arguments.payload
        )
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
