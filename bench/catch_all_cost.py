"""What the catch-all costs traffic that is not prioritized (issue 16).

While a link capacity is set, every packet of a shaped direction takes the
IFB hop (helper/kernel/catch_all.py): an untagged TCP stream and a "call"
(small UDP packets, their round trip) over a veth between two namespaces,
without the shaper and with a link on both directions far above what the
veth carries (so the tree never holds anything back and what is left is the
hop's own cost).

    sudo .venv/bin/python -m bench.catch_all_cost [--seconds 4] [--rounds 3]

Prints, per case and round: the stream's rate (MB/s) and the call's round
trip (median, p99). docs/benchmarks.md ("What the catch-all costs") keeps a run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.priority_classes import LinkShaping
from chadthrottle.helper.kernel.tc_shaper import TcShaper
from pyroute2 import IPRoute

from tests.support import own_names
from tests.support.netns import (
    NetnsPair,
    entered_netns,
    netns_pair,
    nsenter_argv,
    spawn,
    start_stream,
    wait_for_line,
)

FAR_ABOVE_BPS = 12_500_000_000  # 100 Gbit/s: the tree is never the bottleneck
CACHE_DIR = Path("/var/cache/chadthrottle")


@contextlib.contextmanager
def _linked(pair: NetnsPair, datapath: Datapath) -> Iterator[None]:
    with entered_netns(pair.host_ns):
        ipr = IPRoute()
    shaper = TcShaper(ipr, datapath.tc_program, datapath, instance=own_names.JOURNAL_INSTANCE)
    try:
        for direction in Direction:
            shaper.set_link(direction, LinkShaping(FAR_ABOVE_BPS))
        shaper.reconcile({})
        yield
    finally:
        shaper.close()
        ipr.close()


def _stream_rate(pair: NetnsPair, seconds: float) -> float:
    stream = start_stream(pair, random.randrange(20000, 60000), "up", seconds=seconds + 2)
    try:
        stream.receiver.rate_bps(1.0)  # past slow start
        return stream.receiver.rate_bps(seconds)
    finally:
        stream.stop()


def _call_rtts(pair: NetnsPair, seconds: float) -> list[float]:
    port = random.randrange(20000, 60000)
    echo = spawn(nsenter_argv(pair.peer_ns, [sys.executable, "-m", "bench.call_probe", "echo", "--port", str(port)]),
                 None)  # fmt: skip
    try:
        wait_for_line(echo, "listening")
        caller = spawn(nsenter_argv(pair.host_ns, [sys.executable, "-m", "bench.call_probe", "call", "--host",
                                                   pair.peer_addr, "--port", str(port), "--seconds", str(seconds),
                                                   "--rate", "200"]), None)  # fmt: skip
        out, _ = caller.communicate(timeout=seconds + 30)
        return [float(r) for r in json.loads(out.strip().splitlines()[-1])["rtts_ms"]]
    finally:
        echo.kill()
        echo.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.catch_all_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args(argv)
    datapath = Datapath(cache_dir=CACHE_DIR)
    datapath.open()
    try:
        with netns_pair() as pair:
            print("| round | case | untagged TCP stream | call RTT median | p99 |")
            print("|---|---|---|---|---|")
            for round_number in range(1, arguments.rounds + 1):
                for case in ("no shaper", "link both ways"):
                    shaping = (
                        _linked(pair, datapath) if case != "no shaper" else contextlib.nullcontext()
                    )
                    with shaping:
                        rate = _stream_rate(pair, arguments.seconds)
                        rtts = sorted(_call_rtts(pair, arguments.seconds))
                    p99 = rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))]
                    print(f"| {round_number} | {case} | {rate / 1e6:.0f} MB/s | {statistics.median(rtts):.3f} ms "
                          f"| {p99:.3f} ms |", flush=True)  # fmt: skip
    finally:
        datapath.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
