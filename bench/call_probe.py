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
{"sent": n, "started_ns": t, "received": n, "rtts_ms": [...], "sequences": [...], "up_ms": [...],
"down_ms": [...], "wire_rtts_ms": [...], "wire_up_ms": [...], "wire_down_ms": [...]}
(each echo's round trip, the number of the packet it echoed, and the round
trip's two halves: the echo writes its own receive time into the packet, in
place, so where a queue is shows; echoes still in flight LATE_GRACE_S after
the last send count as lost). SIGUSR1 ends the call early, as if its seconds
were up then (a test that has read what it judges need not wait out the rest).

The wire_ lists are the same round trips and halves by the times the kernel
received each packet (SO_TIMESTAMPNS, as it entered the receiving namespace)
and the times each end sent it, so neither end's process being late to read
counts: up is the echo's kernel receive time less the send time, down this
side's kernel receive time less the echo's send time, the round trip their
sum (the echo's turnaround left out). On a busy machine a reader woken tens
of milliseconds late put that lateness into rtts_ms, not into any queue of
the network's or ChadThrottle's; the wire_ lists are what a priority is
judged by. They are on the realtime clock, the kernel's stamps' (one machine,
one clock for both ends).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import select
import signal
import socket
import struct
import sys
import time

STAMP = struct.Struct("!Qq")  # sequence number, send time (monotonic ns)
ECHO_STAMP = struct.Struct("!q")  # the echo's receive time (monotonic ns), right after STAMP
# After ECHO_STAMP, on the realtime clock (ns): the send time, and the echo's
# kernel receive time and send time (the echo writes those two in place).
WIRE_STAMP = struct.Struct("!qqq")
WIRE_OFFSET = STAMP.size + ECHO_STAMP.size
WIRE_ECHO_OFFSET = WIRE_OFFSET + 8
LATE_GRACE_S = 2.0  # longer than the deepest queue the bench builds
SO_TIMESTAMPNS = 35  # asm-generic SO_TIMESTAMPNS_OLD (64-bit timespec); Python names none
TIMESPEC = struct.Struct("=qq")
ANCILLARY = socket.CMSG_SPACE(TIMESPEC.size)


def _stamped(sock: socket.socket) -> None:
    """The socket's received packets carry the kernel's receive time."""
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def _kernel_time_ns(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The kernel's receive time (realtime ns) from recvmsg's ancillary data;
    now, if it gave none (later than the kernel's: never a smaller delay)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            seconds, nanoseconds = TIMESPEC.unpack_from(data)
            return seconds * 1_000_000_000 + nanoseconds
    return time.time_ns()


def echo(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", port))
        _stamped(sock)
        print(json.dumps({"listening": True}), flush=True)
        while True:
            data, ancillary, _flags, sender = sock.recvmsg(2048, ANCILLARY)
            if len(data) >= STAMP.size + ECHO_STAMP.size:
                data = (
                    data[: STAMP.size]
                    + ECHO_STAMP.pack(time.monotonic_ns())
                    + data[STAMP.size + ECHO_STAMP.size :]
                )
            if len(data) >= WIRE_OFFSET + WIRE_STAMP.size:
                data = (
                    data[:WIRE_ECHO_OFFSET]
                    + struct.pack("!qq", _kernel_time_ns(ancillary), time.time_ns())
                    + data[WIRE_OFFSET + WIRE_STAMP.size :]
                )
            sock.sendto(data, sender)


def call(host: str, port: int, seconds: float, rate: float, payload: int) -> dict[str, object]:
    """Send at `rate` packets/s for `seconds`; the round trip of each echo."""
    interval_ns = int(1e9 / rate)
    padding = b"\0" * max(0, payload - WIRE_OFFSET - WIRE_STAMP.size)
    up_ms: list[float] = []
    down_ms: list[float] = []
    rtts_ms: list[float] = []
    wire: dict[str, list[float]] = {"wire_rtts_ms": [], "wire_up_ms": [], "wire_down_ms": []}
    sequences: list[int] = []
    seen: set[int] = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        sock.setblocking(False)
        _stamped(sock)
        print(json.dumps({"connected": True}), flush=True)
        started = time.monotonic_ns()
        stop_sending = started + int(seconds * 1e9)
        stop_waiting = stop_sending + int(LATE_GRACE_S * 1e9)
        ended: list[int] = []  # when SIGUSR1 came: the seconds are up then
        signal.signal(signal.SIGUSR1, lambda _sig, _frame: ended.append(time.monotonic_ns()))
        sent = 0
        while True:
            now = time.monotonic_ns()
            if ended and ended[0] < stop_sending:
                stop_sending = ended[0]
                stop_waiting = stop_sending + int(LATE_GRACE_S * 1e9)
            if now >= stop_waiting or (now >= stop_sending and len(seen) == sent):
                break
            due = started + sent * interval_ns
            if now >= due and due < stop_sending:
                # the local queue full: this packet is lost, as a real call's would be
                stamps = STAMP.pack(sent, now) + bytes(ECHO_STAMP.size)
                with contextlib.suppress(BlockingIOError):
                    sock.send(stamps + WIRE_STAMP.pack(time.time_ns(), 0, 0) + padding)
                sent += 1
                continue
            wait_ns = (due if due < stop_sending else stop_waiting) - now
            if select.select([sock], [], [], max(0.0, wait_ns / 1e9))[0]:
                while True:
                    try:
                        data, ancillary, _flags, _address = sock.recvmsg(2048, ANCILLARY)
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
                        if len(data) >= WIRE_OFFSET + WIRE_STAMP.size:
                            _add_wire(wire, data, _kernel_time_ns(ancillary))
    return {
        "sent": sent,
        "started_ns": started,  # packet n was due at started_ns + n * interval (monotonic)
        "received": len(seen),
        "rtts_ms": rtts_ms,
        "sequences": sequences,
        "up_ms": up_ms,
        "down_ms": down_ms,
        **wire,
    }


def _add_wire(wire: dict[str, list[float]], data: bytes, received_ns: int) -> None:
    """One echo's round trip and halves by the kernel's receive times
    (the module's docstring says why)."""
    sent_ns, echo_received_ns, echo_sent_ns = WIRE_STAMP.unpack_from(data, WIRE_OFFSET)
    if not echo_received_ns:  # an echo that writes no times: no wire times
        return
    up, down = (echo_received_ns - sent_ns) / 1e6, (received_ns - echo_sent_ns) / 1e6
    wire["wire_up_ms"].append(up)
    wire["wire_down_ms"].append(down)
    wire["wire_rtts_ms"].append(up + down)


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
    call_role.add_argument(
        "--payload", type=int, default=200, help="UDP payload bytes (48 at the least: the stamps)"
    )
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
