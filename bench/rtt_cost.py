"""What the latency readout of protected applications costs the helper.

Each RttWatch.EVERY_S (2 s) the engine measures the smoothed round-trip time
of the established TCP sockets of applications whose priority is not normal
(helper/engine/rtt.py): each of their processes' open files listed, one
sock_diag dump of every established TCP socket of the namespace. This times
that measure() in the helper's own process, for a protected application of
--procs processes with --sockets TCP connections each, while --background
other established connections exist in the namespace (the dump lists them all).

    sudo .venv/bin/python -m bench.rtt_cost [--procs 4] [--sockets 20] [--background 2000] [--rounds 50]

Prints the median and p95 time of one measure() and its share of a core
(median / EVERY_S). docs/benchmarks.md ("Priorities: the helper's side") keeps a run.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time

from chadthrottle.helper.engine.rtt import EVERY_S, RttWatch

HOLDER = """
import socket, sys, time
listener = socket.create_server(("127.0.0.1", 0))
kept = []
for _ in range(int(sys.argv[1])):
    client = socket.create_connection(listener.getsockname())
    kept += [client, listener.accept()[0]]
print("ready", flush=True)
time.sleep(600)
"""


def _background(count: int) -> list[socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0), backlog=count)
    kept = [listener]
    for _ in range(count // 2):
        client = socket.create_connection(listener.getsockname())
        kept += [client, listener.accept()[0]]
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument(
        "--sockets", type=int, default=20, help="connections per process (two sockets each)"
    )
    parser.add_argument(
        "--background", type=int, default=2000, help="other established sockets in the namespace"
    )
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args(argv)
    kept = _background(args.background)
    holders = [subprocess.Popen([sys.executable, "-c", HOLDER, str(args.sockets)], stdout=subprocess.PIPE, text=True)
               for _ in range(args.procs)]  # fmt: skip
    try:
        for holder in holders:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        watch, times = RttWatch(every_s=0.0), []
        apps = {"app:bench": [holder.pid for holder in holders]}
        for _ in range(args.rounds):
            began = time.perf_counter()
            watch.measure(apps)
            times.append(time.perf_counter() - began)
        times.sort()
        median, p95 = statistics.median(times), times[int(0.95 * len(times))]
        print(f"procs {args.procs} x {args.sockets * 2} sockets, {args.background} other established sockets: "
              f"measure() median {median * 1e3:.2f} ms, p95 {p95 * 1e3:.2f} ms; every {EVERY_S:g} s = "
              f"{median / EVERY_S:.3%} of a core; rtt {watch.rtt_us.get('app:bench')} us; load {os.getloadavg()[0]:.2f}")  # fmt: skip
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()
        for sock in kept:
            sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
