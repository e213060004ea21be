"""Where does a download's acknowledgement wait under a bulk upload? (issue 16, ack25)

bench/priorities.py's modem (bench/bottleneck.py: tbf at --down/--up with --buffer-ms of
queue each way), a bulk upload and a bulk download (--flows connections each, cubic,
their applications without a rule), the link tree through the real helper
(SetLinkCapacity at the modem's rates, a critical call scope: --tree helper) or
through the helper's kernel layer as bench/capacity_follow.py builds it (TcShaper.set_link
per direction, the call's class only: --tree kernel). --down-priority / --down-limit
give the download's application a rule (the helper only).

After --warmup-s, every 0.5 s for --seconds: our IFBs' classes (bytes, packets,
backlog), the download senders' smoothed round trips (tcpi_rtt, `ss -ti` in the
server namespace) and the modem's queues. Printed: what each class of each IFB sent over
the window (packets and mean size: the acknowledgement class htb.ACK_MINOR carries
packets under 128 bytes, the default class what no application is known for), the
largest backlog seen in the upload's acknowledgement class, and the download senders'
median round trip less our download queue's wait (each class's backlog at its
ceiling: the link's, or a limit's):
what the acknowledgements add (our upload queue, the modem's upload queue; the path
has no delay of its own).

    sudo .venv/bin/python -m bench.ack_wait [--tree helper|kernel] [--down 2.5M] [--up 625K]
        [--buffer-ms 400] [--flows 4] [--seconds 10] [--down-priority low] [--down-limit 1.5M]
        [--no-ack-filter]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel import htb
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.kernel.htb import ACK_MINOR, ClassSpec
from chadthrottle.helper.kernel.layout import HTB_MAJOR
from chadthrottle.helper.kernel.priority_classes import LinkShaping
from chadthrottle.helper.kernel.tc_ownership import IFB_ALIASES
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus
from chadthrottle.priority import Priority, parse_priority

from bench.bottleneck import modem
from bench.capacity_follow import kernel_shaper
from bench.priorities import START_TIMEOUT_S, TSO_RTT_LOG, Bench, _rate_arg
from bench.priority_helper import ETHERNET_L2_TO_L3, shaped_by_the_helper
from bench.priority_shaper import CALL_SLOT
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import app_scope, entered_netns, netns_pair, nsenter_argv

FIRST_PORT = 7100  # Bench._bulk_stream's first
SAMPLE_S = 0.5
SIZE_UNITS = {"": 1, "K": 1000, "M": 1000**2, "G": 1000**3}
ACK_CLASS = f"{HTB_MAJOR:x}:{ACK_MINOR:x}"

# class id -> bytes, packets sent, backlog bytes, ceil (bytes/s, as tc shows it)
ClassStats = dict[str, tuple[int, int, int, int]]


def classes(netns: str, ifb: str) -> ClassStats:
    """An IFB's HTB classes, from `tc -s class show` (this tc prints no JSON for classes)."""
    shown = subprocess.run(["tc", "-n", netns, "-s", "class", "show", "dev", ifb],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    found: ClassStats = {}
    for block in re.split(r"\n(?=class )", shown):
        name = re.match(r"class \S+ (\S+)", block)
        sent = re.search(r"Sent (\d+) bytes (\d+) pkt", block)
        backlog = re.search(r"backlog (\d+)([KM]?)b ", block)
        ceil = re.search(r" ceil (\d+)([KMG]?)bit ", block)
        if name and sent and backlog and ceil:
            found[name.group(1)] = (int(sent.group(1)), int(sent.group(2)),
                                    int(backlog.group(1)) * SIZE_UNITS[backlog.group(2)],
                                    int(ceil.group(1)) * SIZE_UNITS[ceil.group(2)] // 8)  # fmt: skip
    return found


def sender_rtts_ms(netns: str, ports: set[int]) -> list[float]:
    """The smoothed round trips of the connections sending from these local ports."""
    shown = subprocess.run(nsenter_argv(netns, ["ss", "-tinH", "state", "established"]),
                           capture_output=True, text=True, check=True).stdout.splitlines()  # fmt: skip
    rtts = []
    for line, info in itertools.pairwise(shown):
        local = re.search(r":(\d+)\s+\S+:\d+\s*$", line)
        rtt = re.search(r"\brtt:([\d.]+)/", info)
        if local and rtt and int(local.group(1)) in ports:
            rtts.append(float(rtt.group(1)))
    return rtts


def _sent(before: ClassStats, after: ClassStats) -> str:
    rows = []
    for name in sorted(after):
        sent = after[name][0] - before.get(name, (0, 0, 0, 0))[0]
        packets = after[name][1] - before.get(name, (0, 0, 0, 0))[1]
        if packets:
            rows.append(f"{name} {packets} pkt of {sent / packets:.0f} B")
    return "; ".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ack_wait", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--tree", choices=("helper", "kernel"), default="helper")
    parser.add_argument("--down", type=_rate_arg, default=_rate_arg("2.5M"))
    parser.add_argument("--up", type=_rate_arg, default=_rate_arg("625K"))
    parser.add_argument("--buffer-ms", type=float, default=400.0)
    parser.add_argument("--flows", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=5.0)
    parser.add_argument("--down-priority", type=parse_priority, default=None)
    parser.add_argument("--down-limit", type=_rate_arg, default=None)
    parser.add_argument(
        "--no-ack-filter",
        action="store_true",
        help="diagnostic, --tree kernel: the tree without the acknowledgements' u32 (their class "
        "stays, empty), as before it: what this bench reads when they wait behind the upload",
    )
    arguments = parser.parse_args(argv)
    if arguments.tree == "kernel" and (arguments.down_priority or arguments.down_limit):
        parser.error("a rule for the download needs --tree helper")
    if arguments.no_ack_filter:
        if arguments.tree != "kernel":
            parser.error("--no-ack-filter needs --tree kernel (the tree made in this process)")
        htb.ACK_FILTER_PRIORITIES = {}
    with contextlib.ExitStack() as stack:
        pair = stack.enter_context(netns_pair())
        internet = stack.enter_context(
            modem(pair, arguments.down, arguments.up, arguments.buffer_ms)
        )
        for netns in (pair.host_ns, internet.netns):
            sysctl = ["sysctl", "-qw", f"net.ipv4.tcp_tso_rtt_log={TSO_RTT_LOG}"]
            subprocess.run(nsenter_argv(netns, sysctl), check=True)
        bus = None
        if arguments.tree == "helper":
            bus = stack.enter_context(PrivateSystemBus())
            state = stack.enter_context(tempfile.TemporaryDirectory(prefix="ct-ackwait-"))
            stack.enter_context(HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state),
                                              backend="tc", start_timeout_s=START_TIMEOUT_S))  # fmt: skip
            scope = stack.enter_context(
                app_scope(cgroup2_mount(), own_names.desktop_id("AckWaitCall"))
            )
            stack.enter_context(
                shaped_by_the_helper(bus, pair, arguments.down, arguments.up, scope)
            )
        else:
            shaper, _, _ = stack.enter_context(kernel_shaper(pair))
            with entered_netns(pair.host_ns):
                for direction, rate in (
                    (Direction.DOWN, arguments.down),
                    (Direction.UP, arguments.up),
                ):
                    shaper.set_link(direction, LinkShaping(round(rate * ETHERNET_L2_TO_L3)))
                shaper.reconcile({d: {CALL_SLOT: ClassSpec(0, 0, Priority.CRITICAL)} for d in Direction})  # fmt: skip
        bench = Bench(
            bus, pair, internet, arguments.down, arguments.up, 0.8, "cubic", arguments.flows
        )
        with bench.bulk() as (_, down):
            if bus is not None and (arguments.down_priority or arguments.down_limit):
                pid = down[0].app_pid
                if arguments.down_priority:
                    call_helper(
                        bus.address, lambda c: c.set_priority(f"pid:{pid}", arguments.down_priority)
                    )
                if arguments.down_limit:
                    call_helper(bus.address, lambda c: c.set_limit(f"pid:{pid}", Direction.DOWN,
                                                                   arguments.down_limit))  # fmt: skip
            time.sleep(arguments.warmup_s)
            links = subprocess.run(["ip", "-n", pair.host_ns, "-o", "-d", "link", "show", "type", "ifb"],
                                   capture_output=True, text=True, check=True).stdout  # fmt: skip
            ifbs = {direction: re.search(rf"\d+: (\S+?)[:@].*alias {IFB_ALIASES[direction]}", links)
                    for direction in Direction}  # fmt: skip
            names = {d: m.group(1) for d, m in ifbs.items() if m}
            if set(names) != set(Direction):
                raise RuntimeError(f"no IFB of ours each way in the host namespace:\n{links}")
            # the download senders are the server ends of the download's streams (every other port)
            ports = {FIRST_PORT + 2 * i + 1 for i in range(arguments.flows)}
            before = {d: classes(pair.host_ns, names[d]) for d in Direction}
            reads = []
            ends = time.monotonic() + arguments.seconds
            while time.monotonic() < ends:
                reads.append(({d: classes(pair.host_ns, names[d]) for d in Direction},
                              sender_rtts_ms(internet.netns, ports), internet.backlog_bytes()))  # fmt: skip
                time.sleep(SAMPLE_S)
            after = {d: classes(pair.host_ns, names[d]) for d in Direction}
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"tree {arguments.tree}, {arguments.down * 8 / 1e6:.1f}/{arguments.up * 8 / 1e6:.1f} Mbit/s, "
          f"{arguments.flows} flows each way, download rule: priority {arguments.down_priority}, "
          f"limit {arguments.down_limit}{', no ACK u32' if arguments.no_ack_filter else ''}; {load}")  # fmt: skip
    for direction in Direction:
        print(f"  {direction.value} IFB sent: {_sent(before[direction], after[direction])}")
    # our download queue's wait: each class's backlog at its ceiling (the link's, or a limit's)
    added = [statistics.median(rtts) - sum(c[2] / c[3] for c in ifb[Direction.DOWN].values() if c[3]) * 1000
             for ifb, rtts, _ in reads if rtts]  # fmt: skip
    ack_backlog = [ifb[Direction.UP].get(ACK_CLASS, (0, 0, 0, 0))[2] for ifb, _, _ in reads]
    modem_up_ms = [q[1] / arguments.up * 1000 for _, _, q in reads]
    modem_down_ms = [q[0] / arguments.down * 1000 for _, _, q in reads]
    if added:
        print(f"  download senders' srtt less our download queue: median {statistics.median(added):.1f} ms, "
              f"{min(added):.1f}..{max(added):.1f} over {len(added)} reads")  # fmt: skip
    print(f"  upload ACK class backlog: max {max(ack_backlog, default=0)} B; modem queues max "
          f"{max(modem_down_ms, default=0):.0f} ms down / {max(modem_up_ms, default=0):.0f} ms up")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
