"""What per-application shares cost the helper (issue 16): under a link
capacity every active application without a rule gets a slot, its processes'
tags and a class of its own per direction (helper/engine/plan.py,
fair_shares). The real helper (tc backend, private bus, host namespace of a
netns pair); N applications, each an app scope with one small UDP upload
(--rate bytes/s). Prints the helper's CPU (user + system, its /proc stat)
per second of wall time over --seconds without a capacity and with one, how
long after SetLinkCapacity every application's class was on the upload IFB,
and the classes there.

    sudo .venv/bin/python -m bench.fair_cost --apps 20
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import subprocess
import tempfile
import time
from pathlib import Path

from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus

from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import Stream, app_scope, netns_pair, start_stream

CAPACITY = 5_000_000  # L3 bytes/s each way: far above what the applications send
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def app_classes(netns: str) -> int:
    """Classes under the link class on the namespace's devices, but the ACK and default classes."""
    out = subprocess.run(["tc", "-n", netns, "class", "show", "dev", ifb_of(netns)],
                         capture_output=True, text=True).stdout  # fmt: skip
    return len(re.findall(r"class htb c7ad:(?!fffc|ffff)[0-9a-f]+ parent c7ad:fffe", out))


def ifb_of(netns: str) -> str:
    out = subprocess.run(["ip", "-n", netns, "-o", "link", "show", "type", "ifb"],
                         capture_output=True, text=True).stdout  # fmt: skip
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
    for name in names:  # the upload IFB: the one whose alias says so
        alias = subprocess.run(
            ["ip", "-n", netns, "link", "show", name], capture_output=True, text=True
        ).stdout
        if "up" in alias.split("alias", 1)[-1]:
            return name
    return names[0] if names else "lo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=20)
    parser.add_argument("--rate", type=float, default=20_000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    tag = secrets.token_hex(3)
    with contextlib.ExitStack() as stack:
        pair = stack.enter_context(netns_pair())
        bus = stack.enter_context(PrivateSystemBus())
        state = stack.enter_context(tempfile.TemporaryDirectory(prefix="ct-fair-"))
        helper = stack.enter_context(HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state),
                                                   backend="tc"))  # fmt: skip
        pid = helper._process.pid
        streams: list[Stream] = []
        for n in range(args.apps):
            scope = stack.enter_context(
                app_scope(cgroup2_mount(), own_names.desktop_id(f"FairCost{tag}n{n}"))
            )
            streams.append(start_stream(pair, 6200 + n, "up", udp=True, app_cgroup=scope,
                                        seconds=120, rate_bps=args.rate))  # fmt: skip
        stack.callback(lambda: [s.stop() for s in streams])
        time.sleep(3.0)  # every application seen moving data
        print(f"load {os.getloadavg()[0]:.1f}; {args.apps} applications, {args.rate:.0f} B/s each")
        for case in ("no capacity", "capacity set"):
            began = time.monotonic()
            if case == "capacity set":
                call_helper(bus.address, lambda c: c.set_link_capacity(CAPACITY, CAPACITY, False))
                while app_classes(pair.host_ns) < args.apps and time.monotonic() - began < 30:
                    time.sleep(0.05)
                print(f"  every application's class on the upload IFB after {time.monotonic() - began:.2f} s "
                      f"({app_classes(pair.host_ns)} classes)")  # fmt: skip
            cpu, wall = cpu_s(pid), time.monotonic()
            time.sleep(args.seconds)
            used = (cpu_s(pid) - cpu) / (time.monotonic() - wall)
            print(
                f"  {case:14s} helper CPU {used * 100:.2f}% of a core  (load {os.getloadavg()[0]:.1f})"
            )
        call_helper(bus.address, lambda c: c.set_link_capacity(0, 0, False))


if __name__ == "__main__":
    main()
