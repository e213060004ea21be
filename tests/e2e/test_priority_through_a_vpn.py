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

import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from chadthrottle.client import HelperClientError
from chadthrottle.contract import ApplicationInfo, RuleScope
from chadthrottle.helper.kernel.cgroups import cgroup2_mount

from tests.e2e.conftest import Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import NetnsPair, app_scope, nsenter_argv, spawn, wait_for_line
from tests.support.waiting import eventually

CAPACITY_BPS = 1_000_000
CALL_PORT, CALL_S = 5048, 4.0


@dataclass(frozen=True)
class Vpn:
    device: str  # in the helper's namespace
    server: str  # the far end's address inside the tunnel


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True)


@contextmanager
def wg_quick_like(pair: NetnsPair) -> Iterator[Vpn]:
    """A vxlan from the helper's namespace to the peer's, routed as wg-quick
    routes AllowedIPs = 0.0.0.0/0; all of it undone on exit."""
    tag = secrets.token_hex(3)
    near, far, vni, table = f"ctvx{tag}", f"ctvy{tag}", int(tag, 16) % 16_000_000 + 1, "51820"
    subnet = f"10.{100 + int(tag[:2], 16) % 40}.{int(tag[2:4], 16)}"
    port = str(40_000 + int(tag[4:], 16) % 2000)
    host, peer = pair.host_ns, pair.peer_ns
    undo: list[list[str]] = []
    try:
        for ns, name, local, remote, dev, addr in (
            (host, near, pair.host_addr, pair.peer_addr, pair.host_if, f"{subnet}.2"),
            (peer, far, pair.peer_addr, pair.host_addr, pair.peer_if, f"{subnet}.1"),
        ):
            _ip("-n", ns, "link", "add", name, "type", "vxlan", "id", str(vni), "local", local,
                "remote", remote, "dstport", port, "dev", dev)  # fmt: skip
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
        yield Vpn(near, f"{subnet}.1")
    finally:
        for argv in reversed(undo):
            subprocess.run(["ip", *argv], capture_output=True)


def _listed(bus: str, app_id: str) -> ApplicationInfo | None:
    apps = call_helper(bus, lambda c: c.list_applications())
    return next((app for app in apps if app.id == app_id), None)


def _set_priority(bus: str, app_id: str, priority: str) -> None:
    def attempt() -> bool:
        try:
            done = call_helper(bus, lambda c: c.set_priority(app_id, priority, scope=RuleScope.ALL))
            return bool(done == app_id)
        except HelperClientError:
            return False  # not seen yet: the helper's next tick lists it

    assert eventually(attempt, 5.0), f"SetPriority({app_id}, {priority}) was refused"


def test_the_link_is_on_the_vpn_and_a_priority_off_it_is_said_not_ordered(stack: Stack) -> None:
    bus, pair, untouched = stack.bus_address, stack.pair, stack.idle_tc_state()
    desktop_id = own_names.desktop_id("VpnCall", fresh=True)
    call_app = f"app:{desktop_id}"
    with (
        wg_quick_like(pair) as vpn,
        app_scope(cgroup2_mount(), desktop_id) as call_scope,
        app_scope(cgroup2_mount(), own_names.desktop_id("VpnEcho", fresh=True)) as echo_scope,
    ):
        spawn(["sleep", "60"], call_scope)  # seen by the helper before the calls
        echo = spawn(nsenter_argv(pair.peer_ns, [sys.executable, "-m", "bench.call_probe", "echo",
                                                 "--port", str(CALL_PORT)]), echo_scope)  # fmt: skip
        try:
            wait_for_line(echo, "listening")
            _set_priority(bus, call_app, "critical")
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

            through_vpn = call(vpn.server)
            assert not eventually(lambda: not said(""), CALL_S - 1), (
                problems
            )  # ordered: nothing said
            through_vpn.communicate(timeout=CALL_S + 30)
            off_vpn = call(pair.peer_addr)  # main's connected route: by the uplink
            expected = (
                f"its traffic through {pair.host_if} is not ordered: the link is on {vpn.device}"
            )
            told = eventually(lambda: said(expected), CALL_S - 1)
            off_vpn.communicate(timeout=CALL_S + 30)
            assert told, problems[-3:]
        finally:
            echo.kill()
            echo.wait(10)
            _set_priority(bus, call_app, "normal")
            call_helper(bus, lambda c: c.set_link_capacity(0, 0, False))
    assert call_helper(bus, lambda c: c.list_rules()) == []
    assert stack.idle_tc_state() == untouched
