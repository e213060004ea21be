"""A round trip of real length between the benchmark's two namespaces.

The veth between them has a round trip of tens of microseconds, where no
congestion window slows TCP and only a sender's timers (200 ms and more) do.
A user's downloads cross the internet, with tens of milliseconds. This kernel
has no sch_netem nor sch_fq (docs/benchmarks.md), so the delay is made here: in
the peer namespace, every TCP and UDP packet that arrives on the veth from the
host side is routed (a policy rule on its input device, before the local
table) out of a tun device; this process (run in the peer namespace) reads
each one, holds it for the delay, and writes it back, and the peer's stack
receives it from the tun. One direction delayed is enough for the round trip,
and the helper's side (the host namespace) is left exactly as a user's is.

Routed, not redirected by a tc filter on the veth's ingress (until 2026-12-06):
a packet that the helper's upload limit passed through an IFB carries the
IFB's mark that its classification is done (skb->tc_skip_classify), the veth
keeps it across into the peer namespace, and the peer's receive path then
skips its tc ingress: every limited upload packet went around the delay line,
its round trip fell from the delay to microseconds the moment the limit
landed, and it overtook a whole delay of the stream's own older packets
(measured: docs/development.md, "Fifteenth round"). Routing sees every packet.

The tun offers no offloads, so the kernel cuts GSO super-packets into the
segments a real path carries before they reach it (and the receiving socket
counts segments as it would from a NIC). Measured on this routed path
(bench/delay_line_cost.py, 20 ms, load 1.8-3.5, 2026-12-06): a BBR upload
paced at 50 MiB/s is about 36,000 packets a second, 24-26% of a core in this
process; unpaced, BBR got 52-123 MB/s (5 runs), this process at 37-54% of a
core, with 70-5,400 packets a second dropped at the tun's 500-packet queue,
as a real bottleneck drops. A CUBIC upload got 27-29 MB/s, paced at 50 MiB/s
or not, with next to no drops there and 13% of a core here (not chased).

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
    """Relay on a new tun until stopped (SIGTERM: main()); the namespace's
    rp_filter is put back as it was, whatever ended the relay."""
    if realtime:  # woken at once under CPU load: the round trip does not grow with it
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    fd = open_tun(name)
    subprocess.run(["ip", "link", "set", "dev", name, "up"], check=True)
    # Packets from the host arrive on the tun, not on the veth their route
    # names: the check is off for it and for "all" (the stricter of the two
    # counts). The tun's own setting goes with the tun; "all" stays.
    shared = Path("/proc/sys/net/ipv4/conf/all/rp_filter")
    was = shared.read_text().strip()
    try:
        for conf in (shared, Path(f"/proc/sys/net/ipv4/conf/{name}/rp_filter")):
            conf.write_text("0")
        print(json.dumps({"ready": True}), flush=True)
        relay(fd, delay_ms / 1000)
    finally:
        shared.write_text(was)


ROUTE_TABLE = 2001  # the peer namespace's table that sends what the host sent out of the tun
_RULE_PREF, _LOCAL_PREF = 10, 100  # ours, then the local table (moved from 0 while delayed)
# forwarding on; early demux off, which gives a packet of an established socket that socket
# before routing, and forwarding then drops it (ip_forward: skb->sk)
_SETTINGS = {
    "net.ipv4.ip_forward": 1,
    "net.ipv6.conf.all.forwarding": 1,
    "net.ipv4.ip_early_demux": 0,
}


def _in_peer(pair: NetnsPair, argv: list[str], check: bool = True) -> str:
    return subprocess.run(nsenter_argv(pair.peer_ns, argv), check=check, capture_output=True,
                          text=True).stdout  # fmt: skip


def _route_through(pair: NetnsPair, tun: str, was: dict[str, str]) -> None:
    """Route every TCP and UDP packet arriving on the peer's veth out of the
    tun; was: filled with the settings to put back (_unroute)."""
    for key, value in _SETTINGS.items():
        was[key] = _in_peer(pair, ["sysctl", "-n", key]).strip()
        _in_peer(pair, ["sysctl", "-q", "-w", f"{key}={value}"])
    mtu = json.loads(_in_peer(pair, ["ip", "-j", "link", "show", "dev", pair.peer_if]))[0]["mtu"]
    _in_peer(pair, ["ip", "link", "set", "dev", tun, "mtu", str(mtu)])  # forwarded: cut as before
    for family in ("-4", "-6"):
        ip = ["ip", family]
        _in_peer(pair, [*ip, "route", "add", "default", "dev", tun, "table", str(ROUTE_TABLE)])
        for transport in ("tcp", "udp"):
            _in_peer(pair, [*ip, "rule", "add", "pref", str(_RULE_PREF), "iif", pair.peer_if,
                            "ipproto", transport, "lookup", str(ROUTE_TABLE)])  # fmt: skip
        _in_peer(pair, [*ip, "rule", "add", "pref", str(_LOCAL_PREF), "lookup", "local"])
        _in_peer(pair, [*ip, "rule", "del", "pref", "0", "lookup", "local"])


def _unroute(pair: NetnsPair, was: dict[str, str]) -> None:
    """Undo _route_through (what of it was made): the local table first again."""
    for family in ("-4", "-6"):
        ip = ["ip", family]
        rules = _in_peer(pair, [*ip, "rule", "show"], check=False)
        if not any(line.startswith("0:") for line in rules.splitlines()):
            _in_peer(pair, [*ip, "rule", "add", "pref", "0", "lookup", "local"], check=False)
        for pref in (_LOCAL_PREF, _RULE_PREF, _RULE_PREF):
            _in_peer(pair, [*ip, "rule", "del", "pref", str(pref)], check=False)
        _in_peer(pair, [*ip, "route", "flush", "table", str(ROUTE_TABLE)], check=False)
    for key, value in was.items():
        _in_peer(pair, ["sysctl", "-q", "-w", f"{key}={value}"], check=False)


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
    was: dict[str, str] = {}
    try:
        wait_for_line(line, "ready")
        _route_through(pair, tun, was)
        yield
        if line.poll() is not None:  # its tun went with it, and every packet routed there was lost
            raise RuntimeError(f"the delay line exited ({line.returncode}) while it was in use")
    finally:
        _unroute(pair, was)
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
