"""Nanoseconds per run of the uplink's egress program (chadt_tc_out) for a
container's forwarded packets (issue 16, bpf/datapath.c), by the kernel's
per-program run-time statistics (BPF_ENABLE_STATS, on while this runs).

    sudo .venv/bin/python -m bench.forwarded_ns [--blocks 6] [--seconds 2] [--link [--classed]]
        [--container-limit | --local]

A namespace behind the helper's, masqueraded out of its uplink (a container);
the helper's shaper holds an upload and a download limit of another slot, so
every device has its hooks both ways (the container's veth's ingress writes a
socket's slot into skb->tc_index). One process in the container sends 64-byte
UDP datagrams to the far side as fast as it can for --seconds, with no slot
(tc_index 0) or with a slot that has no class in the helper's namespace (a
container's limit, held by its own namespace's shaper), alternating per block.
--link: a link capacity is set both ways and the other slot is prioritized,
so forwarded flows are in use (forwarded_classes[0]). --classed (with
--link): the slot has a class in the helper's tree as well, so its packets
are classed at the uplink (their token checked: forwarded_tokens) and the
veth's hook writes the slot's token. The report: ns per run of chadt_tc_out
(the uplink's egress) and of chadt_tc_in (the veth's ingress, in the
helper's namespace) per state, median [min-max] over blocks, and the load.
--container-limit: the container's namespace has a shaper of its own (as
the helper's namespace_shapers makes, with no pacer) holding the slot's
upload limit, so its packets go through an upload IFB there and skip the
veth's ingress hook; the container's egress runs chadt_tc_out too (which
writes the slot's token there when it is classed in the helper's tree:
carry_token). The kernel keeps one run-time count per program, not per
device: chadt_tc_out's are then the container's egress and the uplink's
together, chadt_tc_in's every ingress hook's (here almost all the veth's). --local: the sender runs in the helper's namespace instead (a
local socket; with --classed its limited packets pass carry_token's test of
the namespace and go on without a token).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import statistics
import subprocess
import sys
from collections.abc import Iterator

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel import bpf_syscalls
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.kernel.namespace_shapers import NoPacing
from chadthrottle.helper.kernel.priority_classes import LinkShaping
from chadthrottle.helper.kernel.tc_shaper import TcShaper
from chadthrottle.priority import Priority
from pyroute2 import IPRoute

from bench.hook_split import uptime
from bench.overhead import CACHE_DIR
from tests.support.netns import (
    NetnsPair,
    entered_netns,
    extra_link,
    netns_pair,
    nsenter_argv,
    tc_shaper_in,
)
from tests.support.own_names import JOURNAL_INSTANCE

OTHER, SLOT = 9, 7
SENDER = """
import socket, sys, time
sys.stdin.readline()  # the bench has given this process its slot, or none
out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # not connected: no ICMP errors
to, payload, end = (sys.argv[1], 9), bytes(64), time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    for _ in range(200):
        out.sendto(payload, to)
"""


@contextlib.contextmanager
def masqueraded(pair: NetnsPair) -> Iterator[NetnsPair]:
    """A namespace behind pair.host_ns, masqueraded out of pair.host_if."""
    table = f"ctfwdns{secrets.token_hex(3)}"
    with extra_link(f"ctfwdns-{secrets.token_hex(3)}", pair.host_ns) as link:
        subprocess.run(
            nsenter_argv(pair.host_ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]), check=True
        )
        subprocess.run(
            ["ip", "-n", link.host_ns, "route", "add", "default", "via", link.peer_addr], check=True
        )
        rules = (f"table ip {table} {{\n chain post {{\n  type nat hook postrouting priority srcnat;\n"
                 f'  oifname "{pair.host_if}" masquerade\n }}\n}}\n')  # fmt: skip
        subprocess.run(
            nsenter_argv(pair.host_ns, ["nft", "-f", "-"]), input=rules, text=True, check=True
        )
        try:
            yield link
        finally:
            subprocess.run(nsenter_argv(pair.host_ns, ["nft", "delete", "table", "ip", table]),
                           capture_output=True)  # fmt: skip


@contextlib.contextmanager
def container_shaper(netns: str, datapath: Datapath) -> Iterator[TcShaper]:
    """A shaper in the container's namespace as the helper makes one there:
    with no pacer (NoPacing), so the helper's namespace keeps the maps."""
    with entered_netns(netns):
        ipr = IPRoute()
        shaper = TcShaper(ipr, datapath.tc_program, NoPacing(), retire_after_s=0.0,
                          hook_linger_s=0.0, instance=JOURNAL_INSTANCE)  # fmt: skip
    try:
        yield shaper
    finally:
        shaper.close()
        ipr.close()


