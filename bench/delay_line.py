"""A round trip of real length between the benchmark's two namespaces.

The veth between them has a round trip of tens of microseconds, where no
congestion window slows TCP and only a sender's timers (200 ms and more) do.
A user's downloads cross the internet, with tens of milliseconds. This kernel
has no sch_netem nor sch_fq (docs/benchmarks.md), so the delay is made here: in
the peer namespace, the veth's ingress redirects every TCP and UDP packet from
the host side to a tun device; this process (run in the peer namespace) reads
each one, holds it for the delay, and writes it back, and the peer's stack
receives it from the tun. One direction delayed is enough for the round trip,
and the helper's side (the host namespace) is left exactly as a user's is.

The tun offers no offloads, so the kernel cuts GSO super-packets into the
segments a real path carries before they reach it (and the receiving socket
counts segments as it would from a NIC). About 36,000 packets a second at
50 MiB/s: measured, 27% of a core in this process. Unlimited, it is a
bottleneck of about 123 MB/s with the tun's 500-packet queue, and drops there
like a real one.

    python -m bench.delay_line --dev NAME --delay-ms 20   (in the peer namespace)
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.netns import NetnsPair, nsenter_argv, wait_for_line
from tests.support.tun_link import open_tun

READ_BYTES = 65536


def relay(fd: int, delay_s: float) -> None:
    """Write every packet back delay_s after it was read, in order, forever."""
    held: collections.deque[tuple[float, bytes]] = collections.deque()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        wait_ms = None if not held else max(0.0, (held[0][0] - time.monotonic()) * 1000)
        if poller.poll(wait_ms):
            due = time.monotonic() + delay_s
            with contextlib.suppress(BlockingIOError):
                while True:
                    held.append((due, os.read(fd, READ_BYTES)))
        now = time.monotonic()
        while held and held[0][0] <= now:
            with contextlib.suppress(OSError):  # a packet the stack refuses is lost, as on a wire
                os.write(fd, held.popleft()[1])


def serve(name: str, delay_ms: float, realtime: bool = False) -> None:
    if realtime:  # woken at once under CPU load: the round trip does not grow with it
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    fd = open_tun(name)
    subprocess.run(["ip", "link", "set", "dev", name, "up"], check=True)
    for conf in (
        "all",
        name,
    ):  # packets from the host arrive on the tun, not on the veth their route names
        Path(f"/proc/sys/net/ipv4/conf/{conf}/rp_filter").write_text("0")
    print(json.dumps({"ready": True}), flush=True)
    relay(fd, delay_ms / 1000)


@contextlib.contextmanager
def delayed(pair: NetnsPair, delay_ms: float, realtime: bool = False) -> Iterator[None]:
    """Delay every TCP and UDP packet from the host to the peer by delay_ms
    (0: leave the path as it is), until the block ends. realtime: the relay
    runs at SCHED_FIFO priority 1, so other processes' CPU load neither
    stretches the round trip nor makes it jump (a test's path; at a few
    thousand packets a second it takes about 1% of a core)."""
    if delay_ms <= 0:
        yield
        return
    tun = f"ctd{pair.peer_if[3:]}"
    line = subprocess.Popen(
        nsenter_argv(pair.peer_ns, [sys.executable, "-m", "bench.delay_line", "--dev", tun, "--delay-ms", str(delay_ms)]
                     + (["--realtime"] if realtime else [])),
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_line(line, "ready")
        tc = ["tc", "-n", pair.peer_ns]
        subprocess.run([*tc, "qdisc", "add", "dev", pair.peer_if, "ingress"], check=True)
        routes = [
            ("ip", "ip", "6"),
            ("ip", "ip", "17"),
            ("ipv6", "ip6", "6"),
            ("ipv6", "ip6", "17"),
        ]
        for prio, (protocol, match, transport) in enumerate(routes, start=1):
            subprocess.run([*tc, "filter", "add", "dev", pair.peer_if, "parent", "ffff:", "protocol", protocol,
                            "prio", str(prio), "u32", "match", match, "protocol", transport, "0xff",
                            "action", "mirred", "egress", "redirect", "dev", tun], check=True)  # fmt: skip
        yield
        if (
            line.poll() is not None
        ):  # its tun went with it, and every packet redirected there was lost
            raise RuntimeError(f"the delay line exited ({line.returncode}) while it was in use")
    finally:
        subprocess.run(["tc", "-n", pair.peer_ns, "qdisc", "del", "dev", pair.peer_if, "ingress"],
                       capture_output=True)  # fmt: skip
        line.terminate()
        try:
            line.wait(timeout=5)
        except subprocess.TimeoutExpired:
            line.kill()
            line.wait()
        if line.stdout is not None:
            line.stdout.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.delay_line",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dev", required=True, help="name of the tun device to create")
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--realtime", action="store_true", help="relay at SCHED_FIFO priority 1")
    arguments = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(0))
    serve(arguments.dev, arguments.delay_ms, arguments.realtime)
    return 0


if __name__ == "__main__":
    sys.exit(main())
