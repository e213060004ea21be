"""Per-application shares through the real helper (issue 16): three normal
applications (app scopes, no rule) with 1, 4 and 8 TCP connections each way,
under a link capacity set by SetLinkCapacity; the helper gives each active
application a class of its own (docs/backends.md, "Per-application shares").
Prints each application's share of each direction over its fair share (1.00:
exactly fair) per window, and the direction's total over the capacity (L3;
the streams count payload, about 0.96 of it at 1500 bytes).

    sudo .venv/bin/python -m bench.fair_helper [--down 4000000] [--up 2000000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import tempfile
import time
from pathlib import Path

from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus

from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import Stream, app_scope, netns_pair, rates_together, start_stream

FLOWS = {"one": 1, "four": 4, "eight": 8}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--down", type=int, default=4_000_000, help="capacity, L3 bytes/s")
    parser.add_argument("--up", type=int, default=2_000_000, help="capacity, L3 bytes/s")
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    tag = secrets.token_hex(3)
    with contextlib.ExitStack() as stack:
        pair = stack.enter_context(netns_pair())
        bus = stack.enter_context(PrivateSystemBus())
        state = stack.enter_context(tempfile.TemporaryDirectory(prefix="ct-fairh-"))
        stack.enter_context(
            HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state), backend="tc")
        )
        call_helper(bus.address, lambda c: c.set_link_capacity(args.down, args.up, False))
        stack.callback(lambda: call_helper(bus.address, lambda c: c.set_link_capacity(0, 0, False)))
        streams: dict[tuple[str, str], list[Stream]] = {}
        stack.callback(lambda: [s.stop() for group in streams.values() for s in group])
        port = 6300
        for app, flows in FLOWS.items():
            scope = stack.enter_context(
                app_scope(cgroup2_mount(), own_names.desktop_id(f"FairHelper{tag}{app}"))
            )
            for direction in ("up", "down"):
                for _ in range(flows):
                    streams.setdefault((app, direction), []).append(
                        start_stream(pair, port, direction, app_cgroup=scope, seconds=120)
                    )
                    port += 1
        time.sleep(4.0)  # the classes (one or two ticks) and TCP settled
        keys = list(streams)
        print(f"capacity down {args.down} up {args.up} B/s; flows {FLOWS}; share / fair share:")
        for _ in range(args.windows):
            rates = iter(
                rates_together([s.receiver for key in keys for s in streams[key]], args.seconds)
            )
            totals = {key: sum(next(rates) for _ in streams[key]) for key in keys}
            line = []
            for direction, capacity in (("up", args.up), ("down", args.down)):
                both = sum(rate for (_app, d), rate in totals.items() if d == direction)
                line.append(f"{direction}: " + " ".join(f"{app} {len(FLOWS) * totals[(app, direction)] / both:.2f}"
                                                        for app in FLOWS) + f" (link {both / capacity:.2f})")  # fmt: skip
            print("  " + ";  ".join(line) + f"  (load {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
