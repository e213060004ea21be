"""What choosing the link's devices costs (helper/kernel/internet_route.py):
internet_links' route lookups against the main-table dump it replaced, in a
namespace routed as wg-quick routes (a tun in table 51820, two ip rules, main's
default through a veth) and in one whose default route leaves by a bridge.

    python -m bench.internet_route_cost [--calls 2000]

Prints the median and p99 of one call (ms) for each. Needs root; what it
makes is removed on exit.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any

from chadthrottle.helper.kernel.internet_route import internet_links
from pyroute2 import IPRoute

from tests.support.netns import entered_netns, netns_pair


def _ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", netns, *args], check=True, capture_output=True)


def _main_defaults(ipr: Any) -> set[int]:
    """What ebdb091 read: main's default routes' devices (one dump per family)."""
    found: set[int] = set()
    for family in (socket.AF_INET, socket.AF_INET6):
        for route in ipr.get_routes(family=family, table=254):
            if route["dst_len"] == 0 and (oif := route.get_attr("RTA_OIF")) is not None:
                found.add(oif)
    return found


def _timed(call: Callable[[], object], calls: int) -> tuple[float, float]:
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1e3)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    calls = parser.parse_args().calls
    with netns_pair() as pair:
        ns = pair.host_ns
        _ip(ns, "route", "add", "default", "via", pair.peer_addr)
        _ip(ns, "-6", "route", "add", "default", "via", pair.peer_addr6)
        _ip(ns, "tuntap", "add", "dev", "ctvpnb0", "mode", "tun")
        _ip(ns, "addr", "add", "10.66.0.2/32", "dev", "ctvpnb0")
        _ip(ns, "link", "set", "ctvpnb0", "up")
        for family in ("-4", "-6"):
            _ip(ns, family, "route", "add", "default", "dev", "ctvpnb0", "table", "51820")
            _ip(ns, family, "rule", "add", "not", "fwmark", "0xca6c", "table", "51820")
            _ip(ns, family, "rule", "add", "table", "main", "suppress_prefixlength", "0")
        with entered_netns(ns):
            ipr = IPRoute()
        try:
            print(
                "wg-quick routing: links", internet_links(ipr), "main defaults", _main_defaults(ipr)
            )
            for name, call in (("internet_links", lambda: internet_links(ipr)),
                               ("main-table dump", lambda: _main_defaults(ipr))):  # fmt: skip
                median, p99 = _timed(call, calls)
                print(f"  {name}: median {median:.3f} ms, p99 {p99:.3f} ms ({calls} calls)")
        finally:
            ipr.close()
    with netns_pair() as pair:
        ns = pair.host_ns
        _ip(ns, "link", "add", "ctbrb0", "type", "bridge")
        _ip(ns, "addr", "flush", "dev", pair.host_if)
        _ip(ns, "link", "set", pair.host_if, "master", "ctbrb0")
        _ip(ns, "link", "set", "ctbrb0", "up")
        _ip(ns, "addr", "add", f"{pair.host_addr}/24", "dev", "ctbrb0")
        _ip(ns, "route", "add", "default", "via", pair.peer_addr)
        with entered_netns(ns):
            ipr = IPRoute()
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for _ in range(50):  # the gateway's ARP reply teaches the bridge
                sender.sendto(b"arp", (pair.peer_addr, 9))
                if internet_links(ipr) != {ipr.link_lookup(ifname="ctbrb0")[0]}:
                    break
                time.sleep(0.1)
            print("bridge: links", internet_links(ipr))
            median, p99 = _timed(lambda: internet_links(ipr), calls)
            print(f"  internet_links: median {median:.3f} ms, p99 {p99:.3f} ms ({calls} calls)")
        finally:
            sender.close()
            ipr.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
