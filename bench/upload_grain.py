"""Why a small upload limit set on a full-speed TCP stream over a veth settles
late, and whether a send-window clamp holds it at once (issue 13).

    sudo .venv/bin/python -m bench.upload_grain [--cc bbr,cubic] [--rates 300KiB,10MiB]
        [--variants pace,htb,htbseg,rttlog0,clamp2,clamp4] [--runs 1] [--wire] [--then 10MiB]

No helper and no shaper: a sender in one namespace writes as fast as it can
to a receiver in another over a veth (tens of us of round trip); 1.5 s in,
the sender's socket gets SO_MAX_PACING_RATE at 0.995 of the limit in payload
terms, as the helper sets it, and, per variant:

- ``pace``: nothing else (what the helper does today);
- ``rttlog0``: net.ipv4.tcp_tso_rtt_log=0 in the sender's namespace (TSO
  packets sized by the pacing rate alone; a whole namespace's setting);
- ``htb``: an HTB class at the limit on the sender's uplink from the change
  on, with the helper's default burst (max(128 KiB, 50 ms)) and a pfifo leaf;
- ``htbN``: the same with a burst of N frames (1514 bytes);
- ``htbsegN``: a class with a burst of N frames (default: the helper's) and
  a TBF leaf whose bucket is one frame, so that TBF cuts every GSO packet
  into frames as it queues them (tbf_segment) and HTB passes frames, not
  64 KB super-packets;
- ``htbsegjN``: the same with a TBF bucket of a jumbo frame (9,230 bytes):
  TBF drops a packet larger than its bucket that it cannot cut, so a leaf in
  the helper must take every uplink's largest frame; GSO packets up to that
  size then pass whole;
- ``clampN``: a cgroup/setsockopt program on the sender's cgroup, run by that
  same setsockopt, sets ``TCP_BPF_SNDCWND_CLAMP`` to N segments with
  bpf_setsockopt (how the helper could reach a socket that is already open:
  its own setsockopt on the pidfd_getfd duplicate runs the socket's cgroup's
  programs).

The receiver timestamps every read. Printed: 0.25 s windows ending every
50 ms from 0.5 s to 4 s after the change, as a share of the limit (min, max,
mean), and the first window from which every one is within +-5%
("settled"). With --wire, also the sizes of the packets leaving the
sender's veth 1-3 s after the change (an AF_PACKET tap: a GSO packet is seen
whole) and the socket's cwnd, pacing rate and minimum RTT (ss -tin) at 2.5 s.
With --then RATE, the limit is raised 4.5 s after the first change (the
pacing cap, and an htb variant's class and TBF leaf changed in place, the
leaf to cut nothing, as the helper does above its threshold), and the
windows after that are printed too.
With no shaper, what the sender had queued before the change arrives in
the first windows; the benchmarks with the helper (bench/limits.py) read
those as the shaper passes them.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from chadthrottle.units import parse_rate

MSS, HEADERS = 1448, 52
PORT = 5997
CHANGE_S, AFTER_S = 1.5, 4.0
THEN_S = 4.5  # --then: the second change, this long after the first
LATE = 30  # the first window ending 2 s after the change
ADDR_A, ADDR_B = "10.213.7.1", "10.213.7.2"
SOL_SOCKET, SO_MAX_PACING_RATE, SOL_TCP, TCP_BPF_SNDCWND_CLAMP = 1, 47, 6, 1002
MIN_BURST = 2 * 64 * 1024  # contract.MIN_BURST_BYTES
JUMBO_FRAME = 9216 + 14
CGROUP_SOCKOPT_PROG, SETSOCKOPT_ATTACH = (
    25,
    22,
)  # BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_CGROUP_SETSOCKOPT

TRIGGER = r"""
#include <uapi/linux/bpf.h>
BPF_ARRAY(clamp, int, 1);
int on_setsockopt(struct bpf_sockopt *ctx) {
    if (ctx->level != SOL_SOCKET_ || ctx->optname != SO_MAX_PACING_RATE_ || !ctx->sk)
        return 1;
    int zero = 0;
    int *segments = clamp.lookup(&zero);
    if (segments && *segments) {
        int value = *segments;
        bpf_setsockopt(ctx->sk, SOL_TCP_, TCP_BPF_SNDCWND_CLAMP_, &value, sizeof(value));
    }
    return 1;
}
"""
DEFINES = [
    f"-D{name}_={value}"
    for name, value in (("SOL_SOCKET", SOL_SOCKET), ("SO_MAX_PACING_RATE", SO_MAX_PACING_RATE),
                        ("SOL_TCP", SOL_TCP), ("TCP_BPF_SNDCWND_CLAMP", TCP_BPF_SNDCWND_CLAMP))
]  # fmt: skip


# --wire: what leaves the sender's veth 1-3 s after the change (an AF_PACKET
# tap sees a GSO packet whole, before the device cuts it), and its socket then
WIRE_TAP = r"""
import json, socket, statistics, sys, time
tap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
tap.bind((sys.argv[1], 0))
tap.settimeout(0.1)
start, end, buffer, sizes = float(sys.argv[2]), float(sys.argv[3]), bytearray(128), []
while time.time() < end:
    try:
        length, address = tap.recvfrom_into(buffer, 128, socket.MSG_TRUNC)
    except TimeoutError:
        continue
    if address[2] == socket.PACKET_OUTGOING and length > 200 and time.time() >= start:
        sizes.append(length)
