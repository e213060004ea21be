"""Which devices carry the link capacity's tree when the internet does not
leave by the main table's default route (helper/kernel/internet_route.py,
issue 16): the common desktop VPNs and a bridge for virtual machines, built
from real parts in the pair's host namespace (this kernel has no wireguard
module: a tun device stands for the VPN's, routed the way wg-quick and
OpenVPN route; a vxlan, which encapsulates in the kernel as WireGuard does,
is tests/e2e/test_priority_through_a_vpn.py's).

- wg-quick: the default route in table 51820, `ip rule not fwmark 0xca6c
  lookup 51820` and `suppress_prefixlength 0` on main, main's default left;
- OpenVPN's redirect-gateway def1: 0.0.0.0/1 and 128.0.0.0/1 (::/1 and
  8000::/1) through tun0 beside main's default;
- a default route through a bridge whose port leads to the gateway, a VM's
  tap on it too: the tree on the port (it sees the host's and the VM's
  traffic), not on the bridge (the host's only) nor on the tap.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
from collections.abc import Iterator

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.internet_route import internet_links, off_link
from chadthrottle.helper.kernel.priority_classes import LinkShaping
from chadthrottle.helper.kernel.tc_shaper import TcShaper
from pyroute2 import IPRoute

from tests.support.netns import NetnsPair, entered_netns, tc_dump
from tests.support.waiting import eventually

LINK = LinkShaping(capacity_bps=1_250_000)
WG_TABLE, WG_MARK = "51820", "0xca6c"


def _ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", netns, *args], check=True, capture_output=True)


def _filters(netns: str, device: str, hook: str) -> str:
    return subprocess.run(["tc", "-n", netns, "filter", "show", "dev", device, hook],
                          capture_output=True, text=True).stdout  # fmt: skip


def _catch_all_on(netns: str, device: str) -> bool:
    """The link tree's catch-all (a u32 matching everything) on both hooks."""
    return all("u32" in _filters(netns, device, hook) for hook in ("egress", "ingress"))


def _index(netns: str, device: str) -> int:
    with entered_netns(netns):
        ipr = IPRoute()
    try:
        return int(ipr.link_lookup(ifname=device)[0])
    finally:
        ipr.close()


def _links_here(netns: str) -> set[int]:
    with entered_netns(netns):
        ipr = IPRoute()
    try:
        return internet_links(ipr)
    finally:
        ipr.close()


@pytest.fixture
def uplink_defaults(pair: NetnsPair) -> NetnsPair:
    """Main's default routes through the pair's veth, as a real host has."""
    _ip(pair.host_ns, "route", "add", "default", "via", pair.peer_addr)
    _ip(pair.host_ns, "-6", "route", "add", "default", "via", pair.peer_addr6)
    return pair


@pytest.fixture
def tun(pair: NetnsPair) -> Iterator[str]:
    """A VPN's device (a tun, as OpenVPN's), up and addressed."""
    name = f"ctv{secrets.token_hex(3)}"
    _ip(pair.host_ns, "tuntap", "add", "dev", name, "mode", "tun")
    _ip(pair.host_ns, "addr", "add", "10.66.0.2/32", "dev", name)
    _ip(pair.host_ns, "addr", "add", "fd66::2/128", "dev", name, "nodad")
    _ip(pair.host_ns, "link", "set", name, "up")
    yield name  # the namespace (the pair's, one a test) goes with its devices and rules


def _wg_quick(netns: str, device: str) -> None:
    """What wg-quick sets up for AllowedIPs = 0.0.0.0/0, ::/0."""
    for family in ("-4", "-6"):
        _ip(netns, family, "route", "add", "default", "dev", device, "table", WG_TABLE)
        _ip(netns, family, "rule", "add", "not", "fwmark", WG_MARK, "table", WG_TABLE)
        _ip(netns, family, "rule", "add", "table", "main", "suppress_prefixlength", "0")


def _def1(netns: str, device: str) -> None:
    """What OpenVPN's redirect-gateway def1 (and ipv6) adds."""
    for half in ("0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"):
        _ip(netns, "route", "add", half, "dev", device)


def _tree_on(shaper: TcShaper, netns: str, expected: str, others: list[str]) -> None:
    for direction in Direction:
        shaper.set_link(direction, LINK)
    shaper.reconcile({})
    try:
        assert shaper.linked_interfaces() == [expected], shaper.linked_interfaces()
        assert _catch_all_on(netns, expected)
        for other in others:
            assert not _catch_all_on(netns, other), f"the link's tree is on {other} too"
    finally:
        for direction in Direction:
            shaper.set_link(direction, None)
        shaper.reconcile({})


