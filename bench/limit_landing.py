"""How a download limit lands on a connection that runs at full speed, per
backend: the rate the application reads in consecutive windows after the
`limit` call, through the real helper (in the "host" namespace of a veth pair,
on a private system bus).

    sudo .venv/bin/python -m bench.limit_landing [--backends ebpf,tc] [--rate 1000000] [--runs 2]
    sudo .venv/bin/python -m bench.limit_landing --starts [--backends tc] [--runs 2]

The Debian package test (tests/packaging/fresh_root/limit_check.py) reads a
1 MB/s download limit 1.5-4.5 s after the call; with `--backend ebpf` it read
344 kB/s. Prints, per backend and run, achieved/configured (payload read x
1500/1448, L3) in that window and in each 1.5 s window up to 15 s, and the
sender's retransmissions meanwhile (from `ss -ti` in the sender's namespace).

--starts: the helper is started only once the download runs, as when the
`limit` call itself starts it (bus activation), with no compiled programs
(an empty --cache-dir: it compiles them, its first start) and then with
them; the limit is set as soon as it serves. Prints how long the start
took and the download in 0.5 s windows after the call.
"""

from __future__ import annotations

import argparse
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus

from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import NetnsPair, app_scope, netns_pair, start_stream

WIRE = 1448 / 1500
START_TIMEOUT_S = 150.0
WINDOW_S = 1.5
WINDOWS = 10
PACKAGE_TEST_WINDOW = (1.5, 4.5)  # limit_check.py: SETTLE_S, SETTLE_S + MEASURE_S


def _retransmitted(pair: NetnsPair, port: int) -> int:
    """Segments the download's sender (in the peer namespace) retransmitted so far."""
    shown = subprocess.run(["ip", "netns", "exec", pair.peer_ns, "ss", "-tin", f"sport = :{port}"],
                           capture_output=True, text=True, check=False).stdout  # fmt: skip
    found = re.search(r"retrans:\d+/(\d+)", shown)
    return int(found.group(1)) if found else 0


def _read(samples: list[tuple[float, int]], start: float, end: float) -> float:
    """Payload rate between the reports nearest start and end."""
    inside = [s for s in samples if start <= s[0] <= end]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return 0.0
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def landing(
    bus: PrivateSystemBus, pair: NetnsPair, port: int, rate: int
) -> tuple[float, list[float], int]:
    tag = secrets.token_hex(3)
    with app_scope(cgroup2_mount(), own_names.desktop_id(f"BenchLanding{tag}")) as scope, \
            app_scope(cgroup2_mount(), own_names.desktop_id(f"BenchLandingPeer{tag}")) as peer_scope:  # fmt: skip
        stream = start_stream(
            pair, port, "down", app_cgroup=scope, peer_cgroup=peer_scope, seconds=60
        )
        try:
            stream.receiver.rate_bps(1.0)  # at full speed first
            retransmitted = _retransmitted(pair, port)
            app = call_helper(
                bus.address, lambda c: c.set_limit(f"pid:{stream.app_pid}", Direction.DOWN, rate)
            )
            limited_at = time.monotonic()
            try:
                time.sleep(WINDOW_S * WINDOWS + 0.3)
                samples = [(t - limited_at, b) for t, b in stream.receiver.samples]
                retransmitted = _retransmitted(pair, port) - retransmitted
            finally:
                call_helper(bus.address, lambda c: c.clear_limit(app))
        finally:
            stream.stop()
    package = _read(samples, *PACKAGE_TEST_WINDOW) / WIRE / rate
    windows = [
        _read(samples, i * WINDOW_S, (i + 1) * WINDOW_S) / WIRE / rate for i in range(WINDOWS)
    ]
    return package, windows, retransmitted


START_WINDOW_S, START_WINDOWS = 0.5, 16


