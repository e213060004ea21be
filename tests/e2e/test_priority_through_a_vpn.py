"""A priority through a VPN routed the way wg-quick routes (issue 16), with
the real helper: its namespace's internet goes by a VPN device (a vxlan to
the peer namespace: it encapsulates in the kernel and sends the result by the
physical uplink, as WireGuard does; this kernel has no wireguard module) in
a table of its own, picked by `ip rule not fwmark 0xca6c lookup T` after
`lookup main suppress_prefixlength 0`, main's default route left through
the uplink.

- The link tree is on the VPN's device (GetLinkShaping lists it alone), where
  the application's sockets are seen. Until the tree followed the kernel's
  routing it was on the uplink, main's default route's device, where the
  application's packets are the VPN's encrypted ones: every application in
  the default class, and nothing said.
- An application with a priority whose traffic leaves by the uplink (the VPN
  server's own subnet, a local network: main's routes) is told its priority
  is not in force there, and where the link is.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from chadthrottle.contract import ApplicationInfo
from chadthrottle.helper.kernel.cgroups import cgroup2_mount

from bench.bottleneck import Internet, modem
from tests.e2e.conftest import Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper, priorities_undone, set_priority_when_listed
from tests.support.netns import (
    NetnsPair,
    _descendants,
    app_scope,
    nsenter_argv,
    spawn,
    start_stream,
    wait_for_line,
)
from tests.support.waiting import eventually

# Judges a call's round trip, which another lane's load moves: after the lanes, alone.
pytestmark = pytest.mark.machine_alone

CAPACITY_BPS = 1_000_000
MTU = "1450"  # the uplink's less vxlan's 50 bytes (wg-quick: 1420 for WireGuard's 60-80)
CALL_PORT, CALL_S = 5048, 4.0


@dataclass(frozen=True)
class Vpn:
    device: str  # in the helper's namespace
    server: str  # the far end's address inside the tunnel
    client: str  # this end's


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True)


@contextmanager
def wg_quick_like(pair: NetnsPair, far: tuple[str, str] | None = None) -> Iterator[Vpn]:
    """A vxlan from the helper's namespace to the peer's (or to far: a
    namespace and its address, the internet behind a modem), routed as
    wg-quick routes AllowedIPs = 0.0.0.0/0; all of it undone on exit."""
    far_ns, far_addr = far or (pair.peer_ns, pair.peer_addr)
    tag = secrets.token_hex(3)
    near, far_dev, vni, table = f"ctvx{tag}", f"ctvy{tag}", int(tag, 16) % 16_000_000 + 1, "51820"
    subnet = f"10.{100 + int(tag[:2], 16) % 40}.{int(tag[2:4], 16)}"
    port = str(40_000 + int(tag[4:], 16) % 2000)
    host = pair.host_ns
    undo: list[list[str]] = []
    try:
        for ns, name, local, remote, addr in (
            (host, near, pair.host_addr, far_addr, f"{subnet}.2"),
            (far_ns, far_dev, far_addr, pair.host_addr, f"{subnet}.1"),
        ):
            _ip("-n", ns, "link", "add", name, "mtu", MTU, "type", "vxlan", "id", str(vni),
                "local", local, "remote", remote, "dstport", port)  # fmt: skip
            undo.append(["-n", ns, "link", "del", name])
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", name)
            _ip("-n", ns, "link", "set", name, "up")
        _ip("-n", host, "route", "add", "default", "via", pair.peer_addr)
        undo.append(["-n", host, "route", "del", "default", "via", pair.peer_addr])
        _ip("-n", host, "route", "add", "default", "via", f"{subnet}.1", "table", table)
        undo.append(["-n", host, "route", "flush", "table", table])
        for rule in (["not", "fwmark", "0xca6c", "table", table],
                     ["table", "main", "suppress_prefixlength", "0"]):  # fmt: skip
            _ip("-n", host, "rule", "add", *rule)
            undo.append(["-n", host, "rule", "del", *rule])
        yield Vpn(near, f"{subnet}.1", f"{subnet}.2")
    finally:
        for argv in reversed(undo):
            subprocess.run(["ip", *argv], capture_output=True)


def _end(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.communicate(timeout=10)


def _listed(bus: str, app_id: str) -> ApplicationInfo | None:
    apps = call_helper(bus, lambda c: c.list_applications())
    return next((app for app in apps if app.id == app_id), None)


def test_the_link_is_on_the_vpn_and_a_priority_off_it_is_said_not_ordered(stack: Stack) -> None:
    bus, pair, untouched = stack.bus_address, stack.pair, stack.idle_tc_state()
    desktop_id = own_names.desktop_id("VpnCall", fresh=True)
    call_app = f"app:{desktop_id}"
    with (
        wg_quick_like(pair) as vpn,
        app_scope(cgroup2_mount(), desktop_id) as call_scope,
        app_scope(cgroup2_mount(), own_names.desktop_id("VpnEcho", fresh=True)) as echo_scope,
        priorities_undone(bus, call_app),
    ):
        # seen by the helper before the calls; where the call runs (a process of a
        # prioritized application in the machine's namespace had it shaped: clsact34)
        spawn(nsenter_argv(pair.host_ns, ["sleep", "60"]), call_scope)
        echo = spawn(nsenter_argv(pair.peer_ns, [sys.executable, "-m", "bench.call_probe", "echo",
                                                 "--port", str(CALL_PORT)]), echo_scope)  # fmt: skip
        try:
            wait_for_line(echo, "listening")
            set_priority_when_listed(bus, call_app, "critical")
            call_helper(bus, lambda c: c.set_link_capacity(CAPACITY_BPS, CAPACITY_BPS, False))
            shaping = call_helper(bus, lambda c: c.get_link_shaping())
            assert eventually(
                lambda: (
                    call_helper(bus, lambda c: c.get_link_shaping()).interfaces == (vpn.device,)
                ),
                5.0,
            ), f"the link is on {shaping.interfaces}, the internet goes by {vpn.device}"

            def call(host: str) -> subprocess.Popen[str]:
                return spawn(nsenter_argv(pair.host_ns, [
                    sys.executable, "-m", "bench.call_probe", "call", "--host", host,
                    "--port", str(CALL_PORT), "--seconds", str(CALL_S)]), call_scope)  # fmt: skip

            problems: list[str] = []

            def said(expected: str) -> bool:
                listed = _listed(bus, call_app)
                problems.append(listed.priority_problem if listed else "(not listed)")
                return problems[-1] == expected

            # each call's report is not read: it ends once what it is for is judged
            through_vpn = call(vpn.server)
            assert not eventually(lambda: not said(""), CALL_S - 1), (
                problems
            )  # ordered: nothing said
            _end(through_vpn)
            off_vpn = call(pair.peer_addr)  # main's connected route: by the uplink
            expected = f"its traffic through {pair.host_if} is not prioritized: priorities apply on {vpn.device} only"
            told = eventually(lambda: said(expected), CALL_S - 1)
            _end(off_vpn)
            assert told, problems[-3:]
        finally:
            echo.kill()
            echo.wait(10)
    assert call_helper(bus, lambda c: c.list_rules()) == []
    assert stack.idle_tc_state() == untouched


DOWN_L2, UP_L2 = 1_250_000, 500_000  # the modem's rates (bytes/s, from the Ethernet header)
BUFFER_MS = 300
TO_L3 = 1500 / 1514
CALL_RUN_S = 6.0
# The call starts once the bulk download's start-up has been through the
# modem (its download queue held FILLED_BYTES, then under QUIET_BYTES for
# QUIET_S), not after a fixed wait; a start-up still there after START_UP_S
# is a standing queue.
QUIET_S, START_UP_S, FILLED_BYTES, QUIET_BYTES = 0.5, 12.0, 10_000, 2 * 1514
# The capacity is set this far under the modem's: the tree counts the
# tunnel's inner packets, and vxlan's 50 bytes a 1450-byte packet (3.4%)
# come on top at the modem. At the modem's own rate they ate most of the
# shaper's 5% margin: the modem kept a standing download queue (46-126 KB)
# and the call waited in it (median 78 ms) though in its class here.
SHARE = 0.96


def _as_other_machines(processes: list[subprocess.Popen[str]]) -> None:
    """The far end (the echo, the bulk streams' internet side) stands for other
    machines, with CPUs of their own: SCHED_FIFO 1, so the load on this one
    does not hold them back. Starved with the rest (load 15-19 on 2 cores) the
    bulk sender refilled the modem's download queue in bursts, which the
    shaping margin (SHARE) drains at 4% of the rate: in 3 of 4 runs the modem
    held a median 10.6-18.6 KB and the call waited there (down half 6.7-13.0
    ms by the kernel's stamps, up 0.02-0.03 ms; nothing in the call's class of
    the tree). At RT, 3 of 3 runs at that load left the modem's queue empty at
    the median and the down half 0.04-1.4 ms (docs/benchmarks.md, 2026-12-06)."""
    for process in processes:
        for pid in [process.pid, *_descendants(process.pid)]:
            subprocess.run(["chrt", "-f", "-p", "1", str(pid)], check=True, capture_output=True)


def _start_up_over(internet: Internet, streams_began: float) -> float:
    """Wait until the bulk download's start-up has been through the modem's
    queue; the seconds since the streams began. Why: the far sender's slow
    start ends (HyStart) with 40-70 KB in the modem's download queue, upstream
    of the tree, and that stays until the tree's bulk leaf (134 KB: 0.1 s of
    the link, at least two GRO packets) overflows and the sender backs off:
    1.7-2.1 s after the streams began in 12 of 13 runs, 3.5 s once. A fixed
    1.5 s wait started the call inside it in 12 of 13 runs; its first 0.3-0.5 s
    (~20 echoes of 300) took 20-42 ms, all in the down half, and the p99 was
    the start-up's, not the priority's (CI: 64 ms; docs/benchmarks/flakes.md,
    vpn32). A start-up that never reached the modem leaves nothing to wait
    for (after START_UP_S); one that never leaves it is a standing queue: the
    shaping not under the link, a failure."""
    filled, quiet_since = False, None
    while (now := time.monotonic()) - streams_began < START_UP_S:
        backlog = internet.backlog_bytes()[0]
        filled = filled or backlog >= FILLED_BYTES
        quiet_since = None if backlog >= QUIET_BYTES else (quiet_since or now)
        if filled and quiet_since is not None and now - quiet_since >= QUIET_S:
            return now - streams_began
        time.sleep(0.05)
    assert not filled, (
        f"the modem's download queue did not stay under {QUIET_BYTES} bytes for {QUIET_S} s "
        f"in {START_UP_S} s of bulk traffic: a standing queue upstream of the tree"
    )
    return now - streams_began


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def test_a_critical_call_through_the_vpn_is_ordered_under_load(stack: Stack) -> None:
    """The VPN's far end beyond a modem in miniature (its encapsulated packets
    cross the modem's queues); a normal application's bulk upload and
    download and a critical call all through the VPN, the capacity set to the
    modem's (less the tunnel's overhead, SHARE): the call keeps a short round
    trip, the bulk download most of the link."""
    bus, pair, untouched = stack.bus_address, stack.pair, stack.idle_tc_state()
    desktop_id = own_names.desktop_id("VpnOrdered", fresh=True)
    call_app = f"app:{desktop_id}"
    with (
        modem(pair, DOWN_L2, UP_L2, BUFFER_MS) as internet,
        wg_quick_like(pair, (internet.netns, internet.addr)) as vpn,
        app_scope(cgroup2_mount(), desktop_id) as call_scope,
        app_scope(cgroup2_mount(), own_names.desktop_id("VpnBulk", fresh=True)) as bulk_scope,
        app_scope(cgroup2_mount(), own_names.desktop_id("VpnServer", fresh=True)) as server_scope,
        priorities_undone(bus, call_app),
    ):
        through = NetnsPair(peer_ns=internet.netns, host_ns=pair.host_ns, peer_if="", host_if="",
                            peer_addr=vpn.server, host_addr=vpn.client, peer_addr6="", host_addr6="")  # fmt: skip
        spawn(nsenter_argv(pair.host_ns, ["sleep", "60"]), call_scope)  # where the call runs
        echo = spawn(nsenter_argv(internet.netns, [sys.executable, "-m", "bench.call_probe", "echo",
                                                   "--port", str(CALL_PORT)]), server_scope)  # fmt: skip
        streams = []
        try:
            wait_for_line(echo, "listening")
            set_priority_when_listed(bus, call_app, "critical")
            call_helper(bus, lambda c: c.set_link_capacity(round(DOWN_L2 * TO_L3 * SHARE), round(UP_L2 * TO_L3 * SHARE), False))  # fmt: skip
            assert eventually(
                lambda: (
                    call_helper(bus, lambda c: c.get_link_shaping()).interfaces == (vpn.device,)
                ),
                5.0,
            )
            streams_began = time.monotonic()
            for port, direction in ((5049, "up"), (5050, "down")):
                streams.append(start_stream(through, port, direction, app_cgroup=bulk_scope,
                                            peer_cgroup=server_scope, seconds=30, congestion="cubic"))  # fmt: skip
            _as_other_machines([echo, *(stream.server for stream in streams)])
            start_up_s = _start_up_over(internet, streams_began)
            caller = spawn(nsenter_argv(pair.host_ns, [
                sys.executable, "-m", "bench.call_probe", "call", "--host", vpn.server,
                "--port", str(CALL_PORT), "--seconds", str(CALL_RUN_S)]), call_scope)  # fmt: skip
            out, _ = caller.communicate(timeout=CALL_RUN_S + 30)
            up_bps, down_bps = (s.receiver.rate_bps(3.0) for s in streams)
            listed = _listed(bus, call_app)
        finally:
            for stream in streams:
                stream.stop()
            echo.kill()
            echo.wait(10)
        report = json.loads(out.strip().splitlines()[-1])
        # By the kernel's receive times: the probes' lateness to read is not the
        # link's (bench/call_probe.py); by their reading times too, to compare.
        rtts, read = (
            [float(r) for r in report["wire_rtts_ms"]],
            [float(r) for r in report["rtts_ms"]],
        )
        assert len(rtts) == len(read), "an echo without the kernel's times"
        loss = 1 - len(rtts) / report["sent"]
        median, p99 = _percentile(rtts, 0.5), _percentile(rtts, 0.99)
        print(f"call through the VPN: median {median:.2f} ms, p99 {p99:.2f} (as read: {_percentile(read, 0.5):.2f}, "
              f"{_percentile(read, 0.99):.2f}), loss {loss:.2%}; "
              f"halves up {_percentile(report['wire_up_ms'], 0.5):.2f} down {_percentile(report['wire_down_ms'], 0.5):.2f} ms; "
              f"bulk up {up_bps / UP_L2:.2f}, down {down_bps / DOWN_L2:.2f} of the modem; "
              f"said {listed.priority_problem if listed else None!r}; called {start_up_s:.2f} s after the streams began")  # fmt: skip
        assert listed is not None and listed.priority_problem == ""
        assert median < 10 and p99 < 60 and loss < 0.02, (median, p99, loss)
        # measured: down 0.87-0.91; up 0.85 (2 runs) since chadt_tc_out leaves
        # the vxlan's packet around the shaped one alone, 0.42-0.47 before (the
        # uplink's hook classed it again: docs/backends.md, "Which uplinks the
        # link is on")
        assert up_bps >= 0.7 * UP_L2 and down_bps >= 0.6 * DOWN_L2, (up_bps, down_bps)
    assert call_helper(bus, lambda c: c.list_rules()) == []
    assert stack.idle_tc_state() == untouched
