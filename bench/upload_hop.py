"""What the way uploads are shaped costs an application on one uplink: the
round trip of small messages and the CPU of a bulk upload, with no limit and
with an upload limit, through the real helper (tc backend, in the "host"
namespace of a veth pair, on a private system bus).

    sudo .venv/bin/python -m bench.upload_hop [--rounds 3] [--count 5000]

Since 2026-12-03 a limited upload leaves its uplink's egress hook for the
namespace's upload IFB and is sent on from there (one more pass through the
stack); before, it went into an HTB root on the uplink itself. Run this on
both (the earlier tree on PYTHONPATH) to compare. Per round and case:

  none      no limit at all (the reference)
  8GiB      an upload limit HTB never reaches: every packet takes the shaped
            path, nothing waits
  50MiB     an upload limit that holds a bulk upload: the same work per byte
            at a fixed rate

Prints the round trip (64-byte messages, one at a time; microseconds, p50 /
p90 / p99 of --count), the bulk upload's payload rate (MB/s) and the CPU the
sender's and the receiver's cgroups used per GB sent (cpu.stat usage_usec:
without CONFIG_IRQ_TIME_ACCOUNTING the kernel charges the softirq work done
on a task's behalf, the IFB's included, to that task; other work on the
machine does not count, but it slows these, so runs alternate and repeat).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus

from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import NetnsPair, app_scope, netns_pair, nsenter_argv, spawn, start_stream

MiB, GiB = 1024 * 1024, 1024 * 1024 * 1024
CASES = {"none": 0, "8GiB": 8 * GiB, "50MiB": 50 * MiB}
PINGPONG = Path(__file__).with_name("pingpong.py")
START_TIMEOUT_S = 150.0
WINDOW_S = 5.0


def _cpu_used_s(*cgroups: Path) -> float:
    """CPU seconds the cgroups' processes used so far."""
    used = 0
    for cgroup in cgroups:
        for line in (cgroup / "cpu.stat").read_text().splitlines():
            name, value = line.split()
            if name == "usage_usec":
                used += int(value)
    return used / 1e6


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Bench:
    def __init__(self, bus: PrivateSystemBus, pair: NetnsPair, count: int) -> None:
        self.bus, self.pair, self.count = bus, pair, count
        self._ports = iter(range(7100, 8000))

    @contextlib.contextmanager
    def scopes(self) -> Iterator[tuple[Path, Path]]:
        tag = secrets.token_hex(3)
        with app_scope(cgroup2_mount(), own_names.desktop_id(f"BenchHop{tag}")) as scope, \
                app_scope(cgroup2_mount(), own_names.desktop_id(f"BenchHopPeer{tag}")) as peer_scope:  # fmt: skip
            yield scope, peer_scope

    @contextlib.contextmanager
    def limited(self, pid: int, rate: int) -> Iterator[None]:
        if not rate:
            yield
            return
        app = call_helper(self.bus.address, lambda c: c.set_limit(f"pid:{pid}", Direction.UP, rate))
        try:
            yield
        finally:
            call_helper(self.bus.address, lambda c: c.clear_limit(app))

    def round_trips(self, rate: int) -> list[float]:
        port = next(self._ports)
        with self.scopes() as (scope, peer_scope):
            server = spawn(nsenter_argv(self.pair.peer_ns, [sys.executable, str(PINGPONG), "serve", "--port",
                                                            str(port)]), peer_scope)  # fmt: skip
            client = subprocess.Popen(
                ["sh", "-c", f'echo $$ > "{scope}/cgroup.procs" && exec "$@"', "sh",
                 *nsenter_argv(self.pair.host_ns, [sys.executable, str(PINGPONG), "client", "--host",
                                                   self.pair.peer_addr, "--port", str(port), "--count",
                                                   str(self.count)])],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
            try:
                assert client.stdout is not None and client.stdin is not None
                if client.stdout.readline().strip() != "ready":
                    raise RuntimeError("the ping-pong client did not connect")
                with self.limited(client.pid, rate):
                    time.sleep(0.5)  # the limit's objects are in place
                    client.stdin.write("go\n")
                    client.stdin.flush()
                    return [float(rtt) for rtt in json.loads(client.stdout.readline())]
            finally:
                for process in (client, server):
                    process.kill()
                    process.wait()

    def bulk(self, rate: int) -> tuple[float, float]:
        """(payload MB/s, the two ends' CPU seconds per GB of payload) of one upload."""
        with self.scopes() as (scope, peer_scope):
            stream = start_stream(self.pair, next(self._ports), "up", app_cgroup=scope, peer_cgroup=peer_scope,
                                  seconds=60)  # fmt: skip
            try:
                with self.limited(stream.app_pid, rate):
                    time.sleep(2.0)
                    busy = _cpu_used_s(scope, peer_scope)
                    payload = stream.receiver.rate_bps(WINDOW_S) * WINDOW_S
                    busy = _cpu_used_s(scope, peer_scope) - busy
                    return payload / WINDOW_S / 1e6, busy / (payload / 1e9)
            finally:
                stream.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upload_hop", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=5000, help="round trips per case")
    arguments = parser.parse_args(argv)
    with PrivateSystemBus() as bus, netns_pair() as pair, tempfile.TemporaryDirectory(prefix="ct-hop-") as state, \
            HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state), backend="tc",
                          start_timeout_s=START_TIMEOUT_S) as helper:  # fmt: skip
        bench = Bench(bus, pair, arguments.count)
        print("| round | case | RTT p50 / p90 / p99 (us) | bulk MB/s | CPU s per GB |")
        print("|---|---|---|---|---|")
        for round_number in range(1, arguments.rounds + 1):
            for case, rate in CASES.items():
                rtts = bench.round_trips(rate)
                mbps, cpu_per_gb = bench.bulk(rate)
                quantiles = " / ".join(f"{_percentile(rtts, q):.0f}" for q in (0.5, 0.9, 0.99))
                print(f"| {round_number} | {case} | {quantiles} (mean {statistics.fmean(rtts):.0f}) | {mbps:.0f} | "
                      f"{cpu_per_gb:.2f} |", flush=True)  # fmt: skip
        if helper.returncode is not None:
            raise RuntimeError(f"the helper died:\n{helper.log_text()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