def landing_on_start(bus: PrivateSystemBus, pair: NetnsPair, port: int, rate: int, backend: str,
                     cache_dir: Path) -> tuple[float, list[float]]:  # fmt: skip
    """(seconds the helper took to serve, the download's windows after the limit)."""
    tag = secrets.token_hex(3)
    with app_scope(cgroup2_mount(), own_names.desktop_id(f"BenchStart{tag}")) as scope, \
            app_scope(cgroup2_mount(), own_names.desktop_id(f"BenchStartPeer{tag}")) as peer_scope, \
            tempfile.TemporaryDirectory(prefix="ct-start-") as state:  # fmt: skip
        stream = start_stream(
            pair, port, "down", app_cgroup=scope, peer_cgroup=peer_scope, seconds=90
        )
        try:
            stream.receiver.rate_bps(1.0)  # at full speed first
            started = time.monotonic()
            with HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state), backend=backend,
                               start_timeout_s=START_TIMEOUT_S, cache_dir=cache_dir):  # fmt: skip
                serving_s = time.monotonic() - started
                app = call_helper(
                    bus.address,
                    lambda c: c.set_limit(f"pid:{stream.app_pid}", Direction.DOWN, rate),
                )
                limited_at = time.monotonic()
                time.sleep(START_WINDOW_S * START_WINDOWS + 0.3)
                samples = [(t - limited_at, b) for t, b in stream.receiver.samples]
                call_helper(bus.address, lambda c: c.clear_limit(app))
        finally:
            stream.stop()
    windows = [_read(samples, i * START_WINDOW_S, (i + 1) * START_WINDOW_S) / WIRE / rate
               for i in range(START_WINDOWS)]  # fmt: skip
    return serving_s, windows


def starts(backends: list[str], runs: int, rate: int) -> None:
    ports = iter(range(8900, 9500))
    heads = " | ".join(f"{i * START_WINDOW_S:.1f}" for i in range(START_WINDOWS))
    print(f"| backend | start | serving after | windows from (s): {heads} |")
    print("|---|---|---|" + "---|" * START_WINDOWS)
    for backend in backends:
        for _ in range(runs):
            with PrivateSystemBus() as bus, netns_pair() as pair, \
                    tempfile.TemporaryDirectory(prefix="ct-cache-") as cache:  # fmt: skip
                for kind in ("cold", "warm"):  # the second start finds the first one's programs
                    serving_s, windows = landing_on_start(
                        bus, pair, next(ports), rate, backend, Path(cache)
                    )
                    cells = " | ".join(f"{ratio:.2f}" for ratio in windows)
                    print(f"| {backend} | {kind} | {serving_s:.1f} s | {cells} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.limit_landing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--backends", default="ebpf,tc")
    parser.add_argument(
        "--rate", type=int, default=1_000_000, help="bytes/s (default 1 MB/s, the package test's)"
    )
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--starts", action="store_true", help="limit as the helper starts, cold and warm"
    )
    arguments = parser.parse_args(argv)
    if arguments.starts:
        starts(arguments.backends.split(","), arguments.runs, arguments.rate)
        return 0
    ports = iter(range(8100, 8900))
    heads = " | ".join(f"{i * WINDOW_S:.1f}-{(i + 1) * WINDOW_S:.1f} s" for i in range(WINDOWS))
    print(f"| backend | run | 1.5-4.5 s | {heads} | retransmitted |")
    print("|---|---|---|" + "---|" * WINDOWS + "---|")
    for backend in arguments.backends.split(","):
        with PrivateSystemBus() as bus, netns_pair() as pair, tempfile.TemporaryDirectory(prefix="ct-land-") as state, \
                HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state), backend=backend,
                              start_timeout_s=START_TIMEOUT_S) as helper:  # fmt: skip
            for run in range(1, arguments.runs + 1):
                package, windows, retransmitted = landing(bus, pair, next(ports), arguments.rate)
                cells = " | ".join(f"{ratio:.2f}" for ratio in windows)
                print(
                    f"| {backend} | {run} | {package:.3f} | {cells} | {retransmitted} |", flush=True
                )
            if helper.returncode is not None:
                raise RuntimeError(f"the helper died:\n{helper.log_text()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
