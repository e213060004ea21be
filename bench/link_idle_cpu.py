"""The helper's idle CPU with link shaping on: what a capacity and a priority
cost each tick when nothing moves (issue 16).

The real helper in the host namespace of a veth pair, on a private system
bus; one application (an app scope with a quiet process holding one TCP
connection) that gets the critical priority. Four phases of --seconds each:

  off        nothing set (as before issue 16)
  listed     nothing set, a client listing applications every second (as the GUI does)
  limited    for comparison: the application limited (1 MB/s down), no link
  linked     SetLinkCapacity(6.25 MB/s, 1.25 MB/s) and the application critical:
             the link tree on the IFBs, its class, the catch-all, every tick
  watched    as linked, with a client listing applications every second (as the
             GUI does), so the round-trip times are measured too (helper/engine/rtt.py)

    sudo .venv/bin/python -m bench.link_idle_cpu [--seconds 20]

Prints each phase's helper CPU as a share of one core (the kernel counts in
10 ms ticks: 20 s resolves 0.05%). docs/benchmarks.md ("Priorities: the
helper's side") keeps a run with the load it ran at.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from chadthrottle.contract import Direction, RuleScope
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus

from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import app_scope, netns_pair, nsenter_argv, spawn, wait_for_line

CLK_TCK = os.sysconf("SC_CLK_TCK")
PORT = 5990
SERVER = (
    f"import socket, time; l = socket.create_server(('0.0.0.0', {PORT})); "
    "print('{\"listening\": 1}', flush=True); c = l.accept()[0]; time.sleep(3600)"
)
CLIENT = f"import socket, sys, time; c = socket.create_connection((sys.argv[1], {PORT})); time.sleep(3600)"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _share(pid: int, seconds: float) -> float:
    before = _cpu_seconds(pid)
    time.sleep(seconds)
    return (_cpu_seconds(pid) - before) / seconds


@contextlib.contextmanager
def _polling(address: str) -> Iterator[None]:
    """ListApplications every second, as the GUI does."""
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(1.0):
            call_helper(address, lambda c: c.list_applications())

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        yield
    finally:
        stop.set()
        poller.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("link_idle_cpu: run as root (namespaces, BPF, tc)", file=sys.stderr)
        return 1
    desktop_id = own_names.desktop_id(f"BenchQuiet{secrets.token_hex(3)}")
    app_id = f"app:{desktop_id}"
    with PrivateSystemBus() as bus, netns_pair() as pair, tempfile.TemporaryDirectory() as state, \
            app_scope(cgroup2_mount(), desktop_id) as scope, \
            HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state), log_level="warning") as helper:  # fmt: skip
        pid = helper._process.pid if helper._process else 0
        server = spawn(nsenter_argv(pair.peer_ns, [sys.executable, "-c", SERVER]), None)
        quiet = None
        try:
            wait_for_line(server, "listening")
            quiet = spawn(
                nsenter_argv(pair.host_ns, [sys.executable, "-c", CLIENT, pair.peer_addr]), scope
            )
            time.sleep(3.0)  # a tick has seen it
            off = _share(pid, args.seconds)
            with _polling(bus.address):
                listed = _share(pid, args.seconds)
            call_helper(
                bus.address,
                lambda c: c.set_limit(app_id, Direction.DOWN, 1_000_000, scope=RuleScope.ALL),
            )
            time.sleep(3.0)
            limited = _share(pid, args.seconds)
            call_helper(bus.address, lambda c: c.clear_limit(app_id, scope=RuleScope.ALL))
            call_helper(bus.address, lambda c: c.set_link_capacity(6_250_000, 1_250_000, False))
            call_helper(
                bus.address, lambda c: c.set_priority(app_id, "critical", scope=RuleScope.ALL)
            )
            time.sleep(3.0)
            linked = _share(pid, args.seconds)
            with _polling(bus.address):
                time.sleep(3.0)
                watched = _share(pid, args.seconds)
            rtt = next(
                a.rtt_us
                for a in call_helper(bus.address, lambda c: c.list_applications())
                if a.id == app_id
            )
        finally:
            for process in (server, quiet):
                if process is not None:
                    process.kill()
                    process.wait(10)
    print(f"helper CPU, share of one core over {args.seconds:g} s: off {off:.2%}, listed {listed:.2%}, limited {limited:.2%}, linked {linked:.2%}, "
          f"watched (linked and listed: rtt measured) {watched:.2%}; rtt {rtt} us; "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
