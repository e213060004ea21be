"""What the tests' long path (bench/delay_line.py, routed through a tun) costs
and passes: packets a second and CPU of the delay line's process at a paced
upload, and the rate an unpaced upload gets through it.

Each round makes a namespace pair, delays what the host sends by --delay-ms
(delayed(), not realtime), runs one TCP upload (tests/support/traffic.py,
--congestion) for --seconds, and reads over a --window-s near its end: the
tun's counters in the peer namespace (packets routed out to the line, and
those its 500-packet queue dropped), the delay line's CPU time
(/proc/PID/stat utime+stime), and the receiver's rate. The first round is paced at --rate-mib MiB/s, the
second unpaced (the delay line is then the bottleneck).

    python -m bench.delay_line_cost                  # 20 ms, 50 MiB/s, then unpaced
    python -m bench.delay_line_cost --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.delay_line import delayed
from tests.support.netns import NetnsPair, netns_pair, nsenter_argv, start_stream

TICKS = os.sysconf("SC_CLK_TCK")


def _line_pid(tun: str) -> int:
    found = subprocess.run(["pgrep", "-f", f"bench.delay_line --dev {tun} "], capture_output=True,
                           text=True).stdout.split()  # fmt: skip
    if len(found) != 1:
        raise RuntimeError(f"not one delay line process for {tun}: {found}")
    return int(found[0])


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _tun_counts(pair: NetnsPair, tun: str) -> tuple[int, int]:
    """(packets routed out of the tun to the line, those dropped at its queue)."""
    shown = subprocess.run(nsenter_argv(pair.peer_ns, ["ip", "-s", "-j", "link", "show", "dev", tun]),
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    sent = json.loads(shown)[0]["stats64"]["tx"]  # the kernel's side: out to the line
    return int(sent["packets"]), int(sent["dropped"])


def one_round(
    delay_ms: float, rate_bps: float, seconds: float, window_s: float, congestion: str
) -> str:
    with netns_pair() as pair, delayed(pair, delay_ms):
        tun = f"ctd{pair.peer_if[3:]}"
        pid = _line_pid(tun)
        stream = start_stream(pair, 5990, "up", rate_bps=rate_bps, seconds=seconds,
                              congestion=congestion)  # fmt: skip
        try:
            time.sleep(seconds - window_s - 1.5)  # past the start (slow start, pacing's ramp)
            load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
            cpu0, (packets0, dropped0), began = (
                _cpu_s(pid),
                _tun_counts(pair, tun),
                time.monotonic(),
            )
            rate = stream.receiver.rate_bps(window_s)  # over the same window
            cpu1, (packets1, dropped1) = _cpu_s(pid), _tun_counts(pair, tun)
            took = time.monotonic() - began
        finally:
            stream.stop()
    kind = f"paced {rate_bps / 2**20:.0f} MiB/s" if rate_bps else "unpaced"
    return (f"{kind:18s} {congestion:5s} delay {delay_ms:.0f} ms: received {rate / 1e6:6.1f} MB/s "
            f"({rate / 2**20:5.1f} MiB/s), line {(packets1 - packets0) / took:6.0f} packets/s, "
            f"{(dropped1 - dropped0) / took:5.0f}/s dropped at its queue, "
            f"delay line {100 * (cpu1 - cpu0) / took:4.1f}% of a core (load {load})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--rate-mib", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--window-s", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--congestion", default="cubic", help="the upload's (cubic, bbr, ...)")
    args = parser.parse_args()
    for _ in range(args.rounds):
        for rate_bps in (args.rate_mib * 2**20, 0.0):
            print(one_round(args.delay_ms, rate_bps, args.seconds, args.window_s, args.congestion),
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