print(json.dumps(sizes))
"""


def wire_summary(sizes: list[int], seconds: float) -> str:
    if not sizes:
        return "no data packets"
    cuts = statistics.quantiles(sizes, n=10) if len(sizes) > 1 else [sizes[0]] * 9
    return (f"{len(sizes) / seconds:.0f} packets/s leave the veth, bytes median {statistics.median(sizes):.0f} "
            f"p90 {cuts[8]:.0f} max {max(sizes)}")  # fmt: skip


def socket_state(ns: str) -> str:
    """ss -tin's cwnd, pacing rate and minimum RTT of the sender's connection."""
    shown = subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "ss", "-tin", "dst", ADDR_B],
                           capture_output=True, text=True).stdout.split()  # fmt: skip
    wanted = ("cwnd:", "minrtt:", "pacing_rate", "unacked:")
    picked = [word if ":" in word else f"{word} {shown[i + 1]}"
              for i, word in enumerate(shown) if word.startswith(wanted)]  # fmt: skip
    return " ".join(picked)


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def receiver(out: str, seconds: float) -> None:
    """Accept one connection and record (monotonic time, bytes so far) per read."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((ADDR_B, PORT))
    listener.listen(1)
    print("ready", flush=True)
    connection, _ = listener.accept()
    samples: list[tuple[float, int]] = []
    total, buffer, start = 0, bytearray(1 << 20), time.monotonic()
    while (read := connection.recv_into(buffer)) and time.monotonic() - start < seconds:
        total += read
        samples.append((time.monotonic(), total))
    Path(out).write_text(json.dumps(samples))


def sender(start_wall: float, cc: str, pace_bps: int, seconds: float, then_bps: int = 0) -> None:
    """Write at full speed; at start_wall + CHANGE_S cap the pacing rate (and
    THEN_S later raise it to then_bps, if given)."""
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
    sock.connect((ADDR_B, PORT))
    sock.settimeout(0.05)
    data, paced = b"x" * 65536, False
    while time.time() < start_wall + seconds:
        if not paced and time.time() >= start_wall + CHANGE_S:
            sock.setsockopt(SOL_SOCKET, SO_MAX_PACING_RATE, pace_bps)
            paced = True
        if then_bps and time.time() >= start_wall + CHANGE_S + THEN_S:
            sock.setsockopt(SOL_SOCKET, SO_MAX_PACING_RATE, then_bps)
            then_bps = 0
        try:
            sock.send(data)
        except TimeoutError:
            continue
        except OSError:  # the receiver has what it needs and left
            break
    sock.close()


def windows(samples: list[tuple[float, int]], change: float, payload_bps: float) -> list[float]:
    """0.25 s windows ending every 50 ms from 0.5 s to AFTER_S after the change,
    each as a share of the limit."""
    times = [t for t, _ in samples]

    def received_by(moment: float) -> int:
        lo, hi = 0, len(times) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if times[mid] <= moment else (lo, mid - 1)
        return samples[lo][1]

    ends = [change + 0.5 + 0.05 * i for i in range(int((AFTER_S - 0.5) / 0.05) + 1)]
    return [(received_by(e) - received_by(e - 0.25)) / (0.25 * payload_bps) for e in ends]


def settled(shares: list[float]) -> str:
    for i in range(len(shares)):
        if all(0.95 <= s <= 1.05 for s in shares[i:]):
            return f"{0.5 + 0.05 * i:.2f} s"
    return "never"