def test_wg_quicks_policy_routing_puts_the_link_on_the_vpn_device(
    uplink_defaults: NetnsPair, tun: str, shaper: TcShaper
) -> None:
    """An application's packet (no mark) goes to the VPN's table; only the
    VPN's own (marked) leave by the uplink: the tree is on the VPN device,
    where the application's sockets are seen. Before: on the uplink only
    (main's default), the VPN device's traffic in no link tree at all."""
    pair, before = uplink_defaults, tc_dump(uplink_defaults.host_ns)
    _wg_quick(pair.host_ns, tun)
    marked = subprocess.run(["ip", "-n", pair.host_ns, "route", "get", "9.9.9.9", "mark", WG_MARK],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert f"dev {pair.host_if}" in marked  # the VPN's own packets: by the uplink
    assert _links_here(pair.host_ns) == {_index(pair.host_ns, tun)}
    _tree_on(shaper, pair.host_ns, tun, [pair.host_if])
    assert tc_dump(pair.host_ns) == before


def test_openvpns_half_routes_put_the_link_on_the_vpn_device(
    uplink_defaults: NetnsPair, tun: str, shaper: TcShaper
) -> None:
    """0.0.0.0/1 and 128.0.0.0/1 beat main's default for every address. Before: the tree on the uplink."""
    pair, before = uplink_defaults, tc_dump(uplink_defaults.host_ns)
    _def1(pair.host_ns, tun)
    assert _links_here(pair.host_ns) == {_index(pair.host_ns, tun)}
    _tree_on(shaper, pair.host_ns, tun, [pair.host_if])
    assert tc_dump(pair.host_ns) == before


def test_a_split_tunnel_leaves_the_link_on_the_uplink(
    uplink_defaults: NetnsPair, tun: str, shaper: TcShaper
) -> None:
    """A VPN for a few prefixes (a company's) does not take the internet."""
    pair = uplink_defaults
    _ip(pair.host_ns, "route", "add", "172.16.0.0/12", "dev", tun)
    assert _links_here(pair.host_ns) == {_index(pair.host_ns, pair.host_if)}
    _tree_on(shaper, pair.host_ns, pair.host_if, [tun])


def test_no_route_to_the_internet_is_no_link_device(pair: NetnsPair) -> None:
    assert _links_here(pair.host_ns) == set()  # the shaper then puts it on every uplink


def test_a_bridges_port_to_the_gateway_carries_the_link(pair: NetnsPair, shaper: TcShaper) -> None:
    """The default route leaves by br0, the pair's veth a port of it beside a
    VM's tap: the tree goes on the port the bridge learnt the gateway behind
    (egress there is the host's and the VM's upload, ingress both downloads),
    not on br0 (the host's traffic only: the VM's passed unshaped) nor on the
    tap (its ingress is the VM's upload: the wrong direction's tree)."""
    bridge, tap = f"ctb{secrets.token_hex(3)}", f"ctt{secrets.token_hex(3)}"
    ns = pair.host_ns
    _ip(ns, "link", "add", bridge, "type", "bridge")
    _ip(ns, "addr", "flush", "dev", pair.host_if)
    _ip(ns, "link", "set", pair.host_if, "master", bridge)
    _ip(ns, "tuntap", "add", "dev", tap, "mode", "tap")
    _ip(ns, "link", "set", tap, "master", bridge)
    for device in (bridge, tap):
        _ip(ns, "link", "set", device, "up")
    _ip(ns, "addr", "add", f"{pair.host_addr}/24", "dev", bridge)
    _ip(ns, "route", "add", "default", "via", pair.peer_addr)
    assert _links_here(ns) == {_index(ns, bridge)}  # the gateway not seen yet: the bridge

    def learnt() -> bool:
        with entered_netns(ns):
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sender:
            sender.sendto(b"arp", (pair.peer_addr, 9))  # its ARP reply teaches the bridge
        return _links_here(ns) == {_index(ns, pair.host_if)}

    assert eventually(learnt, 5.0), _links_here(ns)
    _tree_on(shaper, ns, pair.host_if, [bridge, tap])
    # The host's packets are counted on br0 (the device routing sends them
    # to), the tree is on its port: not astray. The tap is.
    on_bridge, on_tap = _index(ns, bridge), _index(ns, tap)
    with entered_netns(ns):
        assert off_link({on_bridge}, [pair.host_if]) == []
        assert off_link({on_bridge, on_tap}, [pair.host_if]) == [tap]
        assert off_link({on_bridge}, [tap]) == []  # a port of it is linked
        assert off_link({on_tap}, [bridge]) == [tap]
