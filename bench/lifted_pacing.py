"""What a connection whose upload limit was lifted still pays (issue 19).

    sudo .venv/bin/python -m bench.lifted_pacing [--blocks 20] [--kinds rate] [--congestion cubic]

The helper caps an upload limit's TCP sockets with SO_MAX_PACING_RATE and lifts
the cap with UNCAPPED_PACING (helper/kernel/socket_tagging.py, cap_socket). The
kernel switched such a socket to TCP's internal pacing (sk_pacing_status
SK_PACING_NEEDED) when the cap was set, and nothing switches it back: with a
congestion control that does not pace by itself (CUBIC) the connection goes on
pacing at TCP's own rate. This bench compares such a connection with one never
limited: bench/overhead.py's iperf3 upload between two namespaces, no datapath
(the pacing state is the socket's, whatever else runs), each window on a
connection of its own, never-limited (A) and lifted (B) in blocks of four, ABBA
and BAAB by turns. B's connection is capped at --cap-mbit for --capped seconds
and lifted the way the helper lifts it; A's waits as long. Then both settle and
are measured: CPU per GB at --rate-gbit (rate) or throughput (max), as
bench/cpu_per_gb.py reports them (B/A - 1, median of blocks and totals with 95%
bootstrap intervals).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from chadthrottle.helper.kernel.layout import NO_CAPS, SocketCaps
from chadthrottle.helper.kernel.socket_tagging import cap_open_sockets

from bench.cpu_per_gb import ORDERS, Window, summary, uptime
from bench.delay_line import delayed
from bench.overhead import Iperf, measure_window, window_of
from tests.support.netns import netns_pair

WARM_UP_S = 1.5
TRACEFS = Path("/sys/kernel/tracing")  # Iperf.stream's own wait, past slow start


def pace_kicks(seconds: float) -> subprocess.Popen[str]:
    """perf stat counting the expiries of TCP's pacing timer over seconds (the
    timer:hrtimer_expire_entry tracepoint whose function is tcp_pace_kick)."""
    address = next(line.split()[0] for line in Path("/proc/kallsyms").read_text().splitlines()
                   if line.endswith(" tcp_pace_kick"))  # fmt: skip
    return subprocess.Popen(
        ["perf", "stat", "-a", "-x", ",", "-e", "timer:hrtimer_expire_entry", "--filter",
         f"function == 0x{address}", "--", "sleep", str(seconds)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def kicks_of(counting: subprocess.Popen[str]) -> float:
    _, err = counting.communicate()
    return float(
        next(line.split(",")[0] for line in err.splitlines() if "hrtimer_expire_entry" in line)
    )


@contextlib.contextmanager
def tracefs_mounted() -> Iterator[None]:
    """perf reads tracepoint ids from tracefs: mounted for the run, unmounted after if it was not."""
    mounted = any(
        line.split()[1] == str(TRACEFS) for line in Path("/proc/mounts").read_text().splitlines()
    )
    if not mounted:
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)], check=True)
    try:
        yield
    finally:
        if not mounted:
            subprocess.run(["umount", str(TRACEFS)], check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lifted_pacing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--kinds", default="rate", help="rate (CPU per GB), max (throughput)")
    parser.add_argument("--congestion", default="cubic")
    parser.add_argument("--rate-gbit", type=float, default=4.0)
    parser.add_argument(
        "--cap-mbit", type=float, default=100.0, help="the limit before it is lifted"
    )
    parser.add_argument("--capped", type=float, default=0.5, help="seconds under the cap")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds after the lift")
    parser.add_argument("--window", type=float, default=1.5)
    parser.add_argument("--max-others", type=float, default=0.25)
    parser.add_argument(
        "--delay-ms", type=float, default=0.0, help="a round trip this long (bench/delay_line.py)"
    )
    parser.add_argument(
        "--kicks", action="store_true", help="also count TCP's pacing timer (perf, tracefs)"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))  # clean up on kill
    cap = SocketCaps(pacing_bps=int(args.cap_mbit * 1e6 / 8))
    print(f"start {uptime()}", file=sys.stderr)
    with (
        tracefs_mounted() if args.kicks else contextlib.nullcontext(),
        netns_pair() as pair,
        delayed(pair, args.delay_ms),
    ):
        iperf = Iperf(pair, args.congestion)
        try:
            for kind in args.kinds.split(","):
                windows: list[Window] = []
                kicks: dict[bool, list[float]] = {False: [], True: []}
                for block in range(args.blocks):
                    for lifted in ORDERS[block % 2]:
                        seconds = WARM_UP_S + args.capped + args.settle + args.window + 1
                        with iperf.stream("up", seconds, kind, args.rate_gbit * 1e9 / 8):
                            client = iperf.pids()[-1]
                            if lifted and not cap_open_sockets(client, cap, NO_CAPS):
                                raise SystemExit("the client's sockets could not be capped")
                            time.sleep(args.capped)
                            if lifted and not cap_open_sockets(client, NO_CAPS, cap):
                                raise SystemExit("the client's sockets could not be lifted")
                            time.sleep(args.settle)
                            counting = pace_kicks(args.window) if args.kicks else None
                            first, last = measure_window(iperf, args.window)
                            if counting is not None:
                                kicks[lifted].append(kicks_of(counting) / args.window)
                        others = window_of(first, last)[2]
                        windows.append(Window("up", kind, block, lifted, (last.at_ns - first.at_ns) / 1e9,
                                              last.moved_bytes - first.moved_bytes,
                                              last.transfer_ns - first.transfer_ns, others))  # fmt: skip
                what = "CPU per GB" if kind == "rate" else "throughput"
                a = [w for w in windows if not w.attached]
                gbit = sum(w.moved_bytes for w in a) * 8 / sum(w.seconds for w in a) / 1e9
                cpu = sum(w.cpu_ns for w in a) / sum(w.moved_bytes for w in a)
                print(f"{args.congestion} up {kind} {what}, lifted over never limited, {args.blocks} blocks: "
                      f"{summary(windows, kind, float('inf'))}")  # fmt: skip
                print(
                    f"  quiet blocks (others <= {args.max_others} CPUs): {summary(windows, kind, args.max_others)}"
                )
                if args.kicks:
                    print(
                        "  TCP pacing timer expiries (tcp_pace_kick, every CPU, others' too) per second, median: "
                        f"never {statistics.median(kicks[False]):.0f}, lifted {statistics.median(kicks[True]):.0f}"
                    )
                print(f"  A: {gbit:.2f} Gbit/s, {cpu:.3f} s of CPU per GB; {uptime()}")
        finally:
            iperf.close()
    print(f"end {uptime()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