class Trigger:
    """The cgroup/setsockopt program on a cgroup of this benchmark's own."""

    def __init__(self, cgroup: Path, segments: int) -> None:
        from chadthrottle.helper.kernel.bcc_env import prepare_bcc_environment

        prepare_bcc_environment()
        from bcc import BPF

        self._bpf: Any = BPF(text=TRIGGER, cflags=DEFINES)
        self._fn = self._bpf.load_func(
            "on_setsockopt", CGROUP_SOCKOPT_PROG, attach_type=SETSOCKOPT_ATTACH
        )
        self._bpf["clamp"][ctypes.c_int(0)] = ctypes.c_int(segments)
        self._cgroup = cgroup
        self._attach(BPF.attach_func)

    def _attach(self, how: Any) -> None:
        fd = os.open(self._cgroup, os.O_RDONLY)
        try:
            how(self._fn, fd, SETSOCKOPT_ATTACH)
        finally:
            os.close(fd)

    def close(self) -> None:
        from bcc import BPF

        self._attach(BPF.detach_func)
        self._bpf.cleanup()


def shape(ns: str, dev: str, rate_bps: int, cut: int, burst: int) -> None:
    """An HTB class at rate_bps for every packet of dev, with burst bytes (0:
    the helper's default); cut: a TBF leaf of that bucket, which cuts GSO
    packets larger than it into frames (and drops any other packet larger
    than it)."""
    burst = burst or max(MIN_BURST, int(rate_bps * 0.05))
    tc = ("tc", "-n", ns)
    _run(*tc, "qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb", "default", "1")
    _run(*tc, "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate",
         f"{rate_bps * 8}bit", "burst", str(burst), "cburst", str(burst))  # fmt: skip
    if cut:  # TBF's own rate far above the class's: it only cuts, HTB paces
        _run(*tc, "qdisc", "add", "dev", dev, "parent", "1:1", "handle", "10:", "tbf", "rate",
             f"{rate_bps * 8 * 20}bit", "burst", str(cut), "latency", "1s")  # fmt: skip


def raise_class(ns: str, dev: str, rate_bps: int, cut: bool) -> None:
    """The class to rate_bps with the helper's burst, its TBF leaf to cut nothing."""
    burst = str(max(MIN_BURST, int(rate_bps * 0.05)))
    _run("tc", "-n", ns, "class", "change", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate",
         f"{rate_bps * 8}bit", "burst", burst, "cburst", burst)  # fmt: skip
    if cut:
        _run("tc", "-n", ns, "qdisc", "change", "dev", dev, "parent", "1:1", "handle", "10:", "tbf", "rate",
             "100gbit", "burst", str(1 << 20), "limit", str(4 << 20))  # fmt: skip