def hook_program(netns: str, device: str, hook: str = "egress", name: str = "chadt_tc_out") -> int:
    """The id of the program our filter runs on a device's hook."""
    shown = subprocess.run(nsenter_argv(netns, ["tc", "filter", "show", "dev", device, hook]),
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    found = re.search(name + r".* id (\d+)", shown)
    if not found:
        raise RuntimeError(f"no {name} on {device} {hook}: {shown}")
    return int(found.group(1))


def egress_program(pair: NetnsPair) -> int:
    """The id of the program our filter runs on the uplink's egress."""
    return hook_program(pair.host_ns, pair.host_if)


def run_ns(prog_id: int) -> tuple[int, int]:
    fd = bpf_syscalls.open_program(prog_id)
    try:
        return bpf_syscalls.program_run_stats(fd)
    finally:
        os.close(fd)


def one_run(container: NetnsPair, to: str, datapath: Datapath, slot: int, seconds: float,
            prog_ids: tuple[int, int]) -> tuple[list[float], int]:  # fmt: skip
    """([ns per run of each program], runs of the first) while the sender sends."""
    sender = subprocess.Popen(nsenter_argv(container.host_ns, [sys.executable, "-c", SENDER, to, str(seconds)]),
                              stdin=subprocess.PIPE, text=True)  # fmt: skip
    try:
        if slot:
            datapath.set_process_slot(sender.pid, slot)
        before = [run_ns(prog_id) for prog_id in prog_ids]
        assert sender.stdin is not None
        sender.stdin.write("go\n")
        sender.stdin.close()
        sender.wait(timeout=seconds + 10)
        after = [run_ns(prog_id) for prog_id in prog_ids]
    finally:
        sender.kill()
        sender.wait()
        datapath.set_process_slot(sender.pid, 0)
    spent = [(a[0] - b[0]) / max(a[1] - b[1], 1) for a, b in zip(after, before, strict=True)]
    return spent, after[0][1] - before[0][1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.forwarded_ns", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument(
        "--link", action="store_true", help="forwarded flows in use (a link, a priority)"
    )
    parser.add_argument(
        "--classed", action="store_true", help="with --link: the slot classed in the helper's tree"
    )
    parser.add_argument(
        "--container-limit",
        action="store_true",
        help="the slot's upload limit held in the container",
    )
    parser.add_argument("--local", action="store_true", help="the sender in the helper's namespace")
    args = parser.parse_args(argv)
    if args.classed and not args.link:
        parser.error("--classed needs --link")
    print(f"load before: {uptime()}")
    results: dict[str, list[float]] = {"no slot": [], "slot": []}
    ingress: dict[str, list[float]] = {"no slot": [], "slot": []}
    runs: dict[str, list[int]] = {"no slot": [], "slot": []}
    stats_fd = bpf_syscalls.enable_run_time_stats()
    datapath = Datapath(cache_dir=CACHE_DIR)
    datapath.open()
    try:
        with (
            netns_pair() as pair,
            masqueraded(pair) as container,
            tc_shaper_in(pair.host_ns, datapath) as shaper,
            contextlib.ExitStack() as stack,
        ):
            limit = ClassSpec(rate_bps=100_000_000, burst_bytes=1_000_000, priority=Priority.HIGH)
            if args.link:
                for direction in Direction:
                    shaper.set_link(direction, LinkShaping(capacity_bps=125_000_000))
            # the helper's own shaper holds every limit's class (namespace_shapers)
            slots = (OTHER, SLOT) if args.classed or args.container_limit else (OTHER,)
            shaper.reconcile({direction: dict.fromkeys(slots, limit) for direction in Direction})
            prog_ids = (egress_program(pair),
                        hook_program(pair.host_ns, container.peer_if, "ingress", "chadt_tc_in"))  # fmt: skip
            if args.container_limit:
                own = stack.enter_context(container_shaper(container.host_ns, datapath))
                own.reconcile({Direction.UP: {SLOT: limit}})
            for block in range(args.blocks):
                for state in ("no slot", "slot") if block % 2 == 0 else ("slot", "no slot"):
                    spent, count = one_run(pair if args.local else container, pair.peer_addr, datapath,
                                           SLOT if state == "slot" else 0,
                                           args.seconds, prog_ids)  # fmt: skip
                    results[state].append(spent[0])
                    ingress[state].append(spent[1])
                    runs[state].append(count)
            shaper.reconcile({})
    finally:
        datapath.close()
        os.close(stats_fd)
    for state, values in results.items():
        print(f"{state}: {statistics.median(values):.1f} ns a run [{min(values):.1f}-{max(values):.1f}], "
              f"{statistics.median(runs[state]) / args.seconds / 1000:.0f} k runs/s; veth ingress "
              f"{statistics.median(ingress[state]):.1f} [{min(ingress[state]):.1f}-{max(ingress[state]):.1f}]")  # fmt: skip
    print(
        f"slot - no slot: {statistics.median(results['slot']) - statistics.median(results['no slot']):.1f} ns"
    )
    print(f"load after: {uptime()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
