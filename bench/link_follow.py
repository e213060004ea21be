"""How fast does the helper follow interfaces? The real helper in the "host"
namespace of a veth pair on a private system bus, one application limited
to 300 KiB/s up (a cutting TBF leaf: its bucket follows the largest MTU)
with a stream in the host namespace and one in a namespace of its own
(shaped by a TcShaper the helper runs in there):

    sudo .venv/bin/python -m bench.link_follow [--rounds 5] [--no-link-events]

Per round and place (here: the helper's namespace; there: the app's own):
- "up": a new veth brought up -> the helper's clsact hook on it;
- "re-added": that veth deleted, made again and brought up -> the hook back;
- "mtu": the veth's MTU raised to 4000 (here only: the cutting leaves are
  sized for the namespace's largest frame) -> the upload IFB's TBF bucket
  reads 4,018 bytes; lowered back at the end of the round.
Each time is from the `ip` command that made the change to the first read
(every 5 ms, in this process) that shows the helper followed it; each change
comes after a random pause of 0-1 s (a random phase of the helper's tick).
--no-link-events runs the helper with that flag: the once-a-second tick
alone (the behaviour before the link-event listener). docs/benchmarks.md
keeps runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel import tbf_leaf
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.kernel.tc_ownership import IFB_ALIASES
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus
from pyroute2 import IPRoute

from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import (
    NetnsPair,
    app_scope,
    entered_netns,
    extra_link,
    netns_pair,
    start_stream,
)

LIMIT_BPS = 300 * 1024
POLL_S = 0.005
GIVE_UP_S = 5.0
START_TIMEOUT_S = 150.0  # another session's helper may hold the datapath lock
RAISED_MTU = 4000


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True)


def _hooked(ipr: IPRoute, name: str) -> bool:
    indexes = ipr.link_lookup(ifname=name)
    return bool(indexes) and any(
        m.get_attr("TCA_KIND") == "clsact" for m in ipr.get_qdiscs(index=indexes[0])
    )


def _buckets(ipr: IPRoute) -> list[int]:
    """The cutting TBF buckets on the namespace's upload IFB."""
    ifbs = [
        link["index"]
        for link in ipr.get_links()
        if link.get_attr("IFLA_IFALIAS") == IFB_ALIASES[Direction.UP]
    ]
    leaves = [
        tbf_leaf.read_back(m)
        for index in ifbs
        for m in ipr.get_qdiscs(index=index)
        if m.get_attr("TCA_KIND") == "tbf"
    ]
    return [leaf.bucket_bytes for leaf in leaves if leaf is not None and leaf.cuts]


def _time(change: Callable[[], None], followed: Callable[[], bool]) -> float:
    """Seconds from the change to the first read that shows it followed. The
    change comes at a random phase of the helper's tick: right after one
    follow, the next change would otherwise meet the tick a second later."""
    time.sleep(random.uniform(0.0, 1.0))
    start = time.monotonic()
    change()
    while not followed():
        if time.monotonic() - start > GIVE_UP_S:
            return float("inf")
        time.sleep(POLL_S)
    return time.monotonic() - start


def _veth(namespace: str, far: str, name: str, peer: str) -> None:
    """A veth from namespace to far, both ends down."""
    _ip("-n", far, "link", "add", peer, "type", "veth", "peer", "name", name, "netns", namespace)
    _ip("-n", far, "link", "set", peer, "up")


def round_in(namespace: str, far: str, ipr: IPRoute, mtu: bool) -> dict[str, float]:
    tag = secrets.token_hex(3)
    name, peer = f"ctq{tag}", f"ctr{tag}"
    times: dict[str, float] = {}
    try:
        _veth(namespace, far, name, peer)
        times["up"] = _time(
            lambda: _ip("-n", namespace, "link", "set", name, "up"), lambda: _hooked(ipr, name)
        )
        _ip("-n", namespace, "link", "del", name)
        _veth(namespace, far, name, peer)
        times["re-added"] = _time(
            lambda: _ip("-n", namespace, "link", "set", name, "up"), lambda: _hooked(ipr, name)
        )
        if mtu:
            frame = RAISED_MTU + 14 + tbf_leaf.FRAME_SLACK_BYTES
            times["mtu"] = _time(
                lambda: _ip("-n", namespace, "link", "set", name, "mtu", str(RAISED_MTU)),
                lambda: all(abs(b - frame) <= 4 for b in _buckets(ipr)) and bool(_buckets(ipr)),
            )
    finally:
        subprocess.run(["ip", "-n", namespace, "link", "del", name], capture_output=True)
    return times


@contextlib.contextmanager
def _netlink_in(namespace: str) -> Iterator[IPRoute]:
    with entered_netns(namespace):
        ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def run(rounds: int, link_events: bool) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    with (
        PrivateSystemBus() as bus,
        netns_pair() as pair,
        tempfile.TemporaryDirectory(prefix="ct-follow-") as state,
        app_scope(cgroup2_mount(), own_names.desktop_id(f"BenchFollow{os.getpid()}")) as scope,
    ):
        helper = HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state),
                               start_timeout_s=START_TIMEOUT_S)  # fmt: skip
        if not link_events:
            helper.command.append("--no-link-events")
        with extra_link(f"ctapp-{secrets.token_hex(3)}", pair.peer_ns) as own:
            streams = [
                start_stream(pair, 5900, "up", app_cgroup=scope, seconds=600),
                start_stream(own, 5901, "up", app_cgroup=scope, seconds=600),
            ]
            try:
                helper.start()
                app = call_helper(bus.address, lambda c: c.set_limit(
                    f"pid:{streams[0].app_pid}", Direction.UP, LIMIT_BPS))  # fmt: skip
                with _netlink_in(pair.host_ns) as here, _netlink_in(own.host_ns) as there:
                    _settle(pair, own, here, there)
                    for _ in range(rounds):
                        for place, (ns, ipr) in (("here", (pair.host_ns, here)),
                                                 ("there", (own.host_ns, there))):  # fmt: skip
                            for event, seconds in round_in(
                                ns, pair.peer_ns, ipr, place == "here"
                            ).items():
                                results.setdefault(f"{place} {event}", []).append(seconds)
                call_helper(bus.address, lambda c: c.clear_limit(app))
                if helper.returncode is not None:
                    raise RuntimeError(f"the helper died:\n{helper.log_text()}")
            finally:
                for stream in streams:
                    stream.stop()
                helper.close()
    return results


def _settle(pair: NetnsPair, own: NetnsPair, here: IPRoute, there: IPRoute) -> None:
    """Both namespaces hooked before the first change."""
    deadline = time.monotonic() + 30
    while not (_hooked(here, pair.host_if) and _hooked(there, own.host_if) and _buckets(here)):
        if time.monotonic() > deadline:
            raise RuntimeError("the limit never reached both namespaces")
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.link_follow", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5, help="rounds per place (default 5)")
    parser.add_argument(
        "--no-link-events", action="store_true", help="the helper follows by its tick alone"
    )
    arguments = parser.parse_args(argv)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results = run(arguments.rounds, not arguments.no_link_events)
    mode = "tick alone (--no-link-events)" if arguments.no_link_events else "link events"
    print(f"helper following interfaces by {mode}; {arguments.rounds} rounds; uptime: {load}")
    for name, times in results.items():
        shown = " ".join(f"{t:.3f}" for t in times)
        print(
            f"  {name:<15} median {statistics.median(times):.3f} s  max {max(times):.3f} s  [{shown}]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