def one_run(
    variant: str, cc: str, rate_bps: int, wire: bool = False, then_bps: int = 0
) -> tuple[list[float], list[float]]:
    """The windows after the change, and after the second change (--then; else [])."""
    from chadthrottle.helper.kernel.cgroups import cgroup2_mount

    suffix = f"{os.getpid() % 100000}"
    ns_a, ns_b, cgroup = f"ctgrA{suffix}", f"ctgrB{suffix}", cgroup2_mount() / f"ctgrain{suffix}"
    payload_bps = rate_bps * MSS / (MSS + HEADERS)
    trigger: Trigger | None = None
    out = Path(f"/tmp/upload_grain_{suffix}.json")
    try:
        _run("ip", "netns", "add", ns_a)
        _run("ip", "netns", "add", ns_b)
        _run("ip", "-n", ns_a, "link", "add", "gra", "type", "veth", "peer", "grb", "netns", ns_b)
        for ns, dev, addr in ((ns_a, "gra", ADDR_A), (ns_b, "grb", ADDR_B)):
            _run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
        if variant == "rttlog0":
            _run("ip", "netns", "exec", ns_a, "sysctl", "-qw", "net.ipv4.tcp_tso_rtt_log=0")
        cgroup.mkdir()
        if variant.startswith("clamp"):
            trigger = Trigger(cgroup, int(variant.removeprefix("clamp")))
        seconds = CHANGE_S + AFTER_S + 0.5 + (THEN_S if then_bps else 0)
        then_pace = int(0.995 * then_bps * MSS / (MSS + HEADERS))
        rx = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns_b}", sys.executable, "-m", "bench.upload_grain",
                               "--receiver", str(out), str(seconds)], stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert rx.stdout is not None and rx.stdout.readline().strip() == "ready"
        start_wall = time.time() + 0.3
        pace = int(0.995 * payload_bps)
        tx = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns_a}", sys.executable, "-m", "bench.upload_grain",
                               "--sender", str(start_wall), cc, str(pace), str(seconds), str(then_pace)])  # fmt: skip
        (cgroup / "cgroup.procs").write_text(str(tx.pid))  # before it connects (0.3 s)
        tap = None
        if wire:
            change_at = start_wall + CHANGE_S
            tap = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns_a}", sys.executable, "-c", WIRE_TAP, "gra",
                                    str(change_at + 1), str(change_at + 3)], stdout=subprocess.PIPE, text=True)  # fmt: skip
        if variant.startswith("htb"):
            time.sleep(max(0.0, start_wall + CHANGE_S - time.time()))
            frames = variant.removeprefix("htbsegj").removeprefix("htbseg").removeprefix("htb")
            cut = JUMBO_FRAME if variant.startswith("htbsegj") else 1514 if "seg" in variant else 0
            shape(ns_a, "gra", rate_bps, cut, int(frames or 0) * 1514)
        if tap is not None:
            time.sleep(max(0.0, start_wall + CHANGE_S + 2.5 - time.time()))
            state = socket_state(ns_a)
            sizes = json.loads(tap.communicate(timeout=10)[0])
            print(
                f"    wire 1-3 s after: {wire_summary(sizes, 2.0)}; socket at 2.5 s: {state}",
                flush=True,
            )
        if then_bps and variant.startswith("htb"):  # as the helper changes a class: in place
            time.sleep(max(0.0, start_wall + CHANGE_S + THEN_S - time.time()))
            raise_class(ns_a, "gra", then_bps, "seg" in variant)
        tx.wait(seconds + 10)
        rx.wait(10)
        samples = [(float(t), int(n)) for t, n in json.loads(out.read_text())]
        change = start_wall + CHANGE_S - (time.time() - time.monotonic())
        later = windows(samples, change + THEN_S, then_pace / 0.995) if then_bps else []
        return windows(samples, change, payload_bps), later
    finally:
        if trigger is not None:
            trigger.close()
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        out.unlink(missing_ok=True)
        for _ in range(20):
            try:
                cgroup.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cc", default="bbr,cubic")
    parser.add_argument("--rates", default="300KiB,10MiB")
    parser.add_argument("--variants", default="pace,htb,htbseg,rttlog0,clamp2,clamp4")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--wire",
        action="store_true",
        help="also the packets leaving the sender's veth and its socket",
    )
    parser.add_argument("--receiver", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument(
        "--then",
        default="",
        help="a second limit, 4.5 s after the first (htb variants: the class raised in place)",
    )
    parser.add_argument("--sender", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        return receiver(args.receiver[0], float(args.receiver[1]))
    if args.sender:
        wall, cc, pace, seconds, then = args.sender
        return sender(float(wall), cc, int(pace), float(seconds), int(then))
    print(
        f"upload grain, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, load {os.getloadavg()[0]:.2f}"
    )
    print(
        "cc     rate          variant   settled  min   max   mean   min2  max2  (0.25 s windows "
        "0.5-4 s after the change; min2, max2: from 2 s on)"
    )
    for cc in args.cc.split(","):
        for rate in args.rates.split(","):
            for variant in args.variants.split(","):
                for _ in range(args.runs):
                    then_bps = int(parse_rate(args.then) or 0) if args.then else 0
                    shares, later = one_run(
                        variant, cc, int(parse_rate(rate) or 0), args.wire, then_bps
                    )
                    print(f"{cc:6s} {rate:>8s}/s  {variant:8s} {settled(shares):>8s}  {min(shares):.2f}  "
                          f"{max(shares):.2f}  {statistics.mean(shares):.3f}  "
                        f"{min(shares[LATE:]):.2f}  {max(shares[LATE:]):.2f}  "
                          f"(load {os.getloadavg()[0]:.2f})", flush=True)  # fmt: skip
                    if later:
                        print(f"    then {args.then}/s: settled {settled(later)}, {min(later):.2f}-{max(later):.2f}, "
                              f"mean {statistics.mean(later):.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
